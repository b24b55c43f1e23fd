"""The volunteer's public address, learned without the test helper: for the scrubber, in memory.

Contract: :func:`learn` asks every configured STUN server for a binding (RFC 8489: the server
answers the address and port it saw, ``XOR-MAPPED-ADDRESS``; aioice builds and parses the
messages and retransmits) and, where the control resolver's operator offers one, asks it "what
is my address" (:data:`WHOAMI_QUERIES`: Cloudflare's ``whoami.cloudflare`` CH TXT, OpenDNS's
``myip.opendns.com``), all at once, within ``timeout`` seconds. It returns a
:class:`PublicAddress`: the addresses they answered and which methods answered. A server that
is down, blocked or lying about its format is a method that did not answer, never an
exception. The addresses are handed to :class:`probe.privacy.Scrubber` and never stored, shown
or logged (``repr`` hides them); only the names of the methods that answered are recorded. As
OONI Probe's geolocation does, several independent sources are asked, so that a censor
blocking one (or the test helper) does not leave the address unknown.

Data use: one binding request is 20 bytes and its answer under 100; with 2 retransmissions per
server and the default servers a round spends under 2 kB here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import dns.exception
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import httpx
from aioice import stun

from probe import failures
from probe.errors import DoHStatusError
from probe.measure.dns import exchange
from probe.model import ResolverSpec

STUN_RETRANSMISSIONS = 2  # 3 tries: at 0, 0.5 and 1.5 s (aioice's RTO doubles from 0.5 s)

# The "what is my address" query each public resolver's operator answers with the address its
# client came from (operators as probe/data/public_resolvers.csv names them). Google's
# o-o.myaddr.l.google.com is not here: it answers the resolver's own egress address.
WHOAMI_QUERIES: dict[str, tuple[str, str, str]] = {
    "Cloudflare": ("whoami.cloudflare.", "CH", "TXT"),
    "OpenDNS": ("myip.opendns.com.", "IN", "A"),
}


@dataclass(frozen=True, slots=True)
class PublicAddress:
    """What :func:`learn` found: ``addresses`` (memory only: never stored, hidden from repr)
    and ``methods``, the names of the methods that answered ("stun", "dns")."""

    addresses: frozenset[str] = field(default=frozenset(), repr=False)
    methods: tuple[str, ...] = ()


def whoami_query(operator: str | None) -> tuple[str, str, str] | None:
    """(name, class, type) of the query ``operator``'s resolver answers with its client's
    address, or None when it offers none."""
    return WHOAMI_QUERIES.get(operator or "")


class _StunProtocol(asyncio.DatagramProtocol):
    """One UDP socket's STUN transactions: sends for aioice's Transaction, hands answers back
    by transaction id."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: dict[bytes, stun.Transaction] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            message = stun.parse_message(data)
        except ValueError:  # not STUN, or broken: ignored, as the RFC says
            return
        t = self.pending.get(message.transaction_id)
        if t is not None:
            t.response_received(message, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable: retried, then timeout
        pass

    def send_stun(self, message: stun.Message, addr: tuple[str, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(bytes(message), addr)


async def stun_binding(host: str, port: int) -> str | None:
    """The address one STUN server saw us come from, or None (no answer, no such server, an
    answer without a mapped address). The caller bounds the time."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError):
        return None
    for family, _, _, _, sockaddr in infos:
        try:
            transport, protocol = await loop.create_datagram_endpoint(
                _StunProtocol, family=family, remote_addr=None
            )
        except OSError:
            continue
        try:
            request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
            t = stun.Transaction(
                request, (str(sockaddr[0]), int(sockaddr[1])), protocol, STUN_RETRANSMISSIONS
            )
            protocol.pending[request.transaction_id] = t
            try:
                response, _ = await t.run()
            except (stun.TransactionError, OSError):
                continue
            mapped = response.attributes.get("XOR-MAPPED-ADDRESS") or response.attributes.get(
                "MAPPED-ADDRESS"
            )
            found = _address(mapped[0] if isinstance(mapped, tuple) and mapped else None)
            if found is not None:
                return found
        finally:
            transport.close()
    return None


async def dns_whoami(
    spec: ResolverSpec,
    query: tuple[str, str, str],
    client: httpx.AsyncClient | None,
    timeout: float,
    tls: ssl.SSLContext | None = None,
) -> str | None:
    """The address ``spec``'s resolver says we come from, asked with ``query`` (name, class,
    type), or None."""
    name, rdclass, rdtype = query
    q = dns.message.make_query(
        dns.name.from_text(name), dns.rdatatype.from_text(rdtype), dns.rdataclass.from_text(rdclass)
    )
    try:
        resp, _ = await exchange(spec, q, timeout, client, tls)
    except (dns.exception.DNSException, DoHStatusError):
        return None  # the method did not answer
    except failures.network_error_types():
        return None
    for rrset in resp.answer:
        for rr in rrset:
            if rrset.rdtype == dns.rdatatype.TXT:
                text = b"".join(getattr(rr, "strings", ())).decode("ascii", "replace")
            else:
                text = rr.to_text()
            found = _address(text.strip('"'))
            if found is not None:
                return found
    return None


def _address(text: object) -> str | None:
    """The address a server answered, or None when it is not one."""
    try:
        return str(ipaddress.ip_address(str(text)))
    except ValueError:
        return None


def _identifies(address: str) -> bool:
    """Loopback and unspecified addresses identify no one: nothing to scrub."""
    ip = ipaddress.ip_address(address)
    return not (ip.is_loopback or ip.is_unspecified)


async def learn(
    stun_servers: Sequence[tuple[str, int]],
    *,
    resolver: ResolverSpec | None = None,
    query: tuple[str, str, str] | None = None,
    client: httpx.AsyncClient | None = None,
    tls: ssl.SSLContext | None = None,
    timeout: float = 5.0,
) -> PublicAddress:
    """Every method at once, bounded by ``timeout`` seconds in all: each STUN server, and the
    ``query`` to ``resolver`` when both are given."""
    jobs: list[tuple[str, asyncio.Task[str | None]]] = [
        ("stun", asyncio.ensure_future(stun_binding(h, p))) for h, p in stun_servers
    ]
    if resolver is not None and query is not None:
        jobs.append(
            ("dns", asyncio.ensure_future(dns_whoami(resolver, query, client, timeout, tls)))
        )
    if not jobs:
        return PublicAddress()
    tasks = [t for _, t in jobs]
    try:
        await asyncio.wait(tasks, timeout=timeout)
    finally:  # past the timeout, or the round itself cancelled: no method left running
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    found: set[str] = set()
    methods: list[str] = []
    for method, task in jobs:
        if task.cancelled() or task.exception() is not None:
            continue
        address = task.result()
        if address is not None and _identifies(address):
            found.add(address)
            if method not in methods:
                methods.append(method)
    return PublicAddress(frozenset(found), tuple(methods))
