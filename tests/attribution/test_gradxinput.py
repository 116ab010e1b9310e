import torch
from captum.attr import InputXGradient

from mmbalance.attribution import GradientXInput, scores_to_shares
from toys import AudioOnly, ConvAV, LinearAV, SymmetricAV, as_forward, av_batch


def test_linear_model_closed_form():
    model = LinearAV()
    x = av_batch(4)
    target = torch.tensor([0, 1, 2, 1])
    out = GradientXInput(keep_maps=True).attribute(as_forward(model), x, target)
    wa = model.fa.weight[target].view(4, *model.audio_shape)
    wv = model.fv.weight[target].view(4, *model.visual_shape)
    torch.testing.assert_close(out.maps["audio"], (x["audio"] * wa).detach())
    expected = torch.stack([(x["audio"] * wa).abs().flatten(1).sum(1), (x["visual"] * wv).abs().flatten(1).sum(1)], 1)
    torch.testing.assert_close(out.scores, expected.detach())


def test_matches_captum_input_x_gradient():
    torch.manual_seed(0)
    model = ConvAV().eval()
    x = av_batch(3, audio_shape=(1, 6, 6), visual_shape=(3, 2, 4, 4))
    target = torch.tensor([1, 0, 2])
    out = GradientXInput(keep_maps=True).attribute(as_forward(model), x, target)
    ra, rv = InputXGradient(model).attribute((x["audio"].requires_grad_(), x["visual"].requires_grad_()),
                                             target=target)
    torch.testing.assert_close(out.maps["audio"], ra)
    torch.testing.assert_close(out.maps["visual"], rv)


def test_dummy_and_symmetry():
    out = GradientXInput().attribute(as_forward(AudioOnly()), av_batch(3), torch.zeros(3, dtype=torch.long))
    assert torch.all(scores_to_shares(out.scores)[:, 1] == 0)
    torch.manual_seed(1)
    a = torch.randn(3, 1, 4, 5)
    sym = GradientXInput().attribute(as_forward(SymmetricAV()), {"audio": a, "visual": a.clone()},
                                     torch.tensor([0, 1, 2]))
    torch.testing.assert_close(sym.scores[:, 0], sym.scores[:, 1])
