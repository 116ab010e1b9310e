"""Differentiable modality attributions, shares and share penalties (for training losses).

captum's gradient helpers detach their results; a penalty on attributions needs their
gradient with respect to the *weights* (double backprop), so this module computes the
batched attributions itself with ``create_graph=True``:

* ``gradxinput``: ``a = x * dF_y/dx``;
* ``ig``: Integrated Gradients from a zero baseline, ``a = x * sum_k w_k dF_y/dx(alpha_k x)``
  (Gauss-Legendre nodes, all steps in one batched pass);
* ``shapley`` (the default): exact Shapley values of modality removal on ``F_y``, the quantity
  ``mmbalance audit`` reports by default. An absent modality is a zero *input*: at the embedding
  level it is the encoder's output for a zero input, so the head is evaluated at ``2^M``
  coalitions of real and zero-input embeddings: the same numbers as the audit's input-level
  Shapley values for every model that fuses per-modality embeddings, at the cost of ``2^M``
  head forwards and no double backward;

at the ``embedding`` level (``x`` = what each encoder hands to fusion; cheap: only the
fusion head is differentiated twice) or the ``input`` level (``x`` = the raw inputs; the
whole network is differentiated twice). ``F_y`` is the logit of the true class. Each
modality's map is pooled to one score per sample (``l1``: sum of absolute values,
``l2``: Euclidean norm), scores become per-sample shares, and the penalty compares the
batch's mean shares with a target (``l1``, ``l2`` or ``kl`` = KL(target || shares)).

Example:
    >>> import torch
    >>> fuse = torch.nn.Linear(4, 3)
    >>> emb = {"audio": torch.randn(5, 2), "visual": torch.randn(5, 2)}
    >>> f = lambda e: fuse(torch.cat([e["audio"], e["visual"]], 1))
    >>> maps = attribute(f, emb, torch.zeros(5, dtype=torch.long), method="gradxinput")
    >>> shares = soft_shares(pool_scores(maps, ("audio", "visual"), "l1"))
    >>> torch.allclose(shares.sum(1), torch.ones(5))
    True
    >>> float(share_penalty(torch.tensor([0.8, 0.2]), torch.tensor([0.5, 0.5]), "l1"))
    0.6000000238418579
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from ..attribution.hooks import EmbeddingView
from ..attribution.rows import BatchForward
from ..attribution.integrated_gradients import quadrature
from ..errors import UsageError

if TYPE_CHECKING:
    from ..models.adapter import ModelAdapter

__all__ = ["ATTRIBUTIONS", "LEVELS", "PENALTIES", "POOLS", "AttributionSpec", "attribute",
           "double_backward_attention", "frozen_norm_stats", "modality_scores", "pool_scores", "share_penalty",
           "soft_shares"]

ATTRIBUTIONS = ("shapley", "gradxinput", "ig")
LEVELS = ("embedding", "input")
POOLS = ("l1", "l2")
PENALTIES = ("l1", "l2", "kl")
SHARE_EPS = 1e-8

DictFn = Callable[[dict[str, Tensor]], Tensor]


@dataclass(frozen=True)
class AttributionSpec:
    """How modality scores are measured: ``method``, ``level``, IG ``steps`` and ``pool``.

    Example:
        >>> AttributionSpec(method="ig", steps=4).describe()
        'ig(4 steps)@embedding, l1 pool'
        >>> AttributionSpec().describe()
        'shapley@embedding (absent = zero input)'
    """

    method: str = "shapley"
    level: str = "embedding"
    steps: int = 8
    pool: str = "l1"

    def validate(self) -> None:
        """Raise :class:`UsageError` for unknown names or a step count below 1."""
        if self.method not in ATTRIBUTIONS:
            raise UsageError(f"unknown --attribution {self.method!r}", hint=f"use one of {', '.join(ATTRIBUTIONS)}")
        if self.level not in LEVELS:
            raise UsageError(f"unknown --level {self.level!r}", hint=f"use one of {', '.join(LEVELS)}")
        if self.pool not in POOLS:
            raise UsageError(f"unknown --pool {self.pool!r}", hint=f"use one of {', '.join(POOLS)}")
        if self.steps < 1:
            raise UsageError(f"--attr-steps must be at least 1, got {self.steps}")

    def describe(self) -> str:
        """A short human-readable label."""
        steps = f"({self.steps} steps)" if self.method == "ig" else ""
        if self.method == "shapley":
            return f"shapley@{self.level} (absent = zero input)"
        return f"{self.method}{steps}@{self.level}, {self.pool} pool"


def attribute(fn: DictFn, points: Mapping[str, Tensor], target: Tensor, *, method: str = "gradxinput",
              steps: int = 8, create_graph: bool = True, logits: Tensor | None = None) -> dict[str, Tensor]:
    """Per-modality attribution maps of the logit ``target`` w.r.t. ``points`` (same shapes as ``points``).

    ``fn`` maps ``{modality: (B, ...)}`` to logits ``(B, C)``; ``points`` are embeddings or
    inputs. Points that do not require grad are treated as leaves. With
    ``create_graph=True`` the maps are differentiable w.r.t. ``fn``'s weights (and
    w.r.t. whatever produced ``points``). For ``gradxinput``, ``logits = fn(points)``
    may be passed to save a forward pass.

    Example:
        >>> import torch
        >>> w = torch.nn.Linear(3, 2)
        >>> x = {"a": torch.randn(4, 3)}
        >>> maps = attribute(lambda d: w(d["a"]), x, torch.ones(4, dtype=torch.long), method="ig", steps=4)
        >>> torch.allclose(maps["a"], x["a"] * w.weight[1], atol=1e-6)   # exact on a linear model
        True
    """
    if method not in ATTRIBUTIONS:
        raise UsageError(f"unknown attribution {method!r}", hint=f"use one of {', '.join(ATTRIBUTIONS)}")
    mods = tuple(points)
    if logits is not None and not all(t.requires_grad for t in points.values()):
        logits = None  # those logits cannot be differentiated w.r.t. new leaves
    x = {m: t if t.requires_grad else t.detach().requires_grad_(True) for m, t in points.items()}
    target = target.view(-1, 1)
    with torch.enable_grad():
        if method == "gradxinput":
            out = logits if logits is not None else fn(x)
            picked = out.gather(1, target).sum()
            grads = torch.autograd.grad(picked, [x[m] for m in mods], create_graph=create_graph,
                                        retain_graph=create_graph or logits is not None, allow_unused=True)
            return {m: x[m] * g if g is not None else torch.zeros_like(x[m]) for m, g in zip(mods, grads)}
        weights, alphas = quadrature("gausslegendre", steps)
        first = x[mods[0]]
        a = torch.tensor(alphas, dtype=first.dtype, device=first.device)
        w = torch.tensor(weights, dtype=first.dtype, device=first.device)
        k, batch = len(alphas), first.shape[0]
        path = {}
        for m in mods:
            shape = (k,) + (1,) * x[m].dim()
            path[m] = (a.view(shape) * x[m].unsqueeze(0)).reshape((k * batch,) + tuple(x[m].shape[1:]))
        out = fn(path)
        picked = out.gather(1, target.repeat(k, 1)).sum()
        grads = torch.autograd.grad(picked, [path[m] for m in mods], create_graph=create_graph, allow_unused=True)
        maps = {}
        for m, g in zip(mods, grads):
            if g is None:
                maps[m] = torch.zeros_like(x[m])
                continue
            g = g.view((k,) + tuple(x[m].shape))
            avg = (g * w.view((k,) + (1,) * x[m].dim())).sum(0)
            maps[m] = x[m] * avg
        return maps


def shapley_scores(fn: DictFn, points: Mapping[str, Tensor], absent: Mapping[str, Tensor],
                   target: Tensor) -> Tensor:
    """Exact Shapley values ``(B, M)`` of the modalities for the logit ``target``, absent = ``absent``.

    ``2^M`` evaluations of ``fn`` (stacked into one call); differentiable w.r.t. ``fn``'s weights and
    whatever produced ``points`` and ``absent`` (which may hold one row, broadcast over the batch).

    Example:
        >>> import torch
        >>> f = lambda d: torch.stack([3 * d["a"].sum(1) + d["b"].sum(1)] * 2, 1)
        >>> pts = {"a": torch.ones(2, 2), "b": torch.ones(2, 3)}
        >>> shapley_scores(f, pts, {m: torch.zeros_like(t) for m, t in pts.items()}, torch.zeros(2, dtype=torch.long))
        tensor([[6., 3.],
                [6., 3.]])
    """
    from ..attribution.perturbation import shapley_weights

    mods = tuple(points)
    n, batch = len(mods), next(iter(points.values())).shape[0]
    masks = list(itertools.product((False, True), repeat=n))
    base = {m: absent[m].expand_as(points[m]) if absent[m].shape[0] != batch else absent[m] for m in mods}
    stacked = {m: torch.cat([points[m] if mask[j] else base[m] for mask in masks]) for j, m in enumerate(mods)}
    out = fn(stacked)
    picked = out.gather(1, target.view(-1, 1).repeat(len(masks), 1)).squeeze(1).view(len(masks), batch)
    value = dict(zip(masks, picked))
    weights = shapley_weights(n)
    columns = []
    for j in range(n):
        total = torch.zeros_like(picked[0])
        for mask, v in value.items():
            if not mask[j]:
                total = total + weights[sum(mask)] * (value[mask[:j] + (True,) + mask[j + 1:]] - v)
        columns.append(total)
    return torch.stack(columns, 1)


def _zero_inputs(inputs: Mapping[str, Tensor], modalities: Sequence[str]) -> dict[str, Tensor]:
    """The batch with every modality zeroed (other entries, such as pass-through inputs, kept).

    A whole batch, not one row: a training-mode batch norm cannot normalize a single sample.
    """
    return {k: torch.zeros_like(t) if k in modalities else t for k, t in inputs.items()}


def pool_scores(maps: Mapping[str, Tensor], modalities: Sequence[str], pool: str = "l1") -> Tensor:
    """One non-negative score per sample and modality, shape ``(B, M)``.

    ``l1``: sum of absolute attributions; ``l2``: their Euclidean norm (smoothed at 0).

    Example:
        >>> pool_scores({"a": torch.tensor([[3.0, -4.0]])}, ["a"], "l2").tolist()
        [[5.0]]
    """
    if pool not in POOLS:
        raise UsageError(f"unknown --pool {pool!r}", hint=f"use one of {', '.join(POOLS)}")
    cols = []
    for m in modalities:
        flat = maps[m].flatten(1)
        cols.append(flat.abs().sum(1) if pool == "l1" else torch.sqrt(flat.pow(2).sum(1) + 1e-24))
    return torch.stack(cols, dim=1)


def soft_shares(scores: Tensor, eps: float = SHARE_EPS) -> Tensor:
    """Differentiable per-sample shares ``(B, M)`` that sum to 1; all-zero rows get equal shares.

    Example:
        >>> soft_shares(torch.tensor([[3.0, 1.0], [0.0, 0.0]])).tolist()
        [[0.75, 0.25], [0.5, 0.5]]
    """
    m = scores.shape[1]
    return (scores + eps / m) / (scores.sum(dim=1, keepdim=True) + eps)


def share_penalty(shares: Tensor, target: Tensor, kind: str = "l2") -> Tensor:
    """Distance between mean shares ``(M,)`` (or per-sample ``(B, M)``, averaged first) and ``target``.

    ``l1``: ``sum |s - t|``; ``l2``: ``sum (s - t)^2``; ``kl``: ``KL(t || s) = sum t log(t / s)``.
    Each is 0 exactly when the shares equal the target.

    Example:
        >>> s, t = torch.tensor([0.8, 0.2]), torch.tensor([0.5, 0.5])
        >>> round(float(share_penalty(s, t, "l2")), 6), round(float(share_penalty(s, t, "kl")), 6)
        (0.18, 0.223144)
    """
    if shares.dim() == 2:
        shares = shares.mean(0)
    target = target.to(dtype=shares.dtype, device=shares.device)
    if kind == "l1":
        return (shares - target).abs().sum()
    if kind == "l2":
        return (shares - target).pow(2).sum()
    if kind == "kl":
        return (torch.xlogy(target, target) - target * torch.log(shares.clamp_min(1e-12))).sum()
    raise UsageError(f"unknown --penalty {kind!r}", hint=f"use one of {', '.join(PENALTIES)}")


@contextlib.contextmanager
def frozen_norm_stats(module: nn.Module) -> Iterator[None]:
    """Extra forward passes inside this block leave batch-norm running statistics unchanged.

    Attribution passes run on interpolated or duplicated inputs; they must not move the
    running mean and variance that evaluation uses.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m, m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None)
             for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum, tracked in saved:
            m.momentum = momentum
            if tracked is not None and m.num_batches_tracked is not None:
                m.num_batches_tracked.copy_(tracked)


@contextlib.contextmanager
def double_backward_attention(enabled: bool = True) -> Iterator[None]:
    """Inside this block ``scaled_dot_product_attention`` uses its math kernel (when ``enabled``).

    The fused kernels (flash, memory-efficient, the CPU one) have no derivative of their
    backward, so a graph built with ``create_graph=True`` through them cannot be
    back-propagated again. The math kernel is plain differentiable operations. The
    setting is restored when the block ends; nothing changes outside it.

    Example:
        >>> with double_backward_attention():
        ...     pass
    """
    if not enabled:
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH):
        yield


def modality_scores(adapter: ModelAdapter, inputs: Mapping[str, Tensor], target: Tensor, spec: AttributionSpec, *,
                    create_graph: bool = False, embeddings: Mapping[str, Tensor] | None = None,
                    logits: Tensor | None = None, forward: DictFn | None = None,
                    view: EmbeddingView | None = None) -> Tensor:
    """Pooled per-sample modality scores ``(B, M)`` of a :class:`~mmbalance.models.ModelAdapter`.

    At the embedding level ``view`` says how the embeddings are reached (built-in
    ``encode``/``fuse`` when ``None``, or forward hooks on named modules, see
    :func:`mmbalance.attribution.hooks.embedding_view`); ``embeddings`` (and the ``logits``
    they produced) may be passed to reuse a training forward pass. At the input level
    ``forward`` may replace ``adapter`` (e.g. with some weights detached); only the
    adapter's modalities are attributed, other entries of ``inputs`` (pass-through inputs)
    are passed along untouched; a ``view`` given at the input level is the mixed one of
    token-id modalities (their embedding outputs stand for the ids). Extra forward passes in training mode leave batch-norm statistics unchanged.

    Example:
        >>> from mmbalance.models import load_model
        >>> m = load_model("av-tiny", num_classes=4)
        >>> x = {"audio": torch.randn(2, 1, 8, 8), "visual": torch.randn(2, 3, 2, 8, 8)}
        >>> modality_scores(m, x, torch.tensor([0, 1]), AttributionSpec()).shape
        torch.Size([2, 2])
    """
    model: Any = adapter  # a ModelAdapter (encode/fuse are only used without a view)
    modalities = tuple(model.modalities)
    if spec.method == "shapley":
        with contextlib.nullcontext() if create_graph else torch.no_grad(), frozen_norm_stats(adapter):
            phi = _shapley_modality_scores(model, inputs, target, spec, create_graph=create_graph,
                                           embeddings=embeddings, forward=forward, view=view)
        scores = phi.abs()  # shares count magnitudes, as the audit's do
        return scores if create_graph else scores.detach()
    with torch.enable_grad(), frozen_norm_stats(adapter):
        if spec.level == "embedding" or view is not None:
            if view is None:
                emb = dict(embeddings) if embeddings is not None else model.encode(inputs)
                fuse: DictFn = model.fuse
            else:
                emb = dict(embeddings) if embeddings is not None else view.encode(inputs, grad=create_graph)
                fuse = view.bind(inputs)
            reuse = logits if spec.method == "gradxinput" and embeddings is not None else None
            maps = attribute(fuse, emb, target, method=spec.method, steps=spec.steps,
                             create_graph=create_graph, logits=reuse)
        else:
            fn = forward if forward is not None else adapter
            x = {m: inputs[m].detach().requires_grad_(True) for m in modalities}
            rest = {k: t for k, t in inputs.items() if k not in x}
            call = BatchForward(lambda points, ctx: fn({**ctx, **points}), rest) if rest else fn
            maps = attribute(call, x, target, method=spec.method, steps=spec.steps,
                             create_graph=create_graph)
    scores = pool_scores(maps, modalities, spec.pool)
    return scores if create_graph else scores.detach()


def _shapley_modality_scores(model: Any, inputs: Mapping[str, Tensor], target: Tensor, spec: AttributionSpec, *,
                             create_graph: bool, embeddings: Mapping[str, Tensor] | None, forward: DictFn | None,
                             view: EmbeddingView | None) -> Tensor:
    """Signed Shapley values ``(B, M)`` for :func:`modality_scores` (absent = a zero input)."""
    modalities = tuple(model.modalities)
    zero = _zero_inputs(inputs, modalities)
    if spec.level == "embedding" or view is not None:
        rows = _identical_rows(zero, modalities)
        if view is None:
            emb = dict(embeddings) if embeddings is not None else model.encode(inputs)
            absent = model.encode(rows)
            fuse: DictFn = model.fuse
        else:
            emb = dict(embeddings) if embeddings is not None else view.encode(inputs, grad=create_graph)
            absent = view.encode(rows, grad=create_graph)
            fuse = view.bind(inputs)
        if rows is not zero:  # every row encodes the same: one broadcasts over the batch
            absent = {m: a[:1] for m, a in absent.items()}
        if embeddings is not None and all(not e.requires_grad for e in embeddings.values()):
            absent = {m: a.detach() for m, a in absent.items()}  # the encoders are out of the penalty's reach
        # a view's head may carry per-sample context: evaluate the coalitions one at a time, same rows
        return shapley_scores(_per_coalition(fuse, target.shape[0]), emb, absent, target)
    fn = forward if forward is not None else model
    x = {m: inputs[m] for m in modalities}
    rest = {k: t for k, t in inputs.items() if k not in x}
    call = (lambda points: fn({**rest, **points})) if rest else fn
    return shapley_scores(_per_coalition(call, target.shape[0]), x, {m: zero[m] for m in modalities}, target)


def _identical_rows(zero: Mapping[str, Tensor], modalities: Sequence[str]) -> Mapping[str, Tensor]:
    """Two rows of an all-zero batch when nothing else varies per row, else the batch itself.

    The absent embedding is the encoding of a zero input. Its rows are identical, and so are the
    batch statistics a training-mode batch norm takes from them (the mean and variance of identical
    rows do not depend on their number), so encoding two rows instead of the whole batch gives the
    same embedding for a fraction of the cost (two, not one: a 1-D batch norm refuses a single
    row). With other per-row inputs (pass-through masks, ids) the rows may differ: the whole batch.
    """
    batch = next(iter(zero.values())).shape[0]
    if batch <= 2 or set(zero) != set(modalities):
        return zero
    return {k: t[:2] for k, t in zero.items()}


def _per_coalition(fn: DictFn, batch: int) -> DictFn:
    """``fn`` on stacked coalitions, called once per block of ``batch`` rows (models with per-sample context)."""

    def call(stacked: dict[str, Tensor]) -> Tensor:
        rows = next(iter(stacked.values())).shape[0]
        return torch.cat([fn({m: t[i:i + batch] for m, t in stacked.items()}) for i in range(0, rows, batch)])

    return call
