"""Registry, spec strings, factories, entry points and --model-arg parsing."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import toy_plugins  # noqa: E402

from mmbalance.errors import ModelError, UsageError  # noqa: E402
from mmbalance.models import (  # noqa: E402
    _registry,
    create_model,
    is_model,
    list_model_info,
    list_models,
    model_entrypoint,
    model_source,
    parse_model_args,
    register_model,
)


@pytest.fixture
def clean_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made in a test vanish after it."""
    monkeypatch.setattr(_registry, "_model_entrypoints", dict(_registry._model_entrypoints))
    monkeypatch.setattr(_registry, "_model_sources", dict(_registry._model_sources))


def test_builtins_are_listed_with_source_and_description() -> None:
    infos = {i.name: i for i in list_model_info()}
    for name in ("av-tiny", "av-resnet18"):
        assert name in list_models()
        assert is_model(name)
        assert infos[name].source == "builtin"
        assert infos[name].description
        assert model_source(name) == "builtin"


def test_list_models_pattern() -> None:
    assert list_models("av-t*") == ["av-tiny"]
    assert list_models("RESNET") == ["av-resnet18"]  # no wildcard: case-insensitive substring
    assert list_models("zzz*") == []


def test_register_model_bare_and_named(clean_registry: None) -> None:
    @register_model
    def my_toy_net(num_classes: int) -> nn.Module:
        """Bare registration."""
        return nn.Linear(2, num_classes)

    @register_model("named-toy")
    def whatever(num_classes: int) -> nn.Module:
        return nn.Linear(2, num_classes)

    assert is_model("my-toy-net") and is_model("named-toy")
    assert model_source("my-toy-net") == "registered"
    assert model_entrypoint("named-toy") is whatever
    assert create_model("my-toy-net", num_classes=4).out_features == 4


def test_registering_a_name_again_warns(clean_registry: None) -> None:
    register_model("dup-toy")(toy_plugins.build_positional)
    register_model("dup-toy")(toy_plugins.build_positional)  # same factory (a re-import): silent
    with pytest.warns(UserWarning, match="'dup-toy' is registered again"):
        register_model("dup-toy")(toy_plugins.build_keyword)
    assert model_entrypoint("dup-toy") is toy_plugins.build_keyword


def test_invalid_registered_name(clean_registry: None) -> None:
    with pytest.raises(ModelError, match="invalid model name"):
        register_model("pkg:factory")(toy_plugins.build_positional)


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(ModelError) as info:
        create_model("av-tiy", num_classes=2)
    assert "'av-tiny'" in str(info.value)
    assert "mmbalance models" in str(info.value)


def test_module_factory_spec_with_json_model_args() -> None:
    model = create_model("toy_plugins:build_positional", num_classes=4, model_args=parse_model_args(["scale=2.5"]))
    assert isinstance(model, toy_plugins.PositionalNet)
    assert model.scale == 2.5
    assert model.fa.out_features == 4


def test_model_args_num_classes_wins_over_dataset() -> None:
    model = create_model("toy_plugins:build_positional", num_classes=4, model_args={"num_classes": 6})
    assert model.fa.out_features == 6


def test_num_classes_only_passed_when_the_factory_takes_it() -> None:
    model = create_model("toy_plugins:build_no_classes", num_classes=3)
    assert model.fa.out_features == 7


def test_missing_num_classes_says_how_to_give_it() -> None:
    with pytest.raises(ModelError) as info:
        create_model("av-tiny")
    assert "num_classes" in str(info.value)
    assert "--model-arg" in str(info.value)


def test_class_as_factory_with_dotted_attribute() -> None:
    model = create_model("toy_plugins:AVClassifier", num_classes=5)
    assert isinstance(model, toy_plugins.AVClassifier)


def test_file_spec_loads_file_and_its_sibling_imports(tmp_path: Path) -> None:
    (tmp_path / "sibling_helpers_for_mmb.py").write_text("WIDTH = 6\n")
    path = tmp_path / "my_models.py"
    path.write_text(textwrap.dedent('''
        from torch import nn
        from sibling_helpers_for_mmb import WIDTH

        class FileNet(nn.Sequential):
            pass

        def build(num_classes, hidden=WIDTH):
            """A file plug-in."""
            return FileNet(nn.Linear(4, hidden), nn.Linear(hidden, num_classes))
    '''))
    model = create_model(f"{path}:build", num_classes=3)
    assert model[0].out_features == 6 and model[1].out_features == 3
    module_name = type(model).__module__
    assert module_name.startswith("mmbalance_plugin_my_models_")
    assert sys.modules[module_name].build is not None  # registered, so pickling/dataclasses work
    again = create_model(f"{path}:build", num_classes=3)
    assert type(again) is type(model)  # the file is executed once
    assert str(tmp_path) not in sys.path  # its directory was on sys.path only while importing


def test_file_spec_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="model file not found"):
        create_model(f"{tmp_path / 'nope.py'}:build", num_classes=2)
    path = tmp_path / "defs.py"
    path.write_text("def build_a(num_classes):\n    pass\n\ndef build_b(num_classes):\n    pass\n")
    with pytest.raises(ModelError) as info:
        create_model(f"{path}:build", num_classes=2)
    assert "no attribute 'build'" in str(info.value) and "build_a, build_b" in str(info.value)
    with pytest.raises(ModelError, match="names a file but no factory"):
        create_model(str(path), num_classes=2)


def test_file_with_failing_import_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text("import mmb_missing_package_xyz\n\ndef build(num_classes):\n    pass\n")
    with pytest.raises(ModelError) as info:
        create_model(f"{path}:build", num_classes=2)
    message = str(info.value)
    assert "ModuleNotFoundError: No module named 'mmb_missing_package_xyz'" in message
    assert "\n" not in message


def test_module_spec_failing_import() -> None:
    with pytest.raises(ModelError) as info:
        create_model("mmb_missing_package_xyz.models:build", num_classes=2)
    assert "cannot import module 'mmb_missing_package_xyz.models'" in str(info.value)
    assert "No module named 'mmb_missing_package_xyz'" in str(info.value)


def test_module_spec_found_in_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mmb_cwd_models.py").write_text("from torch import nn\n\ndef build(num_classes):\n"
                                                "    return nn.Linear(2, num_classes)\n")
    (tmp_path / "mmb_cwd_broken.py").write_text("raise ValueError('bad config')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert create_model("mmb_cwd_models:build", num_classes=3).out_features == 3
    assert str(tmp_path) not in sys.path
    with pytest.raises(ModelError, match="ValueError: bad config"):
        create_model("mmb_cwd_broken:build", num_classes=3)


def test_factory_raising_is_wrapped_in_one_line() -> None:
    with pytest.raises(ModelError) as info:
        create_model("toy_plugins:build_raises", num_classes=2)
    assert "ValueError: weights folder is missing" in str(info.value)
    assert "second line" not in str(info.value)


def test_factory_not_returning_a_module() -> None:
    with pytest.raises(ModelError, match="returned a dict, not a torch.nn.Module"):
        create_model("toy_plugins:build_not_module", num_classes=2)


def test_unknown_kwarg_lists_accepted_parameters() -> None:
    with pytest.raises(ModelError) as info:
        create_model("av-tiny", num_classes=2, model_args={"depth": 3})
    message = str(info.value)
    assert "depth" in message
    assert "num_classes" in message and "fusion='concat'" in message and "embedding_dim=32" in message


def test_type_error_inside_a_kwargs_factory_lists_parameters() -> None:
    with pytest.raises(ModelError) as info:
        create_model("toy_plugins:build_kwargs_forwarder", model_args={"depth": 3})
    assert "unexpected keyword argument 'depth'" in str(info.value)
    assert "**kwargs" in str(info.value)


def test_unknown_fusion_lists_choices() -> None:
    with pytest.raises(ModelError) as info:
        create_model("av-tiny", num_classes=2, model_args={"fusion": "attention"})
    assert "concat, sum, film, gated" in str(info.value)


# -- entry points: a real dist-info directory on sys.path ------------------------------------


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "mmb_toy_ep_pkg.py").write_text(textwrap.dedent('''
        from torch import nn

        def build(num_classes, width=5):
            """Entry-point toy model.

            More text.
            """
            return nn.Linear(width, num_classes)
    '''))
    dist = tmp_path / "mmb_toy_ep_pkg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mmb-toy-ep-pkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[mmbalance.models]\n"
        "toy-ep = mmb_toy_ep_pkg:build\n"
        "broken-ep = mmb_toy_ep_missing_module:build\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_entry_point_plugin_is_listed_and_built(installed_plugin: Path) -> None:
    assert "toy-ep" in list_models()
    assert is_model("toy-ep")
    assert model_source("toy-ep") == "entry-point"
    info = {i.name: i for i in list_model_info("*-ep")}
    assert info["toy-ep"].source == "entry-point"
    assert info["toy-ep"].description == "Entry-point toy model."
    assert info["toy-ep"].target == "mmb_toy_ep_pkg:build"
    assert "cannot load" in info["broken-ep"].description
    model = create_model("toy-ep", num_classes=3, model_args={"width": 2})
    assert (model.in_features, model.out_features) == (2, 3)


def test_broken_entry_point_fails_with_one_line(installed_plugin: Path) -> None:
    with pytest.raises(ModelError) as info:
        create_model("broken-ep", num_classes=3)
    message = str(info.value)
    assert "broken-ep" in message and "No module named 'mmb_toy_ep_missing_module'" in message


def test_entry_points_are_not_listed_once_uninstalled() -> None:
    assert "toy-ep" not in list_models()


# -- --model-arg parsing ---------------------------------------------------------------------


def test_parse_model_args_values() -> None:
    args = parse_model_args(["fusion=sum", "embedding_dim=64", "p=0.5", "flag=true", "none=null",
                             "dims=[1, 2]", "cfg={\"a\": 1}", "text=a=b", "empty="])
    assert args == {"fusion": "sum", "embedding_dim": 64, "p": 0.5, "flag": True, "none": None,
                    "dims": [1, 2], "cfg": {"a": 1}, "text": "a=b", "empty": ""}
    assert parse_model_args(None) == {} and parse_model_args([]) == {}


@pytest.mark.parametrize("item", ["fusion", "=sum", "two words=1", "1x=2"])
def test_parse_model_args_malformed(item: str) -> None:
    with pytest.raises(UsageError, match="malformed --model-arg"):
        parse_model_args([item])


def test_parse_model_args_duplicate() -> None:
    with pytest.raises(UsageError, match="given twice"):
        parse_model_args(["a=1", "a=2"])


def test_created_models_run() -> None:
    model = create_model("toy_plugins:build_positional", num_classes=2)
    batch = toy_plugins.toy_inputs()
    assert model(batch["audio"], batch["visual"]).shape == (2, 2)
    assert torch.isfinite(model(batch["audio"], batch["visual"])).all()
