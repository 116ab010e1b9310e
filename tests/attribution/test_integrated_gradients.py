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
