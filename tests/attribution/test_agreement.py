import pandas as pd
import torch

from mmbalance.attribution import AgreementAccumulator


def _shares(n, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(n, generator=g)
    return torch.stack([a, 1 - a], 1)


def test_pearson_and_spearman_match_pandas_when_shares_are_distinct():
    a = _shares(200, 0)
    noise = torch.rand(200, generator=torch.Generator().manual_seed(1))
    b0 = (0.6 * a[:, 0] + 0.4 * noise) ** 2
    b = torch.stack([b0, 1 - b0], 1)
    acc = AgreementAccumulator(["ig", "ablation"], ["audio", "visual"])
    for i in range(0, 200, 64):  # streaming in batches
        acc.update({"ig": a[i:i + 64], "ablation": b[i:i + 64]})
    out = acc.compute({"ig": {"audio": 0.5, "visual": 0.5}, "ablation": {"audio": 0.6, "visual": 0.4}})
    pair = out["pairwise"]["ig|ablation"]
    frame = pd.DataFrame({"a": a[:, 0].numpy(), "b": b[:, 0].numpy()})
    assert abs(pair["pearson"] - frame.corr().iloc[0, 1]) < 1e-9
    # binned ranks: exact up to ties within 1/256
    assert abs(pair["spearman"] - frame.corr(method="spearman").iloc[0, 1]) < 0.01
    agree = float(((a[:, 0] > 0.5) == (b[:, 0] > 0.5)).double().mean())
    assert abs(pair["sample_dominant_agreement"] - agree) < 1e-12
    assert out["dominant"] == {"ig": "audio", "ablation": "audio"} and pair["same_dominant"]


def test_states_merge_and_constant_shares_give_none():
    a, b = _shares(50, 2), _shares(50, 3)
    whole = AgreementAccumulator(["x", "y", "z"], ["p", "q", "r"])
    left, right = AgreementAccumulator(["x", "y", "z"], ["p", "q", "r"]), AgreementAccumulator(["x", "y", "z"], ["p", "q", "r"])
    c = torch.full((50, 3), 1 / 3)
    a3, b3 = torch.cat([a * 0.5, torch.full((50, 1), 0.5)], 1), torch.cat([b * 0.5, torch.full((50, 1), 0.5)], 1)
    whole.update({"x": a3, "y": b3, "z": c})
    left.update({"x": a3[:20], "y": b3[:20], "z": c[:20]})
    right.update({"x": a3[20:], "y": b3[20:], "z": c[20:]})
    merged = AgreementAccumulator(["x", "y", "z"], ["p", "q", "r"])
    merged.load_state(left.state() + right.state())
    shares = {k: {"p": 0.3, "q": 0.3, "r": 0.4} for k in "xyz"}
    assert merged.compute(shares) == whole.compute(shares)
    assert whole.compute(shares)["pairwise"]["x|z"]["pearson"] is None
