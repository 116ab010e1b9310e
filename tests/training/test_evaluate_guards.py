"""The training evaluation refuses NaN logits instead of reporting equal shares and accuracy 0."""

from __future__ import annotations

import pytest
import torch

from mmbalance.errors import TrainingError
from mmbalance.models import ModelAdapter
from mmbalance.training.differentiable import AttributionSpec
from mmbalance.training.loop import evaluate
from tests.toys import ConvAV, MarkedNaNAV, tiny_dataset


def test_nan_logits_stop_the_evaluation_naming_the_sample() -> None:
    data = tiny_dataset()
    data.inputs["audio"][6].view(-1)[0] = 123.0
    with pytest.raises(TrainingError, match="logits on the evaluation data hold NaN for sample 6"):
        evaluate(ModelAdapter(MarkedNaNAV(), ["audio", "visual"]), data, batch_size=4, device=torch.device("cpu"),
                 spec=AttributionSpec(method="ig", level="input", steps=2))


def test_healthy_model_is_evaluated() -> None:
    out = evaluate(ModelAdapter(ConvAV(), ["audio", "visual"]), tiny_dataset(), batch_size=4,
                   device=torch.device("cpu"), spec=AttributionSpec(method="ig", level="input", steps=2))
    assert out["n"] == 12 and 0.0 < out["shares"]["audio"] < 1.0
