"""Hugging Face models saved with ``save_pretrained``: ``--model hf:path/to/saved_dir``.

The directory's ``config.json`` names the model class in ``architectures`` (for example
``ViltForQuestionAnswering``); that class is loaded from the directory with
``local_files_only=True``, so nothing is downloaded. Inputs are named as the model's
``forward`` names them (``input_ids``, ``pixel_values``, ...): the dataset's inputs that are
``forward`` parameters are the modalities, and known masks (``attention_mask``,
``token_type_ids``, ``pixel_mask``) present in the dataset are passed through unless
``--pass-through`` says otherwise. ``transformers`` is an optional extra
(``pip install mmbalance[hf]``).

A saved directory is untrusted input: it is loaded with ``trust_remote_code=False`` (Python code
the directory ships, named by ``auto_map``, is never run and stdin is never read for a prompt)
unless :func:`remote_code_trusted` (``--trust-remote-code``) allows it; ``architectures`` must
name a ``transformers`` model class (not an Auto class, a pipeline or a Trainer); and every
shard a sharded index names must lie inside the directory.

Example: ``mmbalance audit --model hf:runs/vilt --data vqa.pt --method ig,ablation``.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import io
import json
import os
import sys
from pathlib import Path
from typing import Any, Iterator, Sequence

from torch import nn

from ..errors import ModelError
from ._registry import one_line

__all__ = ["HF_PREFIX", "KNOWN_PASS_THROUGH", "is_hf_spec", "load_hf_model", "hf_modalities",
           "default_pass_through", "remote_code_trusted"]

HF_PREFIX = "hf:"
#: auxiliary inputs of Hugging Face models passed through (never attributed) by default
KNOWN_PASS_THROUGH = ("attention_mask", "token_type_ids", "pixel_mask", "position_ids", "image_attention_mask")


_REMOTE_CODE: contextvars.ContextVar[bool] = contextvars.ContextVar("mmbalance_trust_remote_code", default=False)
_INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_REMOTE_HINT = ("pass --trust-remote-code only if you trust that directory: it runs the Python files it ships; "
                "otherwise save the model with a transformers class (model.save_pretrained)")


@contextlib.contextmanager
def remote_code_trusted(allowed: bool = True) -> Iterator[None]:
    """Within the block, ``hf:DIR`` may run Python code its ``config.json`` names (``auto_map``).

    Off by default; the CLI's ``--trust-remote-code``. Only for directories you trust.

    Example:
        >>> with remote_code_trusted():  # doctest: +SKIP
        ...     model = load_hf_model("hf:runs/custom-model")
    """
    token = _REMOTE_CODE.set(bool(allowed))
    try:
        yield
    finally:
        _REMOTE_CODE.reset(token)


@contextlib.contextmanager
def _no_prompt() -> Iterator[None]:
    """No prompt can read stdin or print on stdout (``--json`` output stays JSON) while transformers loads."""
    old_in = sys.stdin
    sys.stdin = io.StringIO()
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdin = old_in


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
    trusted = _REMOTE_CODE.get()
    transformers = _transformers()
    try:
        with _no_prompt():
            config = transformers.AutoConfig.from_pretrained(str(path), local_files_only=True,
                                                             trust_remote_code=trusted)
    except Exception as err:  # noqa: BLE001 - transformers raises many kinds for bad configs
        if not trusted and "auto_map" in _raw_config(path):
            raise ModelError(f"{spec!r}: its config.json asks to run Python code from {path} (auto_map); "
                             "refused", hint=_REMOTE_HINT) from None
        raise ModelError(f"{spec!r}: cannot read its config: {one_line(err)}") from None
    names = list(getattr(config, "architectures", None) or [])
    if not names:
        raise ModelError(f"{spec!r}: config.json names no architecture",
                         hint="save the model itself (e.g. ViltForQuestionAnswering) with save_pretrained")
    name = str(names[0])
    auto_map = _raw_config(path).get("auto_map")
    if trusted and isinstance(auto_map, dict) and getattr(transformers, name, None) is None:
        for auto_name, ref in auto_map.items():
            ref = ref[0] if isinstance(ref, (list, tuple)) and ref else ref
            auto_cls = getattr(transformers, str(auto_name), None)
            if isinstance(ref, str) and ref.split(".")[-1] == name and auto_cls is not None \
                    and str(auto_name).startswith("AutoModel"):
                return auto_cls, path
    cls = getattr(transformers, name, None)
    if cls is None:
        remote = isinstance(auto_map, dict) and not trusted
        raise ModelError(f"{spec!r}: transformers {transformers.__version__} has no model class {_shown(name)}"
                         + (" (it names code shipped in the directory, auto_map)" if remote else ""),
                         hint=_REMOTE_HINT if remote else "install the transformers version the model was saved with")
    if not (inspect.isclass(cls) and issubclass(cls, transformers.PreTrainedModel)):
        raise ModelError(f"{spec!r}: config.json's architectures names {_shown(name)}, which is not a "
                         "transformers model class (an Auto class, a pipeline or a Trainer cannot be loaded)",
                         hint="name the model class itself, e.g. ViltForQuestionAnswering, as save_pretrained does")
    _check_shards(spec, path)
    return cls, path


def _shown(text: str) -> str:
    """A name from a file, printable and short, for a one-line message."""
    return text.encode("unicode_escape").decode("ascii")[:120]


def _raw_config(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _check_shards(spec: str, path: Path) -> None:
    """Every file a sharded index names is a plain name inside ``path`` (no ``..``, no absolute paths)."""
    for index_name in _INDEX_FILES:
        index = path / index_name
        if not index.exists():
            continue
        try:
            doc = json.loads(index.read_text(encoding="utf-8"))
            weight_map = doc["weight_map"]
            shards = set(weight_map.values())
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            raise ModelError(f"{spec!r}: {index_name} is not a readable shard index",
                             hint="save the model again with save_pretrained") from None
        for shard in shards:
            text = str(shard)
            parts = Path(text).parts
            inside = os.path.normpath(os.path.join(str(path), text))
            if (not isinstance(shard, str) or not text or os.path.isabs(text) or ".." in parts
                    or os.path.dirname(inside) != os.path.normpath(str(path))):
                raise ModelError(f"{spec!r}: {index_name} names the shard {_shown(text)!r} outside {path}",
                                 hint="a shard index may only name files in the model directory; "
                                      "save the model again with save_pretrained")


def load_hf_model(spec: str) -> nn.Module:
    """The model saved in ``hf:DIR``, of the class its config names, in eval mode; never downloads."""
    cls, path = _class_and_path(spec)
    _transformers().utils.logging.disable_progress_bar()
    try:
        with _no_prompt():
            model = cls.from_pretrained(str(path), local_files_only=True, trust_remote_code=_REMOTE_CODE.get())
    except ModelError:
        raise
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
