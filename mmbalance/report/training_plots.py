"""Training plot: the curves of a fine-tuning run, drawn from its :class:`TrainingMetrics` alone."""

from __future__ import annotations

from typing import Mapping

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from ._plot_style import WIDTH, _style, modality_colors
from .metrics import SHARE_PREFIX, TrainingMetrics


def plot_training(metrics: TrainingMetrics, *, colors: Mapping[str, str] | None = None) -> Figure:
    """Training curves: accuracy, loss, regularizer penalty/λ and shares per epoch (panels that have data).

    Example:
        >>> from mmbalance.report.metrics import load_metrics
        >>> fig = plot_training(load_metrics("runs/balanced/metrics.csv"))  # doctest: +SKIP
    """
    share_mods = metrics.share_modalities
    colors = dict(colors or modality_colors(share_mods))
    for mod in share_mods:
        colors.setdefault(mod, modality_colors(share_mods)[mod])
    panels = ["accuracy"]
    if metrics.has("train_loss") or metrics.has("val_loss"):
        panels.append("loss")
    if metrics.has("penalty") or metrics.has("val_penalty") or metrics.has("lambda"):
        panels.append("penalty")
    if share_mods:
        panels.append("shares")
    x = metrics.epochs
    marker = "o" if len(x) <= 40 else None
    with _style():
        fig = Figure(figsize=(WIDTH, 0.6 + 2.0 * len(panels)), layout="constrained")
        axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
        for ax, panel in zip(axes, panels):
            if panel == "accuracy":
                ax.plot(x, metrics.column("val_accuracy"), marker=marker, color="#222222", label="validation")
                if metrics.has("train_accuracy"):
                    ax.plot(x, metrics.column("train_accuracy"), marker=marker, color="#888888",
                            linestyle="--", label="train")
                best = metrics.best_epoch()
                if best:
                    ax.annotate(f"best {best[1]:.1%}", best, textcoords="offset points", xytext=(0, -16),
                                ha="center", va="top", fontsize=10)
                ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
                ax.set_title("Accuracy", fontsize=13)
                ax.legend(loc="best")
            elif panel == "loss":
                if metrics.has("val_loss"):
                    ax.plot(x, metrics.column("val_loss"), marker=marker, color="#222222", label="validation")
                if metrics.has("train_loss"):
                    ax.plot(x, metrics.column("train_loss"), marker=marker, color="#888888", linestyle="--",
                            label="train")
                ax.set_title("Loss", fontsize=13)
                ax.legend(loc="best")
            elif panel == "penalty":
                handles = []
                if metrics.has("penalty"):
                    handles += ax.plot(x, metrics.column("penalty"), marker=marker, color="#CC3311",
                                       label="penalty (train)")
                if metrics.has("val_penalty"):
                    handles += ax.plot(x, metrics.column("val_penalty"), marker=marker, color="#CC3311",
                                       linestyle="--", label="penalty (validation)")
                has_penalty = metrics.has("penalty") or metrics.has("val_penalty")
                if has_penalty:
                    ax.set_ylabel("penalty")
                if metrics.has("lambda"):
                    twin = ax.twinx() if has_penalty else ax
                    handles += twin.plot(x, metrics.column("lambda"), color="#555555", linestyle=":",
                                         linewidth=2, label="λ (weight)")
                    twin.set_ylabel("λ")
                    if twin is not ax:
                        twin.spines["right"].set_visible(True)
                ax.set_title("Attribution regularizer", fontsize=13)
                ax.legend(handles=handles, loc="best")
            else:
                for mod in share_mods:
                    ax.plot(x, metrics.column(SHARE_PREFIX + mod), marker=marker, color=colors[mod], label=mod,
                            linewidth=2)
                if len(share_mods) > 1:
                    ax.axhline(1 / len(share_mods), color="#666666", linestyle="--", linewidth=1, zorder=0)
                ax.set_ylim(0, 1)
                ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
                ax.set_title("Modality shares per epoch", fontsize=13)
                ax.legend(loc="best", ncols=min(len(share_mods), 4))
        axes[-1].set_xlabel("epoch")
        axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig
