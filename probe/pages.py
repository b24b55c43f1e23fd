"""What a fetched page says: its title and its text. Pure, shared by the measuring code and the
OONI translator (which must not import the network stack)."""

from __future__ import annotations

import re

_TITLE = re.compile(rb"<title[^>]*>([^<]{1,256})</title>", re.IGNORECASE)


def extract_title(body: bytes) -> str | None:
    """The first ``<title>``, whitespace collapsed, at most 200 characters."""
    m = _TITLE.search(body)
    if not m:
        return None
    return " ".join(m.group(1).decode("utf-8", "replace").split())[:200] or None


def decode_text(body: bytes, content_type: str | None) -> str:
    """The body as text, in the charset the Content-Type names (UTF-8 otherwise)."""
    charset = "utf-8"
    if content_type:
        m = re.search(r"charset=([\w.:-]+)", content_type, re.IGNORECASE)
        if m:
            charset = m.group(1)
    try:
        return body.decode(charset, "replace")
    except LookupError:
        return body.decode("utf-8", "replace")
