"""Which network a measurement came from, told without the volunteer's address. Pure.

Contract: the probe learns its network (ASN, country, the AS's name) from the test helper, which
looks up the address it sees in its operator's IP-to-ASN table and never sends that address:
the probe sends a fresh random ``nonce`` and the helper answers ``addr_hmac(nonce, address)``
beside the ASN. :func:`recogniser` turns that answer into a predicate for
:class:`probe.privacy.Scrubber` that claims an address exactly when its HMAC matches, so the
public address behind a NAT is scrubbed from everything, in every form, though the probe is never
told it. Neither the nonce nor the HMAC is ever stored: with both, the address could be found by
trying all 2**32. Without a helper the ``asn``/``cc`` settings stand in, else nothing.
:func:`resolver_kind` says what the resolver under test is - a local forwarder (loopback or
private address), a well-known public resolver (``probe/data/public_resolvers.csv``), or, for
any other address, presumably the ISP's - from its address alone.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import hmac
import ipaddress
import re
from importlib import resources

from probe.errors import BadValue
from probe.model import Network
from probe.privacy import IPAddress, Recogniser
from probe.words import N_

__all__ = ["Network", "addr_hmac", "recogniser", "resolver_kind"]

_ASN = re.compile(r"^(?:AS)?(\d{1,10})$", re.IGNORECASE)


def normalise_asn(value: str | int) -> str:
    """``7552``, ``"7552"``, ``"as7552"`` -> ``"AS7552"``; BadValue (a ValueError) otherwise."""
    m = _ASN.match(str(value).strip())
    if m is None or not 0 < int(m.group(1)) < 2**32:
        raise BadValue(N_("{value} is not an AS number (e.g. AS7552)"), value=repr(str(value)[:40]))
    return f"AS{int(m.group(1))}"


def normalise_cc(value: str) -> str:
    text = str(value).strip().upper()
    if not re.fullmatch(r"[A-Z]{2}", text):
        raise BadValue(
            N_("{value} is not a two-letter country code (e.g. VN)"), value=repr(str(value)[:40])
        )
    return text


def canonical_address(text: str) -> str:
    """The one text of an address both sides hash: IPv4-mapped IPv6 as IPv4."""
    ip = ipaddress.ip_address(text.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def addr_hmac(nonce: bytes, address: str) -> str:
    """HMAC-SHA256 of the address's canonical text, keyed by the probe's nonce (hex)."""
    return hmac.new(nonce, canonical_address(address).encode(), hashlib.sha256).hexdigest()


def recogniser(nonce: bytes, digest: str) -> Recogniser:
    """A Scrubber recogniser: true for the one address whose HMAC under ``nonce`` is
    ``digest``."""

    def mine(ip: IPAddress) -> bool:
        return hmac.compare_digest(addr_hmac(nonce, str(ip)), digest)

    return mine


@functools.cache
def public_resolvers() -> dict[str, str]:
    """Well-known public resolvers: address (or DoH host name) -> operator."""
    text = (resources.files("probe") / "data" / "public_resolvers.csv").read_text("utf-8")
    out = {}
    for row in csv.DictReader(text.splitlines()):
        key = row["address"].strip().lower()
        with contextlib.suppress(ValueError):  # a DoH server's name stays a name
            key = str(ipaddress.ip_address(key))
        out[key] = row["operator"].strip()
    return out


def resolver_kind(host: str) -> tuple[str, str | None]:
    """(kind, operator) of the resolver at ``host`` (an address, or a DoH server's name):
    "local" (loopback, private, link-local: a forwarder on this machine or the home router),
    "public" (a well-known public resolver, with its operator), "isp" (any other address:
    presumably the access network's own), or "other" (a DoH name not on the list)."""
    host = host.strip("[]").lower()
    known = public_resolvers()
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return ("public", known[host]) if host in known else ("other", None)
    if str(ip) in known:
        return "public", known[str(ip)]
    if not ip.is_global:
        return "local", None
    return "isp", None
