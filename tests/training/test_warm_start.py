"""``finetune --init``: a fused run warm-started from two unimodal runs."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from mmbalance.cli import app
from mmbalance.errors import UsageError
from mmbalance.models import create_model
from mmbalance.models.logit_scales import LIMIT
from mmbalance.training import TrainConfig, finetune
from mmbalance.training.loop import TrainingInterrupted

runner = CliRunner()


def _cfg(data: str, out, **kw) -> TrainConfig:
    base = dict(model="av-tiny", data=data, out=str(out), epochs=1, batch_size=16, lr=2e-3, seed=1)
    base.update(kw)
    return TrainConfig(**base)


def test_init_from_unimodal_runs(tiny_data, tmp_path):
    for m in ("audio", "visual"):
        finetune(_cfg(tiny_data, tmp_path / m, unimodal=m), progress=False)
    init = {m: str(tmp_path / m / "best.pt") for m in ("audio", "visual")}
    rows: list[dict] = []
    finetune(_cfg(tiny_data, tmp_path / "warm", init=init, lr=1e-4), progress=False, on_epoch_end=rows.append)
    saved = json.loads((tmp_path / "warm" / "run.json").read_text())["config"]
    assert saved["init"] == init and rows and rows[0]["val_accuracy"] >= 0
    trained = torch.load(tmp_path / "warm" / "last.pt", weights_only=True)
    enc = "encoders.visual.proj.weight"
    unimodal_v = torch.load(tmp_path / "visual" / "best.pt", weights_only=True)[enc]
    fresh = create_model("av-tiny", num_classes=4).state_dict()[enc]
    # one epoch at lr 1e-4 moves a weight by at most steps * lr (Adam) = 4 * 1e-4
    assert (trained[enc] - unimodal_v).abs().max() <= 4 * 1e-4 + 1e-6
    assert (trained[enc] - fresh).abs().max() > 1e-2


@pytest.mark.parametrize("kw,message", [
    ({"checkpoint": "x.pt"}, "--checkpoint"),
    ({"unimodal": "audio"}, "--unimodal"),
])
def test_init_refuses_other_starts(tiny_data, tmp_path, kw, message):
    with pytest.raises(UsageError, match=message):
        _cfg(tiny_data, tmp_path / "w", init={"audio": "a.pt"}, **kw).validate(["audio", "visual"])
    with pytest.raises(UsageError, match="unknown modality"):
        _cfg(tiny_data, tmp_path / "w", init={"text": "a.pt"}).validate(["audio", "visual"])


@pytest.mark.parametrize("value,message", [("audio", "malformed --init"), ("audio=nope.pt", "nope.pt")])
def test_cli_init_errors_are_one_line(tiny_data, tmp_path, value, message):
    res = runner.invoke(app, ["finetune", "-m", "av-tiny", "-d", tiny_data, "-o", str(tmp_path / "w"), "--epochs",
                              "1", "-q", "--init", value])
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output


def test_init_calibrate_records_its_scales_and_resumes_with_them(tiny_data, tmp_path):
    for m in ("audio", "visual"):
        finetune(_cfg(tiny_data, tmp_path / m, unimodal=m), progress=False)
    init = {m: str(tmp_path / m / "best.pt") for m in ("audio", "visual")}

    def stop_after_first(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    out = tmp_path / "cal"
    with pytest.raises(TrainingInterrupted):
        finetune(_cfg(tiny_data, out, init=init, init_calibrate=True, lr=1e-4, epochs=2), progress=False,
                 on_epoch_end=stop_after_first)
    scales = json.loads((out / "run.json").read_text())["init_scales"]
    assert set(scales) == {"audio", "visual"} and all(1 / LIMIT <= s <= LIMIT for s in scales.values()), scales
    assert scales != {"audio": 1.0, "visual": 1.0}
    finetune(resume=out, progress=False)  # the resumed run does not refit: the scales of its start stay
    info = json.loads((out / "run.json").read_text())
    assert info["init_scales"] == scales and info["config"]["init_calibrate"] is True
    plain = tmp_path / "plainwarm"
    finetune(_cfg(tiny_data, plain, init=init, lr=1e-4), progress=False)
    assert "init_scales" not in json.loads((plain / "run.json").read_text())


def test_cli_init_calibrate_needs_init(tiny_data, tmp_path):
    res = runner.invoke(app, ["finetune", "-m", "av-tiny", "-d", tiny_data, "-o", str(tmp_path / "w"), "--epochs",
                              "1", "-q", "--init-calibrate"])
    assert res.exit_code == 2, res.output
    assert "needs --init" in res.output and "Traceback" not in res.output
