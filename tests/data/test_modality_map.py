"""``--modalities video=visual``: dataset modality names mapped to the model's input names (issue 20)."""

from __future__ import annotations

import doctest

import pytest
import torch
from typer.testing import CliRunner

import mmbalance.data.rename as rename_module
from mmbalance.cli import app
from mmbalance.data import load_dataset, save_tensor_dataset
from mmbalance.errors import UsageError


@pytest.fixture()
def clips(tmp_path):
    g = torch.Generator().manual_seed(0)
    path = tmp_path / "clips.pt"
    save_tensor_dataset(path, {"sound": torch.randn(8, 1, 8, 8, generator=g),
                               "video": torch.randn(8, 3, 2, 8, 8, generator=g)}, torch.arange(8) % 2, ["a", "b"])
    return path


def test_renamed_dataset_serves_the_model_names(clips):
    ds = load_dataset(str(clips), modalities=["video=visual", "sound=audio"])
    assert ds.modalities == ("visual", "audio")
    inputs, labels = ds.get_batch([0, 1])
    raw, _ = load_dataset(str(clips)).get_batch([0, 1])
    assert set(inputs) == {"visual", "audio"} and torch.equal(inputs["visual"], raw["video"])
    assert ds.sample_shapes() == {"visual": (3, 2, 8, 8), "audio": (1, 8, 8)}


def test_bad_maps_are_usage_errors():
    with pytest.raises(UsageError, match="DATASET_NAME=MODEL_NAME"):
        rename_module.parse_modality_map(["video="])
    with pytest.raises(UsageError, match="names a modality twice"):
        rename_module.parse_modality_map(["video=visual", "visual"])


def test_audit_with_a_mapped_dataset(clips):
    result = CliRunner().invoke(app, ["audit", "-m", "av-tiny", "-d", str(clips), "--modalities",
                                      "sound=audio,video=visual", "--method", "ablation", "--bootstrap", "0", "-q"])
    assert result.exit_code == 0, result.output


def test_docstring_examples():
    assert doctest.testmod(rename_module).failed == 0
