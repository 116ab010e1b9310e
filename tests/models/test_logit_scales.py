"""Per-modality logit scales (temperature scaling of warm-start runs): recovered, never worse, refused when broken."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmbalance.errors import ModelError
from mmbalance.models.logit_scales import fit_logit_scales


def _sample(n: int = 8000, classes: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two modalities' calibrated log-odds and labels drawn from softmax(z_a + z_v)."""
    g = torch.Generator().manual_seed(seed)
    z_a, z_v = torch.randn(n, classes, generator=g), torch.randn(n, classes, generator=g)
    y = torch.multinomial(torch.softmax(z_a + z_v, 1), 1, generator=g).squeeze(1)
    return z_a, z_v, y


def test_scales_undo_known_overconfidence():
    z_a, z_v, y = _sample()
    scales = fit_logit_scales({"audio": 4 * z_a, "visual": 0.5 * z_v}, y)
    # the maximum-likelihood scales are 1/4 and 2; with 8000 samples the estimate is within a few percent
    assert scales["audio"] == pytest.approx(0.25, rel=0.15)
    assert scales["visual"] == pytest.approx(2.0, rel=0.15)


def test_calibrated_logits_keep_scale_one():
    z_a, z_v, y = _sample(seed=1)
    scales = fit_logit_scales({"audio": z_a, "visual": z_v}, y)
    assert scales == pytest.approx({"audio": 1.0, "visual": 1.0}, rel=0.15)


def test_fit_is_never_worse_than_the_plain_sum():
    z_a, z_v, y = _sample(n=500, seed=2)
    logits = {"audio": 3 * z_a + torch.randn(500, 4), "visual": z_v}
    scales = fit_logit_scales(logits, y)
    fitted = F.cross_entropy(scales["audio"] * logits["audio"] + scales["visual"] * logits["visual"], y)
    plain = F.cross_entropy(logits["audio"] + logits["visual"], y)
    assert float(fitted) < float(plain)


def test_scales_are_bounded():
    y = torch.arange(40) % 4
    separable = 0.01 * F.one_hot(y, 4).float()  # the loss falls with every increase of the scale
    scales = fit_logit_scales({"audio": separable}, y)
    assert scales["audio"] == pytest.approx(100.0, rel=1e-9)


def test_refusals():
    z = torch.zeros(4, 3)
    with pytest.raises(ModelError, match="non-finite"):
        fit_logit_scales({"audio": z.clone().fill_(float("nan"))}, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ModelError, match="one label per sample"):
        fit_logit_scales({"audio": z}, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ModelError, match="no logits"):
        fit_logit_scales({}, torch.zeros(3, dtype=torch.long))
