"""``AttributionPenalty`` and ``AuxHeads``: finetune's methods as a few lines in the user's own loop.

The model is a plug-in (``tests/models/toy_plugins.py``) named with ``embedding_layers``; the
same seed and data give the same weights through the library as through ``mmbalance finetune``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DistributedSampler

from mmbalance import AttributionPenalty, AuxHeads, modality_shares
from mmbalance.data import load_dataset, make_loader
from mmbalance.errors import UsageError
from mmbalance.models import load_model, load_state_dict
from mmbalance.training import TrainConfig, finetune, seed_everything
from mmbalance.training.penalty import balance_figures

TOYS = Path(__file__).resolve().parents[1] / "models" / "toy_plugins.py"
SPEC = f"{TOYS}:build_two_branch"


def _model(classes: int = 4) -> nn.Module:
    return load_model(SPEC, num_classes=classes, modalities=["audio", "visual"]).model


def _batch(n: int = 6, seed: int = 3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randn(n, 3, 2, 8, 8, generator=g), torch.arange(n) % 4


@pytest.mark.parametrize("settings", [{}, {"scope": "all", "method": "ig", "steps": 2, "penalty": "kl"}],
                         ids=["defaults", "all-ig-kl"])
def test_one_epoch_equals_one_epoch_of_finetune(tiny_data, tmp_path, settings):
    flags = {"scope": "scope", "method": "attribution", "steps": "attr_steps", "penalty": "penalty"}
    cfg = TrainConfig(model=SPEC, data=tiny_data, out=str(tmp_path / "run"), epochs=1, batch_size=16, lr=1e-3,
                      device="cpu", regularizer="attribution", lambda_=1.5, seed=0,
                      embedding_layers={"audio": "audio_net", "visual": "visual_net"},
                      **{flags[k]: v for k, v in settings.items()})
    finetune(cfg, progress=False)
    trained = load_state_dict(tmp_path / "run" / "last.pt")

    train_set = load_dataset(tiny_data, split="train")
    seed_everything(0)  # the user's loop: same seed, same data order, same optimizer
    model = _model(train_set.num_classes)
    pen = AttributionPenalty(model, embedding_layers={"audio": model.audio_net, "visual": model.visual_net},
                             **settings)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sampler = DistributedSampler(train_set, num_replicas=1, rank=0, shuffle=True, seed=0)
    sampler.set_epoch(1)
    model.train()
    for batch in make_loader(train_set, batch_size=16, sampler=sampler):
        logits, penalty = pen(batch.inputs["audio"], batch.inputs["visual"], labels=batch.labels)
        loss = F.cross_entropy(logits, batch.labels) + 1.5 * penalty
        opt.zero_grad()
        loss.backward()
        opt.step()
    mine = model.state_dict()
    assert set(mine) == set(trained)
    for name, value in trained.items():
        assert torch.allclose(mine[name], value, rtol=0, atol=1e-6), name
    assert not torch.equal(mine["head.2.weight"], _model(train_set.num_classes).state_dict()["head.2.weight"])


def test_the_penalty_is_differentiable_and_leaves_no_hooks_or_graphs():
    model = _model()
    pen = AttributionPenalty(model, embedding_layers="audio=audio_net,visual=visual_net", scope="all")
    a, v, y = _batch()
    logits, penalty = pen(a, v, labels=y)
    assert logits.shape == (6, 4) and penalty.dim() == 0 and penalty.requires_grad
    grads = torch.autograd.grad(penalty, [model.head[0].weight, model.audio_net[-1].weight])
    assert all(torch.isfinite(g).all() and float(g.abs().sum()) > 0 for g in grads)  # scope all: encoders too
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert set(pen.last_shares) == {"audio", "visual"}
    assert all(isinstance(s, float) for s in pen.last_shares.values())
    assert sum(pen.last_shares.values()) == pytest.approx(1.0, abs=1e-6)
    # the penalty is the l2 distance of the batch's mean shares to the equal target (finetune's default)
    expected = sum((s - 0.5) ** 2 for s in pen.last_shares.values())
    assert float(penalty) == pytest.approx(expected, rel=1e-5)


def test_a_dict_model_with_pass_through_and_a_target_mapping():
    class DictModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.audio_net, self.visual_net = nn.Linear(64, 5), nn.Linear(384, 5)
            self.head = nn.Linear(10, 4)

        def forward(self, batch: dict) -> torch.Tensor:
            e = torch.cat([self.audio_net(batch["audio"].flatten(1)), self.visual_net(batch["visual"].flatten(1))], 1)
            return self.head(e) * batch["scale"]

    torch.manual_seed(0)
    model = DictModel()
    pen = AttributionPenalty(model, embedding_layers={"audio": model.audio_net, "visual": model.visual_net},
                             modalities=["audio", "visual"], call="dict", pass_through=["scale"],
                             target={"audio": 0.3, "visual": 0.7}, penalty="l1")
    a, v, y = _batch()
    logits, penalty = pen({"audio": a, "visual": v}, labels=y, scale=torch.full((6, 1), 2.0))
    assert float(penalty) == pytest.approx(abs(pen.last_shares["audio"] - 0.3) + abs(pen.last_shares["visual"] - 0.7),
                                           rel=1e-5)
    with pytest.raises(UsageError, match="unexpected keyword input"):
        pen({"audio": a, "visual": v}, labels=y, mask=torch.ones(6))


def test_bad_settings_are_one_clear_error():
    model = _model()
    with pytest.raises(UsageError, match="unknown --pool"):
        AttributionPenalty(model, embedding_layers="audio=audio_net,visual=visual_net", pool="l3")
    with pytest.raises(UsageError, match="not a submodule"):
        AttributionPenalty(model, embedding_layers={"audio": nn.Linear(2, 2), "visual": model.visual_net})
    pen = AttributionPenalty(model, modalities=["audio", "visual"])
    a, v, y = _batch()
    with pytest.raises(UsageError, match="--embedding-layer"):  # a plug-in at the embedding level needs its layers
        pen(a, v, labels=y)
    with pytest.raises(UsageError, match="labels"):
        pen(a, v)


def test_aux_heads_on_a_plugin_are_sized_by_one_forward_and_train_each_encoder():
    model = _model()
    a, v, y = _batch()
    aux = AuxHeads(model, embedding_layers="audio=audio_net,visual=visual_net", example=(a, v), weight=0.5)
    heads = dict(aux.heads.heads.items())
    assert heads["audio"].in_features == 6 and heads["visual"].out_features == 4
    logits, aux_loss = aux(a, v, labels=y)
    with torch.no_grad():
        ea, ev = model.audio_net(a), model.visual_net(v)
        expected = 0.5 * (F.cross_entropy(heads["audio"](ea), y) + F.cross_entropy(heads["visual"](ev), y))
    assert float(aux_loss) == pytest.approx(float(expected), rel=1e-5)
    aux_loss.backward()
    assert model.audio_net[-1].weight.grad is not None and model.head[0].weight.grad is None
    assert all(p.grad is not None for p in aux.parameters())
    with pytest.raises(UsageError, match="example="):
        AuxHeads(_model(), embedding_layers="audio=audio_net,visual=visual_net").parameters()


def test_modality_shares_and_the_verdict():
    model = _model()
    a, v, y = _batch()
    shares = modality_shares(model, [(a, v, y), {"audio": a, "visual": v, "labels": y}],
                             embedding_layers="audio=audio_net,visual=visual_net")
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-9)
    pen = AttributionPenalty(model, embedding_layers="audio=audio_net,visual=visual_net")
    pen(a, v, labels=y)
    assert shares["audio"] == pytest.approx(pen.last_shares["audio"], abs=1e-5)  # eval and train agree (no dropout)
    figures = balance_figures({"audio": 0.75, "visual": 0.25})
    assert figures["share_variance"] == pytest.approx(0.0625) and figures["balanced"] == 0.0
    assert math.isclose(balance_figures({"a": 0.5, "b": 0.5})["balanced"], 1.0)


class _UnseenNet(nn.Module):
    """A model mmbalance has never seen: two MLP encoders and an MLP head over their concatenation."""

    def __init__(self) -> None:
        super().__init__()
        self.a_enc = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
        self.v_enc = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 2))

    def forward(self, a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.a_enc(a), self.v_enc(v)], 1))


def _planted(n: int, seed: int):
    """Both modalities carry the label; ``a`` twice as strongly (the plain model leans on it)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    s = (2 * y - 1).float().unsqueeze(1)
    return 0.6 * s + torch.randn(n, 8, generator=g), 0.3 * s + torch.randn(n, 8, generator=g), y


def _user_loop(lam: float) -> tuple[float, float]:
    train, val = _planted(512, 0), _planted(512, 1)
    torch.manual_seed(0)
    model = _UnseenNet()
    pen = AttributionPenalty(model, embedding_layers={"a": model.a_enc, "v": model.v_enc}, scope="all")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        order = torch.randperm(512, generator=g)
        for i in range(0, 512, 64):
            idx = order[i:i + 64]
            logits, penalty = pen(train[0][idx], train[1][idx], labels=train[2][idx])
            loss = F.cross_entropy(logits, train[2][idx]) + lam * penalty
            opt.zero_grad()
            loss.backward()
            opt.step()
    variance = balance_figures(pen.shares([val]))["share_variance"]
    with torch.no_grad():
        accuracy = float((model(val[0], val[1]).argmax(1) == val[2]).float().mean())
    return variance, accuracy


def test_the_penalty_balances_an_unseen_model_at_equal_accuracy():
    plain_var, plain_acc = _user_loop(0.0)
    var, acc = _user_loop(2.0)
    assert plain_var > 0.01  # the plain loop is imbalanced ...
    assert var <= (1 - 0.67) * plain_var  # ... the penalty removes at least 67% of the share variance
    # equal accuracy within noise: 3 binomial standard errors of 512 validation samples (about 0.03)
    assert abs(acc - plain_acc) <= 3 * math.sqrt(plain_acc * (1 - plain_acc) / 512) + 1e-9


def test_under_autocast_the_penalty_is_a_float32_scalar_with_gradients():
    model = _model()
    pen = AttributionPenalty(model, embedding_layers="audio=audio_net,visual=visual_net")
    a, v, y = _batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, penalty = pen(a, v, labels=y)
        loss = F.cross_entropy(logits.float(), y) + penalty
    loss.backward()
    assert penalty.dtype == torch.float32 and math.isfinite(float(penalty))
    assert model.head[0].weight.grad is not None and torch.isfinite(model.head[0].weight.grad).all()
    assert sum(pen.last_shares.values()) == pytest.approx(1.0, abs=1e-3)
