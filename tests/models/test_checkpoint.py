"""Checkpoints: formats, wrappers, prefixes, unreadable files, mismatches and the pickle boundary."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from toy_plugins import TrainState  # noqa: E402

from mmbalance.errors import CheckpointError  # noqa: E402
from mmbalance.models import (  # noqa: E402
    ModelAdapter,
    load_checkpoint,
    load_state_dict,
    save_state_dict,
)


class Net(nn.Module):
    def __init__(self, hidden: int = 4, classes: int = 3) -> None:
        super().__init__()
        self.encoder = nn.Linear(5, hidden)
        self.norm = nn.BatchNorm1d(hidden)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.encoder(x)))


def _trained() -> Net:
    torch.manual_seed(1)
    net = Net()
    with torch.no_grad():
        for p in net.parameters():
            p.uniform_(-1, 1)
    return net


def _same(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa)  # DataParallel moves to GPU 0


@pytest.mark.parametrize("wrap", [
    lambda sd: sd,
    lambda sd: {"model": sd, "epoch": 3},
    lambda sd: {"state_dict": sd, "optimizer": {"lr": 0.1}},
    lambda sd: {"model_state_dict": sd, "step": 10},
    lambda sd: {"checkpoint": 1, "model": {"state_dict": sd}},
    lambda sd: {"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 1},  # lightning
    lambda sd: {f"module.{k}": v for k, v in sd.items()},  # DataParallel / DDP
    lambda sd: {"model": {f"module.{k}": v for k, v in sd.items()}},
], ids=["plain", "model", "state_dict", "model_state_dict", "nested", "lightning", "module-prefix", "model+module"])
def test_wrappers_and_prefixes(tmp_path: Path, wrap: object) -> None:
    trained = _trained()
    path = tmp_path / "ckpt.pt"
    torch.save(wrap(trained.state_dict()), path)  # type: ignore[operator]
    fresh = Net()
    assert not _same(fresh, trained)
    assert load_checkpoint(fresh, path).missing == []
    assert _same(fresh, trained)


def test_module_prefix_stripped_by_load_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "ddp.pth"
    torch.save({f"module.{k}": v for k, v in _trained().state_dict().items()}, path)
    assert all(not k.startswith("module.") for k in load_state_dict(path))


def test_safetensors_roundtrip_through_wrappers(tmp_path: Path) -> None:
    trained = _trained()
    path = tmp_path / "w.safetensors"
    save_state_dict(nn.DataParallel(ModelAdapter(trained, ["x"])), path)
    from safetensors.torch import load_file

    assert set(load_file(str(path))) == set(trained.state_dict())
    fresh = Net()
    load_checkpoint(ModelAdapter(fresh, ["x"]), path)  # loading unwraps the adapter too
    assert _same(fresh, trained)
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left nothing behind


def test_save_state_dict_pt(tmp_path: Path) -> None:
    trained = _trained()
    save_state_dict(trained, tmp_path / "sub" / "w.pt")
    assert set(torch.load(tmp_path / "sub" / "w.pt", weights_only=True)) == set(trained.state_dict())


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_state_dict(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="not a file"):
        load_state_dict(tmp_path)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_truncated_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"w{suffix}"
    save_state_dict(_trained(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as info:
        load_state_dict(path)
    assert "cannot read" in str(info.value) and "truncated" in str(info.value)
    assert "\n" not in str(info.value)


def test_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "w.bin"
    path.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_state_dict(path)


def test_no_state_dict_inside(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(CheckpointError, match="no state dict found .* 'epoch', 'lr'"):
        load_state_dict(path)


class Payload:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_malicious_pickle_refused_and_payload_not_run(tmp_path: Path, zip_format: bool) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"weight": torch.zeros(2), "extra": Payload(marker)}, path, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(nn.Linear(2, 1), path)
    message = str(info.value)
    assert "system" in message  # the offending global is named (posix.system on Linux)
    assert "--trust-checkpoint" in message and "only if you trust" in message
    assert not marker.exists()
    # Control: with trust the payload really runs, so the check above can fail.
    with pytest.raises(CheckpointError):
        load_state_dict(path, trust=True)  # the payload returned an int, which is no state dict
    assert marker.exists()


def test_trust_loads_benign_custom_objects(tmp_path: Path) -> None:
    trained = _trained()
    path = tmp_path / "train_state.ckpt"
    torch.save({"state_dict": trained.state_dict(), "meta": TrainState(epoch=7)}, path)
    with pytest.raises(CheckpointError) as info:
        load_state_dict(path)
    assert "toy_plugins.TrainState" in str(info.value)
    fresh = Net()
    load_checkpoint(fresh, path, trust=True)
    assert _same(fresh, trained)


def test_trust_with_unimportable_class(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    torch.save({"state_dict": _trained().state_dict(), "meta": TrainState(1)}, path)
    saved = sys.modules.pop("toy_plugins")
    sys.path.remove(str(HERE))
    try:
        with pytest.raises(CheckpointError, match="No module named 'toy_plugins'"):
            load_state_dict(path, trust=True)
    finally:
        sys.path.insert(0, str(HERE))
        sys.modules["toy_plugins"] = saved


def test_key_mismatch_lists_keys_and_counts(tmp_path: Path) -> None:
    sd = _trained().state_dict()
    sd.pop("head.weight")
    sd.pop("head.bias")
    sd["extra.weight"] = torch.zeros(1)
    path = tmp_path / "w.pt"
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(Net(), path)
    message = str(info.value)
    assert "missing keys 2: head.weight, head.bias" in message
    assert "unexpected keys 1: extra.weight" in message
    keys = load_checkpoint(Net(), path, strict=False)
    assert keys.missing == ["head.weight", "head.bias"] and keys.unexpected == ["extra.weight"]


def test_many_missing_keys_are_cut(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    torch.save({}, path)
    model = nn.Sequential(*[nn.Linear(1, 1) for _ in range(8)])
    with pytest.raises(CheckpointError, match=r"missing keys 16: 0.weight, .*\(6 more\)"):
        load_checkpoint(model, path)


def test_shape_mismatch_names_parameter_and_shapes(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    save_state_dict(Net(classes=10), path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(Net(classes=3), path, strict=False)
    message = str(info.value)
    assert "head.weight (checkpoint (10, 4), model (3, 4))" in message
    assert "head.bias (checkpoint (10,), model (3,))" in message
