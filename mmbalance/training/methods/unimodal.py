"""Which model a run builds: the configured one, or (``--unimodal M``) the registered ``unimodal`` model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import TrainConfig

__all__ = ["materialize", "unimodal_spec"]


def materialize(adapter: Any, probe: Any) -> None:
    """Size the lazy layers of ``adapter`` (a plug-in's unimodal classifier) by one forward of ``probe``."""
    from torch.nn.parameter import UninitializedParameter
    if not any(isinstance(p, UninitializedParameter) for p in adapter.parameters()):
        return
    import torch
    was = adapter.training
    adapter.eval()
    with torch.no_grad():
        adapter(probe)
    adapter.train(was)


def unimodal_spec(config: "TrainConfig") -> tuple[str, dict[str, Any]]:
    """The model spec and arguments a run builds: ``config.model`` or, with ``--unimodal``, ``unimodal``.

    Example:
        >>> from mmbalance.training import TrainConfig
        >>> unimodal_spec(TrainConfig(model="av-tiny", data="d", out="o", unimodal="visual"))
        ('unimodal', {'base': 'av-tiny', 'modality': 'visual', 'base_args': {}})
    """
    if config.unimodal is None:
        return config.model, dict(config.model_args)
    args: dict[str, Any] = {"base": config.model, "modality": config.unimodal, "base_args": dict(config.model_args)}
    layer = (config.embedding_layers or {}).get(config.unimodal)
    if layer:  # a plug-in: the module that encodes this modality (--embedding-layer)
        args["layer"] = layer
    return "unimodal", args
