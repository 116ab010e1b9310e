"""Which model a run builds: the configured one, ``unimodal`` (``--unimodal M``) or ``late-fusion``.

``late-fusion`` is a plug-in's warm start: ``--init`` with ``--embedding-layer`` fuses the
plug-in's encoder modules under a concat head (:mod:`mmbalance.models.late_fusion`), since the
plug-in's own fusion layers cannot start as the sum of the unimodal runs' logits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import TrainConfig

__all__ = ["builds_plugin_late_fusion", "materialize", "own_embedding_layers", "unimodal_spec"]


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
    if builds_plugin_late_fusion(config):
        from ...models.warm import init_dims

        assert config.init is not None and config.embedding_layers is not None
        return "late-fusion", {"base": config.model, "base_args": dict(config.model_args),
                               "layers": dict(config.embedding_layers), "dims": init_dims(config.init)}
    if config.unimodal is None:
        return config.model, dict(config.model_args)
    args: dict[str, Any] = {"base": config.model, "modality": config.unimodal, "base_args": dict(config.model_args)}
    layer = (config.embedding_layers or {}).get(config.unimodal)
    if layer:  # a plug-in: the module that encodes this modality (--embedding-layer)
        args["layer"] = layer
    return "unimodal", args


def builds_plugin_late_fusion(config: "TrainConfig") -> bool:
    """Whether the run is a plug-in's warm start (``--init`` with ``--embedding-layer``): a ``late-fusion`` model."""
    return bool(config.init) and bool(config.embedding_layers) and config.unimodal is None


def own_embedding_layers(config: "TrainConfig") -> dict[str, str] | None:
    """``--embedding-layer`` of the model the run builds: ``None`` for ``unimodal`` and ``late-fusion``.

    Those are built-in wrappers with ``encode``/``fuse``; the plug-in's layer names were used to build them.
    """
    return None if config.unimodal or builds_plugin_late_fusion(config) else config.embedding_layers
