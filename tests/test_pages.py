"""Pages (probe.pages): a page's title and its text, whatever its bytes and declared charset."""

from __future__ import annotations

import pytest

from probe.pages import decode_text, extract_title


# -- pages --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "title"),
    [
        (b"<html><head><title>  Independent \n News  </title>", "Independent News"),
        (b"<TITLE lang=vi>Tin t\xe1\xbb\xa9c</TITLE>", "Tin tức"),
        (b"<title></title>", None),
        (b"<title>   </title>", None),
        (b"no title here", None),
        (b"<title>" + b"x" * 300 + b"</title>", None),  # longer than 256: not a title
        (b"<title>" + b"y" * 250 + b"</title>", "y" * 200),
    ],
)
def test_extract_title(body: bytes, title: str | None) -> None:
    assert extract_title(body) == title


@pytest.mark.parametrize(
    ("body", "content_type", "text"),
    [
        ("Tin tức".encode(), None, "Tin tức"),
        ("Tin tức".encode("utf-16"), "text/html; charset=UTF-16", "Tin tức"),
        ("caf\xe9".encode("latin-1"), "text/html; Charset=iso-8859-1", "café"),
        (b"abc", "text/html; charset=no-such-charset", "abc"),
        (b"\xff", "text/html", "\ufffd"),
    ],
)
def test_decode_text(body: bytes, content_type: str | None, text: str) -> None:
    assert decode_text(body, content_type) == text
