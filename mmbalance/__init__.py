"""mmbalance: diagnose and fix modality dominance in multimodal PyTorch models.

The library is what the CLI runs; each command is one typed function:

    >>> import mmbalance
    >>> result = mmbalance.audit("av-tiny", "synthetic:av-dominance?n_test=64", steps=8)  # doctest: +SKIP
    >>> result.dominant_modality, result.shares  # doctest: +SKIP
    ('audio', {'audio': 0.9, 'visual': 0.1})

Note: ``mmbalance.audit`` and ``mmbalance.check`` are the functions; their modules are
reached with ``from mmbalance.audit import ...`` / ``from mmbalance.check import ...``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from ._startup import guard_cli_startup  # noqa: E402

guard_cli_startup()  # the CLI process only: Ctrl-C while torch imports is one line (see _startup.py)

from .errors import MMBalanceError  # noqa: E402
from .results import AuditResult, MethodResult  # noqa: E402
from .models import list_models, load_model, register_model  # noqa: E402
from .data import load_dataset  # noqa: E402
from .audit import audit  # noqa: E402
from .training import AttributionPenalty, AuxHeads, TrainConfig, finetune, modality_shares  # noqa: E402
from .check import check  # noqa: E402

__all__ = [
    "__version__", "MMBalanceError", "AuditResult", "MethodResult", "list_models", "load_model",
    "register_model", "load_dataset", "audit", "TrainConfig", "finetune", "check", "AttributionPenalty", "AuxHeads",
    "modality_shares",
]
