"""Guards against silently wrong answers (mmbalance/guards.py): each fires on a broken model and stays
quiet on a healthy one."""

from __future__ import annotations

import json

import pytest
import torch

from mmbalance.attribution.base import Attribution, Estimator
from mmbalance.audit import audit
from mmbalance.check import Rule, Verdict, check
from mmbalance.errors import EstimatorError, ModelError
from mmbalance.guards import (ConstantMonitor, check_finite, check_gradients_flow, check_logits_width,
                              completeness_ratio, completeness_warning, unaudited_inputs)
from mmbalance.models import ModelAdapter
from mmbalance.results import AuditResult
from tests.toys import (AudioOnly, ConstantVisualAV, ConvAV, DetachedAV, MarkedNaNAV, NoGradAV, OptionalTextAV,
                        SimilarityAV, SteepAV, tiny_dataset)

AV = ["audio", "visual"]
QUICK = {"progress": False, "bootstrap": 0, "steps": 4}


def _audit(model, data=None, **kwargs):
    return audit(ModelAdapter(model, AV), data if data is not None else tiny_dataset(), **{**QUICK, **kwargs})


#: warnings about the model rather than the estimator (random toy weights decide near chance)
MODEL_STATE = ("near_chance", "no_checkpoint")


def _about_estimators(warnings):
    return [w for w in warnings if w["code"] not in MODEL_STATE]


# -- logits width -----------------------------------------------------------------------------------


def test_logits_width_names_both_numbers() -> None:
    with pytest.raises(ModelError, match="gives 7 logits per sample but toy has 3 classes"):
        _audit(ConvAV(num_classes=7))


def test_similarity_matrix_is_not_taken_as_logits() -> None:
    with pytest.raises(ModelError, match="gives 4 logits .* 3 classes .*similarity matrix"):
        _audit(SimilarityAV(), batch_size=4)


def test_similarity_matrix_caught_when_the_batch_equals_the_classes() -> None:
    with pytest.raises(ModelError, match="3 x 3 for a batch of 3 but 4 wide for a batch of 4"):
        _audit(SimilarityAV(), batch_size=3)


def test_logits_width_quiet_when_it_matches() -> None:
    check_logits_width(torch.zeros(5, 3), 3, "toy")
    assert _audit(ConvAV()).n_samples == 12
    assert _audit(ConvAV(), batch_size=3).n_samples == 12  # batch size = classes: the probe finds real logits


# -- NaN / inf ---------------------------------------------------------------------------------------


def test_nan_logits_name_the_first_bad_sample() -> None:
    data = tiny_dataset()
    data.inputs["audio"][7].view(-1)[0] = 123.0  # the model answers NaN for this sample only
    data.inputs["audio"][9].view(-1)[0] = 123.0
    with pytest.raises(ModelError, match="logits hold NaN for sample 7"):
        _audit(MarkedNaNAV(), data, batch_size=4)


def test_nan_attributions_name_the_sample() -> None:
    class NaNAt(Estimator):
        name = "nan-at-row-1"
        calls = 0

        def _attribute(self, forward, inputs, target, *, labels, baselines):
            self.calls += 1
            scores = torch.ones(target.shape[0], len(inputs))
            if self.calls == 2:  # row 1 of the second batch of 4: dataset sample 5
                scores[1, 0] = float("nan")
            return Attribution(modalities=tuple(inputs), scores=scores)

    with pytest.raises(EstimatorError, match="nan-at-row-1 attributions hold NaN for sample 5"):
        audit(ModelAdapter(ConvAV(), AV), tiny_dataset(), estimators=[NaNAt()], batch_size=4, progress=False,
              bootstrap=0)


def test_check_finite_inf_and_quiet() -> None:
    with pytest.raises(ModelError, match="hold inf for sample 11"):
        check_finite(torch.tensor([[1.0], [float("inf")]]), [10, 11], "the logits")
    check_finite(torch.randn(4, 3), None, "the logits")


# -- gradients that never reach the inputs ----------------------------------------------------------


def test_no_grad_forward_is_refused() -> None:
    with pytest.raises(ModelError, match=r"inputs audio, visual are all zero.*torch.no_grad\(\)"):
        _audit(NoGradAV(), methods=["ig"])


def test_detached_forward_is_refused() -> None:
    with pytest.raises(ModelError, match="detaches them"):
        _audit(DetachedAV(), methods=["gradxinput"])


def test_gradient_free_estimators_still_run_on_a_no_grad_model() -> None:
    result = _audit(NoGradAV(), methods=["ablation"])
    assert result.methods["ablation"].shares["audio"] > 0


def test_gradient_guard_quiet_on_healthy_and_on_ignored_modalities() -> None:
    x = {"audio": torch.randn(3, 1, 4, 5), "visual": torch.randn(3, 3, 2, 3, 3)}
    target = torch.zeros(3, dtype=torch.long)
    check_gradients_flow(ModelAdapter(ConvAV(), AV), x, None, target)
    check_gradients_flow(ModelAdapter(AudioOnly(), AV), x, None, target)  # visual unused, ablating it: no effect
    assert _audit(AudioOnly(), tiny_dataset(audio_shape=(1, 4, 5))).shares["visual"] == pytest.approx(0.0)


# -- IG completeness ---------------------------------------------------------------------------------


SYNTH = "synthetic:av-dominance?n_test=12"


def test_completeness_warning_fires_with_too_few_steps() -> None:
    result = _audit(SteepAV(num_classes=4), SYNTH, steps=2, quadrature="riemann", methods=["ig"])
    (warning,) = _about_estimators(result.warnings)
    assert warning["code"] == "completeness" and warning["method"] == "ig" and warning["value"] > 0.05
    assert "--steps (now 2, try 8)" in warning["message"] and "--tolerance" in warning["message"]
    extra = result.methods["ig"].extra
    assert warning["value"] == pytest.approx(extra["completeness_error"]["mean"] / extra["output_change"]["mean"])
    assert AuditResult.from_json(result.to_json()).warnings == result.warnings


def test_saturated_model_passes_the_gradient_guard_and_converges() -> None:
    # tanh saturates: the gradient at the inputs is exactly 0 in float32, but not along IG's path
    result = _audit(SteepAV(num_classes=4), SYNTH, steps=32, methods=["ig"])
    assert _about_estimators(result.warnings) == [] and result.methods["ig"].shares["audio"] > 0.01


def test_completeness_quiet_on_healthy_av_tiny() -> None:
    result = audit("av-tiny", "synthetic:av-dominance?n_test=16", progress=False, bootstrap=0, steps=16,
                   methods=["ig", "ablation"])
    assert _about_estimators(result.warnings) == [] and result.model_inputs is None
    assert [w["code"] for w in json.loads(result.to_json())["warnings"]][0] == "no_checkpoint"


def test_completeness_ratio_and_fallback() -> None:
    assert completeness_ratio({"completeness_error": {"mean": 0.1}, "output_change": {"mean": 0.5}}) == 0.2
    assert completeness_ratio({"relative_completeness_error": {"mean": 0.3}}) == 0.3  # older audits
    assert completeness_ratio({"accuracy_drop": {"a": 0.1}}) is None
    assert completeness_warning("ig", {"relative_completeness_error": {"mean": 0.04}}, {}) is None


# -- constant embeddings -----------------------------------------------------------------------------


LAYERS = "audio=audio_net,visual=visual_net"


def test_constant_embedding_warns_under_the_zero_baseline() -> None:
    result = _audit(ConstantVisualAV(), level="embedding", embedding_layers=LAYERS, methods=["ig"])
    codes = [(w["code"], w.get("modality")) for w in _about_estimators(result.warnings)]
    assert codes == [("constant_embedding", "visual")]
    assert "--baseline mean" in result.warnings[0]["message"]


def test_constant_embedding_quiet_with_the_mean_baseline_and_on_av_tiny() -> None:
    result = _audit(ConstantVisualAV(), level="embedding", embedding_layers=LAYERS, methods=["ig"], baseline="mean")
    assert _about_estimators(result.warnings) == [] and result.shares["visual"] == pytest.approx(0.0, abs=1e-6)
    tiny = audit("av-tiny", "synthetic:av-dominance?n_test=16", level="embedding", **QUICK)
    assert _about_estimators(tiny.warnings) == []


def test_constant_monitor_needs_two_samples() -> None:
    mon = ConstantMonitor()
    mon.update({"a": torch.ones(1, 3)})
    assert mon.constant() == []
    mon.update({"a": torch.ones(1, 3)})
    assert mon.constant() == ["a"]


# -- every modality the model takes -----------------------------------------------------------------


def test_model_inputs_recorded_and_failed_by_check() -> None:
    result = _audit(OptionalTextAV())
    assert result.modalities == AV and result.model_inputs == ["audio", "visual", "text"]
    report = check(AuditResult.from_json(result.to_json()), [Rule("max_share", 1.0)])
    outcome = {o.rule: o for o in report.outcomes}["all_model_inputs"]
    assert outcome.verdict is Verdict.FAIL and "text" in outcome.message and not report.passed


def test_model_inputs_quiet_when_everything_is_audited() -> None:
    report = check(_audit(ConvAV()), [Rule("max_share", 1.0)])
    assert report.passed and [o.rule for o in report.outcomes] == ["max_share"]


def test_unaudited_inputs_from_forward_parameters() -> None:
    assert unaudited_inputs(ConvAV(), AV, [*AV, "text"]) is None
    assert unaudited_inputs(OptionalTextAV(), AV, AV) == ["audio", "visual", "text"]


def test_docstring_examples() -> None:
    import doctest

    import mmbalance.guards

    result = doctest.testmod(mmbalance.guards, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 10 and result.failed == 0


def test_completeness_warning_with_tolerance_suggests_the_cap() -> None:
    extra = {"completeness_error": {"mean": 0.5}, "output_change": {"mean": 1.0}}
    warning = completeness_warning("ig", extra, {"steps": 8, "tolerance": 0.01})
    assert warning is not None and "raise the --steps cap (now 8, try 32)" in warning["message"]
