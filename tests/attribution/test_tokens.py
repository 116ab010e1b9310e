"""Token ids: the embedding layer is found (or must be named) and the pad id replaces removed ids."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mmbalance.attribution.levels import plan_space
from mmbalance.attribution.tokens import find_embedding_layers, integer_modalities, resolve_pad_id
from mmbalance.errors import EstimatorError, UsageError
from mmbalance.models import ModelAdapter


class Text(nn.Module):
    def __init__(self, twice: bool = False) -> None:
        super().__init__()
        self.enc = nn.ModuleDict({"words": nn.Embedding(10, 4), "pos": nn.Embedding(5, 4)})
        self.other = nn.Embedding(10, 4)
        self.twice = twice
        self.fc = nn.Linear(4, 2)

    def forward(self, text, extra):
        pos = torch.arange(text.shape[1])[None].expand_as(text)
        h = self.enc["words"](text.reshape(-1, text.shape[1])) + self.enc["pos"](pos)
        if self.twice:
            h = h + self.other(text)
        return self.fc(h.mean(1)) + extra.sum(1, keepdim=True)


IDS = {"text": torch.tensor([[1, 2, 3], [4, 5, 0]]), "extra": torch.randn(2, 2)}


def test_the_one_embedding_receiving_the_ids_is_found_even_through_a_reshape():
    adapter = ModelAdapter(Text(), ["text", "extra"])
    assert integer_modalities(IDS, ["text", "extra"]) == ("text",)
    assert find_embedding_layers(adapter, IDS, ["text"]) == {"text": "enc.words"}
    assert find_embedding_layers(adapter, IDS, ["text"], {"text": "other"}) == {"text": "other"}


def test_two_embeddings_on_the_same_ids_must_be_named():
    adapter = ModelAdapter(Text(twice=True), ["text", "extra"])
    with pytest.raises(EstimatorError, match="enc.words, other"):
        find_embedding_layers(adapter, IDS, ["text"])


def test_pad_id_default_comes_from_the_config():
    model = Text()
    assert resolve_pad_id(model, None) == 0
    model.config = type("Cfg", (), {"pad_token_id": 7})()
    assert resolve_pad_id(ModelAdapter(model, ["text", "extra"]), None) == 7
    assert resolve_pad_id(model, 2) == 2
    with pytest.raises(UsageError):
        resolve_pad_id(model, -1)


def test_input_level_mixes_inputs_and_token_embeddings_with_pad_references():
    torch.manual_seed(0)
    adapter = ModelAdapter(Text(), ["text", "extra"]).eval()
    space = plan_space(adapter, "input", IDS, None, pad_id=0)
    tensors, forward, refs, logits = space.prepare(adapter, {"text": IDS["text"], "extra": IDS["extra"]}, {}, None)
    words = adapter.model.enc["words"]
    torch.testing.assert_close(tensors["text"], words(IDS["text"]))
    assert tensors["extra"] is not None and torch.equal(tensors["extra"], IDS["extra"])
    torch.testing.assert_close(refs["text"], words(torch.zeros_like(IDS["text"])))
    torch.testing.assert_close(forward(tensors), logits)
    with pytest.raises(UsageError, match="token-id"):
        plan_space(adapter, "input", IDS, {"extra": "fc"})
