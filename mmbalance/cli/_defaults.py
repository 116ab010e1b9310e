"""Library defaults the command line shows in ``--help``, and the built-in models ``models`` lists, as literals.

The modules that define them import torch; the CLI imports them only inside a command, so ``--help``,
``models`` and argument errors start in well under a second. tests/cli/test_startup.py checks that each
value here equals the library's.
"""

from __future__ import annotations

# mmbalance.audit.DEFAULT_METHODS, DEFAULT_BOOTSTRAP
AUDIT_METHODS: tuple[str, ...] = ("shapley", "ablation")
AUDIT_BOOTSTRAP = 200
# mmbalance.attribution.list_estimators() (the built-ins)
ESTIMATORS: tuple[str, ...] = ("ablation", "branch", "gradxinput", "ig", "permutation", "shapley")
# mmbalance.benchmark.DEFAULT_METHODS
BENCH_METHODS: tuple[str, ...] = ("plain", "unimodal", "ensemble", "gblend", "ogm-ge", "attribution",
                                  "attribution-aux")
# mmbalance.data.synthetic: NAME, DEFAULT_SIZES, DEFAULT_NUM_CLASSES, MAX_NUM_CLASSES
SYNTHETIC_NAME = "av-dominance"
SYNTHETIC_SIZES: dict[str, int] = {"train": 2000, "val": 500, "test": 1000}
SYNTHETIC_NUM_CLASSES = 4
SYNTHETIC_MAX_NUM_CLASSES = 16
# mmbalance.models: ENTRY_POINT_GROUP, and list_model_info() of the built-ins as (name, description, target)
MODELS_ENTRY_POINT_GROUP = "mmbalance.models"
BUILTIN_MODELS: tuple[tuple[str, str, str], ...] = (
    ("av-resnet18", "OGM-GE style audio/visual ResNet-18 pair (D=512, random init); fusion concat|sum|film|gated.",
     "mmbalance.models.av_resnet18:av_resnet18"),
    ("av-small", "Mid-size audio-visual CNN (~141k parameters, D=64) for benchmarks; fusion concat|sum|film|gated.",
     "mmbalance.models.av_small:av_small"),
    ("av-tiny", "Tiny CPU-friendly audio-visual CNN (D=32); fusion concat|sum|film|gated.",
     "mmbalance.models.av_tiny:av_tiny"),
    ("ensemble", 'Late fusion of unimodal models; ``members``: ``[{"base": "av-tiny", "modality": "audio"}, ...]``.',
     "mmbalance.models.ensemble:ensemble"),
    ("late-fusion", "A plug-in's encoder modules (``layers``: ``{modality: module}``) under a concat or sum head of "
     "sizes ``dims``.", "mmbalance.models.late_fusion:late_fusion"),
    ("unimodal", "One encoder of model ``base`` with its own classifier (unimodal baseline).",
     "mmbalance.models.unimodal:unimodal"),
)
