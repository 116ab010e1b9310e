import pytest
import torch
from captum.attr import FeatureAblation
from captum.attr import ShapleyValues as CaptumShapley

from mmbalance.attribution import Ablation, Baseline, PermutationScore, ShapleyValues, derangement, scores_to_shares
from mmbalance.errors import EstimatorError, UsageError
from toys import AudioOnly, ConvAV, LinearAV, SymmetricAV, as_forward, av_batch


def _linear_terms(model, x, target, ref=None):
    ref = ref or {m: torch.zeros_like(v) for m, v in x.items()}
    wa = model.fa.weight[target].view(target.shape[0], *model.audio_shape)
    wv = model.fv.weight[target].view(target.shape[0], *model.visual_shape)
    return torch.stack([((x["audio"] - ref["audio"]) * wa).flatten(1).sum(1),
                        ((x["visual"] - ref["visual"]) * wv).flatten(1).sum(1)], 1).detach()


@pytest.mark.parametrize("cls", [Ablation, ShapleyValues])
def test_linear_model_closed_form(cls):
    model = LinearAV()
    x = av_batch(5)
    target = torch.tensor([0, 1, 2, 0, 1])
    out = cls().attribute(as_forward(model), x, target)
    torch.testing.assert_close(out.scores, _linear_terms(model, x, target), rtol=1e-5, atol=1e-6)
    means = {m: v.mean(0) for m, v in x.items()}
    ref = Baseline("mean", means=means)(x)
    out = cls(baseline=Baseline("mean", means=means)).attribute(as_forward(model), x, target)
    torch.testing.assert_close(out.scores, _linear_terms(model, x, target, ref), rtol=1e-5, atol=1e-6)


def _captum_groups(model, x, target, algo, ref=None):
    masks = (torch.zeros_like(x["audio"][:1], dtype=torch.long), torch.ones_like(x["visual"][:1], dtype=torch.long))
    baselines = (ref["audio"], ref["visual"]) if ref else None
    ra, rv = algo(model).attribute((x["audio"], x["visual"]), target=target, feature_mask=masks,
                                   baselines=baselines)
    # every element of a group carries the group's value
    return torch.stack([ra.flatten(1)[:, 0], rv.flatten(1)[:, 0]], 1)


@pytest.mark.parametrize("ours,theirs", [(Ablation, FeatureAblation), (ShapleyValues, CaptumShapley)])
@pytest.mark.parametrize("kind", ["zero", "blur"])
def test_matches_captum_with_one_group_per_modality(ours, theirs, kind):
    torch.manual_seed(0)
    model = ConvAV().eval()
    x = av_batch(4, audio_shape=(1, 6, 6), visual_shape=(3, 2, 4, 4))
    target = torch.tensor([0, 1, 2, 1])
    base = Baseline(kind)
    out = ours(baseline=base).attribute(as_forward(model), x, target)
    ref = _captum_groups(model, x, target, theirs, ref=base(x) if kind != "zero" else None)
    torch.testing.assert_close(out.scores, ref, rtol=1e-5, atol=1e-6)


class _ThreeWay(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(9, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))

    def forward(self, a, b, c):
        return self.net(torch.cat([a, b, c * a], 1))  # an interaction between a and c


def test_three_modality_shapley_matches_captum_and_is_efficient():
    torch.manual_seed(1)
    model = _ThreeWay()
    x = {"a": torch.randn(4, 3), "b": torch.randn(4, 3), "c": torch.randn(4, 3)}
    target = torch.tensor([0, 1, 2, 0])
    f = lambda d: model(d["a"], d["b"], d["c"])  # noqa: E731
    out = ShapleyValues().attribute(f, x, target)
    masks = tuple(torch.full((1, 3), k, dtype=torch.long) for k in range(3))
    ref = CaptumShapley(model).attribute((x["a"], x["b"], x["c"]), target=target, feature_mask=masks)
    torch.testing.assert_close(out.scores, torch.stack([r[:, 0] for r in ref], 1), rtol=1e-5, atol=1e-6)
    full = f(x).gather(1, target.view(-1, 1)).squeeze(1)
    empty = f({m: torch.zeros_like(v) for m, v in x.items()}).gather(1, target.view(-1, 1)).squeeze(1)
    torch.testing.assert_close(out.scores.sum(1), (full - empty).detach(), rtol=1e-5, atol=1e-6)


def test_accuracy_figures():
    model = LinearAV()
    x = av_batch(6)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    f = as_forward(model)
    ok = (f(x).argmax(1) == labels).double()
    abl = Ablation().attribute(f, x, labels, labels=labels)
    no_audio = (f({**x, "audio": torch.zeros_like(x["audio"])}).argmax(1) == labels).double()
    torch.testing.assert_close(abl.extra["accuracy_drop"][:, 0].double(), ok - no_audio)
    shap = ShapleyValues().attribute(f, x, labels, labels=labels)
    empty = (f({m: torch.zeros_like(v) for m, v in x.items()}).argmax(1) == labels).double()
    torch.testing.assert_close(shap.extra["accuracy_shapley"].sum(1).double(), ok - empty)
    assert "accuracy_drop" not in Ablation().attribute(f, x, labels).extra  # no labels, no accuracy


def test_permutation_closed_form_on_a_linear_model():
    model = LinearAV()
    x = av_batch(5)
    target = torch.tensor([0, 1, 2, 0, 1])
    est = PermutationScore(repeats=3, seed=7)
    out = est.attribute(as_forward(model), x, target)
    g = torch.Generator().manual_seed(7)
    expected = torch.zeros(5, 2)
    for _ in range(3):
        perm = derangement(5, g)
        shuffled = {m: v[perm] for m, v in x.items()}
        expected += _linear_terms(model, x, target, shuffled)
    torch.testing.assert_close(out.scores, expected / 3, rtol=1e-5, atol=1e-6)


def test_derangements_have_no_fixed_points():
    g = torch.Generator().manual_seed(0)
    for n in (2, 3, 7):
        for _ in range(20):
            p = derangement(n, g)
            assert (p != torch.arange(n)).all() and sorted(p.tolist()) == list(range(n))


@pytest.mark.parametrize("cls", [Ablation, ShapleyValues, PermutationScore])
def test_dummy_and_symmetry(cls):
    out = cls().attribute(as_forward(AudioOnly()), av_batch(4), torch.tensor([0, 1, 2, 0]))
    assert torch.all(out.scores[:, 1] == 0)
    assert torch.all(scores_to_shares(out.scores)[:, 1] == 0)
    torch.manual_seed(2)
    a = torch.randn(4, 1, 4, 5)
    sym = cls().attribute(as_forward(SymmetricAV()), {"audio": a, "visual": a.clone()}, torch.tensor([0, 1, 2, 0]))
    torch.testing.assert_close(sym.scores[:, 0], sym.scores[:, 1])


def test_permutation_needs_two_samples_then_borrows_donors():
    est = PermutationScore(repeats=2)
    f = as_forward(LinearAV())
    with pytest.raises(EstimatorError, match="--batch-size 2"):
        est.attribute(f, av_batch(1), torch.tensor([0]))
    est.attribute(f, av_batch(3), torch.tensor([0, 1, 2]))
    out = est.attribute(f, av_batch(1, seed=5), torch.tensor([0]))  # a last batch of one sample
    assert out.scores.shape == (1, 2) and torch.isfinite(out.scores).all()
    with pytest.raises(UsageError, match="--repeats"):
        PermutationScore(repeats=0)


def test_variants_are_stacked_within_the_memory_budget():
    calls = []

    def f(d):
        calls.append(d["audio"].shape[0])
        return d["audio"].flatten(1)[:, :3]

    x = av_batch(2)
    Ablation(memory_budget_mb=1e-3).attribute(f, x, torch.tensor([0, 1]))
    assert calls == [2, 2, 2]
    calls.clear()
    Ablation().attribute(f, x, torch.tensor([0, 1]))
    assert calls == [6]
