"""A checkpoint of another model: one short line naming the model run.json says it was trained with (issue 20)."""

from __future__ import annotations

import json

import pytest
from torch import nn

from mmbalance.errors import CheckpointError
from mmbalance.models import create_model, load_checkpoint, save_state_dict


def test_checkpoint_from_another_model_names_the_model_of_its_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    save_state_dict(create_model("av-tiny", num_classes=3), run / "best.pt")
    (run / "run.json").write_text(json.dumps({"config": {"model": "av-tiny", "model_args": {"width": 8}}}))
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(nn.Linear(2, 2), run / "best.pt")
    message = str(caught.value)
    assert "this checkpoint was trained with --model av-tiny --model-arg width=8 (run.json)" in message
    assert "2 missing keys" in message and "unexpected keys" in message
    assert "fusion" not in message  # counts, not the key names
    assert len(message) < 400


def test_without_run_json_the_keys_are_listed(tmp_path):
    save_state_dict(create_model("av-tiny", num_classes=3), tmp_path / "best.pt")
    with pytest.raises(CheckpointError, match="missing keys 2: weight, bias") as caught:
        load_checkpoint(nn.Linear(2, 2), tmp_path / "best.pt")
    assert "run.json" not in str(caught.value)


def test_a_run_that_built_another_model_names_that_one(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    save_state_dict(create_model("av-tiny", num_classes=3), run / "best.pt")
    layers = {"audio": "audio_net", "visual": "visual_net"}
    (run / "run.json").write_text(json.dumps({
        "config": {"model": "my_net.py:build", "model_args": {}},
        "built": {"model": "late-fusion", "model_args": {"base": "my_net.py:build", "layers": layers}}}))
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(nn.Linear(2, 2), run / "best.pt")
    message = str(caught.value)
    # the model the run built, its dict argument quoted as one shell word
    assert ("trained with --model late-fusion --model-arg base=\"my_net.py:build\" --model-arg "
            "'layers={\"audio\": \"audio_net\", \"visual\": \"visual_net\"}' (run.json)") in message
