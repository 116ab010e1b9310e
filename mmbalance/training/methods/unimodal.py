"""Which model a run builds: the configured one, or (``--unimodal M``) the registered ``unimodal`` model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import TrainConfig

__all__ = ["unimodal_spec"]


def unimodal_spec(config: "TrainConfig") -> tuple[str, dict[str, Any]]:
    """The model spec and arguments a run builds: ``config.model`` or, with ``--unimodal``, ``unimodal``.

    Example:
        >>> from mmbalance.training import TrainConfig
        >>> unimodal_spec(TrainConfig(model="av-tiny", data="d", out="o", unimodal="visual"))
        ('unimodal', {'base': 'av-tiny', 'modality': 'visual', 'base_args': {}})
    """
    if config.unimodal is None:
        return config.model, dict(config.model_args)
    return "unimodal", {"base": config.model, "modality": config.unimodal, "base_args": dict(config.model_args)}
