"""DNS step: A and AAAA queries through the resolver under test and through a control resolver.

Contract: ``query()`` never raises on network failure; it returns a :class:`DNSQuery` with the
answers, CNAMEs, TTLs, rcode, the df-007 failure and the bytes moved. dnspython builds and parses
messages and does UDP (with TCP fallback on truncation) and DoT; DoH (RFC 8484, POST
``application/dns-message``) goes through the project's own httpx client.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import time

import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import httpx

from probe import failures
from probe.errors import DoHStatusError
from probe.model import DNSAnswer, DNSQuery, ResolverSpec


def _answers(msg: dns.message.Message) -> tuple[DNSAnswer, ...]:
    """The CNAME chain from the queried name and the records at its end, in order. Records
    owned by any other name (an off-path injector's, a confused resolver's) are ignored:
    dnspython's resolve_chaining follows the chain as a stub resolver must."""
    try:
        chain = msg.resolve_chaining() if isinstance(msg, dns.message.QueryMessage) else None
    except (dns.message.ChainTooLong, dns.message.AnswerForNXDOMAIN, dns.exception.FormError):
        return ()
    if chain is None:
        return ()
    out = [
        DNSAnswer("CNAME", rr.target.to_text(omit_final_dot=True), int(rrset.ttl))
        for rrset in chain.cnames
        for rr in rrset
    ]
    if chain.answer is not None:
        kind = dns.rdatatype.to_text(chain.answer.rdtype)
        out += [DNSAnswer(kind, rr.to_text(), int(chain.answer.ttl)) for rr in chain.answer]
    return tuple(out)


async def exchange(
    spec: ResolverSpec,
    q: dns.message.Message,
    timeout: float,
    client: httpx.AsyncClient | None,
    tls: ssl.SSLContext | None = None,
) -> tuple[dns.message.Message, int]:
    """Send ``q`` to the resolver ``spec`` describes, over its own transport (UDP with TCP
    fallback, DoT or DoH); the reply and the bytes moved. Raises on failure."""
    if spec.kind == "udp":
        resp, _tcp = await dns.asyncquery.udp_with_fallback(
            q, spec.host, timeout=timeout, port=spec.port
        )
        return resp, _wire_len(q) + _wire_len(resp)
    if spec.kind == "dot":
        resp = await asyncio.to_thread(_dot, spec, q, timeout, dot_context(spec, tls))
        return resp, _wire_len(q) + _wire_len(resp)
    assert client is not None and spec.url is not None
    wire = q.to_wire()
    r = await client.post(
        spec.url,
        content=wire,
        headers={"content-type": "application/dns-message", "accept": "application/dns-message"},
        timeout=timeout,
    )
    if r.status_code != 200:
        raise DoHStatusError(r.status_code)
    body = r.content[:65535]
    return dns.message.from_wire(body), len(wire) + len(body) + 200


def _wire_len(msg: dns.message.Message) -> int:
    """The size of a message as sent or received: dnspython (>= 2.7) keeps the wire form of
    every message it rendered or parsed, so nothing is rendered twice (issue 19)."""
    wire = getattr(msg, "wire", None)
    return len(wire) if wire is not None else len(msg.to_wire())


def _dot(
    spec: ResolverSpec, q: dns.message.Message, timeout: float, ctx: ssl.SSLContext
) -> dns.message.Message:
    """One DoT exchange on a socket we own, so it is closed whatever happens (asyncio's TLS
    leaves a failed handshake's transport to the garbage collector)."""
    with (
        socket.create_connection((spec.host, spec.port), timeout) as raw,
        ctx.wrap_socket(raw, server_hostname=spec.server_name or spec.host) as tls,
    ):
        return dns.query.tls(q, spec.host, timeout=timeout, port=spec.port, sock=tls)


def dot_context(spec: ResolverSpec, verify: ssl.SSLContext | None) -> ssl.SSLContext:
    """DoT's TLS, always authenticated (RFC 8310's strict profile): the certificate must be
    valid for the resolver's name (``tls://NAME@IP``) or, without one, for its IP address (the
    public resolvers' certificates name theirs). ``verify`` carries the trust anchors,
    ``--ca-bundle`` included."""
    return verify if verify is not None else ssl.create_default_context()


async def query(
    hostname: str,
    rdtype: str,
    spec: ResolverSpec,
    *,
    role: str,
    timeout: float,
    clock0: float,
    client: httpx.AsyncClient | None = None,
    depth: int = 0,
    tls: ssl.SSLContext | None = None,
) -> DNSQuery:
    """One query; a failure is a result."""
    t0 = time.monotonic() - clock0
    base = functools.partial(
        DNSQuery,
        hostname=hostname,
        query_type=rdtype,
        resolver=role,
        resolver_address=spec.address,
        engine=spec.kind,
        depth=depth,
        t0=t0,
    )
    try:
        q = dns.message.make_query(dns.name.from_text(hostname), rdtype)
    except (dns.exception.DNSException, UnicodeError, ValueError) as exc:
        return base(
            failure=failures.DNS_SERVER_MISBEHAVING,
            raw_failure=failures.scrub(f"bad name: {exc}"),
            t=t0,
        )
    try:
        resp, moved = await exchange(spec, q, timeout, client, tls)
    except dns.exception.Timeout:
        return base(
            failure=failures.GENERIC_TIMEOUT,
            raw_failure="timeout",
            t=time.monotonic() - clock0,
            bytes=len(q.to_wire()),
        )
    except DoHStatusError as exc:
        return base(
            failure=failures.DNS_SERVER_MISBEHAVING,
            raw_failure=f"http_status:{exc.status}",
            t=time.monotonic() - clock0,
        )
    except dns.query.BadResponse as exc:
        # dnspython checks a UDP or TCP reply's id and question and raises this when they do
        # not match the query: OONI names that case (a broken or spoofing resolver).
        return base(
            failure=failures.DNS_WRONG_QUERY_ID,
            raw_failure=failures.scrub(f"{type(exc).__name__}: {exc}")[:200],
            t=time.monotonic() - clock0,
        )
    except dns.exception.DNSException as exc:
        return base(
            failure=failures.DNS_SERVER_MISBEHAVING,
            raw_failure=failures.scrub(f"{type(exc).__name__}: {exc}")[:200],
            t=time.monotonic() - clock0,
        )
    except failures.network_error_types() as exc:  # mapped in one place
        info = failures.classify(exc, failures.OP_RESOLVE)
        return base(failure=info.failure, raw_failure=info.raw, t=time.monotonic() - clock0)
    t = time.monotonic() - clock0
    if resp.id != q.id:
        return base(failure=failures.DNS_WRONG_QUERY_ID, t=t, bytes=moved)
    rcode = dns.rcode.to_text(resp.rcode())
    answers = _answers(resp)
    failure = failures.DNS_RCODE_FAILURES.get(rcode)
    if failure is None and rcode != "NOERROR":
        failure = failures.DNS_SERVER_MISBEHAVING
    if failure is None and not any(a.type == rdtype for a in answers):
        failure = failures.DNS_NO_ANSWER
    return base(
        answers=answers,
        rcode=rcode,
        failure=failure,
        raw_failure=None if failure is None else f"rcode:{rcode}",
        t=t,
        bytes=moved,
    )
