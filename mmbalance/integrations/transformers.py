"""Hugging Face ``Trainer``: :class:`ModalityBalanceCallback` adds the modality shares to the evaluation metrics.

After every evaluation the callback measures the shares of the trainer's model on the
evaluation loader (or the ``loader`` given; batches are dicts holding the modality inputs and
``labels``), optionally on its first ``limit`` samples, and adds ``eval_modality_share/<m>``,
``eval_share_variance`` and ``eval_modality_balanced`` to the metrics ``Trainer.evaluate``
returns, and to ``state.log_history``. The penalty goes into ``Trainer.compute_loss`` (see
docs/integrations.md).

Example:
    >>> trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=val,
    ...                   callbacks=[ModalityBalanceCallback(modalities=["audio", "visual"])])  # doctest: +SKIP
    >>> trainer.evaluate()["eval_modality_share/audio"]  # doctest: +SKIP
    0.52
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from ..training.penalty import AttributionPenalty
from ._shares import balance_metrics

try:
    from transformers import TrainerCallback
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("mmbalance.integrations.transformers needs transformers: pip install 'mmbalance[hf]'") from err

__all__ = ["ModalityBalanceCallback"]


class ModalityBalanceCallback(TrainerCallback):  # type: ignore[misc]
    """Add the shares to every evaluation's metrics (see the module docstring)."""

    def __init__(self, loader: Iterable[Any] | None = None, *, limit: int | None = None,
                 penalty: AttributionPenalty | None = None,
                 embedding_layers: Mapping[str, Any] | str | None = None, modalities: Sequence[str] | None = None,
                 pass_through: Sequence[str] = (), call: str = "auto", prefix: str = "eval_") -> None:
        self.loader, self.limit, self.penalty, self.prefix = loader, limit, penalty, prefix
        self.settings: dict[str, Any] = {"embedding_layers": embedding_layers, "modalities": modalities,
                         "pass_through": tuple(pass_through), "call": call}
        self.verdict: str | None = None

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None,
                    model: Any = None, eval_dataloader: Any = None, **kwargs: Any) -> None:
        loader = self.loader if self.loader is not None else eval_dataloader
        if loader is None or model is None:
            return
        found, self.verdict = balance_metrics(model, loader, penalty=self.penalty, limit=self.limit,
                                              prefix=self.prefix, **self.settings)
        if metrics is not None:
            metrics.update(found)
        state.log_history.append({**found, "epoch": state.epoch, "step": state.global_step})
