"""Pass-through context follows each sample into every stacked copy an estimator builds."""

from __future__ import annotations

import pytest
import torch
from captum.attr import IntegratedGradients as CaptumIG
from torch import nn

from mmbalance.attribution import Ablation, IntegratedGradients, ShapleyValues
from mmbalance.attribution.rows import BatchForward, select_rows
from mmbalance.errors import EstimatorError


class Masked(nn.Module):
    """The mask decides which positions count: the output depends on it nonlinearly."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b, self.head = nn.Linear(4, 8), nn.Linear(3, 8), nn.Linear(8, 3)

    def forward(self, a, b, mask):
        h = torch.tanh(self.a(a) * mask[:, :1] + self.b(b) * mask[:, 1:])
        return self.head(h)


def data(n=5):
    g = torch.Generator().manual_seed(1)
    mask = (torch.rand(n, 2, generator=g) > 0.4).float()
    return {"a": torch.randn(n, 4, generator=g), "b": torch.randn(n, 3, generator=g)}, mask


def forward_with(model, mask):
    return BatchForward(lambda x, ctx: model(x["a"], x["b"], ctx["mask"]), {"mask": mask})


@pytest.mark.parametrize("tolerance", [None, 0.001])
def test_ig_with_a_mask_equals_captum_with_additional_forward_args(tolerance):
    model = Masked().eval()
    with torch.no_grad():  # steep enough that adaptive steps refine some samples only
        model.a.weight.mul_(4)
        model.b.weight.mul_(4)
    x, mask = data()
    target = torch.tensor([0, 1, 2, 0, 1])
    ours = IntegratedGradients(steps=16 if tolerance is None else 64, tolerance=tolerance, keep_maps=True,
                               internal_batch_size=10).attribute(forward_with(model, mask), x, target)
    ra, rb = CaptumIG(model).attribute((x["a"], x["b"]), target=target, additional_forward_args=(mask,),
                                       n_steps=16)
    if tolerance is None:  # the same rule and steps: the same maps
        torch.testing.assert_close(ours.maps["a"], ra, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(ours.maps["b"], rb, rtol=1e-4, atol=1e-6)
    else:  # adaptive steps walk only unconverged samples: their masks must come along (completeness holds)
        assert len(set(ours.extra["steps"].tolist())) > 1  # a subset of the samples was refined
        with torch.no_grad():
            fx = model(x["a"], x["b"], mask).gather(1, target[:, None])[:, 0]
            fb = model(torch.zeros_like(x["a"]), torch.zeros_like(x["b"]), mask).gather(1, target[:, None])[:, 0]
        total = ours.maps["a"].sum(1) + ours.maps["b"].sum(1)
        assert torch.allclose(total, fx - fb, atol=0.002 * float((fx - fb).abs().max()) + 1e-5)


def test_perturbations_see_each_sample_with_its_own_mask():
    model = Masked().eval()
    x, mask = data()
    target = torch.tensor([0, 1, 2, 0, 1])
    fwd = forward_with(model, mask)
    with torch.no_grad():
        full = model(x["a"], x["b"], mask)
        no_a = model(torch.zeros_like(x["a"]), x["b"], mask)
    drop_a = (full - no_a).gather(1, target[:, None])[:, 0]
    torch.testing.assert_close(Ablation().attribute(fwd, x, target).scores[:, 0], drop_a)
    torch.testing.assert_close(ShapleyValues().attribute(fwd, x, target).scores.sum(1),
                               (full - model(torch.zeros_like(x["a"]), torch.zeros_like(x["b"]), mask))
                               .gather(1, target[:, None])[:, 0], rtol=1e-5, atol=1e-6)


def test_rows_that_are_not_whole_copies_are_refused_and_select_picks_samples():
    x, mask = data(4)
    f = BatchForward(lambda t, ctx: ctx["mask"], {"mask": mask})
    with pytest.raises(EstimatorError, match="copies"):
        f({"a": torch.zeros(3, 1)})
    torch.testing.assert_close(f({"a": torch.zeros(8, 1)}), torch.cat([mask, mask]))
    idx = torch.tensor([2, 0])
    torch.testing.assert_close(select_rows(f, idx)({"a": torch.zeros(4, 1)}), mask[idx].repeat(2, 1))
    plain = lambda t: t["a"]  # noqa: E731
    assert select_rows(plain, idx) is plain
