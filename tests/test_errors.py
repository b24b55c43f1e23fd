"""probe.errors: a message id with fields is English by ``str()`` and the volunteer's language by
``translated()``, nested errors included; a translation that does not fit its fields falls back
to the English line rather than raising inside an error handler."""

from __future__ import annotations

import pytest

from probe.errors import BadValue, ProbeError, TargetsError, URLError
from probe.words import translator


def _fake(catalog: dict[str, str]):  # type: ignore[no-untyped-def]
    return lambda m: catalog.get(m, m)


def test_str_is_the_english_line_with_fields() -> None:
    e = BadValue("{value} is not a size", value="'x'")
    assert str(e) == "'x' is not a size"
    assert e.template == "{value} is not a size" and e.fields == {"value": "'x'"}


def test_plain_text_is_kept_as_written_even_with_braces() -> None:
    e = ProbeError("a {brace} left alone")
    assert str(e) == "a {brace} left alone"
    assert e.translated(_fake({})) == "a {brace} left alone"


def test_translated_fills_the_translation() -> None:
    e = BadValue("{value} is not a size", value="'x'")
    assert e.translated(_fake({"{value} is not a size": "{value} không phải kích thước"})) == (
        "'x' không phải kích thước"
    )


def test_a_nested_error_is_translated_too() -> None:
    inner = URLError("{url} has no host", url="'http://'")
    outer = TargetsError("{where}: url: {problem}", where="t.yaml:3", problem=inner)
    assert str(outer) == "t.yaml:3: url: 'http://' has no host"
    tr = _fake(
        {
            "{url} has no host": "{url} không có máy chủ",
            "{where}: url: {problem}": "{where}: url: {problem}",
        }
    )
    assert outer.translated(tr) == "t.yaml:3: url: 'http://' không có máy chủ"


def test_a_translation_that_does_not_fit_falls_back_to_english() -> None:
    e = BadValue("{value} is not a size", value="'x'")
    assert e.translated(_fake({"{value} is not a size": "{valeur} sai"})) == "'x' is not a size"
    assert e.translated(_fake({"{value} is not a size": "{0} sai"})) == "'x' is not a size"


def test_the_vietnamese_catalog_translates_a_shipped_message() -> None:
    from probe.config.parse import parse_age

    with pytest.raises(BadValue) as info:
        parse_age("180")
    vi = info.value.translated(translator("vi").gettext)
    assert vi != str(info.value) and "'180'" in vi
