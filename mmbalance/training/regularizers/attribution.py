"""``--regularizer attribution``: penalize the gap between attribution shares and a target.

Attribution Regularization for Multimodal Paradigms (Yerramilli et al., arXiv 2404.02359)
adds a differentiable attribution term to the training loss so that every modality
contributes to the decisions::

    loss = CE(logits, y) + lambda_e * R,    R = penalty(mean_b shares_b, target)

where ``shares_b`` are sample ``b``'s modality shares of the attribution of its true-class
logit (:mod:`mmbalance.training.differentiable`) and ``lambda_e`` ramps linearly from 0
to ``lambda`` over the first ``--lambda-warmup`` epochs.

``--scope all`` lets the penalty's gradient reach every weight. ``--scope fusion`` (the
paper's variant) lets it reach only the fusion head and classifier, which then get an
optimizer of their own; the encoders learn from the cross-entropy alone. At the
embedding level this uses the embeddings detached from the encoders; at the input
level the attribution pass runs with the encoder weights detached.

Plug-in models without ``encode``/``fuse`` name their encoders with ``--embedding-layer``:
the embeddings are those modules' outputs (forward hooks), the "fusion" is every
parameter outside them. The forward that the penalty differentiates twice runs
``scaled_dot_product_attention`` on its math kernel, the only one with a double backward.

With ``--modulate k`` (attribution-guided gradient modulation, after AGM: Li et al., ICCV
2023) each step also scales every encoder's gradient by ``c_m = exp(k * (t_m - s_m))``, with
``s_m`` the batch-mean share of modality ``m`` and ``t_m`` its target: an encoder whose
modality contributes less than its target learns faster, a dominant one slower; at the
target ``c_m = 1``. This reaches the encoders whatever the ``--scope``. With Adam, a scale
that is constant over many steps is normalized away; the modulation acts through its changes.

With ``--aux-heads`` a Linear classifier on each modality's embedding adds
``aux_weight * sum_m CE_m`` to the loss, so every encoder also learns from its own
unimodal loss (:mod:`.aux_heads`), which the fusion-scoped penalty cannot give it.

Example:
    >>> from mmbalance.training import TrainConfig
    >>> cfg = TrainConfig(model="av-tiny", data="d", out="o", regularizer="attribution", lambda_=2.0,
    ...                   lambda_warmup=2)
    >>> reg = AttributionRegularizer(cfg, ["audio", "visual"])
    >>> [reg.lambda_at(e) for e in (1, 2, 3, 4)]
    [0.0, 1.0, 2.0, 2.0]
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...attribution.hooks import EmbeddingView
from ...distributed import all_reduce_sum
from ...errors import UsageError
from ..config import TrainConfig
from ..differentiable import AttributionSpec, double_backward_attention, modality_scores, share_penalty, soft_shares
from .base import Regularizer, StepOutput, encoder_parameters, fusion_parameters, register_regularizer

if TYPE_CHECKING:
    from ...models.adapter import ModelAdapter

__all__ = ["AttributionRegularizer"]


@register_regularizer
class AttributionRegularizer(Regularizer):
    """Cross-entropy plus ``lambda`` times the attribution-share penalty (see the module docstring)."""

    name = "attribution"

    def __init__(self, config: TrainConfig, modalities: Sequence[str]) -> None:
        super().__init__(config, modalities)
        self.spec = AttributionSpec(method=config.attribution, level=config.level, steps=config.attr_steps,
                                    pool=config.pool)
        self.spec.validate()
        shares = config.target_shares(self.modalities)
        self.target = torch.tensor([shares[m] for m in self.modalities], dtype=torch.float32)
        self.kind = config.penalty
        self.scope = config.scope
        self._lambda = self.lambda_at(1)
        self._frozen_names: set[str] = set()
        self.modulate = float(config.modulate)
        self.coeffs: dict[str, float] = {m: 1.0 for m in self.modalities}
        self._coeff_sums: dict[str, float] = {m: 0.0 for m in self.modalities}
        self._coeff_steps = 0

    def needs_embeddings(self) -> str | None:
        return "-r attribution at --level embedding" if self.spec.level == "embedding" else super().needs_embeddings()

    def check(self, adapter: nn.Module, view: EmbeddingView | None = None,
              probe: Mapping[str, Tensor] | None = None) -> None:
        super().check(adapter, view, probe)
        view = self.view
        if self.spec.level == "embedding" and view is None:
            raise UsageError(f"{type(getattr(adapter, 'model', adapter)).__name__} exposes no per-modality "
                             "embeddings (encode/fuse)",
                             hint="name each modality's encoder with --embedding-layer audio=...,visual=..., "
                                  "or use --level input")
        if self.scope == "fusion":
            fusion_ids = {id(p) for p in fusion_parameters(adapter, view)}
            self._frozen_names = {n for n, p in adapter.named_parameters() if id(p) not in fusion_ids}

    def begin_epoch(self, epoch: int, rank: int = 0) -> None:
        super().begin_epoch(epoch, rank)
        self._lambda = self.lambda_at(epoch)
        self._coeff_sums = {m: 0.0 for m in self.modalities}
        self._coeff_steps = 0

    def lambda_at(self, epoch: int) -> float:
        warmup = self.config.lambda_warmup
        lam = float(self.config.lambda_)
        if warmup <= 0:
            return lam
        return lam * min(1.0, max(0, epoch - 1) / warmup)

    def fusion_scoped(self) -> bool:
        return self.scope == "fusion"

    def penalty(self, adapter: ModelAdapter, inputs: Mapping[str, Tensor], labels: Tensor, *,
                create_graph: bool = True, embeddings: Mapping[str, Tensor] | None = None,
                logits: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(R, shares)``: the penalty and the per-sample shares ``(B, M)`` of this batch.

        Example:
            >>> r, shares = reg.penalty(adapter, batch.inputs, batch.labels)  # doctest: +SKIP
        """
        forward = None
        if self.spec.level == "input" and self.scope == "fusion":
            frozen = {n: p.detach() for n, p in adapter.named_parameters() if n in self._frozen_names}

            def with_frozen_encoders(x: dict[str, Tensor]) -> Tensor:
                return torch.func.functional_call(adapter, frozen, (x,), strict=False)

            forward = with_frozen_encoders
        view = self.view
        if self.spec.level == "input":  # token ids are attributed at their embedding, the rest at the input
            view = self.tokens.input_view(_Calling(adapter, forward) if forward is not None else adapter)
        if embeddings is not None and self.scope == "fusion":
            embeddings = {m: e.detach() for m, e in embeddings.items()}
        with double_backward_attention(create_graph):
            scores = modality_scores(adapter, inputs, labels, self.spec, create_graph=create_graph,
                                     embeddings=embeddings, logits=logits, forward=forward, view=view)
        shares = soft_shares(scores.float())
        return share_penalty(shares, self.target, self.kind), shares

    def step(self, adapter: ModelAdapter, inputs: Mapping[str, Tensor], labels: Tensor) -> StepOutput:
        # The penalty runs its own forward under the math attention kernel, except where it differentiates
        # this step's forward itself (gradxinput on the attached embeddings): then the whole step does.
        reuses_forward = self.spec.level == "embedding" and self.spec.method == "gradxinput" and self.scope == "all"
        with double_backward_attention(self._lambda > 0 and reuses_forward):
            return self._step(adapter, inputs, labels)

    def _step(self, adapter: ModelAdapter, inputs: Mapping[str, Tensor], labels: Tensor) -> StepOutput:
        lam = self._lambda
        aux_embeddings = None
        if self.spec.level == "embedding":
            embeddings, logits = self.encode_with_logits(adapter, inputs)
        else:
            embeddings = None
            if self.aux is not None:
                aux_embeddings, logits = self.encode_with_logits(adapter, inputs)
            else:
                logits = adapter(inputs)
        task = F.cross_entropy(logits.float(), labels)
        penalty, shares = self.penalty(adapter, inputs, labels, create_graph=lam > 0, embeddings=embeddings,
                                       logits=logits)
        if self.modulate > 0:  # the shares of the whole (global) batch, so every rank scales alike
            sums = all_reduce_sum(torch.cat([shares.detach().float().sum(0).cpu(),
                                             torch.tensor([float(shares.shape[0])])]))
            self.coeffs = self.coefficients(sums[:-1] / sums[-1].clamp_min(1.0))
        loss = task + lam * penalty if lam > 0 else task
        aux = self.aux_loss(embeddings if embeddings is not None else aux_embeddings or {}, labels)
        if aux is not None:
            loss = loss + aux
        return StepOutput(logits=logits, loss=loss, task_loss=task.detach(), penalty=penalty.detach(),
                          term=penalty if lam > 0 else None, shares=shares.detach().mean(0), aux=aux)


    def coefficients(self, mean_shares: Tensor) -> dict[str, float]:
        """``exp(modulate * (target - share))`` per modality, from the batch-mean shares ``(M,)``.

        Example:
            >>> cfg = TrainConfig(model="av-tiny", data="d", out="o", regularizer="attribution", modulate=2.0)
            >>> c = AttributionRegularizer(cfg, ["audio", "visual"]).coefficients(torch.tensor([0.8, 0.2]))
            >>> round(c["audio"], 4), round(c["visual"], 4)
            (0.5488, 1.8221)
        """
        values = mean_shares.detach().float().cpu().tolist()
        return {m: math.exp(self.modulate * (float(t) - float(s)))
                for m, t, s in zip(self.modalities, self.target.tolist(), values)}

    def after_backward(self, adapter: nn.Module) -> None:
        if self.modulate <= 0:
            return
        for modality, params in encoder_parameters(adapter, self.embedding_view(adapter)).items():
            coeff = self.coeffs.get(modality, 1.0)
            self._coeff_sums[modality] += coeff
            for p in params:
                if p.grad is not None:
                    p.grad.mul_(coeff)
        self._coeff_steps += 1

    def metrics(self) -> dict[str, float]:
        """With ``--modulate``: each encoder's mean gradient scale this epoch (``c_audio``, ...)."""
        if self.modulate <= 0 or not self._coeff_steps:
            return {}
        return {f"c_{m}": s / self._coeff_steps for m, s in self._coeff_sums.items()}


class _Calling:
    """``adapter`` (its modules, for hooks, and its modalities) called through ``fn``."""

    def __init__(self, adapter: ModelAdapter, fn: Callable[[dict[str, Tensor]], Tensor]) -> None:
        self.model, self.modalities, self._fn = adapter.model, adapter.modalities, fn

    def __call__(self, inputs: Mapping[str, Tensor]) -> Tensor:
        return self._fn(dict(inputs))
