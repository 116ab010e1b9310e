import pytest
import torch
from captum.attr import IntegratedGradients as CaptumIG

from mmbalance.attribution import (Ablation, EncodeFuseView, HookView, IntegratedGradients, embedding_view,
                                   parse_embedding_layers)
from mmbalance.errors import EstimatorError, UsageError
from mmbalance.models import ModelAdapter, load_model
from toys import PluginAV, av_batch, randomize_batchnorm

X = dict(audio_shape=(1, 8, 8), visual_shape=(3, 2, 8, 8))


def test_parse_embedding_layers():
    assert parse_embedding_layers("audio=a.net, visual=v") == {"audio": "a.net", "visual": "v"}
    assert parse_embedding_layers(None) is None
    with pytest.raises(UsageError, match="--embedding-layer"):
        parse_embedding_layers("audio")
    with pytest.raises(UsageError, match="twice"):
        parse_embedding_layers("audio=a,audio=b")


def test_builtin_view_is_encode_fuse_and_embedding_ig_matches_captum_on_the_head():
    torch.manual_seed(0)
    adapter = load_model("av-tiny", num_classes=3, model_args={"fusion": "gated"})
    view = embedding_view(adapter)
    assert isinstance(view, EncodeFuseView)
    x = av_batch(3, **X)
    emb = view.encode(x)
    target = torch.tensor([0, 1, 2])
    out = IntegratedGradients(steps=16, keep_maps=True).attribute(view.bind(x), emb, target)

    class Head(torch.nn.Module):
        def forward(self, a, v):
            return adapter.fuse({"audio": a, "visual": v})

    ra, rv = CaptumIG(Head()).attribute((emb["audio"], emb["visual"]), target=target, n_steps=16)
    torch.testing.assert_close(out.maps["audio"], ra, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(out.maps["visual"], rv, rtol=1e-4, atol=1e-6)


def test_hooked_plugin_embeddings_and_forward_are_exact():
    torch.manual_seed(1)
    model = randomize_batchnorm(PluginAV()).eval()
    adapter = ModelAdapter(model, ["audio", "visual"]).eval()
    view = embedding_view(adapter, "audio=audio_net,visual=visual_net")
    assert isinstance(view, HookView)
    x = av_batch(3, **X)
    emb = view.encode(x)
    assert tuple(emb["audio"].shape) == (3, 6) and tuple(emb["visual"].shape) == (3, 2, 6)  # 2 frames per sample
    fuse = view.bind(x)
    torch.testing.assert_close(fuse(emb), adapter(x))
    # stacked copies (as IG steps stack them) evaluate each copy independently
    doubled = {m: torch.cat([e, torch.zeros_like(e)]) for m, e in emb.items()}
    zeros = {m: torch.zeros_like(e) for m, e in emb.items()}
    torch.testing.assert_close(fuse(doubled), torch.cat([fuse(emb), fuse(zeros)]))
    assert all("forward" not in vars(m) for m in model.modules())

    # embedding-level IG through hooks equals IG on the explicit head
    target = torch.tensor([0, 1, 2])
    out = IntegratedGradients(steps=8, keep_maps=True).attribute(fuse, emb, target)

    class Head(torch.nn.Module):
        def forward(self, a, v):
            return model.fusion_module(torch.cat([a, v.mean(1)], 1))

    ra, rv = CaptumIG(Head()).attribute((emb["audio"], emb["visual"]), target=target, n_steps=8)
    torch.testing.assert_close(out.maps["audio"], ra, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(out.maps["visual"], rv, rtol=1e-4, atol=1e-6)
    assert Ablation().attribute(fuse, emb, target).scores.shape == (3, 2)


def test_plugin_without_layers_and_bad_paths_are_refused_with_the_option_to_use():
    adapter = ModelAdapter(PluginAV(), ["audio", "visual"])
    with pytest.raises(EstimatorError, match="--embedding-layer audio=") as info:
        embedding_view(adapter)
    assert "--level input" in str(info.value)
    with pytest.raises(EstimatorError, match="has no module 'audio_nett'") as info:
        embedding_view(adapter, "audio=audio_nett,visual=visual_net")
    assert "did you mean audio_net" in str(info.value)
    with pytest.raises(EstimatorError, match="no module for visual"):
        embedding_view(adapter, "audio=audio_net")
    with pytest.raises(UsageError, match="unknown modality depth"):
        embedding_view(adapter, "audio=audio_net,visual=visual_net,depth=x")


def test_a_module_that_runs_twice_has_no_single_embedding():
    adapter = ModelAdapter(PluginAV(), ["audio", "visual"])
    view = embedding_view(adapter, "audio=audio_net,visual=visual_net.0")
    view.encode(av_batch(2, **X))  # the conv runs once on all frames: fine
    shared = load_model("av-tiny", num_classes=3)
    twice = embedding_view(shared, "audio=encoders.audio.features.2,visual=encoders.visual")  # BN runs once
    twice.encode(av_batch(2, **X))

    class Twice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = torch.nn.Linear(3, 3)

        def forward(self, audio, visual):
            return self.enc(audio) + self.enc(visual)

    view = embedding_view(ModelAdapter(Twice(), ["audio", "visual"]), "audio=enc,visual=enc")
    with pytest.raises(EstimatorError, match="ran 2 times"):
        view.encode({"audio": torch.zeros(2, 3), "visual": torch.zeros(2, 3)})
