"""On a CUDA machine: device-aware IG chunking, out-of-memory back-off and --precision.

Skipped without a GPU (``pytest -m cuda`` selects these on a GPU machine).
"""

from __future__ import annotations

import warnings

import pytest
import torch

from mmbalance.attribution import IntegratedGradients, _chunking
from mmbalance.audit import audit
from mmbalance.errors import MMBalanceWarning
from mmbalance.models import ModelAdapter, create_model

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

DATA = "synthetic:av-dominance?n_test=32"
CUDA = torch.device("cuda")


def _resnet(batch=4):
    torch.manual_seed(0)
    adapter = ModelAdapter(create_model("av-resnet18", num_classes=4), ["audio", "visual"]).to(CUDA).eval()
    g = torch.Generator().manual_seed(0)
    x = {"audio": torch.randn(batch, 1, 128, 128, generator=g).to(CUDA),
         "visual": torch.randn(batch, 3, 2, 112, 112, generator=g).to(CUDA)}
    return adapter, x, (torch.arange(batch) % 4).to(CUDA)


def test_the_chunk_follows_the_free_device_memory_and_is_then_measured(monkeypatch):
    adapter, x, target = _resnet()
    ig = IntegratedGradients(steps=32)
    assert ig.steps_per_chunk(x) > 1  # a GPU with gigabytes free: many steps per forward (all 32 on an H200)
    monkeypatch.setattr(_chunking, "free_memory", lambda device: 64 * 2**20)  # "64 MB free"
    assert ig.steps_per_chunk(x) == 1
    small = ig.attribute(adapter, x, target)
    assert ig._sample_bytes and min(ig._sample_bytes.values()) > 0  # the first chunk's peak was measured
    monkeypatch.undo()
    whole = IntegratedGradients(steps=32).attribute(adapter, x, target)
    torch.testing.assert_close(small.scores, whole.scores, rtol=1e-4, atol=1e-6)


def test_a_real_out_of_memory_halves_the_chunk_and_is_warned_once(monkeypatch):
    adapter, x, target = _resnet()
    reference = IntegratedGradients(steps=32, internal_batch_size=4).attribute(adapter, x, target)
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(CUDA).total_memory
    monkeypatch.setattr(_chunking, "free_memory", lambda device: 2**50)  # believes everything fits
    torch.cuda.set_per_process_memory_fraction(2**30 / total, CUDA)  # but only 1 GiB may be allocated
    try:
        ig = IntegratedGradients(steps=32)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = ig.attribute(adapter, x, target)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, CUDA)
        torch.cuda.empty_cache()
    oom = [w for w in caught if issubclass(w.category, MMBalanceWarning) and "out of memory" in str(w.message)]
    assert len(oom) == 1 and ig._row_cap
    torch.testing.assert_close(out.scores, reference.scores, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("precision", ["tf32", "bf16"])
def test_reduced_precision_audits_stay_close_to_fp32(precision):
    def run(p):
        torch.manual_seed(0)
        return audit("av-tiny", DATA, steps=16, batch_size=16, progress=False, methods=["ig"], bootstrap=0,
                     device="cuda", precision=p).methods["ig"]
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    full, low = run("fp32"), run(precision)
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
    for m in full.shares:
        assert abs(full.shares[m] - low.shares[m]) < 0.01
    assert low.params["precision"] == precision
    assert low.extra["completeness_error"]["mean"] is not None
