"""Device-aware IG chunking: the memory probe, out-of-memory back-off, and the CPU path left as it was."""

import contextlib
import warnings

import pytest
import torch

from mmbalance.attribution import IntegratedGradients, _chunking
from mmbalance.errors import EstimatorError, MMBalanceWarning
from toys import ConvAV, as_forward, av_batch

STEPS = 16
BATCH = 3


def _limited(model, max_rows, calls, *, grad_only=False):
    """A forward that raises torch.OutOfMemoryError when given more than ``max_rows`` rows.

    ``grad_only``: only forwards that record a graph (the path, not the endpoints) run out.
    """
    def forward(inputs):
        rows = inputs["audio"].shape[0]
        calls.append(rows)
        if rows > max_rows and (torch.is_grad_enabled() or not grad_only):
            raise torch.OutOfMemoryError(f"CUDA out of memory (simulated, {rows} rows)")
        return model(inputs["audio"], inputs["visual"])
    return forward


def _setup():
    torch.manual_seed(3)
    model = ConvAV()
    x = av_batch(BATCH, audio_shape=(1, 6, 6), visual_shape=(3, 2, 4, 4))
    return model, x, torch.tensor([0, 1, 2])


def test_out_of_memory_halves_the_chunk_and_gives_the_same_attributions():
    model, x, target = _setup()
    whole = IntegratedGradients(steps=STEPS, keep_maps=True, factor_stems=False).attribute(as_forward(model), x,
                                                                                           target)
    calls: list[int] = []
    ig = IntegratedGradients(steps=STEPS, keep_maps=True, factor_stems=False)
    assert ig.steps_per_chunk(x) == STEPS  # one chunk planned: it does not fit the (simulated) device
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = ig.attribute(_limited(model, 4 * BATCH, calls), x, target)
    oom = [w for w in caught if issubclass(w.category, MMBalanceWarning) and "out of memory" in str(w.message)]
    assert len(oom) == 1  # 16 -> 8 -> 4 steps: two halvings, one warning
    assert calls[2:] == [16 * BATCH, 8 * BATCH] + [4 * BATCH] * 4  # after the two endpoint forwards
    # the same chunks planned up front give bit-identical sums; the un-chunked pass agrees to rounding
    planned = IntegratedGradients(steps=STEPS, keep_maps=True, factor_stems=False, internal_batch_size=4 * BATCH)
    same = planned.attribute(as_forward(model), x, target)
    for m in ("audio", "visual"):
        assert torch.equal(out.maps[m], same.maps[m])
        torch.testing.assert_close(out.maps[m], whole.maps[m], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(out.scores, whole.scores, rtol=1e-5, atol=1e-7)
    # what fit is remembered: the next batch goes straight to 4 steps, without a new warning
    calls.clear()
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        ig.attribute(_limited(model, 4 * BATCH, calls), x, target)
    assert max(calls) <= 4 * BATCH and not [w for w in again if "out of memory" in str(w.message)]


def test_one_step_that_still_runs_out_of_memory_is_one_clear_error():
    model, x, target = _setup()
    ig = IntegratedGradients(steps=8, factor_stems=False)
    with pytest.raises(EstimatorError, match="out of memory .* one Integrated Gradients step of 3 samples"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ig.attribute(_limited(model, BATCH - 1, [], grad_only=True), x, target)


def test_a_batch_whose_endpoints_do_not_fit_is_one_clear_error():
    model, x, target = _setup()
    with pytest.raises(EstimatorError, match="out of memory .* 3 samples"):
        IntegratedGradients(steps=8, factor_stems=False).attribute(_limited(model, BATCH - 1, []), x, target)


def test_device_chunk_follows_the_memory_the_chunker_believes_is_free(monkeypatch):
    x = av_batch(8, audio_shape=(1, 64, 64), visual_shape=(3, 4, 32, 32))
    input_bytes = sum(v[0].numel() * v.element_size() for v in x.values())
    ig = IntegratedGradients(steps=32)
    cpu = ig.steps_per_chunk(x)
    # a "device" with room for 4 steps of 8 samples at the cautious estimate, then a roomy one
    tight = 4 * 8 * input_bytes * _chunking.ESTIMATE_FACTOR_DEVICE / _chunking.DEVICE_FRACTION
    monkeypatch.setattr(_chunking, "free_memory", lambda device: int(tight) + 100)
    assert ig.steps_per_chunk(x) == 4
    monkeypatch.setattr(_chunking, "free_memory", lambda device: 2**40)
    assert ig.steps_per_chunk(x) == 32
    monkeypatch.setattr(_chunking, "free_memory", lambda device: None)
    assert ig.steps_per_chunk(x) == cpu  # the CPU path: the fixed 512 MB budget, as before


def test_cpu_chunking_is_the_fixed_budget():
    x = av_batch(8, audio_shape=(1, 64, 64), visual_shape=(3, 4, 32, 32))
    input_bytes = sum(v[0].numel() * v.element_size() for v in x.values())
    fit = int(512 * 2**20 // (input_bytes * 32 * 8))
    chunks = -(-32 // fit)
    assert IntegratedGradients(steps=32).steps_per_chunk(x) == -(-32 // chunks)


def test_measured_cost_replans_the_rest(monkeypatch):
    """After the first chunk, the measured bytes per sample (not the estimate) size the chunks."""
    model, x, target = _setup()
    monkeypatch.setattr(_chunking, "free_memory", lambda device: 10_000)

    @contextlib.contextmanager
    def fake_peak(device, enabled=True):
        out: dict[str, int] = {}
        yield out
        out["bytes"] = 10 * BATCH  # a one-step chunk: 10 bytes per interpolated sample
    monkeypatch.setattr(_chunking, "measuring_peak", fake_peak)
    calls: list[int] = []
    ig = IntegratedGradients(steps=STEPS, factor_stems=False)
    ig.attribute(_limited(model, 10**6, calls), x, target)
    # estimate: far over 10 kB per step, so 1 step first; measured: 10 B per sample, so the other 15 together
    assert calls[2:] == [BATCH, 15 * BATCH]
