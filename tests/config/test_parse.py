"""The settings values' parsers (probe.config.parse), by Hypothesis: each returns a value or
raises ValueError, never anything else; sizes, durations and ranges read back as written.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probe.config import parse, resolver
from tests.strategies import values

# -- settings values ---------------------------------------------------------------------------
PARSERS = {
    "int": parse.parse_int(0, 1000),
    "float": parse.parse_float(0.0, 100.0),
    "size": parse.parse_size,
    "duration": parse.parse_duration,
    "bool": parse.parse_bool,
    "path": parse.parse_path,
    "url": parse.parse_url,
    "ip": parse.parse_ip,
    "resolver": resolver.parse_resolver_option,
    "text": parse.parse_text,
}


@pytest.mark.parametrize("name", sorted(PARSERS))
@given(value=values)
def test_value_parsers_raise_only_value_error(name: str, value: Any) -> None:
    with contextlib.suppress(ValueError):
        PARSERS[name](value)


UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


@given(st.integers(0, 10**6), st.sampled_from(sorted(UNITS)), st.booleans(), st.booleans())
def test_size_units(n: int, unit: str, lower: bool, space: bool) -> None:
    text = f"{n}{' ' if space and unit else ''}{unit.lower() if lower else unit}"
    assert parse.parse_size(text) == n * UNITS[unit]


SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


@given(st.integers(1, 300), st.sampled_from(sorted(SECONDS)))
def test_duration_units(n: int, unit: str) -> None:
    assert parse.parse_duration(f"{n}{unit}") == pytest.approx(n * SECONDS[unit])


@given(st.integers(-(10**6), 10**6))
def test_int_range(n: int) -> None:
    parse_in = parse.parse_int(-5, 5)
    if -5 <= n <= 5:
        assert parse_in(str(n)) == n == parse_in(n)
    else:
        with pytest.raises(ValueError, match="from -5 to 5"):
            parse_in(str(n))


def test_path_of_an_unknown_user_is_a_value_error() -> None:
    """Hypothesis found it: Path.expanduser raises RuntimeError for ~nosuchuser."""
    with pytest.raises(ValueError, match="nosuchuser"):
        parse.parse_path("~nosuchuser-probe/db.sqlite")
