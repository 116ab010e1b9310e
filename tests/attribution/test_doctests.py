"""The usage examples in the attribution docstrings run and say what they show."""

import doctest
import importlib

import pytest

MODULES = ["_folding", "agreement", "base", "baselines", "branch", "gradxinput", "hooks", "integrated_gradients", "per_sample",
           "perturbation", "shares"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"mmbalance.attribution.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
