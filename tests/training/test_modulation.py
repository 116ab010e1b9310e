"""``-r attribution --modulate k``: each encoder's gradient scaled by exp(k * (target - share))."""

from __future__ import annotations

import math

import pytest
import torch

from mmbalance.errors import UsageError
from mmbalance.training import TrainConfig, build_regularizer
from mmbalance.training.regularizers.base import encoder_parameters, fusion_parameters


def _config(**kw) -> TrainConfig:
    return TrainConfig(model="av-tiny", data="d", out="o", regularizer="attribution", **kw)


def _grads(adapter, make_batch, modulate: float):
    reg = build_regularizer(_config(modulate=modulate, scope="all"), ["audio", "visual"])
    reg.check(adapter)
    adapter.zero_grad(set_to_none=True)
    inputs, labels = make_batch()
    reg.step(adapter, inputs, labels).loss.backward()
    reg.after_backward(adapter)
    _, shares = reg.penalty(adapter, inputs, labels, create_graph=False)
    return reg, {n: p.grad.clone() for n, p in adapter.named_parameters()}, shares.mean(0)


def test_encoder_gradients_are_scaled_by_the_share_gap(make_smooth, make_batch):
    adapter = make_smooth()
    _, plain, _ = _grads(adapter, make_batch, 0.0)
    reg, modulated, mean_shares = _grads(adapter, make_batch, 3.0)
    want = {m: math.exp(3.0 * (0.5 - float(s))) for m, s in zip(("audio", "visual"), mean_shares)}
    assert reg.coeffs == pytest.approx(want, rel=1e-9)
    assert abs(want["audio"] - 1) > 1e-3  # the smooth model is not balanced: the test can fail
    names = {id(p): n for n, p in adapter.named_parameters()}
    for modality, params in encoder_parameters(adapter, reg.view).items():
        for p in params:  # one multiplication of a float64 gradient: exact up to one rounding
            n = names[id(p)]
            assert torch.allclose(modulated[n], want[modality] * plain[n], rtol=1e-12, atol=0)
    for p in fusion_parameters(adapter, reg.view):
        assert torch.equal(modulated[names[id(p)]], plain[names[id(p)]])
    assert set(reg.metrics()) == {"c_audio", "c_visual"}


def test_modulate_needs_the_attribution_regularizer():
    with pytest.raises(UsageError, match="--regularizer attribution"):
        TrainConfig(model="av-tiny", data="d", out="o", modulate=1.0).validate()
    with pytest.raises(UsageError, match="--modulate"):
        _config(modulate=-1.0).validate()


def test_docstring_example():
    import doctest

    from mmbalance.training.regularizers import attribution

    result = doctest.testmod(attribution, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
