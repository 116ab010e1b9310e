"""The differentiable attribution, shares and penalties: gradcheck and analytic values."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.func import functional_call

from mmbalance.errors import UsageError
from mmbalance.training import AttributionSpec, attribute, modality_scores, pool_scores, share_penalty, soft_shares


class _Penalty(nn.Module):
    """R(weights) for gradcheck: the whole chain attribution -> pool -> shares -> penalty."""

    def __init__(self, adapter, spec, kind, target):
        super().__init__()
        self.adapter, self.spec, self.kind, self.target = adapter, spec, kind, target

    def forward(self, inputs, labels):
        scores = modality_scores(self.adapter, inputs, labels, self.spec, create_graph=True)
        return share_penalty(soft_shares(scores), self.target, self.kind)


@pytest.mark.parametrize("method,level,pool,kind,fusion", [
    ("gradxinput", "embedding", "l1", "l2", "concat"),
    ("ig", "embedding", "l2", "kl", "gated"),
    ("gradxinput", "input", "l2", "l1", "film"),
    ("ig", "input", "l1", "l2", "sum"),
])
def test_gradcheck_penalty_wrt_weights(make_smooth, make_batch, method, level, pool, kind, fusion):
    adapter = make_smooth(fusion)
    inputs, labels = make_batch()
    spec = AttributionSpec(method=method, level=level, steps=3, pool=pool)
    module = _Penalty(adapter, spec, kind, torch.tensor([0.3, 0.7], dtype=torch.float64))
    names = [n for n, _ in module.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for _, p in module.named_parameters())

    def fn(*ps):
        return functional_call(module, dict(zip(names, ps)), (inputs, labels))

    assert torch.autograd.gradcheck(fn, params, eps=1e-6, atol=1e-5, rtol=1e-4)


def test_gradcheck_attribution_maps(make_smooth, make_batch):
    """The maps themselves (not only the penalty) have correct weight gradients."""
    adapter = make_smooth("gated")
    inputs, labels = make_batch()
    fusion = adapter.model.fusion
    names = [n for n, _ in fusion.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in fusion.parameters())
    emb = {m: e.detach() for m, e in adapter.encode(inputs).items()}

    def fn(*ps):
        fuse = lambda e: functional_call(fusion, dict(zip(names, ps)), (e,))  # noqa: E731
        maps = attribute(fuse, emb, labels, method="ig", steps=4)
        return torch.cat([maps["audio"].flatten(), maps["visual"].flatten()])

    assert torch.autograd.gradcheck(fn, params, eps=1e-6, atol=1e-5, rtol=1e-4)


def test_linear_fusion_attributions_are_exact(make_smooth, make_batch):
    adapter = make_smooth("concat")
    inputs, labels = make_batch()
    emb = adapter.encode(inputs)
    w = adapter.model.fusion.fc.weight[labels]  # (B, 2D)
    d = emb["audio"].shape[1]
    for method in ("gradxinput", "ig"):
        maps = attribute(adapter.fuse, emb, labels, method=method, steps=5)
        assert torch.allclose(maps["audio"], emb["audio"] * w[:, :d])
        assert torch.allclose(maps["visual"], emb["visual"] * w[:, d:])


def test_ig_differs_from_gradxinput_on_nonlinear_fusion(make_smooth, make_batch):
    adapter = make_smooth("gated")
    inputs, labels = make_batch()
    a = modality_scores(adapter, inputs, labels, AttributionSpec(method="gradxinput"))
    b = modality_scores(adapter, inputs, labels, AttributionSpec(method="ig", steps=8))
    assert not torch.allclose(a, b)


def test_level_changes_what_is_attributed(make_smooth, make_batch):
    adapter = make_smooth("concat")
    inputs, labels = make_batch()
    emb = modality_scores(adapter, inputs, labels, AttributionSpec(method="gradxinput", level="embedding"))
    inp = modality_scores(adapter, inputs, labels, AttributionSpec(method="gradxinput", level="input"))
    assert emb.shape == inp.shape == (4, 2)
    assert not torch.allclose(emb, inp)


@pytest.mark.parametrize("fusion", ["concat", "gated"])
def test_default_shapley_is_the_audits_default_quantity_at_both_levels(make_smooth, make_batch, fusion):
    """The penalty's default measure equals the audit's (input-level Shapley values, zero baseline)."""
    from mmbalance.attribution.perturbation import ShapleyValues

    adapter = make_smooth(fusion).eval()
    inputs, labels = make_batch()
    emb = modality_scores(adapter, inputs, labels, AttributionSpec())
    inp = modality_scores(adapter, inputs, labels, AttributionSpec(level="input"))
    audit = ShapleyValues().attribute(adapter, inputs, labels).scores.abs()
    # the same sums of the same logits, grouped differently: float32 rounding of the logits' scale
    tol = 1e-5 * float(audit.abs().max()) + 1e-6
    assert torch.allclose(emb, audit, atol=tol, rtol=0) and torch.allclose(inp, audit, atol=tol, rtol=0)


def test_shapley_penalty_reaches_the_weights(make_smooth, make_batch):
    adapter = make_smooth("concat")
    inputs, labels = make_batch()
    scores = modality_scores(adapter, inputs, labels, AttributionSpec(), create_graph=True)
    (scores[:, 0].sum() - scores[:, 1].sum()).backward()
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in adapter.parameters())


def test_pools_give_analytic_values():
    maps = {"audio": torch.tensor([[3.0, -4.0]]), "visual": torch.tensor([[1.0, 1.0, -1.0, 1.0]])}
    assert pool_scores(maps, ["audio", "visual"], "l1").tolist() == [[7.0, 4.0]]
    assert torch.allclose(pool_scores(maps, ["audio", "visual"], "l2"), torch.tensor([[5.0, 2.0]]))
    with pytest.raises(UsageError):
        pool_scores(maps, ["audio"], "l3")


def test_shares_sum_to_one_and_handle_zero_rows():
    shares = soft_shares(torch.tensor([[7.0, 4.0], [0.0, 0.0]]))
    assert torch.allclose(shares, torch.tensor([[7 / 11, 4 / 11], [0.5, 0.5]]))


@pytest.mark.parametrize("kind,expected", [
    ("l1", 0.6),
    ("l2", 0.18),
    ("kl", 0.5 * math.log(0.5 / 0.8) + 0.5 * math.log(0.5 / 0.2)),
])
def test_penalties_give_analytic_values(kind, expected):
    shares = torch.tensor([[0.9, 0.1], [0.7, 0.3]], dtype=torch.float64)  # batch mean (0.8, 0.2)
    value = share_penalty(shares, torch.tensor([0.5, 0.5]), kind)
    assert float(value) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("kind", ["l1", "l2", "kl"])
@pytest.mark.parametrize("target", [(0.5, 0.5), (0.3, 0.7)])
def test_target_sets_the_penalty_minimum(kind, target):
    grid = torch.linspace(0.01, 0.99, 99, dtype=torch.float64)
    values = torch.stack([share_penalty(torch.stack([s, 1 - s]), torch.tensor(target), kind) for s in grid])
    best = float(grid[int(values.argmin())])
    assert best == pytest.approx(target[0], abs=0.011)
    assert float(values.min()) == pytest.approx(0.0, abs=1e-3)


def test_unknown_penalty_is_a_usage_error():
    with pytest.raises(UsageError):
        share_penalty(torch.tensor([0.5, 0.5]), torch.tensor([0.5, 0.5]), "l3")


def test_shapley_penalty_encodes_two_zero_rows_and_equals_the_whole_zero_batch():
    # training mode: batch norm normalizes with the zero batch's own statistics, which are the same for
    # 2 identical rows as for 12, so the cheap absent embedding must equal the whole batch's
    from mmbalance.models import load_model
    from mmbalance.training.differentiable import shapley_scores

    torch.manual_seed(0)
    model = load_model("av-tiny", num_classes=4).train()
    x = {"audio": torch.randn(12, 1, 16, 16), "visual": torch.randn(12, 3, 2, 16, 16)}
    target = torch.randint(0, 4, (12,))
    seen: list[int] = []
    hook = model.get_submodule("model.encoders.audio").register_forward_hook(lambda mod, args, out: seen.append(args[0].shape[0]))
    fast = modality_scores(model, x, target, AttributionSpec(method="shapley", level="embedding"))
    hook.remove()
    assert seen == [12, 2]  # the batch, then two zero rows (not another 12)
    zero = {m: torch.zeros_like(t) for m, t in x.items()}
    with torch.no_grad():
        reference = shapley_scores(model.fuse, model.encode(x), model.encode(zero), target).abs()
    # float32 batch-norm statistics summed over 2 vs 12 rows: rounding of a few ulps of the logits
    assert torch.allclose(fast, reference, rtol=1e-5, atol=1e-5)
    assert fast.shape == (12, 2) and (fast > 0).any()
