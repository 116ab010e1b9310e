"""Guards against silently wrong answers: checks an audit runs on what the model gives it.

Each guard either stops the audit with one clear line (a :class:`~mmbalance.errors.MMBalanceError`,
exit 2 in the CLI) or returns a *warning*: a small dict ``{"code", "message", ...}`` that the
audit prints under its table and stores in the JSON's ``warnings`` list.

* :func:`check_logits_width` / :func:`check_width_follows_classes` — logits must have one column per
  class of the dataset, and not one per sample of the batch (a similarity matrix);
* :func:`check_finite` — NaN/inf in the logits or in an estimator's scores, naming the first sample;
* :func:`check_gradients_flow` — gradients that are all zero while ablating a modality changes the
  logits (a forward under ``torch.no_grad()``, detached tensors);
* :class:`ConstantMonitor` / :func:`constant_embedding_warning` — an embedding that is the same for
  every sample, where a zero baseline makes its share meaningless (finetune's text:
  :func:`constant_embedding_training_warning`);
* :func:`completeness_ratio` / :func:`completeness_warning` — IG attributions that do not add up to
  ``F(x) - F(baseline)``.

Example:
    >>> import torch
    >>> check_logits_width(torch.zeros(4, 3), 3, "toy")
    >>> check_logits_width(torch.zeros(4, 7), 3, "toy")
    Traceback (most recent call last):
    ...
    mmbalance.errors.ModelError: the model gives 7 logits per sample but toy has 3 classes (...)
    >>> round(completeness_ratio({"completeness_error": {"mean": 0.2}, "output_change": {"mean": 2.0}}), 3)
    0.1
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor

from .errors import MMBalanceError, ModelError

#: estimators whose numbers come from gradients (the zero-gradient guard applies to them)
GRADIENT_METHODS = frozenset({"ig", "gradxinput"})
#: mean completeness error, as a fraction of mean |F(x) - F(baseline)|, above which the audit warns
COMPLETENESS_LIMIT = 0.05


def audit_warning(code: str, message: str, **where: Any) -> dict[str, Any]:
    """One warning as stored in the audit JSON: ``{"code", "message", **where}``.

    Example:
        >>> audit_warning("completeness", "IG does not add up", method="ig")
        {'code': 'completeness', 'message': 'IG does not add up', 'method': 'ig'}
    """
    return {"code": code, "message": message, **where}


def check_logits_width(logits: Tensor, num_classes: int, location: str) -> None:
    """Raise :class:`ModelError` unless ``logits`` has exactly ``num_classes`` columns.

    A width equal to the batch size suggests a batch x batch similarity matrix (CLIP-like
    models), which is no classifier output.
    """
    width, batch = int(logits.shape[1]), int(logits.shape[0])
    if width == num_classes:
        return
    if width == batch and batch > 1:
        hint = ("the output is batch x batch, like a similarity matrix (CLIP): wrap the model so that it "
                "returns one score per class, or choose another output with --output")
    else:
        hint = ("choose the element holding the logits with --output, or build the model for this many "
                "classes (--model-arg num_classes=...)")
    raise ModelError(f"the model gives {width} logits per sample but {location} has {num_classes} classes",
                     hint=hint)


def check_width_follows_classes(forward: Callable[[dict[str, Tensor]], Tensor], inputs: Mapping[str, Tensor],
                                logits: Tensor) -> None:
    """Raise :class:`ModelError` when the logits are ``batch x batch`` (their width follows the batch size).

    Only probed when the width equals the batch size: the batch with its first sample repeated once
    more must give the same width. Catches CLIP-like similarity matrices even when the batch size
    equals the number of classes. A probe the model cannot run decides nothing.
    """
    batch, width = int(logits.shape[0]), int(logits.shape[1])
    if batch < 2 or width != batch:
        return
    try:
        with torch.no_grad():
            grown = forward({m: torch.cat([t, t[:1]]) for m, t in inputs.items()})
    except MMBalanceError:
        return
    if grown.dim() == 2 and int(grown.shape[1]) != width:
        raise ModelError(f"the model's output is {batch} x {batch} for a batch of {batch} but {int(grown.shape[1])} "
                         f"wide for a batch of {batch + 1}: a batch x batch similarity matrix (CLIP-like), not "
                         "class logits",
                         hint="wrap the model so that it returns one score per class, or choose another output "
                              "with --output")


def first_nonfinite(values: Tensor) -> int | None:
    """The first row of ``values`` holding NaN or inf, else ``None``.

    Example:
        >>> first_nonfinite(torch.tensor([[1.0, 2.0], [float("nan"), 0.0]]))
        1
    """
    bad = ~torch.isfinite(values.detach()).reshape(values.shape[0], -1).all(dim=1)
    return int(bad.nonzero()[0, 0]) if bool(bad.any()) else None


def check_finite(values: Tensor, indices: Sequence[int] | Tensor | None, what: str, *,
                 error: type[MMBalanceError] = ModelError, hint: str | None = None) -> None:
    """Raise ``error`` naming the first sample (its dataset index) whose row of ``values`` is NaN/inf.

    Example:
        >>> check_finite(torch.tensor([[1.0], [float("inf")]]), [10, 11], "the model's logits")
        Traceback (most recent call last):
        ...
        mmbalance.errors.ModelError: the model's logits hold inf for sample 11 (...)
    """
    row = first_nonfinite(values)
    if row is None:
        return
    sample = int(indices[row]) if indices is not None else row
    bad = values.detach()[row]
    kind = "NaN" if bool(torch.isnan(bad).any()) else "inf"
    raise error(f"{what} hold {kind} for sample {sample}",
                hint=hint or "the model overflows or divides by zero there; check its weights (a diverged "
                             "checkpoint?) and that sample's inputs")


def _changes(before: Tensor, after: Tensor) -> bool:
    scale = float(before.detach().abs().max()) if before.numel() else 0.0
    return bool((after.detach() - before.detach()).abs().max() > 1e-6 * (1.0 + scale))


def check_gradients_flow(forward: Callable[[dict[str, Tensor]], Tensor], inputs: Mapping[str, Tensor],
                         baselines: Mapping[str, Tensor] | None, target: Tensor, *, what: str = "inputs") -> None:
    """Raise :class:`ModelError` when a modality gets no gradient although ablating it changes the logits.

    The cheap test gradient estimators need: the gradient of the target logit with respect to
    each floating-point modality of this batch (at the inputs and at two points of the straight
    path to the baseline, where a saturated model still has gradients) must not be all zero (or
    missing: no ``grad_fn``) while replacing that modality by its baseline moves the logits. Both happen
    when ``forward`` runs under ``torch.no_grad()`` or detaches tensors (``.detach()``,
    ``.item()``, a trip through numpy), and IG would then report zero (or equal) shares.

    Example:
        >>> from torch import nn
        >>> lin = nn.Linear(4, 2)
        >>> x = {"a": torch.randn(3, 2), "b": torch.randn(3, 2)}
        >>> check_gradients_flow(lambda d: lin(torch.cat([d["a"], d["b"]], 1)), x, None, torch.zeros(3, dtype=torch.long))
    """
    floating = [m for m, t in inputs.items() if t.is_floating_point()]
    if not floating:
        return
    refs = {m: (baselines[m] if baselines is not None and m in baselines else torch.zeros_like(inputs[m])).detach()
            for m in floating}
    # the input and two points of IG's path: a saturated model still has gradients nearer the baseline
    alphas = (1.0, 0.5, 0.1)
    leaves = {m: (torch.cat([refs[m] + a * (t.detach() - refs[m]) for a in alphas]).requires_grad_(True)
                  if m in floating else t.detach().repeat((len(alphas),) + (1,) * (t.dim() - 1)))
              for m, t in inputs.items()}
    with torch.enable_grad():
        logits = forward(leaves)
        grads: dict[str, Tensor | None] = {m: None for m in floating}
        if logits.requires_grad:
            picked = logits.gather(1, target.repeat(len(alphas)).view(-1, 1).to(logits.device)).sum()
            found = torch.autograd.grad(picked, [leaves[m] for m in floating], allow_unused=True)
            grads = dict(zip(floating, found))
    tracked = logits.requires_grad
    logits = logits.detach()[: target.shape[0]]  # at the inputs themselves
    silent = [m for m, g in grads.items() if g is None or not bool(g.detach().abs().max() > 0)]
    if not silent:
        return
    moved = []
    with torch.no_grad():
        for m in silent:
            if _changes(logits, forward({**{k: v.detach() for k, v in inputs.items()}, m: refs[m]})):
                moved.append(m)
    if not moved:
        return
    names = ", ".join(moved)
    them = "it" if len(moved) == 1 else "them"
    if not tracked:
        cause = ("the model's forward runs under torch.no_grad() or torch.inference_mode() (its logits have "
                 "no grad_fn)")
    else:
        cause = f"the model's forward detaches {them} (.detach(), .item(), .numpy(), .data) or is piecewise constant"
    raise ModelError(f"the gradients of the target logit with respect to the {what} {names} are all zero, yet "
                     f"replacing {them} by the baseline changes the logits; likely cause: {cause}",
                     hint="let gradients flow through forward, or use gradient-free estimators "
                          "(--method ablation,shapley)")


class ConstantMonitor:
    """Watches each modality's embeddings over an audit: which never change from sample to sample?

    Example:
        >>> mon = ConstantMonitor()
        >>> mon.update({"a": torch.ones(3, 2), "b": torch.randn(3, 2)})
        >>> mon.update({"a": torch.ones(2, 2), "b": torch.randn(2, 2)})
        >>> mon.constant()
        ['a']
    """

    def __init__(self) -> None:
        self._first: dict[str, Tensor] = {}
        self._varies: dict[str, bool] = {}
        self._rows = 0

    def update(self, embeddings: Mapping[str, Tensor]) -> None:
        """Fold in one batch ``{modality: (B, ...)}``."""
        for m, emb in embeddings.items():
            if self._varies.get(m) or emb.shape[0] == 0:
                continue
            flat = emb.detach().reshape(emb.shape[0], -1).double()
            ref = self._first.setdefault(m, flat[0].clone())
            tol = 1e-6 * (1.0 + float(ref.abs().max()) if ref.numel() else 1.0)
            self._varies[m] = ref.shape != flat.shape[1:] or bool((flat - ref).abs().max() > tol)
        self._rows += int(next(iter(embeddings.values())).shape[0]) if embeddings else 0

    def constant(self) -> list[str]:
        """Modalities whose embedding was the same for every sample seen (needs two samples)."""
        if self._rows < 2:
            return []
        return [m for m, varies in self._varies.items() if not varies]


def constant_embedding_warning(modality: str) -> dict[str, Any]:
    """The warning for an embedding that never changes, under the zero baseline."""
    return audit_warning(
        "constant_embedding",
        f"the {modality} embedding is the same for every sample, so its share against the zero baseline "
        f"measures how far that constant is from zero, not what the samples carry; use --baseline mean",
        modality=modality)


def constant_embedding_training_warning(modality: str) -> str:
    """finetune's warning for an embedding that never changes, its shares measured by gradients at the embedding.

    Example:
        >>> constant_embedding_training_warning("visual").startswith("the visual embedding is the same")
        True
    """
    return (f"the {modality} embedding is the same for every validation sample, so its share at the embedding level "
            f"(share_{modality} in metrics.csv, what -r attribution balances) measures how far that constant is "
            f"from zero, not what the samples carry; check the {modality} encoder and its inputs, or use "
            f"--attribution shapley (a constant embedding gets a share of 0 there) or --level input")


def completeness_ratio(extra: Mapping[str, Any]) -> float | None:
    """Mean completeness error as a fraction of the mean ``|F(x) - F(baseline)|`` (``None``: not reported).

    Reads a method's summarized ``extra`` (IG's ``completeness_error`` and ``output_change``);
    audits written before ``output_change`` existed fall back to the mean per-sample relative error.
    """
    def mean(key: str) -> float | None:
        entry = extra.get(key)
        value = entry.get("mean") if isinstance(entry, Mapping) else None
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    error, change = mean("completeness_error"), mean("output_change")
    if error is not None and change is not None:
        return error / change if change > 0 else (0.0 if error == 0 else float("inf"))
    return mean("relative_completeness_error")


def completeness_warning(method: str, extra: Mapping[str, Any], params: Mapping[str, Any],
                         limit: float = COMPLETENESS_LIMIT) -> dict[str, Any] | None:
    """A warning when ``method``'s attributions miss ``F(x) - F(baseline)`` by more than ``limit`` on average.

    Example:
        >>> completeness_warning("ig", {"completeness_error": {"mean": 0.7}, "output_change": {"mean": 1.0}},
        ...                      {"steps": 32})["code"]
        'completeness'
    """
    ratio = completeness_ratio(extra)
    if ratio is None or ratio <= limit:
        return None
    steps, tolerance = params.get("steps"), params.get("tolerance")
    more = f"raise --steps (now {steps}, try {int(steps) * 4})" if isinstance(steps, int) else "raise --steps"
    if tolerance is not None:  # adaptive already: the cap on steps stopped the refinement
        more = more.replace("raise --steps", "raise the --steps cap") + f" or loosen --tolerance {tolerance}"
    else:
        more += " or pass --tolerance 0.01"
    return audit_warning(
        "completeness",
        f"{method}: the attributions miss F(x) - F(baseline) by {ratio:.1%} on average (more than "
        f"{limit:.0%}), so its shares are unreliable; {more}",
        method=method, value=ratio)


def unaudited_inputs(model: Any, audited: Sequence[str], available: Sequence[str] = ()) -> list[str] | None:
    """Every modality ``model`` takes, when that is more than ``audited`` (``None`` otherwise).

    A model takes the modalities its ``modalities`` attribute declares, and any modality of the
    data (``available``) that its ``forward`` has a parameter for (an optional ``text=None``).

    Example:
        >>> from torch import nn
        >>> class M(nn.Module):
        ...     def forward(self, audio, visual, text=None): ...
        >>> unaudited_inputs(M(), ["audio", "visual"], ["audio", "visual", "text"])
        ['audio', 'visual', 'text']
        >>> unaudited_inputs(M(), ["audio", "visual"], ["audio", "visual"]) is None
        True
    """
    declared = getattr(model, "modalities", None)
    takes = [m for m in declared if isinstance(m, str)] if isinstance(declared, (tuple, list)) else []
    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError, AttributeError):
        params = []  # type: ignore[assignment]
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    takes += [m for m in (*audited, *available) if m in named and m not in takes]
    extra = [m for m in takes if m not in audited]
    return [*audited, *extra] if extra else None


def gradient_estimators(estimators: Sequence[Any]) -> list[Any]:
    """The estimators whose numbers come from gradients (``uses_gradients``, else the name)."""
    return [e for e in estimators if getattr(e, "uses_gradients", e.name in GRADIENT_METHODS)]


def looks_like_probabilities(logits: Tensor, atol: float = 1e-4) -> bool:
    """Whether every row of ``logits`` (``B x C``, ``C >= 2``) lies in [0, 1] and sums to 1 within ``atol``:
    the model ends in a softmax, so it returns probabilities, not logits.

    Example:
        >>> looks_like_probabilities(torch.tensor([[0.2, 0.8], [0.5, 0.5]]))
        True
        >>> looks_like_probabilities(torch.tensor([[2.0, -1.0], [0.5, 0.5]]))
        False
    """
    if logits.dim() != 2 or logits.shape[1] < 2 or logits.shape[0] == 0:
        return False
    values = logits.detach().double()
    in_range = bool(((values >= 0) & (values <= 1)).all())
    return in_range and bool(((values.sum(dim=1) - 1).abs() <= atol).all())


PROBABILITIES_MESSAGE = ("the model's outputs are probabilities (every row in [0, 1], summing to 1), not logits: "
                         "it ends in a softmax")
PROBABILITIES_HINT = ("return the logits before the softmax (cross-entropy and the attribution shares expect "
                      "them), or choose the element holding them with --output")


def probabilities_warning(logits: Tensor) -> dict[str, Any] | None:
    """The audit warning for a model that returns probabilities (see :func:`looks_like_probabilities`)."""
    if not looks_like_probabilities(logits):
        return None
    return audit_warning("probabilities", f"{PROBABILITIES_MESSAGE}; shares of a saturating softmax understate "
                         f"the modalities it is sure about; {PROBABILITIES_HINT}")


def check_training_outputs(adapter: Any, inputs: Mapping[str, Tensor], num_classes: int, location: str) -> None:
    """Before training: one forward in eval mode without gradients (which also materializes lazy layers such
    as ``nn.LazyLinear``, so the optimizer and checkpoints see real parameters), then the guards audit applies:
    the logits' width must match the classes, and probabilities instead of logits are refused
    (cross-entropy over a softmax's output barely trains)."""
    was_training = adapter.training
    adapter.eval()
    try:
        with torch.no_grad():
            logits = adapter(dict(inputs))
    finally:
        adapter.train(was_training)
    lazy = [name for name, module in adapter.named_modules()
            if any(isinstance(p, torch.nn.parameter.UninitializedParameter) for p in module.parameters(recurse=False))]
    if lazy:
        raise ModelError(f"the lazy layer {lazy[0]} has no size yet: forward never runs it, so its parameters "
                         "cannot be trained or saved", hint="remove it, or build it with its input size "
                         "(nn.Linear instead of nn.LazyLinear)")
    check_logits_width(logits, num_classes, location)
    check_width_follows_classes(adapter, inputs, logits)
    if looks_like_probabilities(logits):
        raise ModelError(PROBABILITIES_MESSAGE, hint=PROBABILITIES_HINT)


#: estimators that only call forward (no gradients, no hooks): what runs on a compiled (scripted/exported) model
FORWARD_ONLY_ESTIMATORS = ("ablation", "permutation", "shapley")


def compiled_kind(model: Any) -> str | None:
    """``"TorchScript"`` for a ``torch.jit.script`` module, ``"torch.export"`` for an exported program's
    module, else ``None`` (a traced module runs hooks and gradients like an nn.Module, so it is ``None`` too).

    Example:
        >>> compiled_kind(torch.jit.script(torch.nn.Linear(2, 2)))
        'TorchScript'
        >>> compiled_kind(torch.nn.Linear(2, 2)) is None
        True
    """
    if isinstance(model, torch.jit.ScriptModule) and not isinstance(model, torch.jit.TracedModule):
        return "TorchScript"
    if any(cls.__name__ == "_StatefulGraphModule" for cls in type(model).__mro__):
        return "torch.export"
    return None


def allow_mode_switch(model: Any) -> None:
    """An exported program's module refuses ``train()``/``eval()``; its graph is fixed when exported, so both
    become no-ops and the model can be audited with forward-only estimators."""
    if compiled_kind(model) == "torch.export":
        model.__dict__["train"] = lambda mode=True: model
        model.__dict__["eval"] = lambda: model


def check_compiled(model: Any, needs: str, runnable: Sequence[str] = FORWARD_ONLY_ESTIMATORS) -> None:
    """Raise :class:`ModelError` in one line when ``model`` is scripted or exported and ``needs`` hooks or
    gradients through its modules (IG, gradient×input, the attribution regularizer, training).

    Example:
        >>> check_compiled(torch.jit.script(torch.nn.Linear(2, 2)), "--method ig")
        Traceback (most recent call last):
        ...
        mmbalance.errors.ModelError: a TorchScript model cannot run --method ig (...)
    """
    kind = compiled_kind(model)
    if kind is None:
        return
    raise ModelError(f"a {kind} model cannot run {needs}",
                     hint=f"on it only the forward-only estimators run: --method {','.join(runnable)}; for IG or "
                          "fine-tuning load the plain nn.Module (script or export it afterwards)")


__all__ = [
    "COMPLETENESS_LIMIT", "FORWARD_ONLY_ESTIMATORS", "PROBABILITIES_HINT", "PROBABILITIES_MESSAGE",
    "check_training_outputs", "looks_like_probabilities", "probabilities_warning", "allow_mode_switch", "check_compiled", "compiled_kind", "ConstantMonitor", "GRADIENT_METHODS", "audit_warning",
    "check_finite", "check_gradients_flow", "check_logits_width", "check_width_follows_classes", "completeness_ratio", "completeness_warning",
    "constant_embedding_training_warning", "constant_embedding_warning", "first_nonfinite", "gradient_estimators", "unaudited_inputs",
]


#: an accuracy within this many points of chance (1 / number of classes) draws a ``near_chance`` warning
NEAR_CHANCE_MARGIN = 0.05


def no_checkpoint_warning(model: Any, spec: Any, checkpoint: Any,
                          rebuild: Callable[[], Any] | None = None) -> dict[str, Any] | None:
    """A ``no_checkpoint`` warning when a registry or plug-in model with trainable weights has no checkpoint.

    Such a model keeps the random weights of its constructor, so its shares describe an
    untrained network. ``hf:`` models (weights from ``save_pretrained``) and models passed in
    already loaded (not a spec string) are taken to be trained. With ``rebuild`` (a function that
    builds the model again), the model is built once more under another random seed: a factory
    whose weights come out identical sets or loads them itself, and draws no warning.

    Example:
        >>> import torch
        >>> no_checkpoint_warning(torch.nn.Linear(2, 2), "av-tiny", None)["code"]
        'no_checkpoint'
        >>> no_checkpoint_warning(torch.nn.Linear(2, 2), "av-tiny", "run/best.pt") is None
        True
    """
    if checkpoint or not isinstance(spec, str) or spec.startswith("hf:"):
        return None
    if not any(p.requires_grad for p in model.parameters()):
        return None
    if rebuild is not None and not _weights_follow_seed(model, rebuild):
        return None
    return audit_warning(
        "no_checkpoint",
        f"{spec} was audited without --checkpoint: its weights are the random initial ones, so the shares describe "
        "an untrained model; pass --checkpoint run/best.pt (a factory that loads trained weights itself: "
        "`mmbalance check --allow-untrained`)")


def _weights_follow_seed(model: Any, rebuild: Callable[[], Any]) -> bool:
    """Whether building the model under another seed gives other trainable weights (random initialisation)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(20181008)
        try:
            other = rebuild()
        except (MMBalanceError, RuntimeError, ValueError, TypeError):  # cannot tell: assume the initial weights
            return True
    theirs = dict(other.named_parameters())
    for name, p in model.named_parameters():
        q = theirs.get(name)
        if p.requires_grad and (q is None or q.shape != p.shape or not torch.equal(p.detach().cpu(), q.detach().cpu())):
            return True
    return False


def near_chance_warning(accuracy: float, num_classes: int, n_samples: int,
                        margin: float = NEAR_CHANCE_MARGIN) -> dict[str, Any] | None:
    """A ``near_chance`` warning when ``accuracy`` is within ``margin`` of chance (``1 / num_classes``).

    A model that predicts no better than chance has no reliance worth measuring: its shares
    describe noise.

    Example:
        >>> near_chance_warning(0.27, 4, 100)["code"]
        'near_chance'
        >>> near_chance_warning(0.9, 4, 100) is None
        True
    """
    if num_classes < 2 or n_samples < 1:
        return None
    chance = 1.0 / num_classes
    if accuracy > chance + margin:
        return None
    return audit_warning(
        "near_chance",
        f"accuracy {accuracy:.1%} is within {margin:.0%} of chance ({chance:.1%} with {num_classes} classes): the "
        "model decides no better than guessing, so its shares say little; check the checkpoint and the data",
        value=accuracy, chance=chance)


def randomisation_warning(moved: float, threshold: float) -> dict[str, Any]:
    """The ``sanity`` warning of a failed model-randomisation test (Adebayo et al. 2018).

    Example:
        >>> randomisation_warning(0.01, 0.05)["code"]
        'sanity'
    """
    return audit_warning(
        "sanity",
        f"model-randomisation test failed: with the weights re-initialised the shares moved by only {moved:.1%} "
        f"(less than {threshold:.0%}), so the estimator reflects the inputs rather than what the model learned",
        value=moved)
