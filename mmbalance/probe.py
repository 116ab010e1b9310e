"""The encoder probe: how much does each modality's encoder know, read by a linear classifier?

A fused model can lean on one stream and leave the other encoder under-trained even when the
fusion's shares look balanced. The probe measures the encoders directly: each modality's
embedding (what enters the fusion, frozen) is extracted on a training split and a test split,
a multinomial logistic regression is fitted on the training embeddings (standardized with the
training mean and standard deviation; L2 weight ``l2``; full-batch L-BFGS in float64, so it is
deterministic) and scored on the test embeddings. Given a unimodal run of a modality
(``--unimodal M``), its encoder is probed the same way, and the **gap** is the fused model's
probe accuracy minus the unimodal encoder's: "the visual encoder is 7.3 points below its
unimodal counterpart" reads ``gap = -0.073``.

``mmbalance audit --probe`` stores the result in the audit JSON under ``extra.probe``
(``{modality: {"accuracy", "unimodal_accuracy", "gap"}}``) and ``mmbalance check
--min-probe-gap -0.05`` fails a model whose encoder is more than 5 points below its unimodal one.

Example:
    >>> import torch
    >>> x = torch.randn(200, 4, generator=torch.Generator().manual_seed(0))
    >>> y = (x[:, 0] > 0).long()
    >>> linear_probe(x[:100], y[:100], x[100:], y[100:], num_classes=2) > 0.9
    True
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .data import MultimodalDataset, iter_batches, load_dataset
from .device import resolve_device
from .errors import UsageError
from .models import ModelAdapter, load_model
from .models.binding import fit_to_model
from .training.embeddings import training_view

__all__ = ["embeddings_of", "linear_probe", "probe", "probe_lines", "probe_model"]


def linear_probe(x_train: Tensor, y_train: Tensor, x_test: Tensor, y_test: Tensor, *, num_classes: int,
                 l2: float = 1e-3, max_iter: int = 200) -> float:
    """Test accuracy of a multinomial logistic regression fitted on ``(x_train, y_train)``.

    Features are flattened and standardized with the training statistics; the loss is mean
    cross-entropy plus ``l2 * |W|^2``.
    """
    xtr = x_train.detach().flatten(1).double().cpu()
    xte = x_test.detach().flatten(1).double().cpu()
    mean, std = xtr.mean(0), xtr.std(0, unbiased=False).clamp_min(1e-8)
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    ytr = y_train.detach().long().cpu()
    weight = torch.zeros(xtr.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=max_iter, tolerance_grad=1e-9, tolerance_change=1e-12,
                            line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(xtr @ weight + bias, ytr) + l2 * weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        pred = (xte @ weight + bias).argmax(1)
    return float((pred == y_test.detach().long().cpu()).double().mean()) if len(y_test) else float("nan")


def embeddings_of(adapter: ModelAdapter, dataset: MultimodalDataset, *, batch_size: int = 64,
                  embedding_layers: Mapping[str, str] | str | None = None, limit: int | None = None
                  ) -> tuple[dict[str, Tensor], Tensor]:
    """Each modality's frozen embedding ``{modality: (N, ...)}`` on ``dataset`` (eval mode) and the labels."""
    view = training_view(adapter, embedding_layers, needed_by="--probe")
    assert view is not None  # needed_by raises instead
    was_training = adapter.training
    adapter.eval()
    dev = next((p.device for p in adapter.parameters()), torch.device("cpu"))
    parts: dict[str, list[Tensor]] = {}
    labels: list[Tensor] = []
    for batch in iter_batches(dataset, batch_size=batch_size, limit=limit):
        batch = batch.to(dev)
        emb = view.encode({**batch.inputs, **batch.extra})
        for m, e in emb.items():
            parts.setdefault(m, []).append(e.detach().float().flatten(1).cpu())
        labels.append(batch.labels.cpu())
    adapter.train(was_training)
    return {m: torch.cat(v) for m, v in parts.items()}, torch.cat(labels)


def probe(adapter: ModelAdapter, train_set: MultimodalDataset, test_set: MultimodalDataset, *,
          unimodal: Mapping[str, ModelAdapter] | None = None, embedding_layers: Mapping[str, str] | str | None = None,
          batch_size: int = 64, limit: int | None = None, l2: float = 1e-3) -> dict[str, dict[str, Any]]:
    """Probe accuracy per modality of ``adapter``'s encoders, and of each ``unimodal`` model's, with the gap."""
    classes = max(train_set.num_classes, test_set.num_classes)
    tr, ytr = embeddings_of(adapter, train_set, batch_size=batch_size, embedding_layers=embedding_layers,
                            limit=limit)
    te, yte = embeddings_of(adapter, test_set, batch_size=batch_size, embedding_layers=embedding_layers, limit=limit)
    out: dict[str, dict[str, Any]] = {}
    for m in tr:
        acc = linear_probe(tr[m], ytr, te[m], yte, num_classes=classes, l2=l2)
        out[m] = {"accuracy": acc, "unimodal_accuracy": None, "gap": None}
    for m, reference in (unimodal or {}).items():
        if m not in out:
            raise UsageError(f"--probe-unimodal names {m!r}, which the model has no embedding for",
                             hint=f"it has {', '.join(out)}")
        utr, uytr = embeddings_of(reference, fit_to_model(reference, train_set), batch_size=batch_size, limit=limit)
        ute, uyte = embeddings_of(reference, fit_to_model(reference, test_set), batch_size=batch_size, limit=limit)
        uacc = linear_probe(utr[m], uytr, ute[m], uyte, num_classes=classes, l2=l2)
        out[m].update(unimodal_accuracy=uacc, gap=out[m]["accuracy"] - uacc)
    return out


def probe_model(model: str, data: str, *, checkpoint: str | None = None, model_args: Mapping[str, Any] | None = None,
                unimodal: Mapping[str, str] | None = None, train_split: str = "train", test_split: str | None = None,
                modalities: Sequence[str] | None = None, embedding_layers: Mapping[str, str] | str | None = None,
                device: str = "auto", batch_size: int = 64, limit: int | None = None,
                trust_checkpoint: bool = False) -> dict[str, dict[str, Any]]:
    """:func:`probe` from specs: the model and its ``checkpoint``; ``unimodal`` maps a modality to a unimodal run.

    The probe is fitted on ``train_split`` and scored on ``test_split`` (default ``test``) of ``data``;
    a data source without splits is refused (fitting and scoring on the same samples would
    measure memorization).

    Example:
        >>> probe_model("av-small", "data/letters-av", checkpoint="runs/plain/best.pt",
        ...             unimodal={"visual": "runs/v/best.pt"})  # doctest: +SKIP
        {'audio': {'accuracy': 0.58, ...}, 'visual': {'accuracy': 0.41, 'unimodal_accuracy': 0.48, 'gap': -0.07}}
    """
    wanted = list(modalities) if modalities else None
    train_set = load_dataset(data, split=train_split, modalities=wanted, default_split="train")
    test_set = load_dataset(data, split=test_split, modalities=wanted, default_split="test")
    if train_set.location == test_set.location:
        raise UsageError(f"--probe fits on a training split and scores on a test split, but {data} has one set of "
                         "samples", hint="give a split directory (train.pt, test.pt) or a source with splits")
    dev = str(resolve_device(device))
    adapter = load_model(model, checkpoint=checkpoint, model_args=dict(model_args or {}),
                         num_classes=train_set.num_classes, modalities=train_set.modalities, device=dev,
                         trust_checkpoint=trust_checkpoint)
    train_set, test_set = fit_to_model(adapter, train_set), fit_to_model(adapter, test_set)
    references: dict[str, ModelAdapter] = {}
    for m, path in (unimodal or {}).items():
        references[m] = load_model("unimodal", checkpoint=path, num_classes=train_set.num_classes,
                                   model_args={"base": model, "modality": m, "base_args": dict(model_args or {})},
                                   modalities=[m], device=dev)
    return probe(adapter, train_set, test_set, unimodal=references, embedding_layers=embedding_layers,
                 batch_size=batch_size, limit=limit)


def probe_lines(result: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per modality: its probe accuracy and, with a unimodal run, the gap in points.

    Example:
        >>> probe_lines({"visual": {"accuracy": 0.41, "unimodal_accuracy": 0.483, "gap": -0.073}})
        ['probe: the visual encoder reads 41.0% (its unimodal counterpart 48.3%): 7.3 points below it']
    """
    lines = []
    for m, row in result.items():
        text = f"probe: the {m} encoder reads {row['accuracy']:.1%}"
        if row.get("gap") is not None:
            gap = float(row["gap"]) * 100
            side = "below" if gap < 0 else "above"
            text += f" (its unimodal counterpart {row['unimodal_accuracy']:.1%}): {abs(gap):.1f} points {side} it"
        lines.append(text)
    return lines
