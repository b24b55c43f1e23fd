"""Durations in settings: what the help and probe config show reads back as the same value."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from probe.config.parse import format_duration, parse_duration


@given(st.integers(1, 366 * 86400) | st.sampled_from([0.5, 1.5, 0.001]))
def test_a_shown_duration_parses_back_to_itself(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


def test_the_shortest_form() -> None:
    assert [format_duration(s) for s in (2700, 21600, 86400, 90, 1.5)] == [
        "45m",
        "6h",
        "1d",
        "90s",
        "1.5s",
    ]
