"""The encodings a server may echo a client's address in (issue 20), and an oracle that finds
an address in text however it is encoded, written apart from probe.privacy so a bug in the
scrubber is not repeated in the check.

``RENDERINGS[name](address)`` gives exact renderings of an address in one encoding (the unit
tests and the loopback echo server use them). :func:`holds` is the oracle: it reads a text
every way the encodings allow (URL-decoded twice, HTML entities decoded, NULs dropped, UTF-16
read in the other byte order, base64 tokens decoded at every offset) and reports each place an
address is found, with ``socket.inet_aton``'s reading of dotted quads (octal and hex octets)
beside the decimal one.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import html
import ipaddress
import re
import socket
from collections.abc import Callable, Iterator
from urllib.parse import unquote

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _octets(address: str) -> list[int]:
    return [int(o) for o in address.split(".")]


def double_url(address: str) -> list[str]:
    """A URL-encoded form URL-encoded again (``%2E`` -> ``%252E``), as a redirect through a
    tracker writes it."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv4Address):
        return [address.replace(".", "%252E"), address.replace(".", "%252e")]
    return [ip.compressed.replace(":", "%253A"), ip.exploded.replace(":", "%253a")]


def padded(address: str) -> list[str]:
    """Octets zero-padded each its own amount, in each order and separator (IPv4 only)."""
    if ":" in address:
        return []
    octets = _octets(address)
    forward = ".".join(f"{o:0{i + 1}d}" for i, o in enumerate(octets))
    backward = "-".join(f"{o:0{4 - i}d}" for i, o in enumerate(reversed(octets)))
    return [forward, f"{backward}.in-addr.arpa", "_".join(f"00{o}" for o in octets)]


def octal_hex(address: str) -> list[str]:
    """Octets in octal and hexadecimal, as inet_aton reads them, also mixed (IPv4 only)."""
    if ":" in address:
        return []
    o = _octets(address)
    return [
        ".".join(f"0{x:o}" for x in o),
        ".".join(f"0x{x:x}" for x in o),
        f"0X{o[0]:02X}.0{o[1]:o}.{o[2]}.0x{o[3]:x}",
    ]


def entities(address: str) -> list[str]:
    """HTML numeric entities: every character decimal, every one hexadecimal and zero-padded,
    every other one (the rest plain)."""
    return [
        "".join(f"&#{ord(c)};" for c in address),
        "".join(f"&#x{ord(c):04X};" for c in address),
        "".join(f"&#{ord(c)};" if i % 2 else c for i, c in enumerate(address)),
    ]


def base64_forms(address: str) -> list[str]:
    """Base64, as a cookie holds it: the address (padded), a JSON object holding it at each
    alignment in either alphabet (padded or not), and IPv4's ip2long number."""
    ip = ipaddress.ip_address(address)
    ua = "Mozilla/5.0 (X11; Linux x86_64)?>~"
    out = [base64.b64encode(address.encode()).decode()]
    for i, key in enumerate(("ip", "ip_", "addr")):
        doc = f'{{"{key}":"{address}","ua":"{ua}"}}'.encode()
        encode = base64.urlsafe_b64encode if i % 2 else base64.b64encode
        out.append(encode(doc).decode().rstrip("=" if i == 2 else ""))
    if isinstance(ip, ipaddress.IPv4Address):
        out.append(base64.b64encode(f"n={int(ip)}".encode()).decode())
    return out


RENDERINGS: dict[str, Callable[[str], list[str]]] = {
    "double-url": double_url,
    "padded": padded,
    "octal-hex": octal_hex,
    "entities": entities,
    "base64": base64_forms,
}


# -- the oracle ---------------------------------------------------------------------------------
_TOKEN = re.compile(r"[A-Za-z0-9+/_-]{8,}")
_QUAD = re.compile(
    r"(?<![0-9])(?=((?:0[xX][0-9a-fA-F]+|[0-9]+)([.\-_])(?:0[xX][0-9a-fA-F]+|[0-9]+)\2"
    r"(?:0[xX][0-9a-fA-F]+|[0-9]+)\2(?:0[xX][0-9a-fA-F]+|[0-9]+)))"
)
_NUMBER = re.compile(r"(?<![0-9a-zA-Z])(?:0[xX])?([0-9a-fA-F]{8}|[0-9]{8,10})(?![0-9a-zA-Z])")


def _swapped(text: str) -> str:
    """UTF-16 read in the wrong byte order: U+3100 back to '1'."""
    return "".join(chr(ord(c) >> 8) if ord(c) & 0xFF == 0 and ord(c) > 0xFF else c for c in text)


def _decoded_tokens(text: str) -> Iterator[str]:
    for m in _TOKEN.finditer(text):
        token = m.group().replace("-", "+").replace("_", "/")
        for k in range(4):
            body = token[k:]
            body = body[: len(body) - len(body) % 4 if len(body) % 4 == 1 else len(body)]
            try:
                yield base64.b64decode(body + "=" * (-len(body) % 4)).decode("latin-1")
            except binascii.Error:
                continue


def readings(text: str, depth: int = 2) -> Iterator[str]:
    """``text`` read every way an encoding allows, itself first."""
    once = {text, _swapped(text)}
    once |= {t.replace("\x00", "") for t in list(once)}
    once |= {html.unescape(t) for t in list(once)}
    once |= {unquote(unquote(t)) for t in list(once)}
    yield from once
    if depth:
        for t in once:
            for decoded in _decoded_tokens(t):
                yield from readings(decoded, depth - 1)


def _quad_values(text: str) -> Iterator[tuple[str, IPAddress]]:
    for m in _QUAD.finditer(text):
        quad = m.group(1)
        parts = re.split(r"[.\-_]", quad)
        dotted = ".".join(parts)
        readings_of = []
        if all(p.isdigit() and len(p.lstrip("0")) <= 3 and int(p) <= 255 for p in parts):
            readings_of.append(".".join(str(int(p)) for p in parts))
        with contextlib.suppress(OSError):
            readings_of.append(socket.inet_ntoa(socket.inet_aton(dotted)))
        for r in readings_of:
            ip = ipaddress.IPv4Address(r)
            yield quad, ip
            yield quad, ipaddress.IPv4Address(".".join(reversed(r.split("."))))


def holds(address: str, text: str) -> list[str]:
    """Every snippet of ``text``, read every way, that is ``address`` in some form."""
    ip = ipaddress.ip_address(address)
    found = []
    for reading in readings(text):
        low = reading.lower()
        if isinstance(ip, ipaddress.IPv6Address):
            for form in (ip.compressed, ip.exploded):
                for sep in (":", "-"):
                    if form.replace(":", sep) in low:
                        found.append(form.replace(":", sep))
            continue
        found += [quad for quad, seen in _quad_values(low) if seen == ip]
        for m in _NUMBER.finditer(low):
            digits = m.group(1)
            bases = (10, 16) if digits.isdigit() else (16,)
            found += [digits for base in bases if int(digits, base) == int(ip)]
    return found
