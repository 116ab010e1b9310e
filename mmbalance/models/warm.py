"""Warm starts: a fused model built from unimodal runs (``finetune --init audio=A.pt,visual=V.pt``).

Each modality's encoder is copied from its unimodal run (``--unimodal M``, whose state dict
holds ``encoders.M.*`` and its own classifier ``fusion.fc``), and the fusion head is set so
that the fused logits start as the **sum of the unimodal logits**:

* ``concat`` (``logits = W [e_a; e_v] + b``): ``W = [W_a | W_v]``, ``b = b_a + b_v``;
* ``sum`` (``logits = fc_a(e_a) + fc_v(e_v)``): ``fc_m`` is modality ``m``'s classifier.

Summing logits is multiplying the unimodal class probabilities (a product of experts), so
the merged model starts at least as informed as either run and fine-tuning (at a small
learning rate) then learns the interactions. A modality without a run keeps its freshly
initialised encoder and gets zero fusion weights (its logits start at 0). ``film`` and
``gated`` heads mix modalities before the classifier and cannot start as a sum: they are
refused.

Example:
    >>> import torch
    >>> from mmbalance.models import create_model
    >>> from mmbalance.models.unimodal import unimodal
    >>> a, v = unimodal(3, modality="audio"), unimodal(3, modality="visual")
    >>> fused = create_model("av-tiny", num_classes=3)
    >>> scales = warm_start(fused, {"audio": a.state_dict(), "visual": v.state_dict()})
    >>> x, y = torch.randn(2, 1, 16, 16), torch.randn(2, 3, 2, 16, 16)
    >>> _ = [m.eval() for m in (a, v, fused)]
    >>> torch.allclose(fused(x, y), a(x) + v(y), atol=1e-5)
    True
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Iterable, Mapping, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ModelError, UsageError
from .checkpoint import load_state_dict, unwrap_model
from .fusion import ConcatFusion, SumFusion
from .logit_scales import fit_logit_scales

if TYPE_CHECKING:
    from ..data.dataset import Batch

__all__ = ["init_dims", "parse_init", "warm_start", "warm_target"]

Source = Union[str, "os.PathLike[str]", Mapping[str, Tensor]]


def parse_init(spec: str | Mapping[str, str] | None, *, option: str = "--init") -> dict[str, str] | None:
    """Parse ``--init audio=runs/a/best.pt,visual=runs/v/best.pt`` into ``{modality: path}``.

    Example:
        >>> parse_init("audio=a/best.pt, visual=v/best.pt")
        {'audio': 'a/best.pt', 'visual': 'v/best.pt'}
    """
    if spec is None:
        return None
    if isinstance(spec, Mapping):
        items = [(str(k), str(v)) for k, v in spec.items()]
    else:
        items = []
        for part in (p.strip() for p in str(spec).split(",")):
            if not part:
                continue
            name, sep, path = part.partition("=")
            if not sep or not name.strip() or not path.strip():
                raise UsageError(f"malformed {option} item {part!r}",
                                 hint="write modality=checkpoint pairs: audio=runs/a/best.pt,visual=runs/v/best.pt")
            items.append((name.strip(), path.strip()))
    out: dict[str, str] = {}
    for name, path in items:
        if name in out:
            raise UsageError(f"{option} names {name!r} twice")
        out[name] = path
    if not out:
        raise UsageError(f"empty {option}", hint="write audio=runs/a/best.pt,visual=runs/v/best.pt")
    return out


def _state(source: Source, modality: str) -> dict[str, Tensor]:
    if isinstance(source, Mapping):
        return dict(source)
    return load_state_dict(source)


def warm_start(model: nn.Module, sources: Mapping[str, Source],
               calibrate_on: Iterable[Batch] | None = None) -> dict[str, float]:
    """Copy each modality's encoder and classifier from its unimodal run into the fused ``model`` (in place).

    ``sources`` maps a modality to a unimodal run's checkpoint (path or state dict). The
    fusion head (``concat`` or ``sum``) is set so that fused logits = sum of the unimodal
    logits; modalities without a source get zero fusion weights. With ``calibrate_on``
    (held-out batches, e.g. the validation split) each run's logits are first scaled by
    :func:`~mmbalance.models.logit_scales.fit_logit_scales`, so that the fused logits start
    as ``sum_m a_m * logits_m``. Returns the scales (all 1.0 without calibration). Raises
    :class:`ModelError` for a model without per-modality encoders and a concat/sum head, or
    a checkpoint that is not a unimodal run of this architecture.
    """
    target, encoders, fusion = warm_target(model)
    unknown = [m for m in sources if m not in encoders]
    if unknown:
        raise UsageError(f"--init names unknown modality {', '.join(unknown)}",
                         hint=f"the model has {', '.join(encoders)}")
    classifiers = _load_runs(encoders, fusion, sources)
    scales = {m: 1.0 for m in classifiers}
    if calibrate_on is not None:
        logits, labels = _run_logits(target, classifiers, calibrate_on)
        scales = fit_logit_scales(logits, labels)
        classifiers = {m: (w * scales[m], b * scales[m]) for m, (w, b) in classifiers.items()}
    write_sum_head(fusion, classifiers)
    return scales


def warm_target(model: nn.Module) -> tuple[nn.Module, nn.ModuleDict, ConcatFusion | SumFusion]:
    """``model`` (unwrapped), its per-modality ``encoders`` and its concat/sum head; :class:`ModelError` otherwise."""
    target = unwrap_model(model)
    encoders = getattr(target, "encoders", None)
    fusion = getattr(target, "fusion", None)
    if not isinstance(encoders, nn.ModuleDict) or not isinstance(fusion, (ConcatFusion, SumFusion)):
        raise ModelError(f"--init needs a model with per-modality `encoders` and a concat or sum fusion head; "
                         f"{type(target).__name__} has {type(fusion).__name__ if fusion is not None else 'none'}",
                         hint="use a built-in model (e.g. av-small) with --model-arg fusion=concat or fusion=sum, "
                              "or name a plug-in's encoders with --embedding-layer (a late-fusion warm start)")
    return target, encoders, fusion


def init_dims(sources: Mapping[str, Source]) -> dict[str, int]:
    """Each unimodal run's embedding size, read from its classifier (``fusion.fc.weight`` is ``(classes, D)``)."""
    dims: dict[str, int] = {}
    for modality, source in sources.items():
        w = _state(source, modality).get("fusion.fc.weight")
        if w is None or w.dim() != 2:
            raise ModelError(f"the --init checkpoint for {modality} is not a unimodal {modality} run "
                             f"(no fusion.fc weights)",
                             hint=f"give best.pt of `mmbalance finetune --unimodal {modality}` with this model")
        dims[modality] = int(w.shape[1])
    return dims


def _run_logits(model: nn.Module, classifiers: Mapping[str, tuple[Tensor, Tensor]],
                batches: Iterable[Batch]) -> tuple[dict[str, Tensor], Tensor]:
    """Each unimodal run's logits (the model's embedding of its input, then its classifier) on ``batches``, in eval mode."""
    device = next(model.parameters()).device
    encode = getattr(model, "encode", None)  # the embeddings fusion sees (a late-fusion model flattens them)
    if not callable(encode):
        raise ModelError(f"--init-calibrate needs the model's embeddings; {type(model).__name__} has no encode()")
    was_training = model.training
    model.eval()
    parts: dict[str, list[Tensor]] = {m: [] for m in classifiers}
    labels: list[Tensor] = []
    try:
        with torch.no_grad():
            for batch in batches:
                embeddings = encode({m: x.to(device) for m, x in batch.inputs.items()})
                for m, (w, b) in classifiers.items():
                    parts[m].append(F.linear(embeddings[m], w.to(embeddings[m]), b.to(embeddings[m])).cpu())
                labels.append(batch.labels.cpu())
    finally:
        model.train(was_training)
    if not labels:
        raise ModelError("--init-calibrate found no validation samples", hint="give a non-empty --val-split")
    return {m: torch.cat(p) for m, p in parts.items()}, torch.cat(labels)


def _load_runs(encoders: nn.ModuleDict, fusion: ConcatFusion | SumFusion,
               sources: Mapping[str, Source]) -> dict[str, tuple[Tensor, Tensor]]:
    """Load each run's encoder into ``encoders``; return its classifier ``{modality: (weight, bias)}``."""
    classifiers: dict[str, tuple[Tensor, Tensor]] = {}
    for modality, source in sources.items():
        sd = _state(source, modality)
        prefix = f"encoders.{modality}."
        enc = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
        w, b = sd.get("fusion.fc.weight"), sd.get("fusion.fc.bias")
        if not enc or w is None or b is None:
            raise ModelError(f"the --init checkpoint for {modality} is not a unimodal {modality} run "
                             f"(no encoders.{modality}.* and fusion.fc weights)",
                             hint=f"give best.pt of `mmbalance finetune --unimodal {modality}` with this model")
        try:
            encoders[modality].load_state_dict(enc)
        except RuntimeError as err:
            raise ModelError(f"the --init checkpoint for {modality} does not fit this model's {modality} encoder: "
                             f"{str(err).splitlines()[0][:200]}",
                             hint="train the unimodal run with the same --model and --model-arg values") from None
        dim = fusion.dims[modality]
        if tuple(w.shape) != (fusion.num_classes, dim) or tuple(b.shape) != (fusion.num_classes,):
            raise ModelError(f"the --init classifier for {modality} has shape {tuple(w.shape)}, the fused model "
                             f"needs ({fusion.num_classes}, {dim})",
                             hint="the unimodal run must have the same classes and embedding size")
        classifiers[modality] = (w, b)
    return classifiers


def write_sum_head(fusion: ConcatFusion | SumFusion, classifiers: Mapping[str, tuple[Tensor, Tensor]]) -> None:
    """Set ``fusion`` so its logits are the sum of ``classifiers`` applied to their embeddings (others: 0)."""
    with torch.no_grad():
        if isinstance(fusion, ConcatFusion):
            start = 0
            fusion.fc.bias.zero_()
            for modality in fusion.modalities:
                width = fusion.dims[modality]
                block = fusion.fc.weight[:, start:start + width]
                if modality in classifiers:
                    w, b = classifiers[modality]
                    block.copy_(w)
                    fusion.fc.bias.add_(b.to(fusion.fc.bias))
                else:
                    block.zero_()
                start += width
        else:
            for modality in fusion.modalities:
                fc = fusion.fcs[modality]
                assert isinstance(fc, nn.Linear)
                if modality in classifiers:
                    w, b = classifiers[modality]
                    fc.weight.copy_(w)
                    fc.bias.copy_(b)
                else:
                    fc.weight.zero_()
                    fc.bias.zero_()
