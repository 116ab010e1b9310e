"""--precision fp32|tf32|bf16: bf16 autocast on CPU, tf32 refused there, settings restored."""

import json

import pytest
import torch
from typer.testing import CliRunner

from mmbalance.attribution import IntegratedGradients
from mmbalance.audit import audit
from mmbalance.cli import EXIT_ERROR, app
from mmbalance.errors import UsageError
from mmbalance.precision import check_precision, forward_autocast, precision_scope
from toys import ConvAV, as_forward, av_batch

DATA = "synthetic:av-dominance?n_test=32"


def _audit(precision, **kw):
    torch.manual_seed(0)  # av-tiny gets random weights: the same ones for every precision
    return audit("av-tiny", DATA, steps=16, batch_size=16, progress=False, methods=["ig"], bootstrap=0,
                 device="cpu", precision=precision, **kw)


def test_bf16_audit_is_close_to_fp32_and_says_so():
    full, half = _audit("fp32"), _audit("bf16")
    for m in full.modalities:
        assert abs(full.methods["ig"].shares[m] - half.methods["ig"].shares[m]) < 0.01  # measured: 4e-4
    assert half.methods["ig"].shares != full.methods["ig"].shares  # it really ran in bf16
    err = half.methods["ig"].extra["completeness_error"]
    assert err["mean"] is not None and err["mean"] > full.methods["ig"].extra["completeness_error"]["mean"]
    doc = json.loads(half.to_json())
    assert doc["methods"]["ig"]["params"]["precision"] == "bf16"
    assert "precision" not in json.loads(full.to_json())["methods"]["ig"]["params"]  # fp32: as before


def test_bf16_ig_keeps_fp32_sums_and_stays_close():
    torch.manual_seed(0)
    model = ConvAV().eval()
    x = av_batch(4, audio_shape=(1, 6, 8), visual_shape=(3, 3, 5, 5))
    target = torch.tensor([2, 0, 1, 1])
    full = IntegratedGradients(steps=16, keep_maps=True).attribute(as_forward(model), x, target)
    half = IntegratedGradients(steps=16, keep_maps=True, precision="bf16").attribute(as_forward(model), x, target)
    assert half.maps["audio"].dtype == torch.float32 and half.scores.dtype == torch.float32
    assert not torch.equal(half.maps["audio"], full.maps["audio"])
    torch.testing.assert_close(half.scores, full.scores, rtol=0.05, atol=0.05)


def test_tf32_is_refused_on_cpu_and_unknown_names_too():
    with pytest.raises(UsageError, match="tf32 needs a CUDA device"):
        _audit("tf32")
    with pytest.raises(UsageError, match="unknown --precision 'fp16'"):
        IntegratedGradients(precision="fp16")
    with pytest.raises(UsageError, match="Integrated Gradients only"):
        audit("av-tiny", DATA, methods=["ablation"], precision="bf16", progress=False, device="cpu")
    result = CliRunner().invoke(app, ["audit", "-m", "av-tiny", "-d", DATA, "--steps", "2", "--quiet",
                                      "--device", "cpu", "--precision", "tf32"])
    assert result.exit_code == EXIT_ERROR
    err = result.stderr.strip()
    assert err.startswith("error:") and "tf32" in err and "Traceback" not in result.output


def test_tf32_switches_are_restored():
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    with precision_scope("tf32", torch.device("cuda")):  # sets flags only: no CUDA work happens here
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
    assert check_precision("fp32", torch.device("cpu")) == "fp32"
    with forward_autocast("fp32", torch.device("cpu")):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
