"""Plots are real, non-blank images; plots without data are skipped; colours are fixed per modality."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from mmbalance.report import _plot_style, plots, training_plots
from mmbalance.report.metrics import load_metrics
from mmbalance.results import AuditResult, MethodResult

from .fixtures import make_audit


def assert_real_png(data: bytes) -> None:
    """A decodable PNG, larger than 100×100, with more than one colour."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(data)).convert("RGB")
    width, height = image.size
    assert width > 100 and height > 100
    assert np.asarray(image, dtype=float).std() > 0
    colors = image.getcolors(maxcolors=1 << 16)
    assert colors is None or len(colors) > 10  # drawn, not a flat fill


def assert_real_svg(data: bytes) -> None:
    root = ET.fromstring(data)
    assert root.tag.endswith("svg")
    assert len(list(root.iter())) > 20  # drawn elements, not an empty canvas


@pytest.mark.parametrize("make", [
    lambda a, m: plots.plot_shares(a),
    lambda a, m: plots.plot_per_class(a),
    lambda a, m: plots.plot_share_distribution(a),
    lambda a, m: plots.plot_agreement(a),
    lambda a, m: training_plots.plot_training(m),
    lambda a, m: plots.plot_comparison([a, make_audit(0.55)], ["before", "after"]),
], ids=["shares", "per-class", "distribution", "agreement", "training", "comparison"])
def test_every_plot_renders_png_and_svg(make, before, metrics_csv):
    fig = make(before, load_metrics(metrics_csv))
    assert fig is not None
    assert_real_png(plots.figure_bytes(fig, "png"))
    assert_real_svg(plots.figure_bytes(fig, "svg"))


def test_plots_without_their_data_are_skipped():
    single = make_audit(ablation_audio=None)
    assert plots.plot_agreement(single) is None
    bare = AuditResult(model="m", data="d", n_samples=3, modalities=["a", "b"], accuracy=1.0,
                       methods={"ig": MethodResult(name="ig", shares={"a": 0.5, "b": 0.5})})
    assert plots.plot_per_class(bare) is None
    assert plots.plot_share_distribution(bare) is None
    assert_real_png(plots.figure_bytes(plots.plot_shares(bare)))  # no ci95: still fine


def test_malformed_histogram_is_ignored():
    m = MethodResult(name="ig", shares={"a": 1.0}, extra={"share_histogram": {
        "a": {"bins": [0, 1], "counts": [1, 2]},          # one edge too few
        "b": "nonsense"}})
    assert plots.share_histogram(m, ["a", "b"]) == {}


def test_many_classes_are_capped():
    shares = {"audio": 0.6, "visual": 0.4}
    per_class = {f"class {i}": {"n": i + 1, "shares": shares} for i in range(45)}
    audit = AuditResult(model="m", data="d", n_samples=100, modalities=list(shares), accuracy=0.5,
                        methods={"ig": MethodResult(name="ig", shares=shares, per_class=per_class)})
    fig = plots.plot_per_class(audit)
    assert len(fig.axes[0].get_yticklabels()) == plots.MAX_CLASSES + 1  # + "all samples"
    assert_real_png(plots.figure_bytes(fig))


def test_many_modalities_get_distinct_colours():
    mods = [f"m{i}" for i in range(9)]
    assert len(set(plots.modality_colors(mods).values())) == 9
    audit = AuditResult(model="m", data="d", n_samples=9, modalities=mods, accuracy=0.5,
                        methods={"ig": MethodResult(name="ig", shares={m: 1 / 9 for m in mods})})
    assert_real_png(plots.figure_bytes(plots.plot_shares(audit)))


def test_colours_are_fixed_per_modality():
    assert _plot_style.modality_colors(["audio", "visual"]) == _plot_style.modality_colors(["audio", "visual"])
    colors = _plot_style.modality_colors(["audio", "visual", "text"])
    assert colors["audio"] == _plot_style.PALETTE[0] and colors["visual"] == _plot_style.PALETTE[1]


def test_unknown_image_format_is_refused(before):
    with pytest.raises(ValueError):
        plots.figure_bytes(plots.plot_shares(before), "gif")
