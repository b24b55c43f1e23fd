"""The merge's check of a JSON column (``merge._json``: typed decode, a strict decode, a search
for large numbers) against its reference, the walk (``merge._json_walk``): the same record, or
the same reason, for real columns altered in every way a hostile source could."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe.analyst import merge
from tests.dbs import report_fleet

DECODERS = {
    "observations": merge._observations,
    "control": merge._control,
    "throughput": merge._throughput,
    "extra": merge._extra,
}


@pytest.fixture(scope="module")
def columns(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Any]]:
    db = report_fleet(Path(tmp_path_factory.mktemp("fleet")) / "fleet.db")
    con = sqlite3.connect(db)
    out: dict[str, list[Any]] = {c: [] for c in DECODERS}
    for row in con.execute("SELECT observations, control, throughput, extra FROM measurements"):
        for c, text in zip(DECODERS, row, strict=True):
            if text is not None and json.loads(text) not in out[c]:
                out[c].append(json.loads(text))
    con.close()
    assert all(out.values())
    return out


def outcome(column: str, text: str, fn: Any) -> tuple[str, Any]:
    try:
        return ("ok", msgspec.to_builtins(fn(column, text, DECODERS[column])))
    except merge.Bad as bad:
        return ("bad", bad.reason)


def places(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a decoded JSON value."""
    found = [at]
    if isinstance(value, dict):
        for k, v in value.items():
            found += places(v, (*at, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += places(v, (*at, i))
    return found


def put(value: Any, at: tuple[Any, ...], new: Any) -> Any:
    if not at:
        return new
    head, rest = at[0], at[1:]
    if isinstance(value, dict):
        return {**value, head: put(value[head], rest, new)}
    return [put(v, rest, new) if i == head else v for i, v in enumerate(value)]


def get(value: Any, at: tuple[Any, ...]) -> Any:
    for step in at:
        value = value[step]
    return value


NUMBERS = [2**63, 2**63 - 1, -(2**63), -(2**63) - 1, 2**64, 10**18, 10**19, 10**30, 1.5, 0.0,
           -1, 1e300, 12345678901234567890.5]  # fmt: skip
RAW_NUMBERS = ["1e400", "-1e400", "1E+308", "1e-400", "9223372036854775808", "1.0e999",
               "00", "NaN", "Infinity", "0.00012345678901234567890"]  # fmt: skip
TEXTS = ["", "x", ":12345678901234567890", "1e400", '"', "\\", "\x00", "\ud7ff", "AS7552"]


@st.composite
def altered(draw: st.DrawFn, columns: dict[str, list[Any]]) -> tuple[str, str]:
    column = draw(st.sampled_from(sorted(columns)))
    value = draw(st.sampled_from(columns[column]))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.sampled_from(places(value)))
        here = get(value, at)
        kind = draw(st.sampled_from(["field", "number", "text", "drop", "null", "list"]))
        if kind == "field" and isinstance(here, dict):
            name = draw(st.sampled_from(["zz_unknown", "t", "url", "ok", "bytes", "extra"]))
            value = put(value, at, {**here, name: draw(st.sampled_from([1, "x", None, {}, []]))})
        elif kind == "drop" and isinstance(here, dict) and here:
            gone = draw(st.sampled_from(sorted(here)))
            value = put(value, at, {k: v for k, v in here.items() if k != gone})
        elif kind == "number":
            value = put(value, at, draw(st.sampled_from(NUMBERS)))
        elif kind == "text":
            value = put(value, at, draw(st.sampled_from(TEXTS)))
        elif kind == "null":
            value = put(value, at, None)
        elif kind == "list":
            value = put(value, at, [here])
    text = json.dumps(value, ensure_ascii=draw(st.booleans()))
    if draw(st.booleans()):  # a number JSON has but Python would not write
        at = draw(st.sampled_from(places(value)))
        if at and isinstance(get(value, at), (int, float)) and not isinstance(get(value, at), bool):
            marker = "__NUM__"
            text = json.dumps(put(value, at, marker)).replace(
                f'"{marker}"', draw(st.sampled_from(RAW_NUMBERS))
            )
    if draw(st.booleans()):
        text = text.replace(", ", ",").replace(": ", ":")
    return column, text


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_fast_check_judges_as_the_walk(
    data: st.DataObject, columns: dict[str, list[Any]]
) -> None:
    column, text = data.draw(altered(columns))
    assert outcome(column, text, merge._json) == outcome(column, text, merge._json_walk)


@pytest.mark.parametrize(
    ("column", "text", "reason"),
    [
        ("observations", '{"url": "u", "zz": 1}',
         "observations: $.zz is no field of a probe record"),
        ("observations", '{"url": "u", "http": [{"url": "v", "port": 9223372036854775808}]}',
         "observations: a number out of range (64 bits, finite)"),
        ("extra", '{"a": [1, {"b": 18446744073709551615}]}',
         "extra: a number out of range (64 bits, finite)"),
        ("extra", '{"a": [1, 18446744073709551615]}',
         "extra: a number out of range (64 bits, finite)"),
        ("extra", '{"a": [-9223372036854775809]}',
         "extra: a number out of range (64 bits, finite)"),
        ("extra", '{"a": 1e400}', "extra: Number out of range - at `$[...]`"),
        ("control", '{"tcp_connect": {"1.2.3.4:443": {"ok": true, "x": 1}}}',
         "control: $.tcp_connect.1.2.3.4:443.x is no field of a probe record"),
    ],
)  # fmt: skip
def test_what_the_fast_check_refuses_it_refuses_with_the_walks_reason(
    column: str, text: str, reason: str
) -> None:
    assert outcome(column, text, merge._json) == ("bad", reason)
    assert outcome(column, text, merge._json_walk) == ("bad", reason)


@pytest.mark.parametrize(
    ("column", "text"),
    [
        ("observations", "{}"),
        ("observations", '{"url": "u"}'),
        ("observations", '{"url": "u", "http": [{}]}'),
        ("observations", '{"url": "u", "dns": [{"answers": []}]}'),
        ("observations", '{"url": "u", "http": [{"url": "v", "headers": [["a"]]}]}'),
        ("observations", '{"url": "u", "http": [{"url": "v", "t": 5, "bytes": 2.5}]}'),
        ("control", "{}"),
        ("control", "null"),
        ("control", '{"tcp_connect": {"a": {}}}'),
        ("throughput", "null"),
        ("extra", "[]"),
    ],
)
def test_missing_fields_and_defaults_are_judged_as_the_walk_judges(column: str, text: str) -> None:
    assert outcome(column, text, merge._json) == outcome(column, text, merge._json_walk)
    if outcome(column, text, merge._json_walk)[0] == "ok":  # and the strict record's defaults
        strict, lazy = merge._json_check(column, text, DECODERS[column])
        assert lazy
        assert msgspec.to_builtins(strict) == msgspec.to_builtins(DECODERS[column].decode(text))


def test_a_large_number_that_fits_is_accepted() -> None:
    # 19 digits: the search sends it to the walk, which takes it (a false alarm costs only time).
    text = '{"a": 1000000000000000000, "b": -9223372036854775808}'
    assert outcome("extra", text, merge._json) == ("ok", json.loads(text))
