"""Whether a configuration can be trained, found out before any training (``mmbalance bench``).

:func:`check_trainable` builds what :func:`~mmbalance.training.finetune` builds before its
first step (the data's first samples, the model, its embedding view, the method's checks) and
raises the same one-line :class:`~mmbalance.errors.UsageError` that training would raise,
prefixed with what asked for it. Nothing is trained or written.

Example:
    >>> check_trainable(TrainConfig(model="av-tiny", data="synthetic:av-dominance?n_train=8&n_val=4&n_test=4",
    ...                             out="o", regularizer="gblend"))
"""

from __future__ import annotations

import dataclasses

from ..data import iter_batches, load_dataset
from ..errors import MMBalanceError
from ..models import load_model
from ..models.binding import fit_to_model, split_pass_through
from ..models.warm import warm_target
from .config import TrainConfig
from .embeddings import find_tokens, training_view
from .methods import builds_plugin_late_fusion, materialize, own_embedding_layers, unimodal_spec
from .regularizers import build_regularizer

__all__ = ["check_trainable"]


def check_trainable(config: TrainConfig, *, what: str | None = None) -> None:
    """Raise the error training ``config`` would raise before its first step (``what``: who asks, for the message)."""
    try:
        warm = bool(config.init)
        plugin_warm = builds_plugin_late_fusion(config)
        if warm:  # the unimodal runs may not exist yet: check the model they will be merged into
            config.validate()
            config = dataclasses.replace(config, init=None, init_calibrate=False)
        wanted = [config.unimodal] if config.unimodal else config.modalities
        data = load_dataset(config.data, split=config.train_split, modalities=wanted, default_split=config.train_split)
        data, passed = split_pass_through(config.model, data, config.pass_through)
        name, args = unimodal_spec(config)
        adapter = load_model(name, checkpoint=config.checkpoint, trust_checkpoint=config.trust_checkpoint,
                             model_args=args, num_classes=data.num_classes, modalities=data.modalities,
                             output=config.output, device="cpu", call=config.call, pass_through=passed)
        if warm and not plugin_warm:
            warm_target(adapter.model)
        data = fit_to_model(adapter, data, modalities_named=wanted is not None)
        config.validate(tuple(data.modalities))
        regularizer = build_regularizer(config, tuple(data.modalities))
        probe = next(iter_batches(data, batch_size=min(2, len(data))))
        inputs = {**probe.inputs, **probe.extra}
        materialize(adapter, inputs)
        layers = own_embedding_layers(config)
        regularizer.tokens = find_tokens(adapter, inputs, layers, config.pad_id)
        regularizer.check(adapter, training_view(adapter, layers, tokens=regularizer.tokens,
                                                 needed_by=regularizer.needs_embeddings()), probe=inputs)
    except MMBalanceError as err:
        if not what:
            raise
        raise type(err)(f"{what}: {err.message}", hint=err.hint) from None

