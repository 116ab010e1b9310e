"""Shared pytest set-up: make ``tests/toys.py`` (toy models and data) importable everywhere."""

import os
import sys

import matplotlib
import torch

matplotlib.use("Agg")

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("NO_COLOR", "1")
# Two cores shared by parallel work: one intra-op thread keeps timings stable and fast.
torch.set_num_threads(1)
