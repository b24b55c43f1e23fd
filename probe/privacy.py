"""The volunteer's own addresses, found and removed from everything the probe keeps.

Contract: a :class:`Scrubber` knows the volunteer's addresses - every local address the probe's
sockets used (with IPv6, or with no NAT, that is the public address) and any address learned or
recognised later (``recognisers``: predicates that say "this address is mine" without the
probe ever being told the address, see :mod:`probe.measure.helper_client`) - and replaces each
with ``[scrubbed]`` in every form a server may echo: dotted (also zero-padded and reversed, as in
``in-addr.arpa``), dashed or underscored (``ip-1-2-3-4``), URL-encoded (``1%2E2%2E3%2E4``), a
decimal or hexadecimal integer, and IPv6 compressed, expanded, dashed (``ipv6-literal``) or
URL-encoded. Every other address (a blockpage's, a Location header's, a DNS answer) is evidence
and stays. :meth:`Scrubber.tree` applies it to every string of a JSON-like value;
:meth:`Scrubber.observations` to a measurement's observations, where a changed body also gets the
hash of the scrubbed text, so no digest of the address is kept either. It is applied once, in
:mod:`probe.round`, before a measurement is classified and stored, so a live verdict and a
replayed one see the same text. Loopback and unspecified addresses identify no one and are
never scrubbed (a resolver answering 127.0.0.1 is evidence).

The round learns the public address from STUN servers and the control resolver
(:mod:`probe.measure.whoami`) and the helper's recogniser. When none of them answers, the
scrubber is *conservative*: :meth:`Scrubber.observations` also masks every address literal
(dotted, dashed, underscored, %2E-separated, reverse-DNS and IPv6; not bare integers, which
would take every large number) that may be public (:func:`may_be_public`) and that is not the
measurement's own evidence (:func:`evidence`: its DNS answers and resolvers, the addresses it
dialled, a Location's host, the control's answers). The round records that the address was
unknown (``rounds.public_address``) and ``probe run`` and ``probe status`` say so
(:data:`UNKNOWN_ADDRESS_NOTE`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from functools import lru_cache
from typing import Any, TypeVar
from urllib.parse import urlsplit

import msgspec

from probe.model import HTTPTransaction, Observations

SCRUBBED = "[scrubbed]"
# One line for the volunteer (probe run, probe status, the daemon's log) when a round could not
# learn the public address (no STUN server, no "what is my address" resolver, no helper answered).
UNKNOWN_ADDRESS_NOTE = (
    "your public address could not be learned (no STUN server, resolver or helper answered): "
    "every address literal in pages that may be public was masked"
)
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Recogniser = Callable[[IPAddress], bool]
T = TypeVar("T")


def _forms(ip: IPAddress) -> list[str]:
    """Every text form of ``ip`` the scrubber looks for, lower-case."""
    if isinstance(ip, ipaddress.IPv4Address):
        octets = str(ip).split(".")
        out = []
        for parts in (octets, octets[::-1]):
            for sep in (".", "-", "_", "%2e"):
                out.append(sep.join(parts))
        out.append(".".join(f"{int(o):03d}" for o in octets))
        out.append(str(int(ip)))
        out.append(f"{int(ip):08x}")
        return out
    out = []
    for text in (ip.compressed, ip.exploded):
        for sep in (":", "-", "%3a"):
            out.append(text.replace(":", sep))
    return out


def _wrapped(form: str) -> str:
    """A form with the boundaries it needs: no digit glued to a numeric form (10.77.0.2 is not
    inside 110.77.0.23, but is inside ip10-77-0-2), no hex digit to a hex form."""
    lit = re.escape(form)
    if re.fullmatch(r"[0-9a-f]{8}", form) and not form.isdigit():
        return rf"(?<![0-9a-f])(?:0x)?{lit}(?![0-9a-f])"
    ipv6_like = ":" in form or "%3a" in form or bool(re.fullmatch(r"[0-9a-f]*-[0-9a-f-]*", form))
    if ipv6_like and not re.fullmatch(r"[0-9-]+", form):
        return rf"(?<![0-9a-f:]){lit}(?![0-9a-f:])"
    if form.isdigit() and len(form) == 8:  # a decimal that is also valid hex
        return rf"(?<![0-9a-f])(?:0x)?{lit}(?![0-9a-f])|(?<![0-9]){lit}(?![0-9])"
    return rf"(?<![0-9]){lit}(?![0-9])"


@lru_cache(maxsize=64)
def _pattern(addresses: frozenset[IPAddress]) -> tuple[tuple[str, ...], re.Pattern[str] | None]:
    forms = sorted({f for ip in addresses for f in _forms(ip)}, key=len, reverse=True)
    if not forms:
        return (), None
    return tuple(forms), re.compile("|".join(_wrapped(f) for f in forms), re.IGNORECASE)


# Candidates for recognisers: anything that could be an address, in the same forms.
_V4_CANDIDATE = re.compile(
    r"(?<![0-9])(\d{1,3})(\.|-|_|%2[eE])(\d{1,3})\2(\d{1,3})\2(\d{1,3})(?![0-9])"
)
_INT_CANDIDATE = re.compile(r"(?<![0-9a-zA-Z])(?:0[xX])?([0-9a-fA-F]{8}|\d{8,10})(?![0-9a-zA-Z])")
_V6_CANDIDATE = re.compile(
    r"(?<![0-9a-fA-F:])((?:[0-9a-fA-F]{0,4}(?::|-|%3[aA])){2,7}[0-9a-fA-F]{0,4})(?![0-9a-fA-F:])"
)


def _address(text: str | int) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _candidates(text: str) -> list[IPAddress]:
    found: list[IPAddress | None] = []
    for m in _V4_CANDIDATE.finditer(text):
        octets = [int(m.group(i)) for i in (1, 3, 4, 5)]
        for parts in (octets, octets[::-1]):
            found.append(_address(".".join(map(str, parts))))
    for m in _INT_CANDIDATE.finditer(text):
        digits = m.group(1)
        for base in (10, 16) if digits.isdigit() else (16,):
            value = int(digits, base)
            found.append(ipaddress.IPv4Address(value) if value < 2**32 else None)
    for m in _V6_CANDIDATE.finditer(text):
        found.append(_address(re.sub("%3[aA]|-", ":", m.group(1))))
    return [ip for ip in found if ip is not None]


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
        literals, pattern = _pattern(self.addresses())
        if pattern is None:
            return text
        low = text.lower()
        if not any(f in low for f in literals):  # the fast path: C-speed substring search
            return text
        return pattern.sub(SCRUBBED, text)

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
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
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
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                out.add(ip.ipv4_mapped)
    return frozenset(out)


def _unknown(candidates: Iterable[IPAddress | None], keep: frozenset[IPAddress]) -> bool:
    """Mask a literal: none of its readings is evidence, and one may be a public address."""
    readings = [ip for ip in candidates if ip is not None]
    if any(ip in keep for ip in readings):
        return False
    return any(may_be_public(ip) for ip in readings)


def mask_unknown(text: str, keep: frozenset[IPAddress]) -> str:
    """``text`` with every address literal (dotted, dashed, underscored or %2E-separated IPv4,
    reversed before ``.in-addr.arpa``; IPv6) that may be public and is not in ``keep``
    replaced."""

    def v4(m: re.Match[str]) -> str:
        octets = [int(m.group(i)) for i in (1, 3, 4, 5)]
        if text[m.end() : m.end() + 8].lower() == ".in-addr":  # a reverse-DNS name
            octets.reverse()
        ip = _address(".".join(map(str, octets)))
        return SCRUBBED if _unknown([ip], keep) else m.group(0)

    def v6(m: re.Match[str]) -> str:
        ip = _address(re.sub("%3[aA]|-", ":", m.group(1)))
        return SCRUBBED if _unknown([ip], keep) else m.group(0)

    return _V6_CANDIDATE.sub(v6, _V4_CANDIDATE.sub(v4, text))


def mask_tree(value: Any, keep: frozenset[IPAddress]) -> Any:
    """:func:`mask_unknown` applied to every string of a JSON-like value."""
    if isinstance(value, str):
        return mask_unknown(value, keep)
    if isinstance(value, dict):
        return {k: mask_tree(v, keep) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(mask_tree(v, keep) for v in value)
    return value
