"""Attribution estimators: per-sample modality scores, and shares built from them.

Estimators (``--method``): ``ig`` (:class:`IntegratedGradients`), ``gradxinput``
(:class:`GradientXInput`), ``ablation`` (:class:`Ablation`), ``shapley``
(:class:`ShapleyValues`), ``permutation`` (:class:`PermutationScore`) and ``branch``
(:class:`BranchLogits`). See ``docs/estimators.md`` for what each one measures.

Example:
    >>> list_estimators()
    ['ablation', 'branch', 'gradxinput', 'ig', 'permutation', 'shapley']
"""

from .agreement import AgreementAccumulator
from .base import (Attribution, Estimator, ForwardFn, get_estimator_class, l1_scores, list_estimators,
                   register_estimator)
from .baselines import BASELINES, Baseline, MeanAccumulator, gaussian_blur
from .branch import BranchLogits
from .gradxinput import GradientXInput
from .hooks import EmbeddingView, EncodeFuseView, HookView, embedding_view, parse_embedding_layers
from .integrated_gradients import IntegratedGradients
from .per_sample import PerSampleWriter
from .perturbation import Ablation, PermutationScore, ShapleyValues, derangement, forward_variants
from .shares import ExtraAccumulator, ShareAccumulator, poisson_weights, scores_to_shares

__all__ = [
    "Ablation", "AgreementAccumulator", "Attribution", "BASELINES", "Baseline", "BranchLogits", "EmbeddingView",
    "EncodeFuseView", "Estimator", "ExtraAccumulator", "ForwardFn", "GradientXInput", "HookView",
    "IntegratedGradients", "MeanAccumulator", "PermutationScore", "PerSampleWriter", "ShapleyValues",
    "ShareAccumulator", "derangement", "embedding_view", "forward_variants", "gaussian_blur",
    "get_estimator_class", "l1_scores", "list_estimators", "parse_embedding_layers", "poisson_weights",
    "register_estimator", "scores_to_shares",
]
