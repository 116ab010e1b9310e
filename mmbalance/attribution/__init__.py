"""Attribution estimators: per-sample modality scores, and shares built from them."""

from .base import (Attribution, Estimator, ForwardFn, get_estimator_class, l1_scores, list_estimators,
                   register_estimator)
from .baselines import BASELINES, Baseline, MeanAccumulator
from .integrated_gradients import IntegratedGradients
from .shares import ShareAccumulator, scores_to_shares

__all__ = [
    "Attribution", "BASELINES", "Baseline", "Estimator", "ForwardFn", "IntegratedGradients", "MeanAccumulator",
    "ShareAccumulator", "get_estimator_class", "l1_scores", "list_estimators", "register_estimator",
    "scores_to_shares",
]
