"""ModelAdapter: call styles, output selection, error messages, embeddings; load_model."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import toy_plugins  # noqa: E402
from toy_plugins import AVClassifier, DictNet, KeywordNet, PositionalNet, toy_inputs  # noqa: E402

from mmbalance.errors import EstimatorError, ModelError, UsageError  # noqa: E402
from mmbalance.models import (  # noqa: E402
    ModelAdapter,
    check_modalities,
    create_model,
    load_model,
    save_state_dict,
)

MODS = ["audio", "visual"]


def test_positional_call_in_modality_order() -> None:
    net = PositionalNet(3)
    adapter = ModelAdapter(net, MODS)
    assert adapter.call_style == "positional"
    x = toy_inputs()
    torch.testing.assert_close(adapter(x), net(x["audio"], x["visual"]))


def test_keyword_call_maps_by_name() -> None:
    net = KeywordNet(3)  # forward(visual, audio)
    adapter = ModelAdapter(net, MODS)
    assert adapter.call_style == "keyword"
    x = toy_inputs()
    torch.testing.assert_close(adapter(x), net(visual=x["visual"], audio=x["audio"]))
    # Order of modalities does not matter for keyword calls.
    torch.testing.assert_close(ModelAdapter(net, ["visual", "audio"])(x), adapter(x))


def test_forward_runtime_error_is_one_line_with_shapes() -> None:
    adapter = ModelAdapter(KeywordNet(3), MODS, call="positional")  # audio goes where visual should
    with pytest.raises(ModelError) as info:
        adapter(toy_inputs())
    message = str(info.value)
    assert message.startswith("model forward failed on inputs {audio: (2, 1, 4, 4), visual: (2, 3, 2, 4, 4)}")
    assert "RuntimeError" in message and "--modalities" in message and "\n" not in message


def test_ogm_ge_avclassifier_tuple_output_defaults_to_last() -> None:
    net = AVClassifier(4)
    adapter = ModelAdapter(net, MODS)
    x = toy_inputs()
    torch.testing.assert_close(adapter(x), net(x["audio"], x["visual"])[2])
    assert adapter(x).shape == (2, 4)
    assert adapter.num_classes == 4  # seen in the output


def test_tuple_output_index() -> None:
    x = toy_inputs()
    assert ModelAdapter(AVClassifier(4), MODS, output=0)(x).shape == (2, 8)
    assert ModelAdapter(AVClassifier(4), MODS, output="-1")(x).shape == (2, 4)


@pytest.mark.parametrize("output,match", [(3, "out of range"), ("logits", "not an index")])
def test_tuple_output_bad_index(output: object, match: str) -> None:
    with pytest.raises(ModelError, match=match) as info:
        ModelAdapter(AVClassifier(4), MODS, output=output)(toy_inputs())  # type: ignore[arg-type]
    assert "--output" in str(info.value) and "tuple of 3" in str(info.value)


def test_dict_output_logits_key_by_default() -> None:
    net = DictNet(3)
    x = toy_inputs()
    torch.testing.assert_close(ModelAdapter(net, MODS)(x), net(x["audio"], x["visual"])["logits"])


def test_dict_output_custom_key() -> None:
    net = DictNet(3, key="scores")
    with pytest.raises(ModelError) as info:
        ModelAdapter(net, MODS)(toy_inputs())
    assert "without a 'logits' key" in str(info.value)
    assert "--output" in str(info.value) and "embedding, scores" in str(info.value)
    assert ModelAdapter(net, MODS, output="scores")(toy_inputs()).shape == (2, 3)
    with pytest.raises(ModelError, match="no key 'nope'"):
        ModelAdapter(net, MODS, output="nope")(toy_inputs())


class _Returns(nn.Module):
    def __init__(self, value: object) -> None:
        super().__init__()
        self.value = value

    def forward(self, audio: Tensor, visual: Tensor) -> object:
        return self.value(audio) if callable(self.value) else self.value


@pytest.mark.parametrize("value,match", [
    (lambda a: a.flatten(1).sum(1), r"shape \(2,\); logits must be 2-D"),
    (lambda a: a, r"shape \(2, 1, 4, 4\); logits must be 2-D"),
    ("hello", "returned a str, not logits"),
    (lambda a: (a.flatten(1), "x"), "element -1 of a tuple of 2 .* is a str"),
    (lambda a: torch.zeros(3, 2), r"logits of shape \(3, 2\) for a batch of 2"),
])
def test_bad_outputs_name_what_came_back(value: object, match: str) -> None:
    with pytest.raises(ModelError, match=match) as info:
        ModelAdapter(_Returns(value), MODS)(toy_inputs())
    assert "--output" in str(info.value)


def test_output_for_a_plain_tensor_is_refused() -> None:
    with pytest.raises(ModelError, match="single tensor"):
        ModelAdapter(PositionalNet(3), MODS, output=1)(toy_inputs())


def test_object_with_logits_attribute() -> None:
    class Out:
        def __init__(self, logits: Tensor) -> None:
            self.logits = logits

    assert ModelAdapter(_Returns(lambda a: Out(a.flatten(1))), MODS)(toy_inputs()).shape == (2, 16)


def test_missing_input_modality() -> None:
    with pytest.raises(ModelError, match="inputs lack modality visual"):
        ModelAdapter(PositionalNet(3), MODS)({"audio": torch.zeros(2, 1, 4, 4)})


def test_positional_arity_checked_up_front() -> None:
    class One(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return x

    with pytest.raises(ModelError, match="takes 1 positional input"):
        ModelAdapter(One(), MODS)
    with pytest.raises(ModelError, match="needs 2 inputs"):
        ModelAdapter(PositionalNet(3), ["audio"])


def test_keyword_call_with_unknown_names() -> None:
    with pytest.raises(ModelError, match="no parameter named sound"):
        ModelAdapter(KeywordNet(3), ["sound", "visual"], call="keyword")


@pytest.mark.parametrize("kwargs", [{"call": "magic"}, {"output": 1.5}])
def test_bad_options(kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        ModelAdapter(PositionalNet(3), MODS, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="repeat"):
        ModelAdapter(PositionalNet(3), ["audio", "audio"])


def test_embeddings_for_builtins() -> None:
    model = create_model("av-tiny", num_classes=3).eval()
    adapter = ModelAdapter(model, MODS)
    assert adapter.has_embeddings and adapter.has_branch_logits
    x = {"audio": torch.randn(2, 1, 8, 8), "visual": torch.randn(2, 3, 2, 8, 8)}
    emb = adapter.encode(x)
    torch.testing.assert_close(adapter.fuse(emb), adapter(x))
    parts = adapter.branch_logits(emb)
    torch.testing.assert_close(parts["audio"] + parts["visual"], adapter(x))
    assert adapter.num_classes == 3


def test_no_branch_logits_for_film() -> None:
    adapter = ModelAdapter(create_model("av-tiny", num_classes=3, model_args={"fusion": "film"}), MODS)
    assert adapter.has_embeddings and not adapter.has_branch_logits
    emb = adapter.encode({"audio": torch.randn(2, 1, 8, 8), "visual": torch.randn(2, 3, 2, 8, 8)})
    with pytest.raises(EstimatorError, match="FiLMFusion does not split"):
        adapter.branch_logits(emb)


def test_no_embeddings_for_third_party_models() -> None:
    adapter = ModelAdapter(AVClassifier(3), MODS)
    assert not adapter.has_embeddings and not adapter.has_branch_logits
    with pytest.raises(EstimatorError, match="exposes no per-modality embeddings"):
        adapter.encode(toy_inputs())
    with pytest.raises(EstimatorError):
        adapter.branch_logits({})


def test_check_modalities() -> None:
    builtin = ModelAdapter(create_model("av-tiny", num_classes=2), MODS)
    check_modalities(builtin, ["visual", "audio", "text"])
    with pytest.raises(ModelError, match="needs modality visual that the dataset lacks"):
        check_modalities(builtin, ["audio", "text"])
    with pytest.raises(ModelError, match="does not take modality text; it takes audio, visual"):
        check_modalities(ModelAdapter(create_model("av-tiny", num_classes=2), ["audio", "text"], call="positional"),
                         ["audio", "text"])
    keyword = ModelAdapter(KeywordNet(2), MODS)
    check_modalities(keyword, MODS)


# -- load_model --------------------------------------------------------------------------------


def test_load_model_builtin_defaults() -> None:
    adapter = load_model("av-tiny", num_classes=3, model_args={"fusion": "sum"})
    assert isinstance(adapter, ModelAdapter)
    assert adapter.modalities == ("audio", "visual") and not adapter.training
    assert adapter.num_classes == 3
    assert next(adapter.parameters()).device.type == "cpu"


def test_load_model_builtin_rejects_data_without_its_modalities() -> None:
    with pytest.raises(ModelError, match="lacks"):
        load_model("av-tiny", num_classes=3, modalities=["audio", "text"])


def test_load_model_plugin_needs_modalities() -> None:
    with pytest.raises(ModelError, match="--modalities"):
        load_model("toy_plugins:build_avclassifier", num_classes=3)
    adapter = load_model("toy_plugins:build_avclassifier", num_classes=3, modalities=MODS)
    assert adapter(toy_inputs()).shape == (2, 3)


def test_load_model_with_checkpoint(tmp_path: Path) -> None:
    trained = create_model("toy_plugins:build_avclassifier", num_classes=3)
    path = tmp_path / "w.safetensors"
    save_state_dict(ModelAdapter(trained, MODS), path)  # saving unwraps the adapter
    adapter = load_model("toy_plugins:build_avclassifier", num_classes=3, modalities=MODS, checkpoint=path)
    x = toy_inputs()
    torch.testing.assert_close(adapter(x), trained(x["audio"], x["visual"])[2])
    assert isinstance(adapter.model, toy_plugins.AVClassifier)
