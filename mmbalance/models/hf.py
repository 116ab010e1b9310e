"""Hugging Face models saved with ``save_pretrained``: ``--model hf:path/to/saved_dir``.

The directory's ``config.json`` names the model class in ``architectures`` (for example
``ViltForQuestionAnswering``); that class is loaded from the directory with
``local_files_only=True``, so nothing is downloaded. Inputs are named as the model's
``forward`` names them (``input_ids``, ``pixel_values``, ...): the dataset's inputs that are
``forward`` parameters are the modalities, and known masks (``attention_mask``,
``token_type_ids``, ``pixel_mask``) present in the dataset are passed through unless
``--pass-through`` says otherwise. ``transformers`` is an optional extra
(``pip install mmbalance[hf]``).

Example: ``mmbalance audit --model hf:runs/vilt --data vqa.pt --method ig,ablation``.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Sequence

from torch import nn

from ..errors import ModelError
from ._registry import one_line

__all__ = ["HF_PREFIX", "KNOWN_PASS_THROUGH", "is_hf_spec", "load_hf_model", "hf_modalities",
           "default_pass_through"]

HF_PREFIX = "hf:"
#: auxiliary inputs of Hugging Face models passed through (never attributed) by default
KNOWN_PASS_THROUGH = ("attention_mask", "token_type_ids", "pixel_mask", "position_ids", "image_attention_mask")


def is_hf_spec(spec: Any) -> bool:
    """Whether ``spec`` is ``hf:path``."""
    return isinstance(spec, str) and spec.strip().startswith(HF_PREFIX)


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise ModelError("hf: models need the transformers package, which is not installed",
                         hint="pip install 'mmbalance[hf]'") from None
    return transformers


def hf_model_class(spec: str) -> Any:
    """The ``transformers`` class that ``hf:DIR``'s config names (nothing else is loaded)."""
    return _class_and_path(spec)[0]


def _class_and_path(spec: str) -> tuple[Any, Path]:
    path = Path(spec.strip()[len(HF_PREFIX):]).expanduser()
    if not str(path) or not path.is_dir():
        raise ModelError(f"{spec!r}: {path} is not a directory", hint="give hf:DIR with a model saved by "
                         "save_pretrained (config.json and the weights)")
    if not (path / "config.json").is_file():
        raise ModelError(f"{spec!r}: {path} has no config.json", hint="save the model with model.save_pretrained(DIR)")
    transformers = _transformers()
    try:
        config = transformers.AutoConfig.from_pretrained(str(path), local_files_only=True)
    except Exception as err:  # noqa: BLE001 - transformers raises many kinds for bad configs
        raise ModelError(f"{spec!r}: cannot read its config: {one_line(err)}") from err
    names = list(getattr(config, "architectures", None) or [])
    if not names:
        raise ModelError(f"{spec!r}: config.json names no architecture",
                         hint="save the model itself (e.g. ViltForQuestionAnswering) with save_pretrained")
    cls = getattr(transformers, names[0], None)
    if cls is None:
        raise ModelError(f"{spec!r}: transformers {transformers.__version__} has no model class {names[0]}",
                         hint="install the transformers version the model was saved with")
    return cls, path


def load_hf_model(spec: str) -> nn.Module:
    """The model saved in ``hf:DIR``, of the class its config names, in eval mode; never downloads."""
    cls, path = _class_and_path(spec)
    _transformers().utils.logging.disable_progress_bar()
    try:
        model = cls.from_pretrained(str(path), local_files_only=True)
    except Exception as err:  # noqa: BLE001
        raise ModelError(f"{spec!r}: loading {cls.__name__} failed: {one_line(err)}") from err
    return model.eval()


def forward_names(model: Any) -> tuple[str, ...]:
    """The named parameters of ``model.forward`` (a model or a model class)."""
    params = inspect.signature(model.forward).parameters.values()
    return tuple(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def hf_modalities(model: nn.Module, available: Sequence[str], pass_through: Sequence[str]) -> tuple[str, ...]:
    """The dataset inputs that are ``forward`` parameters (and not passed through): the modalities."""
    names = forward_names(model)
    chosen = tuple(m for m in available if m in names and m not in pass_through)
    if not chosen:
        raise ModelError(f"{type(model).__name__}.forward takes none of the dataset's inputs "
                         f"({', '.join(available) or 'none'})",
                         hint=f"name the dataset's inputs as forward does: {', '.join(names[:8])}")
    return chosen


def default_pass_through(model: Any, available: Sequence[str]) -> tuple[str, ...]:
    """Known masks that the dataset holds and ``forward`` takes (passed through by default)."""
    names = forward_names(model)
    return tuple(n for n in KNOWN_PASS_THROUGH if n in available and n in names)
