"""mmbalance in other frameworks' training loops (each framework is imported only by its own module).

* :mod:`mmbalance.integrations.lightning`: ``ModalityBalance``, a PyTorch Lightning ``Callback``;
* :mod:`mmbalance.integrations.transformers`: ``ModalityBalanceCallback``, a Hugging Face ``TrainerCallback``.

The penalty itself is :class:`mmbalance.AttributionPenalty` (framework-free); see docs/integrations.md.
"""
