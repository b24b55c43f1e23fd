"""The volunteer's own addresses, found and removed from everything the probe keeps.

Contract: a :class:`Scrubber` knows the volunteer's addresses - every local address the probe's
sockets used (with IPv6, or with no NAT, that is the public address) and any address learned or
recognised later (``recognisers``: predicates that say "this address is mine" without the probe
ever being told the address, see :mod:`probe.measure.helper_client`) - and replaces each with
``[scrubbed]`` in every form a server may echo:

- dotted: forwards or reversed (``in-addr.arpa``); between dots, dashes or underscores
  (``ip-1-2-3-4``), URL-encoded dots once or twice (``1%2E2%2E3%2E4``, ``1%252E2%252E3%252E4``);
  any octet zero-padded any amount (``1.002.3.04``); between dots, any octet octal or
  hexadecimal as inet_aton reads it (``0300.0xa8.1.2``; ``010`` is ten or eight: either
  scrubs);
- one number, decimal or hexadecimal (``0xc0a80102``);
- IPv6 compressed or expanded, with colons, dashes (``ipv6-literal``) or colons URL-encoded
  once or twice;
- any of those as the text reads in a browser or the right charset: characters written as HTML
  numeric entities (``&#49;&#x2e;2.3.4``), a UTF-16 or UTF-32 body read as UTF-8 or Latin-1
  (NULs between the characters), UTF-16BE read as little-endian (``1`` as U+3100);
- a base64 token (a cookie's value, a token's JSON; either alphabet, padded or not) encoding a
  text that holds the address as a program writes it (dotted, IPv6 compressed or expanded,
  IPv4's ip2long number) at any alignment: the whole token is replaced.

Longer look-alike numbers (110.77.0.23 for 10.77.0.2, 1.2.3.45 for 1.2.3.4) and every other
address (a blockpage's, a Location header's, a DNS answer) are evidence and stay.
:meth:`Scrubber.tree` applies it to every string of a JSON-like value;
:meth:`Scrubber.observations` to a measurement's observations, where a changed body also gets
the hash of the scrubbed text, so no digest of the address is kept either. It is applied once,
in :mod:`probe.round`, before a measurement is classified and stored, so a live verdict and a
replayed one see the same text. Loopback and unspecified addresses identify no one and are
never scrubbed (a resolver answering 127.0.0.1 is evidence).

The round learns the public address from STUN servers and the control resolver
(:mod:`probe.measure.whoami`) and the helper's recogniser. When none of them answers, the
scrubber is *conservative*: :meth:`Scrubber.observations` also masks every address literal
that may be public (:func:`may_be_public`) and that is not the measurement's own evidence
(:func:`evidence`: its DNS answers and resolvers, the addresses it dialled, a Location's host,
the control's answers), in every form and reading above, read forwards (backwards only before
``.in-addr``), and bare numbers too (an 8 to 10 digit decimal, or 8 hexadecimal digits, that is
a public IPv4 address: a timestamp goes with them, the price of not knowing). The round
records that the address was unknown (``rounds.public_address``) and ``probe run`` and
``probe status`` say so (:data:`UNKNOWN_ADDRESS_NOTE`).

Cost: for a known address every string is first searched at C speed for literals one of which
any form holds (:func:`_pattern`), and the patterns, the readings and the base64 decoding run
only where one is found; a recogniser's candidates are looked for in every string
(``bench/scrub.py`` measures both).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import ipaddress
import itertools
import re
import string
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from functools import lru_cache
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urlsplit

import msgspec

from probe.addr import ipv4_inside
from probe.model import HTTPTransaction, Observations
from probe.words import N_

SCRUBBED = "[scrubbed]"
# One line for the volunteer (probe run, probe status, the daemon's log) when a round could not
# learn the public address (no STUN server, no "what is my address" resolver, no helper answered).
UNKNOWN_ADDRESS_NOTE = N_(  # translated where shown (probe.words)
    "your public address could not be learned (no STUN server, resolver or helper answered): "
    "every address literal in pages that may be public was masked"
)
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Recogniser = Callable[[IPAddress], bool]
T = TypeVar("T")


# What a server writes between an address's parts: itself, a host name's dash or underscore,
# URL-encoded, and URL-encoded twice (a tracker's redirect parameter holding a URL).
_V4_SEPARATORS = (".", "-", "_", "%2e", "%252e")
_V6_SEPARATORS = (":", "-", "%3a", "%253a")


def _forms(ip: IPAddress) -> list[str]:
    """The text forms of ``ip`` a server writes, lower-case: dotted (forwards and reversed,
    also zero-padded), dashed, underscored and URL-encoded, the integers; IPv6 compressed and
    expanded with each separator. The scrubber finds every one of them, the dotted ones through
    :func:`_dotted`, which also finds them with any octet padded any amount."""
    if isinstance(ip, ipaddress.IPv4Address):
        octets = str(ip).split(".")
        out = []
        for parts in (octets, octets[::-1]):
            for sep in _V4_SEPARATORS:
                out.append(sep.join(parts))
        out.append(".".join(f"{int(o):03d}" for o in octets))
        return [*out, *_numbers(ip)]
    out = []
    for text in (ip.compressed, ip.exploded):
        for sep in _V6_SEPARATORS:
            out.append(text.replace(":", sep))
    return out


def _numbers(ip: ipaddress.IPv4Address) -> list[str]:
    """An IPv4 address as one number: decimal and (eight digits) hexadecimal."""
    return [str(int(ip)), f"{int(ip):08x}"]


def _octet(value: int, *, last: bool, any_base: bool) -> str:
    """One octet of a dotted form, as a pattern: decimal with any number of leading zeros;
    if ``any_base``, also hexadecimal after 0x (then any zeros) or octal after at least one
    zero, tried first (a last 0x0 is one octet, not 0 and an x). A last octet ends where its
    digits do."""
    digit, hex_digit = ("(?![0-9])", "(?![0-9a-f])") if last else ("", "")
    forms = []
    if any_base:
        forms.append(f"0x0*{value:x}{hex_digit}")
        if value >= 8:  # below 8 octal is decimal
            forms.append(f"0+{value:o}{digit}")
    forms.append(f"0*{value}{digit}")
    return f"(?:{'|'.join(forms)})"


# inet_aton reads octal and hexadecimal octets between dots (also URL-encoded ones); a host
# name's labels (ip-1-2-3-4) are written in decimal.
_DOTS = (".", "%2e", "%252e")


def _dotted(ip: ipaddress.IPv4Address, name: str) -> str:
    """Every dotted form of ``ip`` as one pattern: its octets forwards or reversed, one
    separator between them (the same three times), each octet as :func:`_octet` writes it
    (in any base between :data:`_DOTS`, in decimal between any of :data:`_V4_SEPARATORS`), and
    no digit glued before (10.77.0.2 is not inside 110.77.0.23, but is inside ip10-77-0-2).
    ``name`` prefixes the separators' group names."""
    octets = [int(o) for o in str(ip).split(".")]
    orders = []
    for k, parts in enumerate(dict.fromkeys((tuple(octets), tuple(octets[::-1])))):
        for any_base, seps in ((True, _DOTS), (False, _V4_SEPARATORS)):
            group = f"{name}_{k}{'b' if any_base else 'd'}"
            each = [_octet(o, last=i == 3, any_base=any_base) for i, o in enumerate(parts)]
            sep = f"(?P<{group}>{'|'.join(re.escape(s) for s in seps)})"
            orders.append(each[0] + sep + f"(?P={group})".join(each[1:]))
    return rf"(?<![0-9])(?:{'|'.join(orders)})"


def _literals(ip: IPAddress) -> list[str]:
    """Strings, lower-case, one of which is in every text :func:`_pattern` finds ``ip`` in
    (lower-cased): the fast path looks for them at C speed before any pattern runs.

    A dotted form, however written, holds its second and third octets each between two
    separators: ``.113.``, ``-113-``, ``_113_``, ``e113%2`` (both URL-encoded dots end in e and
    begin with %2) unpadded, ``0113.`` (and so on) padded, ``0161.`` in octal, ``x71.`` or
    ``071.`` in hexadecimal; the rarer octet of the two is taken."""
    if isinstance(ip, ipaddress.IPv6Address):
        return _forms(ip)
    octets = [int(o) for o in str(ip).split(".")]
    middle = max(octets[1:3], key=lambda o: (len(f"{o:x}"), o))
    dec, octal, hexa = f"{middle}", f"{middle:o}", f"{middle:x}"
    out = [f"{before}{dec}{after}" for before, after in ("..", "--", "__", ("e", "%2"))]
    out += [f"0{dec}{after}" for after in (".", "-", "_", "%2")]
    out += [
        f"{lead}{form}{after}"
        for lead, form in (("0", octal), ("x", hexa), ("0", hexa))
        for after in (".", "%2")
    ]
    return list(dict.fromkeys(out)) + _numbers(ip)


def _wrapped(form: str) -> str:
    """A form with the boundaries it needs: no digit glued to a numeric form, no hex digit to a
    hex form, no hex digit or colon to an IPv6 one."""
    lit = re.escape(form)
    if re.fullmatch(r"[0-9a-f]{8}", form) and not form.isdigit():
        return rf"(?<![0-9a-f])(?:0x)?{lit}(?![0-9a-f])"
    ipv6_like = (
        ":" in form
        or "%3a" in form
        or "%253a" in form
        or bool(re.fullmatch(r"[0-9a-f]*-[0-9a-f-]*", form))
    )
    if ipv6_like and not re.fullmatch(r"[0-9-]+", form):  # also after a URL escape (%5B)
        return rf"(?:(?<![0-9a-f:])|(?<=%[0-9a-f]{{2}})){lit}(?![0-9a-f:])"
    if form.isdigit() and len(form) == 8:  # a decimal that is also valid hex
        return rf"(?<![0-9a-f])(?:0x)?{lit}(?![0-9a-f])|(?<![0-9]){lit}(?![0-9])"
    return rf"(?<![0-9]){lit}(?![0-9])"


def _first_characters(ip: IPAddress) -> set[str]:
    """Every character a form of ``ip`` can begin with: a dotted form with its first or last
    octet or a zero (padding, octal, 0x), a number with its first digit or 0x, any other form
    with its own first character."""
    if isinstance(ip, ipaddress.IPv6Address):
        return {f[0] for f in _forms(ip)}
    octets = str(ip).split(".")
    return {"0", octets[0][0], octets[3][0]} | {f[0] for f in _numbers(ip)}


@lru_cache(maxsize=64)
def _pattern(addresses: frozenset[IPAddress]) -> tuple[tuple[str, ...], re.Pattern[str] | None]:
    """The fast path's literals (every text the scrubber would change holds one, lower-cased:
    the :func:`_literals`, the marks of a reading, the base64 :func:`_cores`) and the pattern
    finding every form in plain text.

    The pattern opens with the characters a form can begin with: the regular expression engine
    then skips every other character at C speed (five times faster on a page of HTML)."""
    if not addresses:
        return (), None
    finder = _finder(addresses)
    cores = tuple(dict.fromkeys(c.lower() for c in finder.cores))
    return (*_READING_MARKS, *finder.literals, *cores, _LAST_MARK), finder.pattern


# What calls for a reading (see _Reading), as it is and as JSON escapes it: the fast path must
# not skip a text holding one. The expensive one (a long needle, rarely found) goes last.
_READING_MARKS = ("&#", "\x00", "\u2e00", "\u3a00")
_LAST_MARK = "\\u0000"


class _Finder(NamedTuple):
    """Everything that finds the forms of a set of addresses."""

    pattern: re.Pattern[str]  # every form, in plain text
    literals: tuple[str, ...]  # one of them is in every text the pattern finds one in (lower-cased)
    cores: tuple[str, ...]  # one of them is in every base64 token of a text holding one


@lru_cache(maxsize=64)
def _finder(addresses: frozenset[IPAddress]) -> _Finder:
    literals = sorted({f for ip in addresses for f in _literals(ip)}, key=len, reverse=True)
    v4 = sorted(ip for ip in addresses if isinstance(ip, ipaddress.IPv4Address))
    plain = {f for ip in v4 for f in _numbers(ip)}
    plain |= {f for ip in addresses if isinstance(ip, ipaddress.IPv6Address) for f in _forms(ip)}
    parts = [_wrapped(f) for f in sorted(plain, key=len, reverse=True)]
    parts += [_dotted(ip, f"s{i}") for i, ip in enumerate(v4)]
    first = "".join(sorted({c for ip in addresses for c in _first_characters(ip)}))
    pattern = f"(?=[{re.escape(first)}])(?:{'|'.join(parts)})"
    cores = sorted({c for ip in addresses for t in _plain_texts(ip) for c in _cores(t) if c})
    return _Finder(re.compile(pattern, re.IGNORECASE), tuple(literals), tuple(cores))


def _scrubbed(text: str, addresses: frozenset[IPAddress]) -> str:
    """``text`` with every form of every one of ``addresses`` replaced: as it is, and as
    :func:`_reading` reads it (each form found there replaced where it was read from)."""
    finder = _finder(addresses)
    found = _found(text, finder)
    reading = _reading(text)
    if reading is not None:
        found += [reading.back(*span) for span in _found(reading.text, finder)]
    return _replaced(text, found)


def _found(text: str, finder: _Finder, *, tokens: bool = True) -> list[tuple[int, int]]:
    """Where ``text`` holds a form: the pattern's matches (it runs only on a text holding one
    of its literals) and, if ``tokens``, each base64 token holding one of the cores whose
    decoding, near the core, holds a form."""
    low = text.lower()
    found = []
    if any(f in low for f in finder.literals):
        found = [m.span() for m in finder.pattern.finditer(text)]
    hits = [i for core in finder.cores for i in _occurrences(text, core)] if tokens else []
    for (start, end), near in _tokens(text, hits).items():
        token = text[start:end]
        if any(_found(d, finder, tokens=False) for at in near for d in _decoded(token, at)):
            found.append((start, end))
    return found


def _replaced(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """``text`` with each span (overlapping ones joined) replaced by :data:`SCRUBBED`."""
    pieces, done = [], 0
    for start, end in sorted(spans):
        if start < done:  # overlaps the one just replaced
            if end > done:
                done = end
            continue
        pieces += [text[done:start], SCRUBBED]
        done = end
    return "".join(pieces) + text[done:] if pieces else text


# Candidates for recognisers: anything that could be an address, in the same forms. A dotted
# candidate is looked for at every start (a zero-width match holding it), so the one that
# starts a number earlier (1.203.0.113.7) does not hide it. Each pattern opens with the
# characters a candidate can begin with, as _pattern's does, for speed.
_CANDIDATE_OCTET = r"(0[xX][0-9a-fA-F]++|[0-9]++)"
_V4_CANDIDATE = re.compile(
    rf"(?=[0-9])(?<![0-9])(?={_CANDIDATE_OCTET}(\.|-|_|%2[eE]|%252[eE]){_CANDIDATE_OCTET}\2"
    rf"{_CANDIDATE_OCTET}\2{_CANDIDATE_OCTET})"
)
_INT_CANDIDATE = re.compile(
    r"(?=[0-9a-fA-F])(?<![0-9a-zA-Z])(?:0[xX])?([0-9a-fA-F]{8}|\d{8,10})(?![0-9a-zA-Z])"
)
# An IPv6 candidate may begin after a URL escape (%5B, a URL-encoded bracket) or inside one
# (%2001:db8::7 may be either): conservative masking keeps one overlapping evidence.
_V6_CANDIDATE = re.compile(
    r"(?=[0-9a-fA-F:%-])(?:(?<![0-9a-fA-F:])|(?<=%[0-9a-fA-F]{2}))"
    r"((?:[0-9a-fA-F]{0,4}(?::|-|%3[aA]|%253[aA])){2,7}[0-9a-fA-F]{0,4})(?![0-9a-fA-F:])"
)


def _address(text: str | int) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _octet_values(text: str, *, any_base: bool) -> tuple[int, ...]:
    """What a candidate octet may mean: decimal (leading zeros are padding) and, if
    ``any_base``, hexadecimal after 0x and octal after a 0 as well (010 is ten or eight); none
    past 255. Lengths are checked first: int() refuses a number of more than 4300 digits."""
    bases: tuple[int, ...] = (16,)
    if text[:2] in ("0x", "0X"):
        if not any_base:
            return ()
        digits = text[2:].lstrip("0") or "0"
    else:
        digits = text.lstrip("0") or "0"
        octal = any_base and text[0] == "0" and len(text) > 1 and set(digits) <= set("01234567")
        bases = (10, 8) if octal else (10,)
    if len(digits) > 3:
        return ()
    return tuple(v for v in dict.fromkeys(int(digits, b) for b in bases) if v <= 255)


def _candidates(text: str) -> list[IPAddress]:
    """Every address ``text`` may hold, in any form (base64 included), as it is and as
    :func:`_reading` reads it; each once (a recogniser computes an HMAC for each)."""
    found = _candidates_in(text) + _base64_candidates(text)
    reading = _reading(text)
    if reading is not None:
        found += _candidates_in(reading.text) + _base64_candidates(reading.text)
    return list(dict.fromkeys(found))


class _Literal(NamedTuple):
    """A text that may be an address: where it is, what it may mean as written and, for a
    dotted one, read backwards (as before ``.in-addr.arpa``)."""

    kind: str  # "dotted", "number" or "ipv6"
    start: int
    end: int
    readings: tuple[IPAddress, ...]
    backwards: tuple[IPAddress, ...] = ()


def _literals_in(text: str) -> Iterator[_Literal]:
    """Every literal of ``text`` as it is: dotted (at every start: they may overlap), numbers,
    IPv6; each with at least one reading."""
    for m in _V4_CANDIDATE.finditer(text):
        any_base = m.group(2).lower() in _DOTS
        values = (_octet_values(m.group(i), any_base=any_base) for i in (1, 3, 4, 5))
        octets = list(itertools.product(*values))
        if octets:
            yield _Literal(
                "dotted",
                m.start(),
                m.end(5),
                tuple(ipaddress.IPv4Address(bytes(o)) for o in octets),
                tuple(ipaddress.IPv4Address(bytes(o[::-1])) for o in octets),
            )
    for m in _INT_CANDIDATE.finditer(text):
        digits = m.group(1)
        numbers = [int(digits, base) for base in ((10, 16) if digits.isdigit() else (16,))]
        readings = tuple(ipaddress.IPv4Address(v) for v in numbers if v < 2**32)
        if readings:
            yield _Literal("number", m.start(), m.end(), readings)
    for m in _V6_CANDIDATE.finditer(text):
        ip = _address(re.sub("%(?:25)?3[aA]|-", ":", m.group(1)))
        if ip is not None:
            yield _Literal("ipv6", m.start(), m.end(), (ip,))


def _candidates_in(text: str) -> list[IPAddress]:
    """The candidates of ``text`` as it is: dotted (either way round), numbers, IPv6."""
    return [ip for lit in _literals_in(text) for ip in (*lit.readings, *lit.backwards)]


# -- Readings: the text as a browser or a decoder reads it, with the way back ---------------------
# Each reading has ``text`` and ``back(start, end)``, the span of the text it read that
# ``text[start:end]`` came from: a form found in a reading is replaced where it was read from.


class _Decoded:
    """``source`` with some spans (``matches``) each read as one character (``decode``). Kept
    as segments: ``starts[i]`` is where segment i begins in ``text``, ``origins[i]`` where it
    begins in ``source``, ``widths[i]`` the width in ``source`` of its one decoded character,
    or 0 for a run of characters copied as they are."""

    def __init__(
        self, source: str, matches: Iterable[re.Match[str]], decode: Callable[[re.Match[str]], str]
    ) -> None:
        pieces: list[str] = []
        self.starts: list[int] = []
        self.origins: list[int] = []
        self.widths: list[int] = []
        at = done = 0  # where the next segment begins in text and in source
        for m in matches:
            if m.start() > done:
                self._segment(at, done, 0)
                pieces.append(source[done : m.start()])
                at += m.start() - done
            self._segment(at, m.start(), m.end() - m.start())
            pieces.append(decode(m))
            at, done = at + 1, m.end()
        if done < len(source):
            self._segment(at, done, 0)
            pieces.append(source[done:])
        self.text = "".join(pieces)

    def _segment(self, start: int, origin: int, width: int) -> None:
        self.starts.append(start)
        self.origins.append(origin)
        self.widths.append(width)

    def back(self, start: int, end: int) -> tuple[int, int]:
        i = bisect.bisect_right(self.starts, start) - 1
        j = bisect.bisect_right(self.starts, end - 1) - 1
        first = self.origins[i] + (0 if self.widths[i] else start - self.starts[i])
        last = self.origins[j] + (self.widths[j] or end - self.starts[j])
        return first, last


class _Stripped:
    """``source`` without its NULs: a UTF-16 (or UTF-32) body read as UTF-8 or Latin-1, as the
    probe reads a body whose Content-Type names no charset, has one between its characters.
    The way back is found by bisection, counting NULs at C speed: a UTF-16 page has one every
    other character, too many for segments."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.text = source.replace("\x00", "")

    def _index(self, k: int) -> int:
        """Where ``text[k]`` is in ``source``: the first i whose ``source[: i + 1]`` holds k + 1
        characters other than NUL."""
        lo, hi = k, len(self.source) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if mid + 1 - self.source.count("\x00", 0, mid + 1) > k:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def back(self, start: int, end: int) -> tuple[int, int]:
        return self._index(start), self._index(end - 1) + 1


_UNSWAP = {c << 8: c for c in range(0x20, 0x7F)}


class _Unswapped:
    """``source`` with each character that is a printable ASCII one in the high byte put back:
    a UTF-16 big-endian body read as little-endian (charset=utf-16 with no byte-order mark;
    Python assumes little-endian) turns ``1.2`` into U+3100 U+2E00 U+3200. One character for
    one, so the way back is the same span."""

    def __init__(self, source: str) -> None:
        self.text = source.translate(_UNSWAP)

    def back(self, start: int, end: int) -> tuple[int, int]:
        return start, end


# An entity for a character no form holds (&#39; &#8217; &#160;) is left as it is: a page's
# usual entities make no reading, and cost nothing.
_ENTITY = re.compile(
    r"&#(?:0*+(37|4[5-9]|5[0-8]|6[5-9]|70|88|95|9[7-9]|10[0-2]|120)(?![0-9])"
    r"|[xX]0*+(2[5deDE]|3[0-9aA]|4[1-6]|5[8fF]|6[1-6]|78)(?![0-9a-fA-F]));?"
)


def _entity(m: re.Match[str]) -> str:
    dec, hexa = m.groups()
    return chr(int(dec) if dec else int(hexa, 16))


class _Reading:
    """A text read through each reading it calls for, in turn: NULs dropped, UTF-16 unswapped
    (a swapped dot or colon, U+2E00 or U+3A00, calls for it), the HTML entities of the
    characters a form holds decoded."""

    def __init__(self, text: str) -> None:
        self.steps: list[_Decoded | _Stripped | _Unswapped] = []
        self.text = text
        if "\x00" in self.text:
            self._then(_Stripped(self.text))
        if "\u2e00" in self.text or "\u3a00" in self.text:
            self._then(_Unswapped(self.text))
        if "&#" in self.text:
            entities = list(_ENTITY.finditer(self.text))
            if entities:
                self._then(_Decoded(self.text, entities, _entity))

    def _then(self, step: _Decoded | _Stripped | _Unswapped) -> None:
        self.steps.append(step)
        self.text = step.text

    def back(self, start: int, end: int) -> tuple[int, int]:
        for step in reversed(self.steps):
            start, end = step.back(start, end)
        return start, end


def _reading(text: str) -> _Reading | None:
    """``text`` as :class:`_Reading` reads it; None when it calls for no reading."""
    reading = _Reading(text)
    return reading if reading.steps else None


# -- Base64: a cookie's value, a token's JSON ---------------------------------------------------
# A base64 token (either alphabet, padded or not) is replaced whole, [scrubbed], when it encodes
# a text holding the address as a program writes it before encoding it (_plain_texts), at any
# alignment. Whole, not re-encoded: a reader sees at once that something was taken out, and no
# character that encodes a bit of the address (those at its edges mix it with its neighbours)
# is kept. The token is found through the base64 characters that encode the address alone
# (_cores, for a known address) or could encode an address (_gate, for a recogniser's
# candidates), and decoded only near them: a page's images cost nothing.
_TOKEN = re.compile(r"[A-Za-z0-9+/_-]{8,}={0,2}")
_STANDARD = str.maketrans("-_", "+/")
_BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _plain_texts(ip: IPAddress) -> list[str]:
    """``ip`` as a program writes it: as ipaddress prints it (IPv6 also expanded) and, for
    IPv4, as one decimal number (PHP's ip2long)."""
    if isinstance(ip, ipaddress.IPv4Address):
        return [str(ip), str(int(ip))]
    return list(dict.fromkeys((ip.compressed, ip.exploded)))


def _cores(text: str) -> list[str]:
    """The base64 characters that encode ``text`` alone, at each of the three alignments a
    text can start at in the 3-byte groups base64 encodes (both alphabets agree on them: no
    printable ASCII character makes the 62nd or 63rd)."""
    data = text.encode("ascii")
    out = []
    for lead in range(3):
        encoded = base64.b64encode(bytes(lead) + data).decode("ascii")
        out.append(encoded[-(-8 * lead // 6) : 8 * (lead + len(data)) // 6])
    return out


@lru_cache(maxsize=1)
def _gate() -> re.Pattern[str]:
    """Six base64 characters that could encode a run of seven or more characters of a plain
    text address (digits, a-f, dot and colon), however aligned: one whole 3-byte group and the
    first two characters of the next (the characters' sets, from every pair of bytes)."""
    chars = b"0123456789abcdef.:"

    def one_of(values: set[int]) -> str:
        return "[" + "".join(re.escape(_BASE64[v]) for v in sorted(values)) + "]"

    first = one_of({b >> 2 for b in chars})
    second = one_of({(a & 3) << 4 | b >> 4 for a in chars for b in chars})
    third = one_of({(a & 15) << 2 | b >> 6 for a in chars for b in chars})
    fourth = one_of({b & 63 for b in chars})
    return re.compile(f"(?={first}){first}{second}{third}{fourth}{first}{second}")


def _occurrences(text: str, sub: str) -> Iterator[int]:
    at = text.find(sub)
    while at >= 0:
        yield at
        at = text.find(sub, at + 1)


def _tokens(text: str, hits: list[int]) -> dict[tuple[int, int], list[int]]:
    """The base64 tokens of ``text`` that hold one of ``hits`` (positions), each with the
    hits it holds."""
    out: dict[tuple[int, int], list[int]] = {}
    if not hits:
        return out
    spans = [m.span() for m in _TOKEN.finditer(text)]
    starts = [start for start, _ in spans]
    for hit in sorted(set(hits)):
        i = bisect.bisect_right(starts, hit) - 1
        if i >= 0 and hit < spans[i][1]:
            near, at = out.setdefault(spans[i], []), hit - spans[i][0]
            if not near or at - near[-1] > 8:  # one decoding covers hits this close
                near.append(at)
    return out


def _decoded(token: str, at: int, reach: int = 64) -> Iterator[str]:
    """The decoding of ``token`` within ``reach`` characters of ``at`` (a hit inside the
    encoding of an address, which takes at most 54: an expanded IPv6 address and the two
    characters it shares with its neighbours), from each of the four offsets a base64 text
    can start at in it; bytes as Latin-1 characters, one for one."""
    data = token.rstrip("=").translate(_STANDARD)
    for offset in range(4):
        start = offset + 4 * max(0, (at - reach - offset) // 4)
        chunk = data[start : at + reach]
        chunk = chunk[:-1] if len(chunk) % 4 == 1 else chunk
        yield binascii.a2b_base64(chunk + "=" * (-len(chunk) % 4)).decode("latin-1")


def _base64_candidates(text: str) -> list[IPAddress]:
    """The candidates of the base64 tokens the gate finds, those written as a program writes
    them (so that, once claimed, :func:`_cores` finds the token)."""
    found = []
    for (start, end), near in _tokens(text, [m.start() for m in _gate().finditer(text)]).items():
        for at in near:
            for decoded in _decoded(text[start:end], at):
                found += [
                    ip
                    for ip in _candidates_in(decoded)
                    if any(t in decoded for t in _plain_texts(ip))
                ]
    return found


def _is_private_to_no_one(ip: IPAddress) -> bool:
    return ip.is_loopback or ip.is_unspecified


class Scrubber:
    """Replaces the volunteer's addresses (``addresses``, a set that may grow while a round
    runs, plus whatever a recogniser claims) in every form a server may echo."""

    def __init__(
        self,
        addresses: Iterable[str] = (),
        recognisers: Sequence[Recogniser] = (),
        *,
        conservative: bool = False,
    ) -> None:
        self._sources = addresses
        self._learned: set[IPAddress] = set()
        self.recognisers = tuple(recognisers)
        # The public address is unknown: observations also lose every address literal that may
        # be public and that the measurement did not resolve or dial (see observations()).
        self.conservative = conservative
        # addresses() for the sources and learned addresses it was last computed from: it runs
        # for every string, and the sources (a set the round's sockets fill) rarely change.
        self._cached: tuple[frozenset[str], int, frozenset[IPAddress]] | None = None

    def learn(self, address: str) -> None:
        """Add an address known to be the volunteer's (never stored: memory only)."""
        ip = ipaddress.ip_address(address)
        if not _is_private_to_no_one(ip):
            self._learned.add(ip)

    def addresses(self) -> frozenset[IPAddress]:
        sources = frozenset(str(a) for a in list(self._sources))
        cached = self._cached
        # _learned only grows, so its size tells whether it changed.
        if cached is not None and cached[0] == sources and cached[1] == len(self._learned):
            return cached[2]
        out = set(self._learned)
        for a in sources:
            try:
                ip = ipaddress.ip_address(str(a).split("%")[0])
            except ValueError:
                continue
            if not _is_private_to_no_one(ip):
                out.add(ip)
                if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                    out.add(ip.ipv4_mapped)
        result = frozenset(out)
        self._cached = (sources, len(self._learned), result)
        return result

    def _recognise(self, text: str) -> None:
        if not self.recognisers:
            return
        known = self.addresses()
        for ip in _candidates(text):
            fresh = ip not in known and not _is_private_to_no_one(ip)
            if fresh and any(r(ip) for r in self.recognisers):
                self._learned.add(ip)
                known = known | {ip}

    def text(self, text: str) -> str:
        """``text`` with every form of every volunteer address replaced."""
        self._recognise(text)
        addresses = self.addresses()
        return _scrubbed(text, addresses) if addresses else text

    def tree(self, value: Any) -> Any:
        """Every string in a JSON-like value (dicts, lists, tuples), scrubbed."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.tree(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.tree(v) for v in value)
        return value

    def holds_none(self, record: object) -> bool:
        """The fast path: True when ``record`` (a dataclass or msgspec Struct) cannot hold a
        volunteer's address, so scrubbing it would change nothing. With a recogniser the answer
        is always False (only reading every string can tell what a recogniser would claim).
        Without one it looks for every form of every known address in the record's JSON, once,
        at C speed: every string of the record appears there verbatim (no form holds a
        character JSON escapes) and ``str.lower`` maps character by character, so a form the
        full path would find in any string is found here too. A form found only across two
        strings, or in a field's name, sends the record down the full path, which decides."""
        if self.recognisers:
            return False
        literals, pattern = _pattern(self.addresses())
        if pattern is None:
            return True
        low = msgspec.json.encode(record).decode("utf-8").lower()
        return not any(f in low for f in literals)

    def struct(self, value: T) -> T:
        """A record (dataclass or msgspec Struct) with every string scrubbed."""
        if self.holds_none(value):
            return value
        data = msgspec.to_builtins(value)
        clean = self.tree(data)
        return value if clean == data else msgspec.convert(clean, type=type(value))

    def observations(self, obs: Observations, keep: Iterable[str] = ()) -> Observations:
        """Every text of every step; a scrubbed body gets the hash of its scrubbed text.
        Conservative (the public address unknown): every address literal that may be public
        is masked too, unless the measurement itself resolved or dialled it, a Location named
        it as its host, or it is in ``keep`` (e.g. the control's answers): that is evidence."""
        if self.conservative:
            return self._observations(obs, evidence(obs, keep))
        return obs if self.holds_none(obs) else self._observations(obs)

    def _observations(
        self, obs: Observations, evidence: frozenset[IPAddress] | None = None
    ) -> Observations:
        """The full path of :meth:`observations`: every string of every step read."""
        data = msgspec.to_builtins(obs)
        clean = self.tree(data)
        if evidence is not None:
            clean = mask_tree(clean, evidence)
        if clean == data:
            return obs
        out = msgspec.convert(clean, type=Observations)
        http = tuple(_rehash(old, new) for old, new in zip(obs.http, out.http, strict=True))
        return replace(out, http=http)


def _rehash(old: HTTPTransaction, new: HTTPTransaction) -> HTTPTransaction:
    if new.body is not None and new.body != old.body:
        return replace(new, body_sha256=hashlib.sha256(new.body.encode("utf-8")).hexdigest())
    return new


# -- conservative scrubbing: the public address unknown ------------------------------------------
# Networks whose addresses identify no one on the internet: a literal in them is never masked.
_LOCAL_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT: the ISP's side of the volunteer's own link
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    )
)


def may_be_public(ip: IPAddress) -> bool:
    """Could ``ip`` be a volunteer's public address? Every address but the local, private,
    link-local, carrier-grade NAT, multicast and reserved ones (documentation ranges stand in
    for public addresses in tests and examples, so they count as public here)."""
    inside = ipv4_inside(ip)  # a NAT64 or 6to4 address carries the IPv4 one it stands for
    if inside is not None:
        ip = inside
    if ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        return False
    return not any(ip in n for n in _LOCAL_NETWORKS if n.version == ip.version)


def evidence(obs: Observations, keep: Iterable[str] = ()) -> frozenset[IPAddress]:
    """The addresses a measurement resolved (every DNS answer, and the resolvers asked), dialled
    (TCP, TLS, HTTP) or was sent to by a Location's host, plus ``keep``: what conservative
    scrubbing never masks."""
    texts: list[str] = list(keep)
    for q in obs.dns:
        texts += [a.value for a in q.answers if a.type in ("A", "AAAA")]
        texts.append(urlsplit(q.resolver_address).hostname or "")
    texts += [c.ip for c in obs.tcp]
    texts += [t.ip for t in obs.tls]
    for h in obs.http:
        if h.ip:
            texts.append(h.ip)
        if h.location:
            texts.append(urlsplit(h.location).hostname or "")
    out = set()
    for t in texts:
        ip = _address(str(t).strip("[]").split("%")[0])
        if ip is not None:
            out.add(ip)
            inside = ipv4_inside(ip)  # IPv4-mapped, NAT64, 6to4: the site's IPv4 address too
            if inside is not None:
                out.add(inside)
    return frozenset(out)


def _unknown(readings: Iterable[IPAddress], keep: frozenset[IPAddress]) -> bool | None:
    """Mask a literal (True): none of its readings is evidence, and one may be a public
    address. None when one is evidence: the literal is kept, and so is a literal it overlaps."""
    readings = list(readings)
    if any(ip in keep for ip in readings):
        return None
    return any(may_be_public(ip) for ip in readings)


_REVERSE_DNS = re.compile(r"\.in-addr", re.IGNORECASE)


def _inside_escape(text: str, at: int) -> bool:
    """Does ``text[at:]`` begin inside a URL escape (right after its % or its first digit)?"""
    before = text[max(0, at - 2) : at]
    return before.endswith("%") or (
        len(before) == 2 and before[0] == "%" and before[1] in string.hexdigits
    )


def _overlaps(span: tuple[int, int], spans: Iterable[tuple[int, int]]) -> bool:
    return any(span[0] < end and start < span[1] for start, end in spans)


def _unknown_spans(text: str, keep: frozenset[IPAddress]) -> list[tuple[int, int]]:
    """Where ``text`` as it is holds a literal to mask: a dotted, dashed, URL-encoded ...
    address (any octet in any base inet_aton reads; backwards before ``.in-addr``), a number
    (decimal, or hexadecimal with or without 0x) or an IPv6 literal that may be public and is
    no evidence; a literal overlapping evidence is kept (1.198.51.100.77 holds 198.51.100.77);
    and each base64 token encoding such an address as a program writes it, whole."""
    masked: list[tuple[int, int]] = []
    kept: list[tuple[int, int]] = []
    escaped: list[tuple[int, int]] = []
    seen: list[tuple[int, int]] = []
    for lit in _literals_in(text):
        if lit.kind == "number" and text[lit.start : lit.end].isalpha():
            continue  # a word (DEADBEEF, effacedd), no number
        readings = lit.readings
        if lit.backwards and _REVERSE_DNS.match(text, lit.end):
            readings = lit.backwards
        verdict = _unknown(readings, keep)
        span = (lit.start, lit.end)
        inside_escape = lit.kind != "dotted" and _inside_escape(text, lit.start)
        if verdict is None:
            kept.append(span)
        elif verdict:
            (escaped if inside_escape else masked).append(span)
        if not inside_escape:
            seen.append(span)
    spans = [s for s in masked if not _overlaps(s, kept)]
    # One begun inside a URL escape (%2E10:: as 2E10::, %2E10AAAA as 0x2E10AAAA) is the lesser
    # reading: masked only where no other literal is.
    spans += [s for s in escaped if not _overlaps(s, seen)]
    for (start, end), near in _tokens(text, [m.start() for m in _gate().finditer(text)]).items():
        if any(
            _unknown(ips, keep)
            for at in near
            for decoded in _decoded(text[start:end], at)
            for ips in _written(decoded)
        ):
            spans.append((start, end))
    return spans


def _written(decoded: str) -> Iterator[tuple[IPAddress, ...]]:
    """The readings of each literal of a decoded base64 text that it writes as a program
    writes an address (:func:`_plain_texts`): a token's random bytes are no address."""
    for lit in _literals_in(decoded):
        readings = tuple(ip for ip in lit.readings if any(t in decoded for t in _plain_texts(ip)))
        if readings:
            yield readings


def mask_unknown(text: str, keep: frozenset[IPAddress]) -> str:
    """``text`` with every address literal that may be public and is not in ``keep``
    replaced (:func:`_unknown_spans`), as it is and as :func:`_reading` reads it (HTML
    entities, UTF-16): the forms the scrubber removes for a known address, and bare numbers,
    since any of them may be the volunteer's."""
    spans = _unknown_spans(text, keep)
    reading = _reading(text)
    if reading is not None:
        spans += [reading.back(*span) for span in _unknown_spans(reading.text, keep)]
    return _replaced(text, spans)


def mask_tree(value: Any, keep: frozenset[IPAddress]) -> Any:
    """:func:`mask_unknown` applied to every string of a JSON-like value."""
    if isinstance(value, str):
        return mask_unknown(value, keep)
    if isinstance(value, dict):
        return {k: mask_tree(v, keep) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(mask_tree(v, keep) for v in value)
    return value
