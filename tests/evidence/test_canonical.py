"""The canonical encoding (RFC 8785 through the rfc8785 package), the record hash and the link."""

from __future__ import annotations

import hashlib
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probe.evidence import canonical

# JSON values RFC 8785 encodes: integers within IEEE 754's exact range, finite floats.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53) + 1, 2**53 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def utf16_order(key: str) -> list[int]:
    raw = key.encode("utf-16-be")
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]


@given(st.dictionaries(st.text(), scalars, min_size=1))
def test_key_order_does_not_matter_and_output_is_sorted_by_utf16(d: dict[str, object]) -> None:
    backwards = dict(reversed(list(d.items())))
    out = canonical.encode(d)
    assert canonical.encode(backwards) == out
    keys = list(json.loads(out))
    assert keys == sorted(d, key=utf16_order)


@given(values)
def test_round_trip_and_idempotent(v: object) -> None:
    # Read back as ECMAScript reads JSON (every number a double: 2.0**53 is written
    # "9007199254740992", which Python alone would read as an integer past the safe range),
    # the value is the same, and encodes to the same bytes.
    out = canonical.encode(v)
    back = json.loads(out, parse_int=float)
    assert back == v
    assert canonical.encode(back) == out


@given(st.text())
def test_unicode_is_utf8_not_escaped(s: str) -> None:
    out = canonical.encode(s)
    assert json.loads(out.decode("utf-8")) == s
    plain = not any(c in s for c in '"\\') and all(ord(c) >= 0x20 for c in s)
    if plain:
        assert out == b'"' + s.encode("utf-8") + b'"'


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_round_trip_exactly(f: float) -> None:
    assert float(canonical.encode(f)) == f


@pytest.mark.parametrize(
    ("value", "text"),
    [  # RFC 8785 section 3.2.2.3 and appendix B
        (1e21, "1e+21"),
        (1e30, "1e+30"),
        (333333333.33333329, "333333333.3333333"),
        (4.50, "4.5"),
        (2e-3, "0.002"),
        (0.000001, "0.000001"),
        (1e-7, "1e-7"),
        (-0.0, "0"),
        (1.0, "1"),
        (9007199254740991, "9007199254740991"),
    ],
)
def test_numbers_as_the_rfc_writes_them(value: float, text: str) -> None:
    assert canonical.encode(value) == text.encode()


def test_rfc_sorting_example_by_utf16_code_units() -> None:
    # RFC 8785 section 3.2.3: the emoji (a surrogate pair, 0xD83D...) sorts before U+FB33.
    d = {"\u20ac": 1, "\r": 2, "\ufb33": 3, "1": 4, "\U0001f600": 5, "\u0080": 6, "\u00f6": 7}
    assert list(json.loads(canonical.encode(d)).values()) == [2, 4, 6, 7, 1, 5, 3]


@pytest.mark.parametrize("bad", [math.nan, math.inf, 2**53, {1: "x"}, b"bytes"])
def test_what_json_cannot_say_is_refused(bad: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        canonical.encode(bad)


def row() -> dict[str, object]:
    return {
        "id": "m1",
        "target": "example",
        "runtime": 1.5,
        "observations": '{"dns": []}',
        "blocking": "dns",
        "throughput": None,
        "bytes_used": 10,
        "seq": 3,
    }


def test_record_hash_covers_the_facts_not_the_derived_columns() -> None:
    base = canonical.record_hash(row())
    for derived in ("blocking", "throughput", "bytes_used", "seq", "rule_id", "chain_hash"):
        assert canonical.record_hash({**row(), derived: "changed"}) == base, derived
    for fact in ("id", "target", "runtime", "observations", "device_key", "body_digests"):
        assert canonical.record_hash({**row(), fact: "changed"}) != base, fact
    # One byte of a JSON column's stored text is a different record.
    assert canonical.record_hash({**row(), "observations": '{"dns":[]}'}) != base


def test_record_is_its_fields_and_version() -> None:
    rec = canonical.record(row())
    assert set(rec) == {*canonical.RECORD_FIELDS, "v"}
    assert rec["v"] == canonical.RECORD_VERSION
    # A JSON column stands in the record as the SHA-256 of its stored text.
    assert rec["observations"] == hashlib.sha256(b'{"dns": []}').hexdigest()
    assert rec["control"] is None and rec["target"] == "example"
    assert canonical.record_hash(row()) == hashlib.sha256(canonical.encode(rec)).hexdigest()


def test_link_is_sha256_of_the_raw_bytes() -> None:
    a, b = "11" * 32, "22" * 32
    assert canonical.link(a, b) == hashlib.sha256(bytes.fromhex(a + b)).hexdigest()
    assert canonical.link(a, b) != canonical.link(b, a)
    assert canonical.GENESIS == "00" * 32
