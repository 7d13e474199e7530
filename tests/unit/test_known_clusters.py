"""Which cluster names look like a misspelling of a known one (rayctl.ops.known)."""

from __future__ import annotations

import pytest

from rayctl.ops.known import confusable


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("de_day1", "de-day1"),  # separators
        ("De-Day1", "de-day1"),  # case
        ("prd", "prod"),  # a letter dropped
        ("prod", "prd"),
        ("mains", "main"),  # added at the end
        ("smain", "main"),  # added at the start
        ("maim", "main"),  # changed
        ("mian", "main"),  # swapped
        ("amin", "main"),  # swapped at the start
        ("mani", "main"),  # swapped at the end
    ],
)
def test_typos_are_confusable(a: str, b: str) -> None:
    assert confusable(a, b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("de-day1", "de-day1"),  # the same name is no typo of itself
        ("ci-123", "ci-124"),  # CI runs: a digit apart
        ("day1", "day2"),
        ("ci-1", "ci-12"),  # a digit added
        ("day12", "day21"),  # digits swapped
        ("main", "maxx"),  # two letters changed
        ("main", "mainxx"),  # two letters added
        ("main", "xmaix"),
        ("abc", "xyz"),
    ],
)
def test_different_names_are_not(a: str, b: str) -> None:
    assert not confusable(a, b)
    assert not confusable(b, a)
