"""Batch-norm folding: found where it holds, refused where it does not, exact, and always undone."""

import pytest
import torch
from captum.attr import IntegratedGradients as CaptumIG
from torch import nn

from mmbalance.attribution import IntegratedGradients, _folding, _stems
from mmbalance.models import ModelAdapter, create_model
from toys import av_batch, randomize_batchnorm


def _adapter(name, seed=0):
    torch.manual_seed(seed)
    model = randomize_batchnorm(create_model(name, num_classes=3), seed).eval()
    return model, ModelAdapter(model, ["audio", "visual"]).eval()


def _conv_bn_pairs(model):
    """conv -> bn pairs by registration order (how the built-in encoders are written)."""
    pairs = 0
    for parent in model.modules():
        children = list(parent.children())
        pairs += sum(isinstance(a, nn.modules.conv._ConvNd) and isinstance(b, nn.modules.batchnorm._BatchNorm)
                     for a, b in zip(children, children[1:]))
    return pairs


@pytest.mark.parametrize("name", ["av-tiny", "av-resnet18"])
def test_every_conv_bn_pair_of_the_built_ins_is_folded(name):
    model, adapter = _adapter(name)
    x = av_batch(2, audio_shape=(1, 16, 16), visual_shape=(3, 2, 16, 16))
    zero = {m: torch.zeros_like(v) for m, v in x.items()}
    folds = _folding.verify_folds(_folding.find_folds(adapter, adapter, x), adapter, x, zero)
    assert len(folds.pairs) == _conv_bn_pairs(model) > 0
    with torch.no_grad():
        plain = adapter(x)
        with _folding.folding(folds):
            folded = adapter(x)
    torch.testing.assert_close(folded, plain, rtol=1e-4, atol=1e-5)
    assert all("forward" not in vars(m) for m in model.modules())


def test_folded_ig_is_still_exact_ig():
    model, adapter = _adapter("av-tiny", seed=1)
    x = av_batch(3, audio_shape=(1, 8, 8), visual_shape=(3, 2, 8, 8))
    target = torch.tensor([0, 1, 2])
    folded = IntegratedGradients(steps=10, keep_maps=True).attribute(adapter, x, target)
    plain = IntegratedGradients(steps=10, keep_maps=True, fold_norms=False, factor_stems=False).attribute(
        adapter, x, target)
    ra, rv = CaptumIG(model).attribute((x["audio"], x["visual"]), target=target, n_steps=10)
    for ours in (folded, plain):
        torch.testing.assert_close(ours.maps["audio"], ra, rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(ours.maps["visual"], rv, rtol=1e-4, atol=1e-7)
    # f(x) - f(baseline) is taken from the folded model too, so the reported error does not move
    torch.testing.assert_close(folded.extra["completeness_error"], plain.extra["completeness_error"],
                               rtol=1e-3, atol=1e-5)


def test_model_parameters_and_forwards_are_untouched():
    model, adapter = _adapter("av-tiny", seed=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    IntegratedGradients(steps=4).attribute(adapter, av_batch(2, audio_shape=(1, 8, 8), visual_shape=(3, 2, 8, 8)),
                                           torch.tensor([0, 1]))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all("forward" not in vars(m) for m in model.modules())


def test_forwards_are_restored_when_the_model_fails_inside():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).eval()
    folds = _folding.find_folds(net, lambda inp: net(inp["a"]), {"a": torch.randn(1, 1, 5, 5)})
    assert len(folds.pairs) == 1
    with pytest.raises(RuntimeError):
        with _folding.folding(folds):
            net(torch.randn(1, 3, 5, 5))  # wrong channel count
    assert all("forward" not in vars(m) for m in net.modules())


class _ConvOutputReusedFunctionally(nn.Module):
    """bn reads the conv output, but so does a functional add: folding would change the add."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.bn = nn.BatchNorm2d(2)
        self.head = nn.Linear(2 * 4 * 5, 3)

    def forward(self, audio, visual):
        y = self.conv(audio)
        return self.head((torch.relu(self.bn(y)) + y).flatten(1)) + visual.flatten(1)[:, :3]


class _TwoReaders(nn.Module):
    """The conv output feeds the bn and another module: not foldable."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.bn = nn.BatchNorm2d(2)
        self.side = nn.Identity()
        self.head = nn.Linear(2 * 4 * 5, 3)

    def forward(self, audio, visual):
        y = self.conv(audio)
        return self.head((self.bn(y) * self.side(y)).flatten(1)) + visual.flatten(1)[:, :3]


def test_a_pair_whose_conv_output_is_reused_is_refused_and_ig_stays_exact():
    torch.manual_seed(3)
    model = randomize_batchnorm(_ConvOutputReusedFunctionally()).eval()
    adapter = ModelAdapter(model, ["audio", "visual"]).eval()
    x = av_batch(3)
    zero = {m: torch.zeros_like(v) for m, v in x.items()}
    found = _folding.find_folds(adapter, adapter, x)
    assert len(found.pairs) == 1  # hooks cannot see the functional add ...
    assert not _folding.verify_folds(found, adapter, x, zero)  # ... the logits check can
    target = torch.tensor([0, 1, 2])
    out = IntegratedGradients(steps=8, keep_maps=True).attribute(adapter, x, target)
    ra, _ = CaptumIG(model).attribute((x["audio"], x["visual"]), target=target, n_steps=8)
    torch.testing.assert_close(out.maps["audio"], ra, rtol=1e-4, atol=1e-7)


def test_a_conv_output_read_by_two_modules_is_not_folded():
    model = randomize_batchnorm(_TwoReaders()).eval()
    adapter = ModelAdapter(model, ["audio", "visual"]).eval()
    assert not _folding.find_folds(adapter, adapter, av_batch(2))


def test_training_mode_norms_are_not_folded():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).train()
    assert not _folding.find_folds(net, lambda inp: net(inp["a"]), {"a": torch.randn(2, 1, 5, 5)})


def test_changed_statistics_are_picked_up():
    model, adapter = _adapter("av-tiny", seed=4)
    x = av_batch(2, audio_shape=(1, 8, 8), visual_shape=(3, 2, 8, 8))
    target = torch.tensor([1, 2])
    ig = IntegratedGradients(steps=6, keep_maps=True)
    ig.attribute(adapter, x, target)  # caches the folded weights
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_var.mul_(3.0)
    again = ig.attribute(adapter, x, target)
    ref = IntegratedGradients(steps=6, keep_maps=True, fold_norms=False).attribute(adapter, x, target)
    torch.testing.assert_close(again.maps["visual"], ref.maps["visual"], rtol=1e-4, atol=1e-7)


def test_nested_patches_restore_the_earlier_patch():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).eval()
    folds = _folding.find_folds(net, lambda inp: net(inp["a"]), {"a": torch.randn(1, 1, 5, 5)})
    conv = net[0]
    with _folding.folding(folds):
        folded_forward = vars(conv)["forward"]
        with _stems.patched_forwards() as patch:
            patch(conv, lambda x: x)
        assert vars(conv)["forward"] is folded_forward
    assert "forward" not in vars(conv)
