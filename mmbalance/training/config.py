"""The settings of one training run, saved next to its checkpoints (``run.json``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
import math
from typing import Any, Mapping, Sequence

from ..attribution.hooks import parse_embedding_layers
from ..data import parse_pass_through
from ..limits import MAX_BATCH_SIZE, MAX_EPOCHS, MAX_SEED, MAX_STEPS, check_int
from ..errors import UsageError
from ..models.adapter import CALL_STYLES
from .differentiable import ATTRIBUTIONS, LEVELS, PENALTIES, POOLS

SCHEDULERS = ("cosine", "constant", "step")
REGULARIZERS = ("none", "attribution", "ogm-ge", "modality-dropout", "gblend")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCOPES = ("fusion", "all")
DEVICES = ("auto", "cpu", "cuda")


def parse_target(spec: str | Mapping[str, float], modalities: Sequence[str] | None = None) -> dict[str, float] | None:
    """Parse ``--target``: ``equal`` or ``audio=0.3,visual=0.7`` (values sum to 1).

    Returns ``None`` for ``equal`` when ``modalities`` are unknown, else one share per
    modality in ``modalities`` order. Raises :class:`UsageError` for malformed values,
    a sum other than 1, or (with ``modalities``) unknown or missing names.

    Example:
        >>> parse_target("equal", ["audio", "visual"])
        {'audio': 0.5, 'visual': 0.5}
        >>> parse_target("visual=0.7, audio=0.3", ["audio", "visual"])
        {'audio': 0.3, 'visual': 0.7}
    """
    if isinstance(spec, Mapping):
        values = {str(k): float(v) for k, v in spec.items()}
    else:
        text = str(spec).strip()
        if text.lower() == "equal":
            if modalities is None:
                return None
            return {m: 1.0 / len(modalities) for m in modalities}
        values = {}
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            name, sep, raw = item.partition("=")
            name = name.strip()
            try:
                value = float(raw)
            except ValueError:
                value = math.nan
            if not sep or not name or not math.isfinite(value):
                raise UsageError(f"malformed --target item {item!r}",
                                 hint="write equal, or modality=share pairs such as audio=0.3,visual=0.7")
            if name in values:
                raise UsageError(f"--target names {name!r} twice")
            values[name] = value
        if not values:
            raise UsageError("empty --target", hint="write equal or audio=0.3,visual=0.7")
    bad = [k for k, v in values.items() if not 0.0 <= v <= 1.0]
    if bad:
        raise UsageError(f"--target shares must lie in [0, 1]; {', '.join(bad)} do not")
    total = sum(values.values())
    if abs(total - 1.0) > 1e-6:
        raise UsageError(f"--target shares sum to {total:g}, not 1",
                         hint="e.g. audio=0.3,visual=0.7, or equal")
    if modalities is None:
        return values
    unknown = [k for k in values if k not in modalities]
    if unknown:
        raise UsageError(f"--target names unknown modalit{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}",
                         hint=f"the data has {', '.join(modalities)}")
    missing = [m for m in modalities if m not in values]
    if missing:
        raise UsageError(f"--target gives no share for {', '.join(missing)}",
                         hint=f"name every modality: {', '.join(modalities)}")
    return {m: values[m] for m in modalities}


@dataclass
class TrainConfig:
    """Everything that defines a training run.

    Example:
        >>> cfg = TrainConfig(model="av-tiny", data="synthetic:av-dominance", out="runs/plain", epochs=2)
        >>> TrainConfig.from_dict(cfg.to_dict()) == cfg
        True
    """

    model: str
    data: str
    out: str
    checkpoint: str | None = None
    trust_checkpoint: bool = False
    init: dict[str, str] | None = None  # warm start: {modality: unimodal run's best.pt} (models/warm.py)
    init_calibrate: bool = False  # scale each --init run's logits, fitted on the validation split (models/logit_scales.py)
    model_args: dict[str, Any] = field(default_factory=dict)
    modalities: list[str] | None = None
    output: str | int | None = None
    embedding_layers: dict[str, str] | None = None
    pass_through: list[str] | None = None
    call: str = "auto"
    pad_id: int | None = None
    epochs: int = 50  # a cap: training stops early once validation accuracy stalls (patience)
    patience: int = 5
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 32
    scheduler: str = "cosine"
    seed: int = 0
    device: str = "auto"
    train_split: str = "train"
    val_split: str = "val"
    val_fraction: float | None = None  # hold out this fraction of train_split as validation (no val split needed)
    # balancing: the regularizer and its settings
    regularizer: str = "none"
    lambda_: float = 1.0
    attribution: str = "shapley"
    attr_steps: int = 8
    level: str = "embedding"
    pool: str = "l1"
    penalty: str = "l2"
    target: str = "equal"
    scope: str = "fusion"
    lambda_warmup: int = 0
    alpha: float = 0.5
    p: float = 0.5
    zero_modalities: list[str] = field(default_factory=list)
    amp: bool = False
    deterministic: bool = False
    # optimizer and schedule (every method), and the methods of issue 14 (see training/methods/)
    optimizer: str = "adam"
    momentum: float = 0.9
    step_size: int = 70
    gamma: float = 0.1
    modulation_start: int = 1
    modulation_end: int | None = None
    unimodal: str | None = None
    aux_heads: bool = False
    aux_weight: float = 1.0
    modulate: float = 0.0  # -r attribution: AGM-style encoder gradient modulation strength (0: off)
    gblend_every: int = 1
    gblend_holdout: float = 0.2
    gblend_smoothing: float = 0.5
    gblend_floor: float = 0.05
    log: list[str] = field(default_factory=list)  # experiment trackers (--log tensorboard)

    def validate(self, modalities: Sequence[str] | None = None) -> None:
        """Raise :class:`UsageError` for values that cannot work (names checked when ``modalities`` are given)."""
        check_int("--epochs", self.epochs, 1, MAX_EPOCHS)
        check_int("--seed", self.seed, 0, MAX_SEED)
        check_int("--attr-steps", self.attr_steps, 1, MAX_STEPS)
        check_int("--lambda-warmup", self.lambda_warmup, 0, MAX_EPOCHS)
        if self.patience < 0:
            raise UsageError(f"--patience must be >= 0 epochs (0 turns early stopping off), got {self.patience}")
        if not self.lr > 0:
            raise UsageError(f"--lr must be positive, got {self.lr}")
        if self.weight_decay < 0:
            raise UsageError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if self.val_fraction is not None and not (math.isfinite(self.val_fraction) and 0.0 < self.val_fraction < 1.0):
            raise UsageError(f"--val-fraction is a fraction of the training split in (0, 1), got {self.val_fraction}",
                             hint="e.g. --val-fraction 0.2 holds out 20% of each class")
        check_int("--batch-size", self.batch_size, 1, MAX_BATCH_SIZE)
        if self.scheduler not in SCHEDULERS:
            raise UsageError(f"unknown --scheduler {self.scheduler!r}", hint=f"use one of {', '.join(SCHEDULERS)}")
        if self.regularizer not in REGULARIZERS:
            raise UsageError(f"unknown --regularizer {self.regularizer!r}",
                             hint=f"use one of {', '.join(REGULARIZERS)}")
        if not (math.isfinite(self.lambda_) and self.lambda_ >= 0):
            raise UsageError(f"--lambda must be a finite number >= 0, got {self.lambda_}")
        if self.attribution not in ATTRIBUTIONS:
            raise UsageError(f"unknown --attribution {self.attribution!r}",
                             hint=f"use one of {', '.join(ATTRIBUTIONS)}")
        if self.attr_steps < 1:
            raise UsageError(f"--attr-steps must be at least 1, got {self.attr_steps}")
        for name, value, choices in (("--level", self.level, LEVELS), ("--pool", self.pool, POOLS),
                                     ("--penalty", self.penalty, PENALTIES), ("--scope", self.scope, SCOPES)):
            if value not in choices:
                raise UsageError(f"unknown {name} {value!r}", hint=f"use one of {', '.join(choices)}")
        if self.lambda_warmup < 0:
            raise UsageError(f"--lambda-warmup must be >= 0 epochs, got {self.lambda_warmup}")
        if not (math.isfinite(self.alpha) and self.alpha >= 0):
            raise UsageError(f"--alpha must be >= 0, got {self.alpha}")
        if not 0.0 <= self.p <= 1.0:
            raise UsageError(f"--p must lie in [0, 1], got {self.p}")
        if self.call not in CALL_STYLES:
            raise UsageError(f"unknown --call {self.call!r}", hint=f"use one of {', '.join(CALL_STYLES)}")
        if self.pad_id is not None and not (isinstance(self.pad_id, int) and self.pad_id >= 0):
            raise UsageError(f"--pad-id must be a non-negative token id, got {self.pad_id!r}")
        passed = parse_pass_through(self.pass_through)
        if modalities is not None and set(passed) & set(modalities):
            raise UsageError(f"{', '.join(m for m in modalities if m in passed)} cannot be both a modality and "
                             "a pass-through input")
        if str(self.device).split(":")[0].strip().lower() not in DEVICES:
            raise UsageError(f"unknown --device {self.device!r}", hint="use one of auto, cpu, cuda")
        parse_target(self.target, modalities)
        layers = parse_embedding_layers(self.embedding_layers)
        if modalities is not None and layers and self.unimodal is None:  # --unimodal uses its modality's layer
            unknown = [m for m in layers if m not in modalities]
            if unknown:
                raise UsageError(f"--embedding-layer names unknown modality {', '.join(unknown)}",
                                 hint=f"the data has {', '.join(modalities)}")
        from .trackers import parse_log
        parse_log(self.log)
        if self.init_calibrate and not self.init:
            raise UsageError("--init-calibrate scales the runs of a warm start; it needs --init",
                             hint="add --init audio=RUN_A/best.pt,visual=RUN_V/best.pt, or drop --init-calibrate")
        if self.init:
            if self.checkpoint or self.unimodal:
                raise UsageError("--init builds the fused model from unimodal runs; it does not combine with "
                                 f"{'--checkpoint' if self.checkpoint else '--unimodal'}",
                                 hint="drop one of them")
            if self.embedding_layers:  # a plug-in: late fusion of the modules of --embedding-layer
                if set(self.embedding_layers) != set(self.init):
                    raise UsageError(f"a plug-in's warm start fuses the modules of --embedding-layer "
                                     f"({', '.join(self.embedding_layers)}) and needs one unimodal run for each; "
                                     f"--init names {', '.join(self.init)}",
                                     hint="give --init a run for every modality of --embedding-layer")
                if self.pass_through:
                    raise UsageError("a plug-in's warm start fuses its encoder modules, which take their inputs "
                                     f"alone; it cannot pass {', '.join(self.pass_through)} through",
                                     hint="drop --pass-through, or compare the plug-in with methods that train it whole")
            if modalities is not None:
                unknown = [m for m in self.init if m not in modalities]
                if unknown:
                    raise UsageError(f"--init names unknown modality {', '.join(unknown)}",
                                     hint=f"the data has {', '.join(modalities)}")
        if not (math.isfinite(self.modulate) and self.modulate >= 0):
            raise UsageError(f"--modulate must be a finite number >= 0, got {self.modulate}")
        if self.modulate > 0 and self.regularizer != "attribution":
            raise UsageError("--modulate scales encoder gradients by the attribution shares; it needs "
                             "--regularizer attribution")
        from .methods.settings import validate_method_settings
        validate_method_settings(self, modalities)
        if modalities is not None:
            unknown = [m for m in self.zero_modalities if m not in modalities]
            if unknown:
                raise UsageError(f"--zero-modality names unknown modality {', '.join(unknown)}",
                                 hint=f"the data has {', '.join(modalities)}")
            if len(set(self.zero_modalities)) >= len(modalities):
                raise UsageError("--zero-modality cannot blank every modality")

    def target_shares(self, modalities: Sequence[str]) -> dict[str, float]:
        """The target share of every modality (``--target`` parsed against ``modalities``)."""
        return parse_target(self.target, modalities) or {}
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        """Rebuild from :meth:`to_dict` output, ignoring unknown keys."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
