"""The training plot renders from a metrics CSV, even one with only the required columns."""

from __future__ import annotations

from mmbalance.report._plot_style import figure_bytes
from mmbalance.report.metrics import load_metrics
from mmbalance.report.training_plots import plot_training

from .test_plots import assert_real_png


def test_training_plot_with_required_columns_only(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,val_accuracy\n1,0.5\n2,0.6\n")
    assert_real_png(figure_bytes(plot_training(load_metrics(path))))
