"""Every built-in architecture builds, runs on several input sizes and exposes its embeddings."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest
import torch

from mmbalance.errors import EstimatorError, ModelError
from mmbalance.models import FUSIONS, FusionModel, create_model, list_model_info

WRAPPERS = {"unimodal", "ensemble", "late-fusion"}  # built from an architecture (tests/training/test_methods.py,
#                                                   tests/models/test_late_fusion.py)
BUILTINS = [info.name for info in list_model_info() if info.source == "builtin" and info.name not in WRAPPERS]
SIZES = [
    ((2, 1, 20, 24), (2, 3, 2, 16, 16)),
    ((2, 1, 33, 17), (2, 3, 3, 24, 20)),
]


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Two OpenMP threads fighting other test processes for 2 cores run ResNet-18 30x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.cache
def _built(name: str) -> FusionModel:
    torch.manual_seed(0)
    model = create_model(name, num_classes=5)
    assert isinstance(model, FusionModel)
    return model


def _inputs(audio_shape: tuple[int, ...], visual_shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"audio": torch.randn(*audio_shape, generator=g), "visual": torch.randn(*visual_shape, generator=g)}


def test_builtins_found() -> None:
    assert {"av-tiny", "av-resnet18"} <= set(BUILTINS)


@pytest.mark.parametrize("audio_shape,visual_shape", SIZES, ids=["small", "odd"])
@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_forward_backward(name: str, audio_shape: tuple[int, ...], visual_shape: tuple[int, ...]) -> None:
    model = _built(name).train()
    model.zero_grad(set_to_none=True)
    assert model.modalities == ("audio", "visual") and model.num_classes == 5
    x = _inputs(audio_shape, visual_shape)
    logits = model(x["audio"], x["visual"])
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    logits.square().mean().backward()
    for modality in model.modalities:
        grads = [p.grad for p in model.encoders[modality].parameters()]
        assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("fusion", list(FUSIONS))
def test_av_tiny_fusions_encode_fuse(fusion: str) -> None:
    torch.manual_seed(0)
    model = create_model("av-tiny", num_classes=4, model_args={"fusion": fusion}).eval()
    assert model.fusion is not None and type(model.fusion) is FUSIONS[fusion]
    x = _inputs(*SIZES[0])
    emb = model.encode(x)
    assert set(emb) == {"audio", "visual"}
    assert all(e.shape == (2, model.embedding_dim) for e in emb.values())
    logits = model(x["audio"], x["visual"])
    torch.testing.assert_close(model.fuse(emb), logits)
    # The embeddings are what enters fusion: changing one changes the logits.
    changed = model.fuse({"audio": torch.zeros_like(emb["audio"]), "visual": emb["visual"]})
    assert not torch.allclose(changed, logits)
    if fusion in ("concat", "sum"):
        assert model.has_branch_logits
        parts = model.branch_logits(emb)
        torch.testing.assert_close(parts["audio"] + parts["visual"], logits)
    else:
        assert not model.has_branch_logits
        with pytest.raises(EstimatorError, match="no per-modality logits"):
            model.branch_logits(emb)


def test_concat_branch_logits_split_bias_like_ogm_ge() -> None:
    model = create_model("av-tiny", num_classes=3).eval()
    emb = model.encode(_inputs(*SIZES[0]))
    fc = model.fusion.fc
    d = model.embedding_dim
    expected_audio = emb["audio"] @ fc.weight[:, :d].T + fc.bias / 2
    torch.testing.assert_close(model.branch_logits(emb)["audio"], expected_audio)


@pytest.mark.parametrize("fusion", ["concat", "film"])
def test_av_resnet18_fusions_tiny_inputs(fusion: str) -> None:
    model = create_model("av-resnet18", num_classes=3, model_args={"fusion": fusion}).eval()
    x = {"audio": torch.randn(1, 1, 16, 16), "visual": torch.randn(1, 3, 1, 16, 16)}
    emb = model.encode(x)
    assert emb["audio"].shape == (1, 512) and emb["visual"].shape == (1, 512)
    assert model.fuse(emb).shape == (1, 3)


def test_av_resnet18_never_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    model = create_model("av-resnet18", num_classes=2)
    assert model.encoders["audio"].net.conv1.in_channels == 1
    assert model.encoders["visual"].net.conv1.in_channels == 3


def test_av_tiny_accepts_3d_audio_and_4d_visual() -> None:
    model = create_model("av-tiny", num_classes=2).eval()
    assert model(torch.randn(2, 20, 24), torch.randn(2, 3, 16, 16)).shape == (2, 2)


@pytest.mark.parametrize("audio,visual,which", [
    ((2, 3, 20, 24), (2, 3, 2, 16, 16), "audio"),
    ((2, 1, 20, 24), (2, 1, 2, 16, 16), "visual"),
])
def test_builtin_wrong_input_shape(audio: tuple[int, ...], visual: tuple[int, ...], which: str) -> None:
    model = create_model("av-tiny", num_classes=2)
    with pytest.raises(ModelError, match=f"{which} input must be"):
        model(torch.randn(*audio), torch.randn(*visual))


def test_av_tiny_is_cheap() -> None:
    """Forward+backward on 64 samples stays under 1 GFLOP (about 0.5 today): deterministic, load-independent."""
    from torch.utils.flop_counter import FlopCounterMode

    model = create_model("av-tiny", num_classes=10)
    audio, visual = torch.randn(64, 1, 32, 32), torch.randn(64, 3, 4, 32, 32)
    with FlopCounterMode(display=False) as counter:
        model(audio, visual).logsumexp(1).mean().backward()
    assert counter.get_total_flops() < 1e9
