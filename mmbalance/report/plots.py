"""Audit plots: matplotlib figures of modality shares, drawn from an :class:`AuditResult` alone.

Every function returns a :class:`matplotlib.figure.Figure` (or ``None`` when the data for
that plot is absent); colours come from :func:`modality_colors`, so "audio" has the same
colour in every plot of a report. Training curves are in :mod:`.training_plots`.

Example:
    >>> from mmbalance.results import AuditResult, MethodResult
    >>> m = MethodResult(name="ig", shares={"audio": 0.8, "visual": 0.2}, ci95={"audio": [0.75, 0.85],
    ...                  "visual": [0.15, 0.25]})
    >>> r = AuditResult(model="m", data="d", n_samples=8, modalities=["audio", "visual"], accuracy=0.9,
    ...                 methods={"ig": m})
    >>> png = figure_bytes(plot_shares(r), "png")
    >>> png[:4] == b"\\x89PNG"
    True
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence, TypeGuard

from matplotlib import colors as mcolors
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter

from ..results import AuditResult, MethodResult
from ._plot_style import WIDTH, _style, figure_bytes, modality_colors  # noqa: F401  (figure_bytes: re-exported)

#: Marker shapes for estimators in the agreement plot, in method order.
MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*")
#: Greys for audits in the comparison plot (before light, after dark).
_AUDIT_GREYS = ("#A0A0A0", "#404040", "#707070", "#C8C8C8", "#202020")
MAX_CLASSES = 30


# -- helpers -------------------------------------------------------------------------
def _short(text: str, limit: int = 28) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text_color(color: str) -> str:
    r, g, b = mcolors.to_rgb(color)
    return "#111111" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "white"


def method_order(audit: AuditResult) -> list[str]:
    """The audit's method names, primary first."""
    names = list(audit.methods)
    primary = audit.primary.name if audit.methods else None
    if primary in names:
        names.remove(primary)
        names.insert(0, primary)
    return names


def _method_label(audit: AuditResult, name: str) -> str:
    method = audit.methods[name]
    tags = []
    if audit.methods and audit.primary.name == name and len(audit.methods) > 1:
        tags.append("primary")
    if method.level and method.level != "input":
        tags.append(method.level)
    return f"{name}\n({', '.join(tags)})" if tags else name


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def ci_bounds(method: MethodResult, mod: str) -> tuple[float, float] | None:
    """``(low, high)`` of a modality's 95% interval, or ``None`` when absent or malformed."""
    ci = (method.ci95 or {}).get(mod)
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(_finite(v) for v in ci):
        return float(ci[0]), float(ci[1])
    return None


def _stacked_bar(ax: Any, y: float, shares: Mapping[str, float], mods: Sequence[str], colors: Mapping[str, str],
                 height: float = 0.7, label_min: float = 0.07) -> None:
    """One 100% horizontal bar, a segment per modality, percentages inside wide segments."""
    left = 0.0
    for mod in mods:
        v = shares.get(mod)
        if not _finite(v) or v <= 0:
            continue
        ax.barh(y, v, left=left, height=height, color=colors[mod], edgecolor="white", linewidth=1)
        if v >= label_min:
            ax.text(left + v / 2, y, f"{v:.0%}", ha="center", va="center", fontsize=11,
                    color=_text_color(colors[mod]), fontweight="bold")
        left += v


def _legend(fig: Figure, mods: Sequence[str], colors: Mapping[str, str]) -> None:
    handles = [Patch(color=colors[m], label=m) for m in mods]
    fig.legend(handles=handles, loc="outside upper right", ncols=min(len(mods), 4))


# -- plots ---------------------------------------------------------------------------
def plot_shares(audit: AuditResult, *, colors: Mapping[str, str] | None = None) -> Figure:
    """Modality shares per estimator as grouped bars, whiskers at the 95% interval when known.

    Example:
        >>> fig = plot_shares(AuditResult.load("audit.json"))  # doctest: +SKIP
    """
    mods = list(audit.modalities)
    methods = method_order(audit)
    colors = dict(colors or modality_colors(mods))
    n = max(len(mods), 1)
    with _style():
        fig = Figure(figsize=(WIDTH, 3.9), layout="constrained")
        ax = fig.add_subplot()
        width = 0.8 / n
        n_bars = n * len(methods)
        fontsize = 11 if n_bars <= 10 else 9
        for j, mod in enumerate(mods):
            xs, vals, lo_err, hi_err = [], [], [], []
            for i, name in enumerate(methods):
                v = audit.methods[name].shares.get(mod)
                v = float(v) if _finite(v) else math.nan
                ci = ci_bounds(audit.methods[name], mod)
                xs.append(i + (j - (n - 1) / 2) * width)
                vals.append(v)
                lo_err.append(max(0.0, v - ci[0]) if ci and math.isfinite(v) else 0.0)
                hi_err.append(max(0.0, ci[1] - v) if ci and math.isfinite(v) else 0.0)
            has_ci = any(lo_err) or any(hi_err)
            ax.bar(xs, vals, width * 0.92, color=colors[mod], label=mod,
                   yerr=[lo_err, hi_err] if has_ci else None, capsize=4 if has_ci else 0,
                   error_kw={"elinewidth": 1.4, "ecolor": "#222222"})
            if n_bars <= 18:
                for x, v, hi in zip(xs, vals, hi_err):
                    if math.isfinite(v):
                        ax.text(x, v + hi + 0.015, f"{v:.0%}", ha="center", va="bottom", fontsize=fontsize)
        if len(mods) > 1:
            ax.axhline(1 / n, color="#666666", linestyle="--", linewidth=1, zorder=0)
            ax.text(len(methods) - 0.5, 1 / n + 0.01, "equal share", ha="right", va="bottom",
                    fontsize=10, color="#555555")
        ax.set_xticks(range(len(methods)), [_method_label(audit, m) for m in methods])
        ax.set_xlim(-0.6, len(methods) - 0.4)
        ax.set_ylim(0, 1.1)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_ylabel("share of attribution")
        ax.set_title("Modality shares per estimator", fontsize=13)
        _legend(fig, mods, colors)
    return fig


def plot_per_class(audit: AuditResult, *, method: str | None = None,
                   colors: Mapping[str, str] | None = None, max_classes: int = MAX_CLASSES) -> Figure | None:
    """Per-class shares as 100% stacked horizontal bars (``None`` when the audit has no per-class data).

    Classes are grouped by true label; the top bar is the whole dataset. With more than
    ``max_classes`` classes, the ones with the most samples are shown.

    Example:
        >>> fig = plot_per_class(AuditResult.load("audit.json"))  # doctest: +SKIP
    """
    if not audit.methods:
        return None
    m = audit.methods.get(method) if method else audit.primary
    if m is None or not m.per_class:
        return None
    mods = list(audit.modalities)
    colors = dict(colors or modality_colors(mods))
    order = [c for c in audit.classes if c in m.per_class] + [c for c in m.per_class if c not in audit.classes]
    order = [c for c in order if isinstance(m.per_class[c], Mapping)]
    title = f"Shares per class ({m.name})"
    if len(order) > max_classes:
        order = sorted(order, key=lambda c: -_count(m.per_class[c]))[:max_classes]
        title += f": {max_classes} largest of {len(m.per_class)} classes"
    rows = [("all samples", dict(m.shares), audit.n_samples)]
    rows += [(c, dict(m.per_class[c].get("shares") or {}), _count(m.per_class[c])) for c in order]
    with _style():
        fig = Figure(figsize=(WIDTH, 1.4 + 0.45 * len(rows)), layout="constrained")
        ax = fig.add_subplot()
        for y, (_name, shares, _n) in enumerate(rows):
            _stacked_bar(ax, y, shares, mods, colors)
        ax.set_yticks(range(len(rows)), [f"{_short(name)}  (n={n})" for name, _s, n in rows])
        ax.get_yticklabels()[0].set_fontweight("bold")
        ax.invert_yaxis()
        if len(mods) == 2:
            ax.axvline(0.5, color="#333333", linestyle=":", linewidth=1)
        ax.set_xlim(0, 1)
        ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_xlabel("share of attribution")
        ax.spines["left"].set_visible(False)
        ax.tick_params(axis="y", length=0)
        ax.set_title(title, fontsize=13)
        _legend(fig, mods, colors)
    return fig


def _count(entry: Any) -> int:
    n = entry.get("n") if isinstance(entry, Mapping) else None
    return int(n) if _finite(n) else 0


def share_histogram(method: MethodResult, modalities: Sequence[str]) -> dict[str, tuple[list[float], list[float]]]:
    """The valid ``extra.share_histogram`` entries of a method as ``{modality: (edges, counts)}``.

    Malformed entries are left out (the histogram is optional in the JSON).

    Example:
        >>> m = MethodResult(name="ig", extra={"share_histogram": {"audio": {"bins": [0, .5, 1], "counts": [1, 3]}}})
        >>> share_histogram(m, ["audio", "visual"])
        {'audio': ([0.0, 0.5, 1.0], [1.0, 3.0])}
    """
    hist = method.extra.get("share_histogram")
    out: dict[str, tuple[list[float], list[float]]] = {}
    if not isinstance(hist, Mapping):
        return out
    for mod in modalities:
        h = hist.get(mod)
        if not isinstance(h, Mapping):
            continue
        edges, counts = h.get("bins"), h.get("counts")
        if not isinstance(edges, list) or not isinstance(counts, list) or len(edges) != len(counts) + 1:
            continue
        if not counts or not all(_finite(v) for v in edges + counts) or any(c < 0 for c in counts):
            continue
        if any(b <= a for a, b in zip(edges, edges[1:])):
            continue
        out[mod] = ([float(v) for v in edges], [float(v) for v in counts])
    return out


def plot_share_distribution(audit: AuditResult, *, method: str | None = None,
                            colors: Mapping[str, str] | None = None) -> Figure | None:
    """Histogram of per-sample shares, one panel per modality (``None`` without histogram data).

    Reads ``methods.<primary>.extra.share_histogram`` =
    ``{"<modality>": {"bins": [edges...], "counts": [...]}}``.

    Example:
        >>> fig = plot_share_distribution(AuditResult.load("audit.json"))  # doctest: +SKIP
    """
    if not audit.methods:
        return None
    m = audit.methods.get(method) if method else audit.primary
    if m is None:
        return None
    hists = share_histogram(m, audit.modalities)
    if not hists:
        return None
    mods = list(hists)
    colors = dict(colors or modality_colors(audit.modalities))
    with _style():
        fig = Figure(figsize=(WIDTH, 1.0 + 1.8 * len(mods)), layout="constrained")
        axes = fig.subplots(len(mods), 1, sharex=True, squeeze=False)[:, 0]
        for ax, mod in zip(axes, mods):
            edges, counts = hists[mod]
            total = sum(counts) or 1.0
            widths = [b - a for a, b in zip(edges, edges[1:])]
            ax.bar(edges[:-1], [c / total for c in counts], width=widths, align="edge", color=colors[mod],
                   edgecolor="white", linewidth=0.8)
            mean = m.shares.get(mod)
            if _finite(mean):
                ax.axvline(mean, color="#222222", linestyle="--", linewidth=1.2)
                ax.text(mean, 0.98, f" mean {mean:.0%} ", transform=ax.get_xaxis_transform(), va="top",
                        ha="left" if mean < 0.7 else "right", fontsize=11,
                        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 1})
            ax.set_ylim(0, max(c / total for c in counts) * 1.25 or 1)
            ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
            ax.set_ylabel("samples")
            ax.set_title(mod, fontsize=12, color=colors[mod])
        n_total = int(sum(hists[mods[0]][1]))
        fig.suptitle(f"Per-sample shares ({m.name}, n={n_total})", x=0.01, ha="left", fontsize=13,
                     fontweight="bold")
        axes[-1].set_xlim(min(0.0, hists[mods[0]][0][0]), max(1.0, hists[mods[0]][0][-1]))
        axes[-1].xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        axes[-1].set_xlabel("the modality's share of one sample's attribution")
    return fig


def plot_agreement(audit: AuditResult, *, colors: Mapping[str, str] | None = None) -> Figure | None:
    """Each estimator's share per modality side by side, with the spread between them (``None`` for one method).

    Example:
        >>> fig = plot_agreement(AuditResult.load("audit.json"))  # doctest: +SKIP
    """
    methods = method_order(audit)
    if len(methods) < 2:
        return None
    mods = list(audit.modalities)
    colors = dict(colors or modality_colors(mods))
    k = len(methods)
    step = min(0.16, 0.7 / k)
    with _style():
        fig = Figure(figsize=(WIDTH, 1.6 + 0.9 * len(mods) + 0.04 * k * len(mods)), layout="constrained")
        ax = fig.add_subplot()
        for i, mod in enumerate(mods):
            vals = [audit.methods[name].shares.get(mod) for name in methods]
            finite = [float(v) for v in vals if _finite(v)]
            if finite:
                ax.plot([min(finite), max(finite)], [i, i], color=colors[mod], alpha=0.25, linewidth=14,
                        solid_capstyle="round", zorder=1)
            for j, (name, v) in enumerate(zip(methods, vals)):
                if not _finite(v):
                    continue
                y = i + (j - (k - 1) / 2) * step
                ci = ci_bounds(audit.methods[name], mod)
                xerr = [[max(0.0, v - ci[0])], [max(0.0, ci[1] - v)]] if ci else None
                ax.errorbar([v], [y], xerr=xerr, fmt=MARKERS[j % len(MARKERS)], color=colors[mod],
                            markeredgecolor="#222222", markersize=9, capsize=3, elinewidth=1.2,
                            ecolor="#222222", zorder=3)
        if len(mods) > 1:
            ax.axvline(1 / len(mods), color="#666666", linestyle="--", linewidth=1, zorder=0)
        ax.set_yticks(range(len(mods)), [_short(m) for m in mods])
        ax.invert_yaxis()
        ax.set_ylim(len(mods) - 0.5, -0.5)
        ax.set_xlim(0, 1)
        ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_xlabel("share of attribution (band: range across estimators)")
        ax.tick_params(axis="y", length=0)
        ax.spines["left"].set_visible(False)
        ax.set_title("Estimator agreement", fontsize=13)
        handles = [Line2D([], [], linestyle="none", marker=MARKERS[j % len(MARKERS)], color="#888888",
                          markeredgecolor="#222222", markersize=9, label=name) for j, name in enumerate(methods)]
        fig.legend(handles=handles, loc="outside upper right", ncols=min(k, 4))
    return fig


def plot_comparison(audits: Sequence[AuditResult], labels: Sequence[str], *,
                    colors: Mapping[str, str] | None = None) -> Figure:
    """Before/after: each audit's primary shares as a 100% bar, then accuracy, max share and entropy.

    Example:
        >>> fig = plot_comparison([before, after], ["before", "after"])  # doctest: +SKIP
    """
    if len(audits) != len(labels):
        raise ValueError("one label per audit")
    mods = list(dict.fromkeys(m for a in audits for m in a.modalities))
    colors = dict(colors or modality_colors(mods))
    figures = [("accuracy", lambda a: a.accuracy), ("max share", lambda a: a.imbalance["max_share"]),
               ("entropy", lambda a: a.imbalance["entropy"])]
    n = len(audits)
    greys = [_AUDIT_GREYS[i % len(_AUDIT_GREYS)] for i in range(n)]
    if n == 2:
        greys = ["#A8A8A8", "#333333"]
    with _style():
        top_h = 0.75 * n + 0.9
        bottom_h = 0.32 * n * len(figures) + 1.2
        fig = Figure(figsize=(WIDTH, top_h + bottom_h + 0.6), layout="constrained")
        ax_top, ax_bottom = fig.subplots(2, 1, height_ratios=[top_h, bottom_h])
        for y, audit in enumerate(audits):
            _stacked_bar(ax_top, y, audit.shares, mods, colors)
        ax_top.set_yticks(range(n), [f"{_short(lab, 20)}\n({a.primary.name})" if a.methods else _short(lab, 20)
                                     for lab, a in zip(labels, audits)])
        ax_top.invert_yaxis()
        ax_top.set_xlim(0, 1)
        if len(mods) == 2:
            ax_top.axvline(0.5, color="#333333", linestyle=":", linewidth=1)
        ax_top.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax_top.tick_params(axis="y", length=0)
        ax_top.spines["left"].set_visible(False)
        ax_top.set_title("Before → after: modality shares" if n == 2 else "Modality shares by audit", fontsize=13)
        bar_h = 0.8 / n
        for i, audit in enumerate(audits):
            ys = [g + (i - (n - 1) / 2) * bar_h for g in range(len(figures))]
            vals = [float(fn(audit)) if _finite(fn(audit)) else math.nan for _name, fn in figures]
            ax_bottom.barh(ys, vals, height=bar_h * 0.9, color=greys[i], label=labels[i])
            for (name, _fn), y_bar, v in zip(figures, ys, vals):
                if math.isfinite(v):
                    ax_bottom.text(v + 0.01, y_bar, f"{v:.2f}" if name == "entropy" else f"{v:.0%}",
                                   va="center", ha="left", fontsize=10)
        ax_bottom.set_yticks(range(len(figures)), [name for name, _fn in figures])
        ax_bottom.invert_yaxis()
        ax_bottom.set_xlim(0, 1.12)
        ax_bottom.tick_params(axis="y", length=0)
        ax_bottom.spines["left"].set_visible(False)
        ax_bottom.spines["bottom"].set_visible(False)
        ax_bottom.xaxis.set_visible(False)
        ax_bottom.set_title("Key figures", fontsize=13)
        ax_bottom.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), ncols=min(n, 3), fontsize=11)
        _legend(fig, mods, colors)
    return fig
