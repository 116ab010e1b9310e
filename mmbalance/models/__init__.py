"""Models: a timm-style registry, built-in audio-visual architectures, plug-ins and checkpoints.

Example:
    >>> from mmbalance.models import list_models, load_model
    >>> "av-tiny" in list_models()
    True
    >>> model = load_model("av-tiny", num_classes=10)   # a ModelAdapter in eval mode
    >>> model.modalities
    ('audio', 'visual')
"""

from __future__ import annotations

from ._builder import create_model, load_model, parse_model_args, requires_code, resolve_factory
from ._registry import (
    ModelInfo,
    is_model,
    list_model_info,
    list_models,
    model_entrypoint,
    model_source,
    register_model,
)
from .adapter import ModelAdapter, check_modalities
from .checkpoint import CheckpointKeys, load_checkpoint, load_state_dict, save_state_dict, unwrap_model
from .fusion import FUSIONS, FusionModel

# Importing the families registers their factories.
from . import av_resnet18, av_small, av_tiny, ensemble, late_fusion, unimodal  # noqa: E402,F401  isort: skip

__all__ = [
    "register_model",
    "list_models",
    "list_model_info",
    "is_model",
    "model_entrypoint",
    "model_source",
    "ModelInfo",
    "resolve_factory",
    "requires_code",
    "create_model",
    "parse_model_args",
    "load_model",
    "ModelAdapter",
    "check_modalities",
    "FusionModel",
    "FUSIONS",
    "load_state_dict",
    "load_checkpoint",
    "save_state_dict",
    "unwrap_model",
    "CheckpointKeys",
]
