"""Edge facts: where each address a throughput test dialled is served from (issue 25).

Contract: the download step (:func:`probe.measure.throughput.download`) records, per flow, its
TCP connect time (``Flow.connect_s``: from the request's start to the connected socket) and the
CDN's own locality headers of its first response (:func:`locality`, ``Flow.locality``); its
samples already hold TCP_INFO's smoothed RTT (``tcpi_rtt``) and ``tcpi_min_rtt``.
:func:`edge_facts` is pure: it folds a test's flows into one :class:`EdgeFact` per address
dialled (median connect time and RTT over that address's flows), with the address's network
from ``lookup`` (the helper's table or a local one, passed in: this layer reads no table) and
whether it lies inside the volunteer's own network: the probe's ASN, or a known cache prefix
(:func:`on_net`). :func:`served_class` classes a target by where it was served from.

Which locality headers, and why (:data:`LOCALITY`): each names where the response came from or
whether the edge had it, in the CDN's own words, and none identifies the volunteer:

- ``cf-ray`` (Cloudflare): the ray id ends in the IATA code of the colo that answered.
- ``x-amz-cf-pop`` (CloudFront): the edge location ("HAN50-C1").
- ``x-served-by`` (Fastly, Varnish): the cache nodes, each ending in its POP ("cache-hkg17920-HKG").
- ``x-cache`` (Fastly, CloudFront, Varnish, many caches): HIT or MISS at the edge; a miss went
  back to the origin, so its speed is not the edge's.
- ``server-timing`` (Cloudflare's ``cfL4``, Fastly, Akamai): the edge's own measured RTT and
  cache state.
- ``via``: the proxies and caches on the way ("1.1 abc.cloudfront.net (CloudFront)").
- ``x-fb-connection-quality`` (Facebook's edges): the edge's estimate of the connection's RTT.

``x-fb-debug`` and the like are opaque tokens, not places: not kept. Each value is capped at
:data:`MAX_VALUE` characters; the whole record is scrubbed before it is stored, as every
server's text is.
"""

from __future__ import annotations

import ipaddress
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from probe.model import EdgeFact, Flow

LOCALITY = (
    "cf-ray",
    "x-amz-cf-pop",
    "x-served-by",
    "x-cache",
    "server-timing",
    "via",
    "x-fb-connection-quality",
)
MAX_VALUE = 200


@dataclass(frozen=True, slots=True)
class Where:
    """An address's network, as a table says: what ``lookup`` answers."""

    asn: str | None = None
    cc: str | None = None
    source: str = "local"  # "helper" or "local"


Lookup = Callable[[str], Where | None]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def no_lookup(address: str) -> Where | None:
    return None


def locality(headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The locality headers of a response (:data:`LOCALITY`), names lower-cased, in its order."""
    out = []
    for k, v in headers:
        name = k.lower()
        if name in LOCALITY:
            out.append((name, v.strip()[:MAX_VALUE]))
    return tuple(out)


def _code(text: str) -> str | None:
    letters = "".join(c for c in text if c.isascii() and c.isalpha())[:3].upper()
    return letters if len(letters) == 3 else None


def pop(headers: Sequence[tuple[str, str]]) -> str | None:
    """The point of presence the CDN names: Cloudflare's colo, CloudFront's edge location, or
    the last cache node Fastly lists (IATA-like, upper case); None when no header says."""
    for k, v in headers:
        if k == "cf-ray" and "-" in v:
            return _code(v.rsplit("-", 1)[1])
        if k == "x-amz-cf-pop" and v:
            return _code(v.split("-", 1)[0])
        if k == "x-served-by" and "-" in v:
            return _code(v.split(",")[-1].strip().rsplit("-", 1)[1])
    return None


def parse_prefixes(
    texts: Iterable[str],
) -> tuple[IPNetwork, ...]:
    """Known cache prefixes ("103.1.2.0/24"); ValueError naming the first that is not one."""
    return tuple(ipaddress.ip_network(t.strip(), strict=False) for t in texts if t.strip())


def on_net(
    address: str,
    where: Where | None,
    own_asn: str | None,
    prefixes: Sequence[IPNetwork] = (),
) -> tuple[bool | None, str | None]:
    """(inside the volunteer's network?, why): in a known cache prefix, or in the probe's own
    AS; outside when both ASNs are known and differ; None when it cannot be told."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return None, None
    if any(ip.version == p.version and ip in p for p in prefixes):
        return True, "cache_prefix"
    if where is None or where.asn is None or own_asn is None:
        return None, None
    if where.asn == own_asn:
        return True, "probe_asn"
    return False, "other_network"


def _median(values: Iterable[float]) -> float | None:
    got = list(values)
    return statistics.median(got) if got else None


def edge_facts(
    flows: Sequence[Flow],
    *,
    lookup: Lookup = no_lookup,
    own_asn: str | None = None,
    prefixes: Sequence[IPNetwork] = (),
) -> tuple[EdgeFact, ...]:
    """One fact per address the flows dialled, in the order first dialled."""
    by_ip: dict[str, list[Flow]] = {}
    for f in flows:
        if f.ip:
            by_ip.setdefault(f.ip, []).append(f)
    out = []
    for ip, fs in by_ip.items():
        where = lookup(ip)
        inside, basis = on_net(ip, where, own_asn, prefixes)
        rtts = [s.rtt_us for f in fs for s in f.samples if s.rtt_us]
        mins = [s.min_rtt_us for f in fs for s in f.samples if s.min_rtt_us]
        connect = _median(f.connect_s for f in fs if f.connect_s is not None)
        headers = next((f.locality for f in fs if f.locality), ())
        rtt = _median(rtts)
        out.append(
            EdgeFact(
                ip,
                roles=tuple(dict.fromkeys(f.role for f in fs)),
                asn=where.asn if where else None,
                cc=where.cc if where else None,
                network_source=where.source if where else "none",
                on_net=inside,
                on_net_basis=basis,
                connect_s=None if connect is None else round(connect, 4),
                rtt_ms=None if rtt is None else round(rtt / 1000, 3),
                min_rtt_ms=round(min(mins) / 1000, 3) if mins else None,
                pop=pop(headers),
                locality=headers,
            )
        )
    return tuple(out)


def target_edge(edges: Sequence[EdgeFact]) -> EdgeFact | None:
    """The edge the target's own object came from (its trials; the A/B legs go to the helper)."""
    return next((e for e in edges if "target" in e.roles), None)


def served_class(edge: EdgeFact | None, own_cc: str | None) -> str | None:
    """A target's class by where it was served from: from inside the volunteer's network, a
    foreign site's cache ("foreign_on_net"); from the volunteer's country, "domestic"; from
    elsewhere, "foreign_origin"; None when the edge's network is unknown. A domestic site
    hosted by the volunteer's own ISP reads as on-net: ``class:`` in targets.yaml says so."""
    if edge is None:
        return None
    if edge.on_net:
        return "foreign_on_net"
    if edge.cc is None or own_cc is None:
        return None
    return "domestic" if edge.cc == own_cc else "foreign_origin"
