"""Library defaults the command line shows in ``--help``, as literals.

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
