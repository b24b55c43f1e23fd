"""Value parsers: a setting's text (a flag, an environment variable) or TOML value -> a typed value.

Contract: every parser takes what a flag, a variable or a settings file gives (text, or a TOML
value) and returns the typed value or raises :class:`ValueError` with a one-line message that
says what was wrong (the caller adds which flag, variable or file and key): a
:class:`~probe.errors.BadValue` (a message id with fields, translated where it is shown), or the
error of the parser it relies on (:class:`~probe.errors.URLError`, ``AddressError``). The same
parser serves all three origins, so they are held to the same rules. :func:`format_duration` is
the inverse of :func:`parse_duration`, the one place a duration is written back as text. Pure:
no I/O, no import of the measuring code.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from probe import addr
from probe.errors import BadValue
from probe.words import N_


def _text(v: Any) -> str:
    if not isinstance(v, str):
        raise BadValue(N_("{value} is not text"), value=repr(v))
    if any(ord(c) < 32 for c in v):
        raise BadValue(N_("control characters are not allowed"))
    return v


def parse_int(lo: int, hi: int) -> Callable[[Any], int]:
    def parse(v: Any) -> int:
        if isinstance(v, bool):
            raise BadValue(N_("{value} is not a whole number"), value=repr(v))
        if isinstance(v, str):
            t = v.strip()
            if not (t.isascii() and t.lstrip("+-").isdigit()):
                raise BadValue(N_("{value} is not a whole number"), value=repr(v))
            v = int(t)
        if not isinstance(v, int) or not lo <= v <= hi:
            raise BadValue(
                N_("{value} is not a whole number from {lo} to {hi}"), value=repr(v), lo=lo, hi=hi
            )
        return v

    return parse


def parse_float(lo: float, hi: float) -> Callable[[Any], float]:
    def parse(v: Any) -> float:
        bad = BadValue(
            N_("{value} is not a number from {lo} to {hi}"),
            value=repr(v),
            lo=f"{lo:g}",
            hi=f"{hi:g}",
        )
        if isinstance(v, bool):
            raise bad
        number = v
        if isinstance(v, str):
            try:
                number = float(v.strip()) if v.strip().isascii() else math.nan
            except ValueError:
                raise bad from None
        if not isinstance(number, int | float) or not math.isfinite(number):
            raise bad
        if not lo <= number <= hi:
            raise bad
        return float(number)

    return parse


_SIZE_UNITS = {
    "": 1,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "KI": 2**10,
    "MI": 2**20,
    "GI": 2**30,
    "TI": 2**40,
}
_SIZE = re.compile(r"^([0-9]+)\s*([KMGT]I?)?B?$")


def parse_size(v: Any) -> int:
    """Bytes: ``500000000``, ``500M``, ``1G``, ``256KiB`` (SI and binary units)."""
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return v
    m = _SIZE.match(v.strip().upper()) if isinstance(v, str) and v.isascii() else None
    if m is None:
        raise BadValue(N_("{value} is not a size (e.g. 500000000, 500M, 1G)"), value=repr(v))
    n = int(m.group(1)) * _SIZE_UNITS[m.group(2) or ""]
    if n > 2**60:
        raise BadValue(N_("{value} is too large"), value=repr(v))
    return n


_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)?$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(v: Any) -> float:
    """Seconds: ``90``, ``90s``, ``45m``, ``6h``, ``1d``."""
    if isinstance(v, int | float) and not isinstance(v, bool):
        seconds = float(v)
    else:
        m = _DURATION.match(v.strip().lower()) if isinstance(v, str) and v.isascii() else None
        if m is None:
            raise BadValue(N_("{value} is not a duration (e.g. 90s, 45m, 6h, 1d)"), value=repr(v))
        seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    if not math.isfinite(seconds) or not 0 < seconds <= 366 * 86400:
        raise BadValue(N_("{value} is not a duration between 1 ms and a year"), value=repr(v))
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact form parse_duration reads back: 45m, 6h, 1d, 90s, 1.5s."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{seconds!r}s"


def parse_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(v, str) and v.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise BadValue(N_("{value} is not true or false"), value=repr(v))


def parse_choice(*choices: str) -> Callable[[Any], str]:
    def parse(v: Any) -> str:
        if v not in choices:
            raise BadValue(
                N_("{value} is not one of {choices}"), value=repr(v), choices=", ".join(choices)
            )
        return str(v)

    return parse


def parse_path(v: Any) -> str:
    text = _text(v).strip()
    if not text:
        raise BadValue(N_("empty path"))
    try:
        return str(Path(text).expanduser())
    except RuntimeError:  # ~name of no such user
        raise BadValue(N_("{path}: no such user's home directory"), path=repr(text[:80])) from None


def parse_url(v: Any) -> str:
    """An http(s) URL the probe can fetch (:func:`probe.urls.check_url`; its URLError, a
    ValueError, is the reason)."""
    from probe.urls import check_url

    text = _text(v).strip()
    check_url(text)
    return text


def parse_ip(v: Any) -> str:
    return addr.ip_address(_text(v).strip())


def parse_prefix(v: Any) -> str:
    """An address prefix ("203.0.113.0/24", "2001:db8::/32"), as its network's text."""
    import ipaddress

    text = _text(v).strip()
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise BadValue(
            N_("{value} is not an address prefix (e.g. 203.0.113.0/24)"), value=repr(text[:60])
        ) from None


def parse_asn(v: Any) -> str:
    from probe.network import normalise_asn

    if isinstance(v, bool) or not isinstance(v, str | int):
        raise BadValue(N_("{value} is not an AS number (e.g. AS7552)"), value=repr(v))
    return normalise_asn(v)


def parse_cc(v: Any) -> str:
    from probe.network import normalise_cc

    return normalise_cc(_text(v))


def parse_text(v: Any) -> str:
    return _text(v).strip()


STUN_PORT = 3478


def parse_stun_server(v: Any) -> str:
    """A STUN server, ``HOST``, ``HOST:PORT`` or ``[IPv6]:PORT`` (UDP port 3478 by default),
    written back as ``HOST:PORT``."""
    text = _text(v).strip()
    host, port = addr.split_host_port(text, STUN_PORT)
    if any(c.isspace() or c in "/@?#" for c in host):
        raise BadValue(
            N_("{value} is not a STUN server (HOST or HOST:PORT)"), value=repr(text[:60])
        )
    return addr.endpoint(host, port)


def parse_stun_servers(v: Any) -> tuple[str, ...]:
    """STUN servers, or none: an empty list, or the word ``none``."""
    if isinstance(v, str) and v.strip().lower() == "none":
        return ()
    if isinstance(v, list | tuple) and [str(x).strip().lower() for x in v] == ["none"]:
        return ()
    servers: tuple[str, ...] = tuple_of(parse_stun_server, max_items=16)(v)
    return servers


def tuple_of(one: Callable[[Any], Any], max_items: int | None = None) -> Callable[[Any], Any]:
    def parse(v: Any) -> tuple[Any, ...]:
        if isinstance(v, str):  # environment: comma-separated
            items: list[Any] = [x for x in (p.strip() for p in v.split(",")) if x]
        elif isinstance(v, list | tuple):
            items = list(v)
        else:
            raise BadValue(N_("{value} is not a list"), value=repr(v))
        if max_items is not None and len(items) > max_items:
            raise BadValue(N_("at most {n}"), n=max_items)
        return tuple(one(x) for x in items)

    return parse


def optional(one: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def parse(v: Any) -> Any:
        if v is None or (isinstance(v, str) and v.strip().lower() in ("", "none")):
            return None
        return one(v)

    return parse


_AGE = re.compile(r"^([0-9]+)\s*([hdwy])$")
_AGE_UNITS = {"h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
MAX_AGE = 100 * 365 * 86400


def parse_age(v: Any) -> float:
    """Seconds, from an age that must name its unit: ``12h``, ``180d``, ``26w``, ``2y`` (a year
    is 365 days), from an hour to a century. Unlike :func:`parse_duration` (whose settings read
    a bare number as seconds), a bare number is refused: ``probe prune --older-than 180`` meant
    days, and read as seconds it would delete nearly everything. No ``m``: minutes or months.
    Raises :class:`~probe.errors.BadValue`."""
    text = v.strip().lower() if isinstance(v, str) else ""
    if text.isascii() and text.isdigit():
        raise BadValue(
            N_("{age} has no unit (e.g. 180d, 26w, 12h, 2y; h hours, d days, w weeks, y years)"),
            age=repr(text),
        )
    m = _AGE.match(text) if text.isascii() else None
    if m is None:
        shown = v[:40] if isinstance(v, str) else v
        raise BadValue(
            N_("{age} is not an age (e.g. 180d, 26w, 12h, 2y; h, d, w or y)"), age=repr(shown)
        )
    seconds = int(m.group(1)) * _AGE_UNITS[m.group(2)]
    if not 3600 <= seconds <= MAX_AGE:
        raise BadValue(
            N_("{age}: an age is at least 1h and at most 100y (e.g. 180d, 26w, 12h, 2y)"),
            age=repr(text),
        )
    return float(seconds)
