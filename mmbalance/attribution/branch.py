"""Per-modality branch logits (OGM-GE, Peng et al. 2022) for additive fusion heads.

A ``concat`` or ``sum`` head computes ``logits = sum_m W_m e_m + b``; each modality's
"own" logits are ``W_m e_m + b / M`` (OGM-GE splits the bias evenly). The score of a
modality is its branch's softmax probability of the target class — the quantity whose
ratio OGM-GE uses to measure and correct the imbalance — and ``extra["branch_accuracy"]``
holds each branch's own accuracy against the labels.

Heads that mix modalities before the classifier (``film``, ``gated``, most plug-ins) have
no such split; :meth:`BranchLogits.check` refuses them with the reason.

Example:
    >>> import torch
    >>> from mmbalance.models import load_model
    >>> adapter = load_model("av-tiny", num_classes=3, model_args={"fusion": "sum"})
    >>> x = {"audio": torch.randn(2, 1, 16, 16), "visual": torch.randn(2, 3, 2, 16, 16)}
    >>> out = BranchLogits().attribute(adapter, x, torch.tensor([0, 1]))
    >>> tuple(out.scores.shape)
    (2, 2)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..errors import EstimatorError
from .base import Attribution, Estimator, ForwardFn, correct, register_estimator

BRANCH_HINT = ("the branch estimator needs an additive fusion head (--model-arg fusion=concat or fusion=sum); "
               "choose other estimators with --method, e.g. --method ig,ablation,shapley")


@register_estimator
class BranchLogits(Estimator):
    """Each modality's own logits from an additive head; score = its softmax probability of the target."""

    name = "branch"
    level = "embedding"
    needs_model = True
    levels = ("embedding",)

    def __init__(self, **_: Any) -> None:
        pass

    def check(self, model: Any) -> None:
        if getattr(model, "has_branch_logits", False):
            return
        inner = getattr(model, "model", model)
        fusion = getattr(inner, "fusion", None)
        if fusion is not None:
            raise EstimatorError(f"branch: the {type(fusion).__name__} head of {type(inner).__name__} mixes the "
                                 f"modalities before its classifier, so there are no per-modality logits",
                                 hint=BRANCH_HINT)
        raise EstimatorError(f"branch: {type(inner).__name__} exposes no per-modality logits "
                             f"(no encode/branch_logits)", hint=BRANCH_HINT)

    def _attribute(self, forward: ForwardFn, inputs: dict[str, Tensor], target: Tensor, *,
                   labels: Tensor | None, baselines: dict[str, Tensor] | None) -> Attribution:
        self.check(forward)
        model: Any = forward
        with torch.no_grad():
            parts = model.branch_logits(model.encode(inputs))
        modalities = tuple(inputs)
        probs = torch.stack([parts[m].softmax(1).gather(1, target.view(-1, 1)).squeeze(1) for m in modalities], 1)
        extra = {}
        if labels is not None:
            extra["branch_accuracy"] = torch.stack([correct(parts[m], labels) for m in modalities], 1)
        return Attribution(modalities, probs, extra=extra)
