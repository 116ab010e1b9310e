"""The usage examples in the docstrings of the issue-14 modules run and say what they show."""

import doctest
import importlib

import pytest

MODULES = ["mmbalance.benchmark.methods", "mmbalance.benchmark.summary", "mmbalance.benchmark.run", "mmbalance.models.unimodal",
           "mmbalance.models.ensemble", "mmbalance.training.methods.settings", "mmbalance.training.methods.unimodal",
           "mmbalance.training.regularizers.aux_heads", "mmbalance.training.regularizers.gblend"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
