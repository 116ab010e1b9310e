import pytest
import torch

from mmbalance.attribution import Baseline, MeanAccumulator, gaussian_blur
from mmbalance.errors import UsageError
from toys import av_batch


def test_zero_mean_and_noise_baselines():
    x = av_batch(3)
    assert all(float(v.abs().sum()) == 0 for v in Baseline("zero")(x).values())
    means = {m: v.mean(0) for m, v in x.items()}
    ref = Baseline("mean", means=means)(x)
    assert torch.equal(ref["audio"][2], means["audio"])
    a, b = Baseline("noise", seed=3)(x), Baseline("noise", seed=3)(x)
    assert torch.equal(a["visual"], b["visual"])  # seeded
    # noise matches each sample's own mean and spread
    flat = a["visual"].flatten(1)
    torch.testing.assert_close(flat.mean(1), x["visual"].flatten(1).mean(1), atol=0.35, rtol=0)
    assert Baseline("noise", seed=3).params() == {"baseline": "noise", "seed": 3}


def test_mean_baseline_needs_means_of_the_right_shape():
    x = av_batch(2)
    with pytest.raises(UsageError, match="dataset mean"):
        Baseline("mean")(x)
    with pytest.raises(UsageError, match="shape"):
        Baseline("mean", means={"audio": torch.zeros(3), "visual": torch.zeros(3)})(x)


def test_blur_keeps_constants_smooths_spikes_and_refuses_flat_inputs():
    x = torch.full((2, 3, 2, 6, 6), 0.7)
    torch.testing.assert_close(gaussian_blur(x), x)
    spike = torch.zeros(1, 1, 9, 9)
    spike[0, 0, 4, 4] = 1.0
    out = gaussian_blur(spike, 0.2)
    assert 0 < float(out[0, 0, 4, 4]) < 1 and float(out[0, 0, 4, 5]) > 0
    assert float(out[0, 0, 0, 4]) < float(out[0, 0, 3, 4])
    with pytest.raises(UsageError, match="--baseline zero"):
        gaussian_blur(torch.zeros(2, 8), modality="audio")
    with pytest.raises(UsageError, match="unknown baseline"):
        Baseline("median")


def test_mean_accumulator_streams_and_refuses_changing_shapes():
    acc = MeanAccumulator()
    data = torch.randn(10, 3, 4)
    for chunk in data.split(3):
        acc.update({"a": chunk})
    torch.testing.assert_close(acc.compute()["a"], data.mean(0))
    with pytest.raises(UsageError, match="change shape"):
        acc.update({"a": torch.zeros(2, 5)})
    with pytest.raises(UsageError, match="at least one sample"):
        MeanAccumulator().compute()
