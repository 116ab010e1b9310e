"""The usage examples in the training docstrings run and say what they show."""

import doctest
import importlib

import pytest

MODULES = ["config", "differentiable", "embeddings", "evaluation", "penalty", "regularizers.base", "regularizers.ogm_ge"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"mmbalance.training.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
