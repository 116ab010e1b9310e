"""What balancing buys when a stream fails: test accuracy with one modality zeroed or drowned in noise.

For every bench run and every modality ``m`` of the data, two corrupted copies of the test
split are scored:

* ``zero_<m>``: ``m`` replaced by zeros (the stream is missing);
* ``noise_<m>``: Gaussian noise added to ``m`` at 0 dB per sample, ``x + std(x) * eps`` with
  ``std`` over that sample's elements (the stream is badly corrupted but present). The
  noise is drawn from a generator seeded with the run's seed, so reruns agree.

A unimodal run does not read the other stream, so corrupting that one leaves its accuracy
as it is. Also here: :func:`baseline_warnings`, the bench's warnings for a fused method
that ends below the best unimodal model (usually a method mis-tuned at the bench's budget).

Example:
    >>> corrupt({"audio": torch.ones(2, 3), "visual": torch.ones(2, 3)}, "zero_audio")["audio"].tolist()
    [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    >>> robustness_columns(["audio", "visual"])
    ['zero_audio', 'noise_audio', 'zero_visual', 'noise_visual']
"""

from __future__ import annotations

import statistics
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from ..data import MultimodalDataset, iter_batches
from ..models import load_model

__all__ = ["baseline_warnings", "corrupt", "robustness", "robustness_columns", "robustness_markdown"]


def robustness_columns(modalities: Sequence[str]) -> list[str]:
    """The corruption names, ``zero_<m>`` and ``noise_<m>`` for each modality."""
    return [f"{kind}_{m}" for m in modalities for kind in ("zero", "noise")]


def corrupt(inputs: Mapping[str, Tensor], column: str, generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """``inputs`` with the corruption ``column`` (``zero_<m>`` or ``noise_<m>``) applied; others untouched."""
    kind, _, modality = column.partition("_")
    out = dict(inputs)
    x = out.get(modality)
    if x is None:  # a unimodal model that does not read this stream
        return out
    if kind == "zero":
        out[modality] = torch.zeros_like(x)
    else:
        flat = x.float().flatten(1)
        std = flat.std(dim=1, unbiased=False).clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))
        eps = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.device)
        out[modality] = (x.float() + std * eps).to(x.dtype)
    return out


def robustness(spec: str, dataset: MultimodalDataset, *, checkpoint: str, model_args: Mapping[str, Any],
               modalities: Sequence[str], device: str = "cpu", batch_size: int = 64, seed: int = 0
               ) -> dict[str, float]:
    """Accuracy of a saved model on ``dataset`` under each corruption of :func:`robustness_columns`."""
    adapter = load_model(spec, checkpoint=checkpoint, model_args=dict(model_args), num_classes=dataset.num_classes,
                         modalities=dataset.modalities, device=device)
    adapter.eval()
    dev = next((p.device for p in adapter.parameters()), torch.device("cpu"))
    out: dict[str, float] = {}
    for column in robustness_columns(modalities):
        generator = torch.Generator().manual_seed(int(seed))
        correct = total = 0
        for batch in iter_batches(dataset, batch_size=batch_size):
            batch = batch.to(dev)
            with torch.no_grad():
                logits = adapter({**corrupt(batch.inputs, column, generator), **batch.extra})
            correct += int((logits.argmax(1) == batch.labels).sum())
            total += int(batch.labels.shape[0])
        out[column] = correct / max(total, 1)
    return out


def baseline_warnings(table: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per fused method whose mean test accuracy is below the best unimodal run's mean."""
    unimodal = {k: v["accuracy_mean"] for k, v in table.items() if k.startswith("unimodal-")}
    if not unimodal:
        return []
    best_name = max(unimodal, key=lambda k: unimodal[k])
    best = unimodal[best_name]
    lines = []
    for name, row in table.items():
        if name.startswith("unimodal-") or name == "ensemble":
            continue
        acc = row.get("accuracy_mean")
        if isinstance(acc, (int, float)) and acc < best:
            lines.append(f"{name} ({acc:.1%}) is below the best unimodal model, {best_name} ({best:.1%}): a fused "
                         "baseline that does worse than one stream alone is usually mis-tuned at this budget "
                         "(learning rate, epochs, optimizer); compare it with care")
    return lines


def robustness_markdown(doc: Mapping[str, Any]) -> str:
    """The robustness table (mean test accuracy per method and corruption) and the baseline warnings."""
    records = [r for r in doc.get("records", []) if r.get("extra", {}).get("robustness")]
    lines: list[str] = []
    if records:
        columns = robustness_columns(doc.get("modalities", []))
        lines += ["", "### Robustness: test accuracy with one stream failing (mean over seeds)", "",
                  "| Method | Clean | " + " | ".join(c.replace("_", " ") for c in columns) + " |",
                  "|---|---|" + "---|" * len(columns)]
        for name in dict.fromkeys(r["run"] for r in records):
            rows = [r for r in records if r["run"] == name]
            clean = statistics.fmean(r["test_accuracy"] for r in rows)
            cells = [statistics.fmean(r["extra"]["robustness"].get(c, float("nan")) for r in rows) for c in columns]
            lines.append(f"| {name} | {clean:.1%} | " + " | ".join(f"{v:.1%}" for v in cells) + " |")
    warnings = doc.get("warnings") or []
    if warnings:
        lines += [""] + [f"**Warning:** {w}" for w in warnings]
    return "\n".join(lines) + ("\n" if lines else "")
