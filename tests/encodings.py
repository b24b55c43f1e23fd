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

from hypothesis import strategies as st

SCRUBBED = "[scrubbed]"  # as probe.privacy writes it (not imported: this module checks it)

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


# -- any rendering, for property tests ---------------------------------------------------------
_V4_SEPARATORS = (".", "-", "_", "%2e", "%2E", "%252e", "%252E")
_DOTS = (".", "%2e", "%2E", "%252e", "%252E")
_V6_SEPARATORS = (":", "-", "%3a", "%3A", "%253a", "%253A")


def _cased(draw: st.DrawFn, text: str) -> str:
    return "".join(c.upper() if draw(st.booleans()) else c for c in text)


@st.composite
def plain_v4(draw: st.DrawFn, ip: ipaddress.IPv4Address) -> str:
    """Dotted (either order, any separator, each octet padded, octal or hexadecimal between
    dots) or one number (decimal, or hexadecimal with or without 0x)."""
    if draw(st.integers(0, 4)) == 0:
        if draw(st.booleans()):
            return str(int(ip))
        return draw(st.sampled_from(["", "0x", "0X"])) + _cased(draw, f"{int(ip):08x}")
    octets = [int(o) for o in str(ip).split(".")]
    if draw(st.booleans()):
        octets.reverse()
    sep = draw(st.sampled_from(_V4_SEPARATORS))
    parts = []
    for o in octets:
        pad = "0" * draw(st.integers(0, 3))
        base = draw(st.sampled_from(["dec", "oct", "hex"])) if sep in _DOTS else "dec"
        if base == "oct":
            parts.append("0" + pad + f"{o:o}")
        elif base == "hex":
            parts.append(draw(st.sampled_from(["0x", "0X"])) + pad + _cased(draw, f"{o:x}"))
        else:
            parts.append(pad + str(o))
    return sep.join(parts)


@st.composite
def _v6_plain(draw: st.DrawFn, ip: ipaddress.IPv6Address) -> str:
    text = draw(st.sampled_from([ip.compressed, ip.exploded]))
    return _cased(draw, text).replace(":", draw(st.sampled_from(_V6_SEPARATORS)))


@st.composite
def _entities(draw: st.DrawFn, text: str) -> str:
    """Some characters (any, all or none) as decimal or hexadecimal entities, zero-padded."""
    out = []
    for c in text:
        kind = draw(st.sampled_from(["plain", "dec", "hex"]))
        pad = "0" * draw(st.integers(0, 2))
        if kind == "dec":
            out.append(f"&#{pad}{ord(c)};")
        elif kind == "hex":
            out.append(f"&#{draw(st.sampled_from('xX'))}{pad}{_cased(draw, f'{ord(c):x}')};")
        else:
            out.append(c)
    return "".join(out)


@st.composite
def _base64(draw: st.DrawFn, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """Base64 (either alphabet, padded or not) of a text holding ``ip`` as a program writes
    it, at any alignment. Seven characters or more: a recogniser looks for no fewer in base64
    (an IPv6 address that compresses to six, like 2a00::, names a network, not a host)."""
    if isinstance(ip, ipaddress.IPv4Address):
        plain = draw(st.sampled_from([str(ip), str(int(ip))]))
    else:
        plain = draw(st.sampled_from([t for t in (ip.compressed, ip.exploded) if len(t) >= 7]))
    before = draw(st.sampled_from(["", '{"ip":"', '{"ip": "', "ip=", '{"a":1,"ip":"']))
    after = draw(st.sampled_from(["", '"}', '","ua":"Mozilla/5.0 (X11)?>~"}', ";"]))
    data = (before + plain + after).encode()
    encode = base64.urlsafe_b64encode if draw(st.booleans()) else base64.b64encode
    out = encode(data).decode()
    return out.rstrip("=") if draw(st.booleans()) else out


@st.composite
def rendered(draw: st.DrawFn, address: str) -> tuple[str, str]:
    """``address`` in any supported form and encoding, and what scrubbing leaves of it:
    [scrubbed], with the NULs of a UTF-16 rendering beside it. A rendering read in the wrong
    UTF-16 byte order holds a dot or colon, as any text read so does."""
    ip = ipaddress.ip_address(address)
    if draw(st.integers(0, 5)) == 0:
        return draw(_base64(ip)), SCRUBBED
    plain = plain_v4(ip) if isinstance(ip, ipaddress.IPv4Address) else _v6_plain(ip)
    text = draw(plain)
    if draw(st.booleans()):
        text = draw(_entities(text))
    wrap = draw(st.sampled_from(["none", "le", "be", "swapped"]))
    if wrap == "le":
        return text.encode("utf-16-le").decode("utf-8"), SCRUBBED + "\x00"
    if wrap == "be":
        return text.encode("utf-16-be").decode("utf-8"), "\x00" + SCRUBBED
    if wrap == "swapped" and ("." in text or ":" in text):
        return text.encode("utf-16-be").decode("utf-16-le"), SCRUBBED
    return text, SCRUBBED


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
