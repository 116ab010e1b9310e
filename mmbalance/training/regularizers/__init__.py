"""Balancing methods for ``mmbalance finetune --regularizer``, one module each.

* ``none``: plain cross-entropy (:class:`PlainTraining`);
* ``attribution``: the attribution-share penalty (:class:`AttributionRegularizer`);
* ``ogm-ge``: on-the-fly gradient modulation with generalization enhancement (:class:`OGMGE`);
* ``modality-dropout``: zero a random modality of some samples (:class:`ModalityDropout`).

Example:
    >>> list_regularizers()
    ['attribution', 'gblend', 'modality-dropout', 'none', 'ogm-ge']
"""

from .base import (PlainTraining, Regularizer, StepOutput, build_regularizer, encoder_parameters, fusion_parameters,
                   list_regularizers, register_regularizer)
from .attribution import AttributionRegularizer  # noqa: E402  (registers)
from .modality_dropout import ModalityDropout  # noqa: E402  (registers)
from .ogm_ge import OGMGE  # noqa: E402  (registers)

__all__ = ["AttributionRegularizer", "GradientBlending", "ModalityDropout", "OGMGE", "PlainTraining", "Regularizer", "StepOutput",
           "build_regularizer", "encoder_parameters", "fusion_parameters", "list_regularizers",
           "register_regularizer"]
from .gblend import GradientBlending  # noqa: E402  (registers)
