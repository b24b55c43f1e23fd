"""canonical.encode's fast path against the reference, the rfc8785 package: the same bytes for
every JSON value, and the same error for every value it refuses."""

from __future__ import annotations

import enum
import math

import pytest
import rfc8785
from hypothesis import example, given, settings
from hypothesis import strategies as st

from probe.evidence import canonical

# Every text: control characters, quotes, backslashes, astral and private-use characters,
# lone surrogates (which neither can write as UTF-8).
texts = st.text(st.characters(codec=None, exclude_categories=()), max_size=12) | st.sampled_from(
    ["", '"', "\\", "\x00", "\x1f", "\x7f", "\u2028", "\ud800", "\ue000", "\U0001f600", "a\tb"]
)
ints = st.integers() | st.sampled_from(
    [2**53 - 1, 2**53, -(2**53) + 1, -(2**53), 2**63, -(2**63) - 1, 0, -1]
)
floats = st.floats() | st.sampled_from(
    [0.0, -0.0, 1e16, 1e21, 1e-7, 1e-6, 5e-324, 1.7976931348623157e308, 123.0, -4.5, 1e15 + 0.5]
)
scalars = st.none() | st.booleans() | ints | floats | texts
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(texts, inner, max_size=4)
    ),
    max_leaves=30,
)


def outcome(fn, value):  # type: ignore[no-untyped-def]
    try:
        return ("ok", fn(value))
    except Exception as exc:  # the same error is part of the contract
        return ("error", type(exc), str(exc))


@settings(max_examples=3000)
@given(values)
@example({"b": 1, "a": [1.5, None, True, "x\ny"], "\u00e9": 2})
@example({"\U0001f600": 1, "\ufb33": 2})  # UTF-16 order differs from code-point order here
@example([2**60])
@example({"a": "\ud800"})
@example([float("nan")])
@example(["\udfff"])
@example(['"\udfff'])  # a quote beside what neither can write
@example(["\\\ud800"])
@example(['"\x1f'])
@example(["\\\x00"])
@example(['a"b\\c', '\\"', '{"k": "v\\n"}'])
def test_the_fast_path_is_rfc8785(value: object) -> None:
    assert outcome(canonical.encode, value) == outcome(rfc8785.dumps, value)


class Colour(enum.IntEnum):
    RED = 1


class Name(enum.StrEnum):
    A = "a"


@pytest.mark.parametrize(
    "value",
    [Colour.RED, Name.A, {"k": Name.A}, {1: "x"}, {"a": object()}, math.inf, -math.inf, 1e-5],
)
def test_subclasses_and_strange_values_are_left_to_rfc8785(value: object) -> None:
    assert outcome(canonical.encode, value) == outcome(rfc8785.dumps, value)


def test_a_record_hash_is_the_reference_hash() -> None:
    import hashlib

    row = {name: f"v-{name}" for name in canonical.RECORD_FIELDS} | {"runtime": 0.25, "seq": 3}
    ref = hashlib.sha256(rfc8785.dumps(canonical.record(row))).hexdigest()
    assert canonical.record_hash(row) == ref


ascii_keys = st.text(st.characters(max_codepoint=127), max_size=8)


@settings(max_examples=2000)
@given(st.dictionaries(ascii_keys | texts, scalars, max_size=8))
@example({"a": 1.0, "b": -0.0, "c": 0.1, "d": 1e16, "e": 2**53, "f": "\x7f\u2028/"})
@example({"z": 'q"', "y": "\\", "x": "\n"})
def test_a_flat_object_is_rfc8785(value: dict[str, object]) -> None:
    # The records' own path (ASCII keys, scalars: written by msgspec) against the reference.
    assert outcome(canonical.encode, value) == outcome(rfc8785.dumps, value)
