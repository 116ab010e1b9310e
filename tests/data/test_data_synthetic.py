"""The built-in synthetic data: determinism, layout, and the planted imbalance."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from mmbalance.data import load_dataset, synthesize_av_dominance, write_synthetic
from mmbalance.data import synthetic
from mmbalance.errors import UsageError


def test_same_seed_is_bit_identical_and_other_seeds_differ() -> None:
    a_inputs, a_labels, _ = synthesize_av_dominance(40, seed=7)
    b_inputs, b_labels, _ = synthesize_av_dominance(40, seed=7)
    c_inputs, _, _ = synthesize_av_dominance(40, seed=8)
    assert torch.equal(a_labels, b_labels)
    for m in ("audio", "visual"):
        assert torch.equal(a_inputs[m], b_inputs[m])
        assert not torch.equal(a_inputs[m], c_inputs[m])


def test_splits_are_independent_streams() -> None:
    train, _, _ = synthesize_av_dominance(20, seed=0, split_offset=synthetic.SPLIT_OFFSETS["train"])
    test, _, _ = synthesize_av_dominance(20, seed=0, split_offset=synthetic.SPLIT_OFFSETS["test"])
    assert not torch.equal(train["audio"], test["audio"])
    small = load_dataset("synthetic:av-dominance?n_train=10&n_test=30")
    large = load_dataset("synthetic:av-dominance?n_train=5000&n_test=30")
    assert torch.equal(small.inputs["visual"], large.inputs["visual"])  # test split ignores n_train


def test_shapes_dtype_balance_and_names() -> None:
    inputs, labels, classes = synthesize_av_dominance(103, seed=1)
    assert inputs["audio"].shape == (103, *synthetic.AUDIO_SHAPE) == (103, 1, 32, 32)
    assert inputs["visual"].shape == (103, *synthetic.VISUAL_SHAPE) == (103, 3, 4, 32, 32)
    assert inputs["audio"].dtype == inputs["visual"].dtype == torch.float32
    assert labels.dtype == torch.long
    assert torch.bincount(labels).tolist() == [26, 26, 26, 25]
    assert classes == ["low-a", "low-b", "high-a", "high-b"]
    assert synthetic.class_names(6) == ["low-a", "low-b", "mid-a", "mid-b", "high-a", "high-b"]
    odd_inputs, odd_labels, odd_classes = synthesize_av_dominance(20, seed=0, num_classes=5)
    assert len(odd_classes) == 5 and int(odd_labels.max()) == 4
    assert torch.isfinite(odd_inputs["audio"]).all()
    with pytest.raises(UsageError, match="num_classes must be between 2 and 16"):
        synthesize_av_dominance(4, seed=0, num_classes=17)


def test_audio_band_names_the_group_only() -> None:
    inputs, labels, _ = synthesize_av_dominance(400, seed=0)
    energy = inputs["audio"][:, 0].mean(dim=2)  # (n, freq)
    low_half = energy[:, :16].mean(dim=1) > energy[:, 16:].mean(dim=1)
    assert torch.equal(low_half, labels // 2 == 0)  # the band's half gives the group, always


def test_write_synthetic_writes_loadable_splits(tmp_path: Path) -> None:
    paths = write_synthetic(tmp_path / "syn", seed=2, n_train=6, n_val=4, n_test=5)
    assert {s: p.name for s, p in paths.items()} == {"train": "train.pt", "val": "val.pt", "test": "test.pt"}
    ds = load_dataset(str(tmp_path / "syn"), split="val")
    direct = load_dataset("synthetic:av-dominance?seed=2&n_val=4", split="val")
    assert torch.equal(ds.inputs["audio"], direct.inputs["audio"]) and ds.classes == direct.classes
    with pytest.raises(UsageError, match="refusing to overwrite .*train.pt"):
        write_synthetic(tmp_path / "syn", n_train=6, n_val=4, n_test=5, overwrite=False)
    write_synthetic(tmp_path / "syn", seed=3, n_train=6, n_val=4, n_test=5)  # replaces by default
    assert not torch.equal(load_dataset(str(tmp_path / "syn"), split="val").inputs["audio"], ds.inputs["audio"])


# --- the planted imbalance, checked with tiny plain-torch probes -------------------------------


def _encoder() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 5, stride=2, padding=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


class _Probe(nn.Module):
    """A one-conv encoder per used modality (globally pooled, like the built-in models) and a Linear."""

    def __init__(self, use: str) -> None:
        super().__init__()
        self.audio = _encoder() if "a" in use else None
        self.visual = _encoder() if "v" in use else None
        self.fc = nn.Linear(8 * len(use), 4)

    def forward(self, audio: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        parts = [enc(x) for enc, x in ((self.audio, audio), (self.visual, frames)) if enc is not None]
        return self.fc(torch.cat(parts, dim=1))


def _train(use: str, train, test, steps: int = 300, every: int = 25) -> dict[int, float]:
    (a, v, y), (at, vt, yt) = train, test
    torch.manual_seed(0)
    model = _Probe(use)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    acc: dict[int, float] = {}
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(y), (64,), generator=gen)
        loss = nn.functional.cross_entropy(model(a[idx], v[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % every == 0:
            with torch.no_grad():
                acc[step] = (model(at, vt).argmax(1) == yt).float().mean().item()
    return acc


def test_audio_is_fast_but_incomplete_and_visual_is_slow_but_complementary() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        def split(n: int, offset: int):
            inputs, labels, _ = synthesize_av_dominance(n, seed=0, split_offset=offset)
            # the visual grating is the same in every frame and channel: average them (a cheap proxy)
            return inputs["audio"], inputs["visual"].mean(dim=(1, 2)).unsqueeze(1), labels

        train, test = split(1000, 0), split(500, 2)
        audio, visual, fused = (_train(use, train, test) for use in ("a", "v", "av"))
    finally:
        torch.set_num_threads(threads)
    final = {name: max(list(acc.values())[-3:]) for name, acc in (("a", audio), ("v", visual), ("av", fused))}
    # audio alone: the group only (~50%), plus a little from the faint within-pair cue
    assert 0.45 <= final["a"] <= 0.68, audio
    # visual alone: much better, but capped by the samples that show the wrong group
    assert final["a"] + 0.12 <= final["v"] <= 0.9, visual
    # together: the class
    assert final["av"] >= 0.9, fused
    # audio is learned first: after 25 steps audio is near its plateau, visual still near chance
    assert audio[25] >= 0.40 and visual[25] <= 0.35, (audio, visual)
