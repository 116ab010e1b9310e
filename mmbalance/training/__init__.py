"""Training and fine-tuning with balancing methods (``mmbalance finetune``).

Example:
    >>> from mmbalance.training import TrainConfig, finetune
    >>> cfg = TrainConfig(model="av-tiny", data="synthetic:av-dominance", out="runs/attr",
    ...                   regularizer="attribution", lambda_=1.0, epochs=3)
    >>> finetune(cfg).best_val_accuracy  # doctest: +SKIP
    0.93
"""

from .config import REGULARIZERS, SCOPES, TrainConfig, parse_target
from .differentiable import (AttributionSpec, attribute, modality_scores, pool_scores, share_penalty,
                             soft_shares)
from .loop import TrainingInterrupted, TrainResult, evaluate, finetune, metrics_csv, seed_everything, zero_modalities
from .penalty import AttributionPenalty, AuxHeads, balance_figures, modality_shares
from .regularizers import Regularizer, build_regularizer, list_regularizers, register_regularizer
from .resume import load_resume
from .stopping import TrainingWarning

__all__ = ["AttributionPenalty", "AuxHeads", "balance_figures", "modality_shares", "AttributionSpec", "REGULARIZERS", "Regularizer", "SCOPES", "TrainConfig", "TrainResult",
           "TrainingInterrupted", "TrainingWarning", "attribute", "build_regularizer", "evaluate", "finetune", "list_regularizers",
           "load_resume", "metrics_csv", "modality_scores", "parse_target", "pool_scores", "register_regularizer",
           "seed_everything", "share_penalty", "soft_shares", "zero_modalities"]
