"""Fit a dataset's inputs to a model: which are pass-through inputs, which are its modalities.

Shared by ``audit`` and ``finetune`` (and ``check``, which runs an audit): split the pass-through
inputs off the dataset before the model is built (``hf:`` models pass their known masks through
by default), then keep only the modalities the built model takes (an ``hf:`` model takes the
dataset inputs its ``forward`` names).

Example:
    >>> import torch
    >>> from mmbalance.data import TensorMultimodalDataset
    >>> ds = TensorMultimodalDataset({"text": torch.zeros(2, 3, dtype=torch.long),
    ...                               "attention_mask": torch.ones(2, 3, dtype=torch.long)}, torch.tensor([0, 1]))
    >>> ds, passed = split_pass_through("my_net.py:build", ds, "attention_mask")
    >>> ds.modalities, passed
    (('text',), ('attention_mask',))
"""

from __future__ import annotations

from typing import Sequence

from ..data import MultimodalDataset, parse_pass_through, with_pass_through
from ..errors import ModelError
from .adapter import ModelAdapter
from .hf import default_pass_through, hf_model_class, is_hf_spec

__all__ = ["fit_to_model", "split_pass_through"]


def split_pass_through(spec: str, dataset: MultimodalDataset, pass_through: str | Sequence[str] | None
                       ) -> tuple[MultimodalDataset, tuple[str, ...]]:
    """``dataset`` with ``pass_through`` moved out of its modalities, and those names.

    ``None`` for an ``hf:`` model means its known masks that the dataset holds and
    ``forward`` takes (``attention_mask``, ``pixel_mask``...); for any other model, none.
    """
    passed = parse_pass_through(pass_through)
    if pass_through is None and is_hf_spec(spec):
        passed = default_pass_through(hf_model_class(spec), (*dataset.modalities, *dataset.extra_names,
                                                             *getattr(dataset, "unused_inputs", {})))
    return with_pass_through(dataset, passed), passed


def fit_to_model(adapter: ModelAdapter, dataset: MultimodalDataset, *, modalities_named: bool = False
                 ) -> MultimodalDataset:
    """``dataset`` restricted to the modalities ``adapter`` takes (an ``hf:`` model takes fewer).

    With ``modalities_named`` (the user listed ``--modalities``) a modality the model does not
    take is a :class:`ModelError` instead.
    """
    if adapter.modalities == dataset.modalities:
        return dataset
    if modalities_named:
        unknown = [m for m in dataset.modalities if m not in adapter.modalities]
        raise ModelError(f"{type(adapter.model).__name__}.forward takes no input named {', '.join(unknown)}",
                         hint="name --modalities as forward names its inputs")
    return with_pass_through(dataset, (), adapter.modalities)
