"""Training methods beyond a regularizer (issue 14): optimizer/schedule choice and unimodal runs.

Gradient-Blending and auxiliary heads are regularizers (:mod:`mmbalance.training.regularizers`);
the unimodal and ensemble models are registered models (:mod:`mmbalance.models.unimodal`,
:mod:`mmbalance.models.ensemble`).
"""

from .settings import make_optimizers, validate_method_settings
from .unimodal import builds_plugin_late_fusion, materialize, own_embedding_layers, unimodal_spec

__all__ = ["builds_plugin_late_fusion", "make_optimizers", "materialize", "own_embedding_layers", "unimodal_spec",
           "validate_method_settings"]
