"""``mmbalance.patterns``: the one matcher of ``models PATTERN``, shared by the registry and the torch-free listing."""

from __future__ import annotations

import doctest

import pytest

import mmbalance.patterns
from mmbalance.patterns import matches_pattern


@pytest.mark.parametrize(("name", "pattern", "expected"), [
    ("av-tiny", "", True), ("av-tiny", "*", True), ("av-tiny", "TINY", True), ("av-tiny", "av-*", True),
    ("av-tiny", "av-?iny", True), ("av-tiny", "[ab]v-tiny", True), ("av-tiny", "small", False),
    ("av-tiny", "tiny-*", False),
])
def test_wildcards_case_and_substrings(name, pattern, expected):
    assert matches_pattern(name, pattern) is expected


def test_the_registry_lists_with_it():
    from mmbalance.models import list_models

    names = list_models()
    for pattern in ("av", "AV-*", "*18", "nothing-like-this"):
        assert list_models(pattern) == [n for n in names if matches_pattern(n, pattern)]


def test_doctest():
    assert doctest.testmod(mmbalance.patterns).failed == 0
