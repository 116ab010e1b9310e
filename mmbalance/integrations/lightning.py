"""PyTorch Lightning: :class:`ModalityBalance` logs the modality shares through the module's logger.

Every ``every_n_epochs`` training epochs the callback measures the shares of the module (or
``model(pl_module)``) on a held-out loader (default: the trainer's validation loader),
optionally only on its first ``limit`` samples, and logs ``modality_share/<m>``,
``share_variance`` and ``modality_balanced`` (1.0 or 0.0) with ``pl_module.log_dict``, so
they reach whatever logger the trainer has (TensorBoard, CSV, W&B, MLflow). The verdict
line is kept in ``callback.verdict``. The penalty goes into ``training_step`` (see
docs/integrations.md): pass the same :class:`~mmbalance.AttributionPenalty` as ``penalty=``
to measure the shares as it does.

Example:
    >>> trainer = lightning.Trainer(callbacks=[ModalityBalance(val_loader, embedding_layers="audio=a,visual=v")])
    ... # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence

from torch import nn

from ..errors import UsageError
from ..training.penalty import AttributionPenalty
from ._shares import balance_metrics

try:
    from lightning.pytorch.callbacks import Callback
except ImportError:  # the standalone package
    try:
        from pytorch_lightning.callbacks import Callback  # type: ignore[no-redef,assignment]
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("mmbalance.integrations.lightning needs Lightning: pip install 'mmbalance[lightning]'") \
            from err

__all__ = ["ModalityBalance"]


class ModalityBalance(Callback):  # type: ignore[misc]
    """Log the modality shares every ``every_n_epochs`` epochs (see the module docstring)."""

    def __init__(self, loader: Iterable[Any] | None = None, *, every_n_epochs: int = 1, limit: int | None = None,
                 penalty: AttributionPenalty | None = None,
                 embedding_layers: Mapping[str, Any] | str | None = None, modalities: Sequence[str] | None = None,
                 pass_through: Sequence[str] = (), call: str = "auto",
                 model: Callable[[Any], nn.Module] | None = None) -> None:
        super().__init__()
        if every_n_epochs < 1:
            raise UsageError(f"every_n_epochs must be at least 1, got {every_n_epochs}")
        self.loader, self.every, self.limit, self.penalty = loader, every_n_epochs, limit, penalty
        self.settings: dict[str, Any] = {"embedding_layers": embedding_layers, "modalities": modalities,
                         "pass_through": tuple(pass_through), "call": call}
        self.model = model
        self.verdict: str | None = None
        self.history: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if (trainer.current_epoch + 1) % self.every:
            return
        loader = self.loader if self.loader is not None else trainer.val_dataloaders
        if loader is None:
            raise UsageError("ModalityBalance has no loader to measure the shares on",
                             hint="pass ModalityBalance(loader) or give the trainer a validation loader")
        net = self.model(pl_module) if self.model is not None else pl_module
        metrics, self.verdict = balance_metrics(net, loader, penalty=self.penalty, limit=self.limit,
                                                **self.settings)
        self.history.append(metrics)
        pl_module.log_dict(metrics, on_step=False, on_epoch=True)
