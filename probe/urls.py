"""Target URLs: the one validator shared by every place that accepts a URL to measure.

Contract: :func:`check_url(text)` returns the :class:`httpx.URL` the probe will fetch, or raises
:class:`URLError` (a ``ValueError``) whose message is one line saying what is wrong. What passes
is what the measuring code can use: the text is parsed by httpx's own parser (with its IDNA
handling, through the ``idna`` package), and then held to what a DNS name or an IP literal can
be, because httpx quietly percent-encodes a host it cannot use (``exa mple.com`` becomes
``exa%20mple.com``) and reads ``127.1`` as a name. ``urllib.parse`` must agree with httpx on the
host and port, so no other module can read a different host from the same text. Pure: nothing is
resolved or fetched. Used by ``probe targets check``, target loading, ``targets import``, the
helper's requests and the ``--helper`` setting. Which port a URL without one means is said
once, by :func:`probe.addr.port_of_scheme`.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

import httpx

from probe.addr import port_of_scheme
from probe.errors import URLError
from probe.words import N_

MAX_LENGTH = 2048  # what browsers and CDNs reliably carry; OONI's helper caps the same
_LABEL = re.compile(r"^[a-z0-9_-]{1,63}$")  # after IDNA: letters, digits, '-', '_' (SRV-style)
_NUMERIC = re.compile(r"^(?:[0-9]+|0x[0-9a-f]*)$")


def show(text: str, limit: int = 60) -> str:
    """A URL quoted for a one-line message: escaped, and cut when long."""
    return repr(text[:limit]) + ("..." if len(text) > limit else "")


def check_url(text: Any) -> httpx.URL:
    """The parsed URL, or URLError naming the first problem."""
    if not isinstance(text, str):
        raise URLError(N_("{value} is not text"), value=repr(text))
    if len(text) > MAX_LENGTH:
        raise URLError(
            N_("{url} is longer than {limit} characters ({length})"),
            url=show(text),
            limit=MAX_LENGTH,
            length=len(text),
        )
    if not text[:8].lower().startswith(("http://", "https://")):
        raise URLError(N_("{url} must start with http:// or https://"), url=show(text))
    try:
        url = httpx.URL(text)
        host = url.host  # decodes xn-- labels: an invalid A-label fails here
        split = urlsplit(text)
        split_host, split_port = split.hostname, split.port
    except (httpx.InvalidURL, ValueError) as exc:  # UnicodeError and idna's errors included
        raise URLError(
            N_("{url} is not a valid URL ({reason})"), url=show(text), reason=_reason(exc)
        ) from None
    if not host:
        raise URLError(N_("{url} has no host"), url=show(text))
    if url.userinfo:
        raise URLError(N_("{url} must not hold a user name or password"), url=show(text))
    port = url.port
    if port is not None and not 0 < port < 65536:
        raise URLError(N_("{url} has a port outside 1-65535"), url=show(text))
    raw = url.raw_host.decode("ascii")
    _check_host(text, raw)
    default = port_of_scheme(url.scheme)
    if (split_host or "").lower() != host.lower() and (split_host or "").lower() != raw:
        raise URLError(N_("{url} is ambiguous (parsers disagree on its host)"), url=show(text))
    if (split_port or default) != (port or default):
        raise URLError(N_("{url} is ambiguous (parsers disagree on its port)"), url=show(text))
    return url


def _check_host(text: str, raw: str) -> None:
    """A DNS name (after IDNA) or an IP literal; nothing httpx had to percent-encode."""
    if ":" in raw:  # an IPv6 literal: httpx checked it is one; a zone id has no place here
        if "%" in raw:
            raise URLError(N_("{url} has an IPv6 zone id"), url=show(text))
        return
    name = raw[:-1] if raw.endswith(".") else raw
    if len(name) > 253:
        raise URLError(N_("{url} has a host name over 253 characters"), url=show(text))
    labels = name.split(".")
    for label in labels:
        if not _LABEL.match(label):
            raise URLError(
                N_("{url} has an invalid host name (labels are 1-63 letters, digits, '-' or '_')"),
                url=show(text),
            )
    if _NUMERIC.match(labels[-1]):
        # WHATWG: a host ending in a number is an IPv4 address, and only dotted-quad decimal
        # is one we accept (no octal 0177.0.0.1, hex 0x7f.1 or shorthand 127.1).
        try:
            ipaddress.IPv4Address(name)
        except ValueError:
            raise URLError(
                N_("{url} has a host that is neither a name nor a dotted-quad IPv4 address"),
                url=show(text),
            ) from None


def _reason(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.encode("ascii", "backslashreplace").decode("ascii")[:120]
