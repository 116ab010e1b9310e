"""Reading metrics.csv: optional columns, and one clear error for each kind of bad file."""

from __future__ import annotations

import math

import pytest

from mmbalance.errors import ResultsError
from mmbalance.report.metrics import load_metrics


def test_reads_all_columns(metrics_csv):
    m = load_metrics(metrics_csv)
    assert m.epochs == [1, 2, 3, 4]
    assert m.column("val_accuracy") == [0.42, 0.51, 0.60, 0.63]
    assert m.share_modalities == ["audio", "visual"]
    assert m.has("penalty") and m.has("lambda")
    assert m.best_epoch() == (4, 0.63)
    assert m.last("share_audio") == 0.58


def test_empty_cells_are_missing_values(tmp_path):
    p = tmp_path / "metrics.csv"
    p.write_text("epoch,val_accuracy,penalty\n1,0.5,\n2,0.6,0.1\n")
    m = load_metrics(p)
    assert math.isnan(m.column("penalty")[0]) and m.last("penalty") == 0.1
    assert m.to_dict()["columns"]["penalty"] == [None, 0.1]


def test_missing_required_columns_are_named(tmp_path):
    p = tmp_path / "metrics.csv"
    p.write_text("train_loss,lr\n0.5,0.1\n")
    with pytest.raises(ResultsError) as err:
        load_metrics(p)
    assert "epoch, val_accuracy" in str(err.value) and str(p) in str(err.value)


@pytest.mark.parametrize("text, fragment", [
    ("", "empty"),
    ("epoch,val_accuracy\n", "no rows"),
    ("epoch,val_accuracy\n1,high\n", "'high' is not a number"),
    ("epoch,val_accuracy\nx,0.5\n", "epoch 'x'"),
    ("epoch,val_accuracy\n1,0.5,7,8\n", "4 cells for 2 columns"),
])
def test_bad_files(tmp_path, text, fragment):
    p = tmp_path / "metrics.csv"
    p.write_text(text)
    with pytest.raises(ResultsError, match=fragment):
        load_metrics(p)


def test_missing_file(tmp_path):
    with pytest.raises(ResultsError, match="does not exist"):
        load_metrics(tmp_path / "nope.csv")
