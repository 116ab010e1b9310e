"""mmbalance: diagnose and fix modality dominance in multimodal PyTorch models.

The library is what the CLI runs; each command is one typed function:

    >>> import mmbalance
    >>> result = mmbalance.audit("av-tiny", "synthetic:av-dominance?n_test=64", steps=8)  # doctest: +SKIP
    >>> result.dominant_modality, result.shares  # doctest: +SKIP
    ('audio', {'audio': 0.9, 'visual': 0.1})

Note: ``mmbalance.audit`` and ``mmbalance.check`` are the functions; their modules are
reached with ``from mmbalance.audit import ...`` / ``from mmbalance.check import ...``.

The public names are imported on first use (module ``__getattr__``), so ``import mmbalance``
and the command line's ``--help`` do not pay for importing torch.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from ._startup import guard_cli_startup  # noqa: E402

guard_cli_startup()  # the CLI process only: Ctrl-C while torch imports is one line (see _startup.py)

if TYPE_CHECKING:
    from .audit import audit
    from .check import check
    from .data import load_dataset
    from .errors import MMBalanceError
    from .models import list_models, load_model, register_model
    from .results import AuditResult, MethodResult
    from .training import AttributionPenalty, AuxHeads, TrainConfig, finetune, modality_shares

# public name -> the module that defines it (imported on first access)
_LAZY: dict[str, str] = {
    "MMBalanceError": ".errors", "AuditResult": ".results", "MethodResult": ".results",
    "list_models": ".models", "load_model": ".models", "register_model": ".models",
    "load_dataset": ".data", "audit": ".audit", "TrainConfig": ".training", "finetune": ".training",
    "check": ".check",
    "AttributionPenalty": ".training", "AuxHeads": ".training", "modality_shares": ".training",
}
# functions named like the submodule that defines them: importing the submodule must not replace them
_SHADOWED = ("audit", "check")

__all__ = [
    "__version__", "MMBalanceError", "AuditResult", "MethodResult", "list_models", "load_model",
    "register_model", "load_dataset", "audit", "TrainConfig", "finetune", "check", "AttributionPenalty", "AuxHeads",
    "modality_shares",
]


def __getattr__(name: str) -> Any:
    """``mmbalance.audit`` & co.: import the defining module on first access (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """The package module: binding the submodule ``mmbalance.audit`` (or ``.check``) on the package, as the
    import system does after importing it, keeps the function of the same name instead."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
