"""The methods ``mmbalance bench`` compares, as training-configuration overrides at one shared budget.

Every method trains for the same ``--epochs`` with the same data, model, batch size,
learning rate and seed; what differs is listed here (the paper settings, see
docs/finetune.md). ``unimodal`` expands to one run per modality (``unimodal-audio``,
``unimodal-visual``); ``ensemble`` trains nothing and averages those unimodal models; ``warm`` (and
``warm-calibrated``, ``warm-attribution``) merges those unimodal models into one fused model
(:mod:`mmbalance.models.warm`; ``warm-calibrated`` first scales each run's logits, fitted on the
validation split) and fine-tunes it at :data:`WARM_LR_FACTOR` times the bench's
learning rate. ``recommended`` names :data:`RECOMMENDED`, the method docs/results.md
recommends (the name stays as the recommendation changes).

OGM-GE: ``ogm-ge`` trains at the bench's budget (the bench's optimizer, learning rate and
schedule, modulation in the first half of the epochs, alpha 0.5); ``ogm-ge-published`` keeps
the published optimizer and schedule (SGD, momentum 0.9, weight decay 1e-4, StepLR at 70% of
the epochs), which at 10 epochs and a learning rate tuned for Adam barely trains.

Example:
    >>> [p.name for p in plan_runs(["plain", "unimodal", "ensemble"], ["audio", "visual"], epochs=10)]
    ['plain', 'unimodal-audio', 'unimodal-visual', 'ensemble']
    >>> plan_runs(["ogm-ge-published"], ["audio", "visual"], epochs=10)[0].overrides["optimizer"]
    'sgd'
    >>> [p.name for p in plan_runs(["recommended"], ["audio", "visual"], epochs=10)]
    ['unimodal-audio', 'unimodal-visual', 'warm-calibrated']
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..errors import UsageError

__all__ = ["BENCH_METHODS", "DEFAULT_METHODS", "RECOMMENDED", "WARM_LR_FACTOR", "WARM_METHODS", "RunPlan",
           "plan_runs"]

#: what ``--methods recommended`` runs: the recommendation of docs/results.md
RECOMMENDED = "warm-calibrated"
#: warm starts fine-tune at this fraction of the bench's learning rate (1e-4 at ``--lr 3e-3``)
WARM_LR_FACTOR = 1 / 30
#: methods that start from this seed's unimodal runs
WARM_METHODS = ("warm", "warm-calibrated", "warm-attribution")


@dataclass(frozen=True)
class RunPlan:
    """One run per seed: its ``name`` (also its folder under ``runs/``), method and configuration overrides."""

    name: str
    method: str
    overrides: dict[str, Any] = field(default_factory=dict)
    members: tuple[str, ...] = ()  # ensemble: the runs it averages


def _ogm_ge_budget(epochs: int) -> dict[str, Any]:
    # the bench's optimizer and schedule, so that OGM-GE trains as far as plain does in the same epochs
    return {"regularizer": "ogm-ge", "alpha": 0.5, "modulation_start": 1, "modulation_end": max(1, round(0.5 * epochs))}


def _ogm_ge(epochs: int) -> dict[str, Any]:
    # Peng et al.'s code: SGD(momentum 0.9, weight decay 1e-4), StepLR(70, 0.1) and modulation in epochs 0-50
    # of 100; both are scaled to this budget.
    return {"regularizer": "ogm-ge", "optimizer": "sgd", "momentum": 0.9, "weight_decay": 1e-4, "scheduler": "step",
            "step_size": max(1, round(0.7 * epochs)), "gamma": 0.1, "alpha": 0.5,
            "modulation_start": 1, "modulation_end": max(1, round(0.5 * epochs))}


BENCH_METHODS: dict[str, Callable[[int], dict[str, Any]]] = {
    "plain": lambda e: {},
    "unimodal": lambda e: {},
    "ensemble": lambda e: {},
    "gblend": lambda e: {"regularizer": "gblend", "gblend_every": 1},
    "ogm-ge": _ogm_ge_budget,
    "ogm-ge-published": _ogm_ge,
    "modality-dropout": lambda e: {"regularizer": "modality-dropout", "p": 0.5},
    "aux": lambda e: {"aux_heads": True},
    "attribution": lambda e: {"regularizer": "attribution"},
    "attribution-aux": lambda e: {"regularizer": "attribution", "aux_heads": True},
    # the penalty reaches the encoders too (scope all), beside the auxiliary heads' own signal
    "attribution-aux-all": lambda e: {"regularizer": "attribution", "aux_heads": True, "scope": "all"},
    # attribution-guided gradient modulation of the encoders (AGM-style), beside the fusion-scoped penalty
    "attribution-agm": lambda e: {"regularizer": "attribution", "modulate": 2.0},
    "warm": lambda e: {},
    # each unimodal run's logits scaled first (temperature scaling, fitted on the validation split)
    "warm-calibrated": lambda e: {"init_calibrate": True},
    "warm-attribution": lambda e: {"regularizer": "attribution"},
}

DEFAULT_METHODS = ("plain", "unimodal", "ensemble", "gblend", "ogm-ge", "attribution", "attribution-aux")


def plan_runs(methods: Sequence[str], modalities: Sequence[str], *, epochs: int) -> list[RunPlan]:
    """The runs (per seed) that ``methods`` need, in order; ``ensemble`` pulls in the unimodal runs."""
    given = [m.strip() for m in methods if m.strip()]
    if len(set(given)) != len(given):
        raise UsageError("--methods names a method twice")
    names = list(dict.fromkeys(RECOMMENDED if m == "recommended" else m for m in given))
    if not names:
        raise UsageError("--methods is empty", hint=f"name some of {', '.join(BENCH_METHODS)}, or recommended")
    for name in names:
        if name not in BENCH_METHODS:
            close = difflib.get_close_matches(name, list(BENCH_METHODS), n=2)
            raise UsageError(f"unknown bench method {name!r}",
                             hint=f"did you mean {', '.join(close)}?" if close
                             else f"use some of {', '.join(BENCH_METHODS)}, or recommended")
    plans: list[RunPlan] = []
    # a unimodal run has no shares to steer: its target is always "equal" (a --target naming others would not parse)
    unimodal = [RunPlan(f"unimodal-{m}", "unimodal", {"unimodal": m, "target": "equal"}) for m in modalities]
    for name in names:
        if name in ("unimodal", "ensemble") or name in WARM_METHODS:
            plans += [p for p in unimodal if p not in plans]
            if name == "ensemble":
                plans.append(RunPlan("ensemble", "ensemble", members=tuple(p.name for p in unimodal)))
            elif name in WARM_METHODS:
                plans.append(RunPlan(name, name, BENCH_METHODS[name](epochs), members=tuple(p.name for p in unimodal)))
        else:
            plans.append(RunPlan(name, name, BENCH_METHODS[name](epochs)))
    order = {p.name: i for i, p in enumerate(plans)}
    return sorted(plans, key=lambda p: (p.method == "ensemble", order[p.name]))
