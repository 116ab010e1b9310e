"""Shared look of the report plots: modality colours, the matplotlib style, PNG/SVG rendering.

Figures are drawn with the object-oriented API inside :func:`_style` and rendered by the
Agg (PNG) or SVG backends, so plotting works headless and never switches a notebook's backend.
"""

from __future__ import annotations

import contextlib
import io
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import matplotlib
from matplotlib import colors as mcolors
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

#: Okabe–Ito colour-blind-safe palette (black dropped), assigned to modalities in order.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442")
FORMATS = ("png", "svg")

_RC: dict[RcKeyType, Any] = {
    "font.size": 12,
    "axes.titlesize": 14,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.labelsize": 12,
    "xtick.labelsize": 12,
    "ytick.labelsize": 12,
    "legend.fontsize": 12,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#555555",
    "axes.labelcolor": "#222222",
    "text.color": "#222222",
    "xtick.color": "#333333",
    "ytick.color": "#333333",
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "savefig.dpi": 150,
    "svg.fonttype": "path",
    "svg.hashsalt": "mmbalance",
}

WIDTH = 5.2  # inches: 780 px at 150 dpi, shown 1:1 on a laptop and still legible scaled to a phone


@contextlib.contextmanager
def _style() -> Iterator[None]:
    with matplotlib.rc_context(_RC):
        yield


def modality_colors(modalities: Sequence[str]) -> dict[str, str]:
    """One colour per modality, by position: the same list always gives the same colours.

    Example:
        >>> modality_colors(["audio", "visual"])
        {'audio': '#0072B2', 'visual': '#E69F00'}
    """
    out: dict[str, str] = {}
    for i, mod in enumerate(dict.fromkeys(modalities)):
        if i < len(PALETTE):
            out[mod] = PALETTE[i]
        else:
            out[mod] = mcolors.to_hex(matplotlib.colormaps["tab20"]((i - len(PALETTE)) % 20))
    return out


def figure_bytes(fig: Figure, fmt: str = "png") -> bytes:
    """Render ``fig`` as PNG or SVG bytes.

    Example:
        >>> figure_bytes(plot_shares(result), "svg")[:5]  # doctest: +SKIP
        b'<?xml'
    """
    if fmt not in FORMATS:
        raise ValueError(f"unsupported image format {fmt!r}")
    buf = io.BytesIO()
    with _style():
        fig.savefig(buf, format=fmt, metadata={"Software": None} if fmt == "png" else {"Date": None})
    return buf.getvalue()
