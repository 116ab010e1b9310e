import pytest
import torch
from captum.attr import IntegratedGradients as CaptumIG

from mmbalance.attribution import IntegratedGradients, scores_to_shares
from mmbalance.errors import EstimatorError, UsageError
from toys import AudioOnly, ConvAV, LinearAV, as_forward, av_batch


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_middle", "riemann_trapezoid"])
def test_linear_model_ig_is_exact_closed_form(method):
    torch.manual_seed(0)
    model = LinearAV()
    x = av_batch(5)
    target = torch.tensor([0, 1, 2, 0, 1])
    out = IntegratedGradients(steps=7, method=method, keep_maps=True).attribute(as_forward(model), x, target)
    wa = model.fa.weight[target].view(5, *model.audio_shape)
    wv = model.fv.weight[target].view(5, *model.visual_shape)
    torch.testing.assert_close(out.maps["audio"], x["audio"] * wa, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.maps["visual"], x["visual"] * wv, rtol=1e-5, atol=1e-6)
    expected = torch.stack([(x["audio"] * wa).abs().flatten(1).sum(1), (x["visual"] * wv).abs().flatten(1).sum(1)], 1)
    torch.testing.assert_close(out.scores, expected.detach(), rtol=1e-5, atol=1e-6)


def test_completeness_on_nonlinear_model():
    torch.manual_seed(1)
    model = ConvAV().double()
    x = {k: v.double() for k, v in av_batch(6, audio_shape=(1, 6, 6), visual_shape=(3, 2, 4, 4)).items()}
    target = torch.tensor([0, 1, 2, 0, 1, 2])
    out = IntegratedGradients(steps=64, keep_maps=True).attribute(as_forward(model), x, target)
    total = sum(m.flatten(1).sum(1) for m in out.maps.values())
    f = as_forward(model)
    delta = (f(x) - f({k: torch.zeros_like(v) for k, v in x.items()})).gather(1, target.view(-1, 1)).squeeze(1)
    torch.testing.assert_close(total, delta.detach(), rtol=1e-4, atol=1e-6)
    assert float(out.extra["completeness_error"].max()) < 1e-5
    # Few steps give a visibly larger error, so the reported error is a real measurement.
    coarse = IntegratedGradients(steps=1, method="riemann_left").attribute(as_forward(model), x, target)
    assert float(coarse.extra["completeness_error"].max()) > 1e-4


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_middle", "riemann_right"])
def test_matches_captum_integrated_gradients(method):
    torch.manual_seed(2)
    model = ConvAV().eval()
    x = av_batch(4, audio_shape=(1, 6, 8), visual_shape=(3, 3, 5, 5))
    target = torch.tensor([2, 0, 1, 1])
    ours = IntegratedGradients(steps=16, method=method, keep_maps=True).attribute(as_forward(model), x, target)
    ref_a, ref_v = CaptumIG(model).attribute((x["audio"], x["visual"]), target=target, n_steps=16, method=method)
    torch.testing.assert_close(ours.maps["audio"], ref_a, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(ours.maps["visual"], ref_v, rtol=1e-4, atol=1e-6)


def test_chunking_does_not_change_the_result():
    torch.manual_seed(3)
    model = ConvAV()
    x = av_batch(3, audio_shape=(1, 6, 6), visual_shape=(3, 2, 4, 4))
    target = torch.tensor([0, 1, 2])
    whole = IntegratedGradients(steps=10, keep_maps=True).attribute(as_forward(model), x, target)
    chunked = IntegratedGradients(steps=10, internal_batch_size=3, keep_maps=True)
    assert chunked.steps_per_chunk(x) == 1
    parts = chunked.attribute(as_forward(model), x, target)
    torch.testing.assert_close(whole.maps["audio"], parts.maps["audio"], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(whole.scores, parts.scores, rtol=1e-5, atol=1e-7)


def test_memory_budget_limits_steps_per_chunk():
    x = av_batch(8, audio_shape=(1, 64, 64), visual_shape=(3, 4, 32, 32))
    small = IntegratedGradients(steps=32, memory_budget_mb=8).steps_per_chunk(x)
    large = IntegratedGradients(steps=32, memory_budget_mb=4096).steps_per_chunk(x)
    assert 1 <= small < large == 32


def test_ignored_modality_gets_zero_share():
    model = AudioOnly()
    x = av_batch(4)
    out = IntegratedGradients(steps=4).attribute(as_forward(model), x, torch.zeros(4, dtype=torch.long))
    assert torch.all(out.scores[:, 1] == 0)
    assert torch.all(out.scores[:, 0] > 0)
    assert torch.all(scores_to_shares(out.scores)[:, 1] == 0)


def test_constant_model_gives_zero_scores_without_crashing():
    f = lambda inputs: torch.ones(inputs["audio"].shape[0], 3)  # noqa: E731
    out = IntegratedGradients(steps=4).attribute(f, av_batch(2), torch.tensor([0, 1]))
    assert torch.all(out.scores == 0)


def test_bad_settings_and_targets_are_refused():
    with pytest.raises(UsageError, match="steps"):
        IntegratedGradients(steps=0)
    with pytest.raises(UsageError, match="quadrature"):
        IntegratedGradients(method="simpson")
    ig = IntegratedGradients(steps=2)
    with pytest.raises(EstimatorError, match="one class index per sample"):
        ig.attribute(as_forward(LinearAV()), av_batch(3), torch.tensor([0, 1]))
    bad = {"audio": torch.zeros(3, 1, 4, 5), "visual": torch.zeros(2, 3, 2, 3, 3)}
    with pytest.raises(EstimatorError, match="different batch sizes"):
        ig.attribute(as_forward(LinearAV()), bad, torch.tensor([0, 1, 2]))


# -- baselines, stems, adaptive steps -------------------------------------------------------

from mmbalance.attribution import Baseline  # noqa: E402
from mmbalance.attribution import _stems  # noqa: E402
from mmbalance.models import ModelAdapter, create_model  # noqa: E402
from toys import SymmetricAV, randomize_batchnorm  # noqa: E402


def _tiny_adapter(fusion="concat", seed=0):
    torch.manual_seed(seed)
    model = randomize_batchnorm(create_model("av-tiny", num_classes=3, model_args={"fusion": fusion}), seed)
    return model.eval(), ModelAdapter(model, ["audio", "visual"]).eval()


@pytest.mark.parametrize("kind", ["mean", "noise", "blur"])
def test_baselines_match_captum_given_the_same_reference(kind):
    torch.manual_seed(4)
    model = ConvAV().eval()
    x = av_batch(3, audio_shape=(1, 6, 8), visual_shape=(3, 2, 5, 5))
    target = torch.tensor([0, 2, 1])
    means = {m: v.mean(0) for m, v in x.items()}
    ref = Baseline(kind, means=means, seed=1)(x)
    ours = IntegratedGradients(steps=12, baseline=Baseline(kind, means=means, seed=1), keep_maps=True)
    out = ours.attribute(as_forward(model), x, target)
    ra, rv = CaptumIG(model).attribute((x["audio"], x["visual"]), baselines=(ref["audio"], ref["visual"]),
                                       target=target, n_steps=12)
    torch.testing.assert_close(out.maps["audio"], ra, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(out.maps["visual"], rv, rtol=1e-4, atol=1e-6)


def test_linear_model_closed_form_with_a_baseline():
    model = LinearAV()
    x = av_batch(4)
    means = {m: v.mean(0) for m, v in x.items()}
    target = torch.tensor([0, 1, 2, 0])
    out = IntegratedGradients(steps=3, baseline=Baseline("mean", means=means), keep_maps=True).attribute(
        as_forward(model), x, target)
    wa = model.fa.weight[target].view(4, *model.audio_shape)
    torch.testing.assert_close(out.maps["audio"], (x["audio"] - means["audio"]) * wa, rtol=1e-5, atol=1e-6)


def test_stems_are_found_on_av_tiny_and_the_result_is_still_exact_ig():
    model, adapter = _tiny_adapter()
    x = av_batch(3, audio_shape=(1, 8, 8), visual_shape=(3, 2, 8, 8))
    stems = _stems.find_stems(adapter, adapter, x)
    assert {m: [type(mod).__name__ for mod in s.modules] for m, s in stems.stems.items()} == {
        "audio": ["Conv2d", "BatchNorm2d"], "visual": ["Conv3d", "BatchNorm3d"]}
    target = torch.tensor([0, 1, 2])
    fast = IntegratedGradients(steps=10, keep_maps=True).attribute(adapter, x, target)
    ra, rv = CaptumIG(model).attribute((x["audio"], x["visual"]), target=target, n_steps=10)
    torch.testing.assert_close(fast.maps["audio"], ra, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(fast.maps["visual"], rv, rtol=1e-4, atol=1e-7)
    # the model is left untouched: no patched forward remains
    assert all("forward" not in vars(m) for m in model.modules())


class _SkipAfterStem(torch.nn.Module):
    """conv -> bn, but the conv output is also added back functionally: the stem must be refused."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(1)
        self.head = torch.nn.Linear(20, 3)

    def forward(self, audio, visual):
        y = self.conv(audio)
        z = torch.tanh(self.bn(y)) + y
        return self.head(z.flatten(1)) + visual.flatten(1)[:, :3].tanh()


class _NonAffinePrefix(torch.nn.Module):
    """A nonlinear transform before the first conv: no stem may be assumed."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3, padding=1)
        self.head = torch.nn.Linear(40, 3)

    def forward(self, audio, visual):
        return self.head(torch.tanh(self.conv(audio.pow(3))).flatten(1)) + visual.flatten(1)[:, :3]


@pytest.mark.parametrize("net", [_SkipAfterStem, _NonAffinePrefix])
def test_stems_that_do_not_hold_are_refused_and_results_stay_exact(net):
    torch.manual_seed(5)
    model = randomize_batchnorm(net()).eval()
    adapter = ModelAdapter(model, ["audio", "visual"]).eval()
    x = av_batch(3)
    zero = {m: torch.zeros_like(v) for m, v in x.items()}
    assert not _stems.verify_stems(_stems.find_stems(adapter, adapter, x), adapter, x, zero)
    target = torch.tensor([0, 1, 2])
    out = IntegratedGradients(steps=8, keep_maps=True).attribute(adapter, x, target)
    ra, rv = CaptumIG(model).attribute((x["audio"], x["visual"]), target=target, n_steps=8)
    torch.testing.assert_close(out.maps["audio"], ra, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(out.maps["visual"], rv, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("method", ["riemann", "gausslegendre"])
def test_adaptive_steps_meet_the_tolerance_with_fewer_steps(method):
    model, adapter = _tiny_adapter(seed=1)
    model.double()
    x = {k: v.double() for k, v in av_batch(6, audio_shape=(1, 8, 8), visual_shape=(3, 2, 8, 8)).items()}
    target = torch.tensor([0, 1, 2, 0, 1, 2])
    out = IntegratedGradients(steps=256, method=method, tolerance=0.01).attribute(adapter, x, target)
    ok = out.extra["converged"].bool()
    assert int(ok.sum()) >= 4
    assert (out.extra["relative_completeness_error"][ok] <= 0.01 + 1e-9).all()
    # samples that never met the tolerance went all the way to the cap
    assert (out.extra["steps"][~ok] >= 256).all()
    assert float(out.extra["steps"].mean()) < 256


def test_adaptive_steps_respect_the_cap_and_report_unconverged_samples():
    model, adapter = _tiny_adapter(seed=2)
    x = av_batch(4, audio_shape=(1, 8, 8), visual_shape=(3, 2, 8, 8))
    out = IntegratedGradients(steps=4, method="riemann", tolerance=1e-6).attribute(adapter, x, torch.zeros(4))
    assert float(out.extra["steps"].max()) <= 5  # 4 intervals = 5 points
    assert set(out.extra["converged"].tolist()) <= {0.0, 1.0}


def test_symmetric_model_gives_equal_shares():
    torch.manual_seed(6)
    model = SymmetricAV()
    a = torch.randn(4, 1, 4, 5)
    out = IntegratedGradients(steps=16).attribute(as_forward(model), {"audio": a, "visual": a.clone()},
                                                  torch.tensor([0, 1, 2, 0]))
    torch.testing.assert_close(out.scores[:, 0], out.scores[:, 1])


def test_quadrature_names_and_tolerance_settings_are_checked():
    assert IntegratedGradients(method="riemann").method == "riemann_trapezoid"
    with pytest.raises(UsageError, match="--tolerance"):
        IntegratedGradients(tolerance=2.0)
    with pytest.raises(UsageError, match="--quadrature riemann or gausslegendre"):
        IntegratedGradients(method="riemann_left", tolerance=0.01)
    with pytest.raises(UsageError, match="baseline"):
        IntegratedGradients(baseline="median")


class _RawReadTwice(torch.nn.Module):
    """conv -> bn -> tanh, and the raw input is read again directly: the raw path must be walked too."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(2)
        self.head = torch.nn.Linear(40, 3)

    def forward(self, audio, visual):
        direct = torch.sin(audio.flatten(1)[:, :3])
        return self.head(torch.tanh(self.bn(self.conv(audio))).flatten(1)) + direct + visual.flatten(1)[:, :3]


def test_a_raw_input_read_beside_its_stem_is_still_attributed():
    torch.manual_seed(7)
    model = randomize_batchnorm(_RawReadTwice()).eval()
    adapter = ModelAdapter(model, ["audio", "visual"]).eval()
    x = av_batch(3)
    zero = {m: torch.zeros_like(v) for m, v in x.items()}
    stems = _stems.verify_stems(_stems.find_stems(adapter, adapter, x), adapter, x, zero)
    assert set(stems.stems) == {"audio"} and not stems.raw_unused
    _, tiny = _tiny_adapter()
    small = av_batch(2, audio_shape=(1, 8, 8), visual_shape=(3, 2, 8, 8))
    found = _stems.find_stems(tiny, tiny, small)
    assert _stems.verify_stems(found, tiny, small, {m: torch.zeros_like(v) for m, v in small.items()}).raw_unused
    target = torch.tensor([0, 1, 2])
    out = IntegratedGradients(steps=8, keep_maps=True).attribute(adapter, x, target)
    ra, rv = CaptumIG(model).attribute((x["audio"], x["visual"]), target=target, n_steps=8)
    torch.testing.assert_close(out.maps["audio"], ra, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(out.maps["visual"], rv, rtol=1e-4, atol=1e-7)
