"""Multimodal datasets: the dataset contract, the tensor file format, sources and the synthetic data.

Example:
    >>> from mmbalance.data import load_dataset, iter_batches
    >>> ds = load_dataset("synthetic:av-dominance?n_test=64")
    >>> batch = next(iter_batches(ds, batch_size=16))
    >>> sorted(batch.inputs), tuple(batch.labels.shape), batch.indices[:3].tolist()
    (['audio', 'visual'], (16,), [0, 1, 2])
"""

from __future__ import annotations

from .dataset import (
    Batch,
    MultimodalDataset,
    TensorMultimodalDataset,
    check_tensor_dataset,
    iter_batches,
    make_loader,
    select_modalities,
    validate_batch,
)
from .passthrough import parse_pass_through, with_pass_through
from .sources import (
    SYNTHETIC_PREFIX,
    SourceEntry,
    SourceLoader,
    SourceRequest,
    list_sources,
    load_dataset,
    register_source,
    unregister_source,
)
from .splits import IndexedDataset, dataset_labels, split_dataset, stratified_split
from .synthetic import synthesize_av_dominance, write_synthetic
from .tensor_format import load_tensor_file, read_tensor_file, save_tensor_dataset

__all__ = [
    "Batch",
    "MultimodalDataset",
    "TensorMultimodalDataset",
    "check_tensor_dataset",
    "iter_batches",
    "make_loader",
    "select_modalities",
    "validate_batch",
    "parse_pass_through",
    "with_pass_through",
    "SYNTHETIC_PREFIX",
    "SourceEntry",
    "SourceLoader",
    "SourceRequest",
    "list_sources",
    "load_dataset",
    "register_source",
    "unregister_source",
    "IndexedDataset",
    "dataset_labels",
    "split_dataset",
    "stratified_split",
    "synthesize_av_dominance",
    "write_synthetic",
    "load_tensor_file",
    "read_tensor_file",
    "save_tensor_dataset",
]
