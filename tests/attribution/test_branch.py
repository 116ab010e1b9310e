import pytest
import torch

from mmbalance.attribution import BranchLogits
from mmbalance.errors import EstimatorError
from mmbalance.models import ModelAdapter, create_model, load_model
from toys import PluginAV, av_batch

X = dict(audio_shape=(1, 8, 8), visual_shape=(3, 2, 8, 8))


@pytest.mark.parametrize("fusion", ["concat", "sum"])
def test_branch_scores_closed_form_on_additive_heads(fusion):
    torch.manual_seed(0)
    adapter = load_model("av-tiny", num_classes=3, model_args={"fusion": fusion})
    x = av_batch(4, **X)
    target = torch.tensor([0, 1, 2, 0])
    labels = torch.tensor([0, 0, 2, 1])
    out = BranchLogits().attribute(adapter, x, target, labels=labels)
    emb = adapter.encode(x)
    head = adapter.model.fusion
    if fusion == "concat":
        w, b = head.fc.weight, head.fc.bias
        parts = {"audio": emb["audio"] @ w[:, :32].T + b / 2, "visual": emb["visual"] @ w[:, 32:].T + b / 2}
    else:
        parts = {m: head.fcs[m](emb[m]) for m in emb}
    torch.testing.assert_close(parts["audio"] + parts["visual"], adapter(x))  # branches add up to the logits
    for j, m in enumerate(("audio", "visual")):
        p = parts[m].softmax(1).gather(1, target.view(-1, 1)).squeeze(1)
        torch.testing.assert_close(out.scores[:, j], p.detach())
        torch.testing.assert_close(out.extra["branch_accuracy"][:, j], (parts[m].argmax(1) == labels).float())


@pytest.mark.parametrize("fusion", ["film", "gated"])
def test_branch_is_refused_on_heads_that_mix_modalities(fusion):
    adapter = load_model("av-tiny", num_classes=3, model_args={"fusion": fusion})
    with pytest.raises(EstimatorError) as info:
        BranchLogits().check(adapter)
    message = str(info.value)
    assert "Fusion head" in message and "fusion=concat" in message and "--method" in message


def test_branch_is_refused_on_plugins_without_branch_logits():
    adapter = ModelAdapter(PluginAV(), ["audio", "visual"])
    with pytest.raises(EstimatorError, match="no per-modality logits"):
        BranchLogits().check(adapter)
    assert create_model("av-tiny", num_classes=2).has_branch_logits
