"""Each balancing method, and each option of the attribution regularizer, changes what it should."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmbalance.errors import UsageError
from mmbalance.training import TrainConfig, build_regularizer, list_regularizers
from mmbalance.training.regularizers import OGMGE, encoder_parameters, fusion_parameters


def _config(**kw) -> TrainConfig:
    return TrainConfig(model="av-tiny", data="d", out="o", **kw)


def _grads(adapter, loss) -> dict[str, torch.Tensor]:
    adapter.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.detach().clone() for n, p in adapter.named_parameters() if p.grad is not None}


def test_registry_lists_every_method():
    assert list_regularizers() == ["attribution", "gblend", "modality-dropout", "none", "ogm-ge"]
    with pytest.raises(UsageError, match="did you mean"):
        build_regularizer(_config(regularizer="ogm_ge"), ["audio", "visual"])


@pytest.mark.parametrize("level", ["embedding", "input"])
def test_scope_fusion_keeps_the_penalty_out_of_the_encoders(make_smooth, make_batch, level):
    adapter = make_smooth("concat")
    inputs, labels = make_batch()
    plain = build_regularizer(_config(), ["audio", "visual"])
    ce_grads = _grads(adapter, plain.step(adapter, inputs, labels).loss)
    grads = {}
    for scope in ("fusion", "all"):
        reg = build_regularizer(_config(regularizer="attribution", lambda_=5.0, scope=scope, level=level,
                                        target="audio=0.1,visual=0.9"), ["audio", "visual"])
        reg.check(adapter)
        reg.begin_epoch(1)
        out = reg.step(adapter, inputs, labels)
        assert float(out.penalty) > 0
        grads[scope] = _grads(adapter, out.loss)
    for name, g in ce_grads.items():
        if "encoders" in name:
            assert torch.allclose(grads["fusion"][name], g), name  # cross-entropy only
        elif name.endswith("weight"):  # (a bias does not change gradient x input)
            assert not torch.allclose(grads["fusion"][name], g), name  # the penalty reaches the head
    assert any(not torch.allclose(grads["all"][n], g) for n, g in ce_grads.items() if "encoders" in n)


def test_scope_fusion_gets_its_own_optimizer(make_smooth):
    from mmbalance.training.loop import _make_optimizers

    adapter = make_smooth("concat")
    cfg = _config(regularizer="attribution", scope="fusion")
    reg = build_regularizer(cfg, ["audio", "visual"])
    optimizers, schedulers = _make_optimizers(cfg, adapter, reg)
    assert len(optimizers) == len(schedulers) == 2
    head = {id(p) for p in fusion_parameters(adapter)}
    assert {id(p) for p in optimizers[1].param_groups[0]["params"]} == head
    assert not head & {id(p) for p in optimizers[0].param_groups[0]["params"]}
    assert len(_make_optimizers(_config(regularizer="attribution"), adapter, reg)[0]) == 2  # scope read from reg
    plain = build_regularizer(_config(), ["audio", "visual"])
    assert len(_make_optimizers(cfg, adapter, plain)[0]) == 1


def test_lambda_scales_the_loss_and_zero_lambda_is_plain(make_smooth, make_batch):
    adapter = make_smooth("gated")
    inputs, labels = make_batch()
    losses = {}
    for lam in (0.0, 1.0, 3.0):
        reg = build_regularizer(_config(regularizer="attribution", lambda_=lam), ["audio", "visual"])
        reg.check(adapter)
        reg.begin_epoch(1)
        out = reg.step(adapter, inputs, labels)
        losses[lam] = (float(out.loss.detach()), float(out.task_loss), float(out.penalty))
    for lam, (loss, task, pen) in losses.items():
        assert loss == pytest.approx(task + lam * pen)
    assert losses[0.0][2] > 0  # the penalty is still measured (and logged) at lambda 0


def test_lambda_warmup_ramps_from_zero():
    reg = build_regularizer(_config(regularizer="attribution", lambda_=0.8, lambda_warmup=4), ["audio", "visual"])
    assert [reg.lambda_at(e) for e in range(1, 7)] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 0.8])
    assert build_regularizer(_config(regularizer="attribution", lambda_=0.8), ["a", "b"]).lambda_at(1) == 0.8


@pytest.mark.parametrize("option,values", [
    ("pool", ["l1", "l2"]), ("penalty", ["l1", "l2", "kl"]), ("target", ["equal", "audio=0.2,visual=0.8"]),
    ("attribution", ["shapley", "gradxinput", "ig"]), ("level", ["embedding", "input"]),
])
def test_each_option_changes_the_penalty(make_smooth, make_batch, option, values):
    adapter = make_smooth("gated")
    inputs, labels = make_batch()
    seen = []
    # pool and level change what gradient x input measures; Shapley values have no pool and equal levels
    method = {} if option == "attribution" else {"attribution": "gradxinput"}
    for value in values:
        reg = build_regularizer(_config(regularizer="attribution", **method, **{option: value}), ["audio", "visual"])
        reg.check(adapter)
        seen.append(float(reg.penalty(adapter, inputs, labels, create_graph=False)[0]))
    assert len(set(seen)) == len(values), seen


def test_embedding_level_needs_embeddings():
    from mmbalance.models import ModelAdapter

    class Plain(torch.nn.Module):
        def forward(self, audio, visual):
            return audio.flatten(1)[:, :3] + visual.flatten(1)[:, :3]

    adapter = ModelAdapter(Plain(), ["audio", "visual"])
    reg = build_regularizer(_config(regularizer="attribution"), ["audio", "visual"])
    with pytest.raises(UsageError, match="--level input"):
        reg.check(adapter)
    with pytest.raises(UsageError, match="fusion"):
        build_regularizer(_config(regularizer="attribution", level="input", scope="fusion"),
                          ["audio", "visual"]).check(adapter)


def test_ogm_ge_follows_the_published_rule():
    reg = OGMGE(_config(regularizer="ogm-ge", alpha=0.3), ["audio", "visual"])
    coeffs = reg.coefficients(torch.tensor([6.0, 2.0]))  # audio 3x as confident
    assert coeffs["audio"] == pytest.approx(1 - torch.tanh(torch.tensor(0.9)).item())
    assert coeffs["visual"] == 1.0
    coeffs = reg.coefficients(torch.tensor([1.0, 4.0]))
    assert coeffs == pytest.approx({"audio": 1.0, "visual": 1 - torch.tanh(torch.tensor(1.2)).item()})


def test_ogm_ge_scales_the_dominant_encoder_gradient(make_smooth, make_batch):
    adapter = make_smooth("concat")
    inputs, labels = make_batch(n=12)
    reg = OGMGE(_config(regularizer="ogm-ge", alpha=1.0), ["audio", "visual"])
    reg.check(adapter)
    reg.begin_epoch(1)
    out = reg.step(adapter, inputs, labels)
    before = _grads(adapter, out.loss)
    reg.after_backward(adapter)
    dominant = min(reg.coeffs, key=reg.coeffs.get)
    assert reg.coeffs[dominant] < 1.0
    params = dict(adapter.named_parameters())
    enc = encoder_parameters(adapter)
    for name, g in before.items():
        p = params[name]
        if any(p is q for q in enc[dominant]) and g.dim() >= 2:
            noise = p.grad - g * reg.coeffs[dominant]
            assert 0 < float(noise.std()) < 3 * float(g.std()) + 1e-6  # scaled, plus GE noise
        elif not any(p is q for qs in enc.values() for q in qs):
            assert torch.equal(p.grad, g)  # the fusion head is untouched


def test_modality_dropout_zeroes_one_modality_of_some_samples(make_smooth, make_batch):
    reg = build_regularizer(_config(regularizer="modality-dropout", p=0.5), ["audio", "visual"])
    reg.begin_epoch(1)
    keep = reg.keep_mask(400)
    dropped = (keep == 0).any(1).float().mean()
    assert 0.4 < float(dropped) < 0.6
    assert bool((keep.sum(1) >= 1).all())  # never both
    reg.begin_epoch(1)
    assert torch.equal(reg.keep_mask(400), keep)  # re-seeded per epoch: resumable
    reg.begin_epoch(2)
    assert not torch.equal(reg.keep_mask(400), keep)
    none = build_regularizer(_config(regularizer="modality-dropout", p=0.0), ["audio", "visual"])
    none.begin_epoch(1)
    assert bool((none.keep_mask(50) == 1).all())
    adapter = make_smooth("concat")
    inputs, labels = make_batch()
    full = F.cross_entropy(adapter(inputs).float(), labels)
    all_drop = build_regularizer(_config(regularizer="modality-dropout", p=1.0), ["audio", "visual"])
    all_drop.begin_epoch(1)
    assert not torch.allclose(all_drop.step(adapter, inputs, labels).loss, full)
