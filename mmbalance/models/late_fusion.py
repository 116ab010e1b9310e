"""Late fusion of a plug-in's encoders: what a warm start builds for a plain ``nn.Module``.

A plug-in's own fusion layers can be anything, so a warm start (``finetune --init``) cannot
set them to the sum of the unimodal runs' logits. For a plug-in named with
``--embedding-layer``, ``--init`` builds this registered ``late-fusion`` model instead: the
plug-in's encoder modules (the ones its ``--unimodal`` runs trained) with a ``concat`` (or
``sum``) head on their flattened embeddings, whose sizes ``dims`` come from the runs. The
result is a fused model of *your encoders*, not of your fusion layers. Audit a saved run with::

    mmbalance audit -m late-fusion --model-arg base=my_net.py:build \\
        --model-arg 'layers={"audio": "audio_net", "visual": "visual_net"}' \\
        --model-arg 'dims={"audio": 64, "visual": 64}' -c runs/warm/best.pt -d DATA

(``run.json`` of the run holds these arguments; ``mmbalance bench`` audits its runs itself.)

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.ModuleDict({"a": nn.Linear(4, 3), "v": nn.Conv1d(2, 2, 3)})
    >>> m = LateFusionModel({"audio": net["a"], "visual": net["v"]}, {"audio": 3, "visual": 4}, num_classes=5)
    >>> m.modalities, m(torch.randn(2, 4), torch.randn(2, 2, 4)).shape
    (('audio', 'visual'), torch.Size([2, 5]))
"""

from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor, nn

from ..errors import ModelError
from ._builder import create_model
from ._registry import register_model
from .fusion import HeadMethods, build_fusion
from .unimodal import plugin_encoder

__all__ = ["LateFusionModel", "late_fusion"]


class LateFusionModel(HeadMethods, nn.Module):
    """Per-modality encoders and a ``concat``/``sum`` head on their flattened embeddings (``forward(*inputs)``)."""

    def __init__(self, encoders: Mapping[str, nn.Module], dims: Mapping[str, int], num_classes: int,
                 fusion: str = "concat") -> None:
        super().__init__()
        self.modalities: tuple[str, ...] = tuple(encoders)
        self.encoders = nn.ModuleDict(dict(encoders))
        self.fusion = build_fusion(fusion, {m: int(dims[m]) for m in self.modalities}, num_classes)
        self.num_classes = num_classes

    def encode(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """``{modality: (B, D_m)}``: each encoder's output, flattened as the unimodal runs' classifiers saw it."""
        missing = [m for m in self.modalities if m not in inputs]
        if missing:
            raise ModelError(f"the late-fusion model needs inputs {', '.join(self.modalities)}; "
                             f"missing {', '.join(missing)}")
        return {m: self.encoders[m](inputs[m]).flatten(1) for m in self.modalities}

    def forward(self, *inputs: Tensor) -> Tensor:
        if len(inputs) != len(self.modalities):
            raise ModelError(f"the late-fusion model takes {len(self.modalities)} inputs "
                             f"({', '.join(self.modalities)}), got {len(inputs)}")
        return self.fuse(self.encode(dict(zip(self.modalities, inputs))))


@register_model("late-fusion")
def late_fusion(num_classes: int, base: str, layers: Mapping[str, str], dims: Mapping[str, int],
                base_args: dict[str, Any] | None = None, fusion: str = "concat") -> LateFusionModel:
    """A plug-in's encoder modules (``layers``: ``{modality: module}``) under a concat or sum head of sizes ``dims``.

    What ``finetune --init`` builds for a plug-in named with ``--embedding-layer``.
    """
    if fusion not in ("concat", "sum"):
        raise ModelError(f"late fusion takes fusion=concat or fusion=sum, got {fusion!r}")
    if not isinstance(layers, Mapping) or not layers:
        raise ModelError("late fusion needs layers={modality: module name}",
                         hint='e.g. --model-arg \'layers={"audio": "audio_net", "visual": "visual_net"}\'')
    if not isinstance(dims, Mapping) or set(dims) != set(layers):
        raise ModelError(f"late fusion needs dims for exactly the modalities of layers ({', '.join(layers)})")
    bad = [m for m, d in dims.items() if isinstance(d, bool) or not isinstance(d, int) or d < 1]
    if bad:
        raise ModelError(f"late-fusion dims must be positive integers; {', '.join(bad)} is not")
    model = create_model(base, num_classes=num_classes, model_args=dict(base_args or {}))
    encoders = {m: plugin_encoder(model, str(layer)) for m, layer in layers.items()}
    return LateFusionModel(encoders, dims, num_classes, fusion)
