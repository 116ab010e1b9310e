"""What every callback logs: the shares of a model on held-out batches, their variance and the verdict."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from torch import nn

from ..training.penalty import AttributionPenalty, balance_figures, modality_shares

__all__ = ["balance_metrics"]


def balance_metrics(model: nn.Module, batches: Iterable[Any], *, penalty: AttributionPenalty | None = None,
                    embedding_layers: Mapping[str, Any] | str | None = None, modalities: Sequence[str] | None = None,
                    pass_through: Sequence[str] = (), call: str = "auto", limit: int | None = None,
                    prefix: str = "") -> tuple[dict[str, float], str]:
    """``({prefix}modality_share/<m>, {prefix}share_variance, {prefix}modality_balanced}, verdict line)``.

    Measured as ``penalty`` measures (when given) or with ``finetune``'s defaults.

    Example:
        >>> metrics, verdict = balance_metrics(model, val_loader)  # doctest: +SKIP
    """
    if penalty is not None:
        shares = penalty.shares(batches, limit=limit)
    else:
        shares = modality_shares(model, batches, embedding_layers=embedding_layers, modalities=modalities,
                                 pass_through=pass_through, call=call, limit=limit)
    figures = balance_figures(shares)
    metrics = {f"{prefix}modality_share/{m}": float(v) for m, v in shares.items()}
    metrics[f"{prefix}share_variance"] = float(figures["share_variance"])
    metrics[f"{prefix}modality_balanced"] = float(figures["balanced"])
    return metrics, str(figures["verdict"])
