"""``probe helper serve``: the test helper as an ASGI app under uvicorn, safe to expose.

Routes: ``POST /`` (a Web Connectivity control request), ``POST|GET /dns-query`` (DoH, RFC 8484,
relayed to the helper's upstream resolver), ``GET /bulk?bytes=N`` (incompressible bytes over
TLS whatever the SNI: the probe's SNI A/B throttling test), ``POST /speed`` (the helper times a
download of a URL from its own network), ``POST /network`` (the client's network - AS number,
country, name - from the operator's IP-to-ASN table, and an HMAC of the client's address under
the client's nonce, never the address itself; see :mod:`probe.network`), ``POST /edges`` (the
networks of server addresses a probe dialled, from the same table: issue 25), ``GET /health``.
Bounded: request bodies (64 KiB, 413 past it), the time a client may take to send its body
(408), the time per measurement, and two pools kept apart, each 503 past its limit: control
requests in flight (``POST /``, ``/dns-query``, ``/speed``, ``/network``, ``/edges``) and ``/bulk``
streams,
per client address and in total, so control requests never wait behind bulk streams. A peer
that reads nothing of its answer for the send timeout is dropped (:class:`GuardedH11Protocol`).
``/health`` is 200 with both pools' counts, 503 when the control pool is full. An optional
bearer token (401 without it). The access log is JSON lines with no client address in them; the
address is read for ``/network`` and forgotten.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import ipaddress
import json
import math
import os
import resource
import socket
import struct
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TextIO, TypeVar

import dns.exception
import dns.message
import dns.rdatatype
import dns.rrset
import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from probe import addr, failures
from probe.errors import BadRequest, DoHStatusError, ServeError, TooLarge, URLError
from probe.helper import decode_json, measure, parse_body, shown, tellable
from probe.helper.asn import Table, entry_fields
from probe.measure.config import MeasureConfig
from probe.measure.dns import exchange
from probe.measure.net import Shared, tcp_info
from probe.model import ResolverSpec
from probe.network import addr_hmac
from probe.timeutil import utc_now
from probe.urls import check_url
from probe.words import N_

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

MAX_BODY = 64 * 1024
MAX_DNS_MESSAGE = 4096
MAX_EDGES = 64  # server addresses per /edges question (a test dials a handful)
MAX_BULK = 16 * 1024 * 1024
MAX_BULK_STREAMS = (
    32  # /bulk streams at once, in all: each may pin up to tcp_wmem (4 MiB) of kernel memory
)
MAX_BULK_PER_CLIENT = 4  # and per client address (the probe downloads its A/B legs one by one)
_RANDOM = os.urandom(64 * 1024)  # incompressible, and cheap to repeat
_T = TypeVar("_T")


class HelperApp:
    def __init__(
        self,
        cfg: MeasureConfig,
        *,
        token: str | None = None,
        max_in_flight: int = 32,
        max_bulk: int = MAX_BULK_STREAMS,
        max_bulk_per_client: int = MAX_BULK_PER_CLIENT,
        request_timeout: float = 60.0,
        body_timeout: float = 10.0,
        log: TextIO | None = None,
        asn_table: Table | None = None,
    ) -> None:
        self.cfg = cfg
        self.asn_table = asn_table
        self.token = token
        self.max_in_flight = max_in_flight
        self.request_timeout = request_timeout
        self.body_timeout = body_timeout
        self.log = log if log is not None else sys.stderr
        self.max_bulk = max_bulk
        self.max_bulk_per_client = max_bulk_per_client
        self.in_flight = 0  # control requests being answered
        self.bulk: Counter[str] = Counter()  # /bulk streams open, per client address
        self._shared: Shared | None = None
        # (host, port, cert, key) of the QUIC listener for the probe's SNI A/B (issue 24)
        self.quic_listen: tuple[str, int, str, str] | None = None
        self._quic: Any = None

    @property
    def shared(self) -> Shared:
        if self._shared is None:
            self._shared = Shared.create(self.cfg)
        return self._shared

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        t0 = time.monotonic()
        status, sent = await self._handle(scope, receive, send)
        self.log.write(
            json.dumps(
                {
                    "time": utc_now(),
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "ms": round((time.monotonic() - t0) * 1000, 1),
                    "bytes": sent,
                    "in_flight": self.in_flight,
                    "bulk": self.bulk.total(),
                }
            )
            + "\n"
        )
        self.log.flush()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                if self.quic_listen is not None:
                    from probe.helper import quic_ab

                    self._quic = await quic_ab.listen(*self.quic_listen)
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                if self._shared is not None:
                    await self._shared.aclose()
                if self._quic is not None:
                    self._quic.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> tuple[int, int]:
        path, method = scope["path"], scope["method"]
        if path == "/health" and method == "GET":
            return await self._health(send)
        if path not in ("/", "/dns-query", "/bulk", "/speed", "/network", "/edges"):
            return await _error(send, 404, "not found")
        if self.token is not None and not self._authorised(scope):
            return await _error(
                send, 401, "missing or wrong bearer token", [(b"www-authenticate", b"Bearer")]
            )
        if path == "/bulk":
            return await self._bulk(scope, send)  # its own pool, apart from the control slots
        if self.in_flight >= self.max_in_flight:
            return await _error(
                send, 503, "busy: too many requests in flight", [(b"retry-after", b"5")]
            )
        self.in_flight += 1
        try:
            if path == "/dns-query":
                return await self._doh(scope, receive, send)
            if path == "/speed":
                return await self._speed(scope, receive, send)
            if path == "/network":
                return await self._network(scope, receive, send)
            if path == "/edges":
                return await self._edges(scope, receive, send)
            if method != "POST":
                return await _error(send, 405, "POST a JSON control request", [(b"allow", b"POST")])
            return await self._control(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _health(self, send: Send) -> tuple[int, int]:
        """Both pools' counts, and which are full. 503 only when the control pool is: the helper
        cannot answer a control request now, so a load balancer should send it none. A full
        bulk pool is named in ``full`` for monitors, but the helper stays in rotation: its
        control requests are still answered (issue 20)."""
        bulk = self.bulk.total()
        full = [
            name
            for name, used, cap in (
                ("control", self.in_flight, self.max_in_flight),
                ("bulk", bulk, self.max_bulk),
            )
            if used >= cap
        ]
        saturated = "control" in full
        doc = {
            "status": "saturated" if saturated else "ok",
            "full": full,
            "control": {"in_flight": self.in_flight, "max": self.max_in_flight},
            "bulk": {
                "open": bulk,
                "max": self.max_bulk,
                "max_per_client": self.max_bulk_per_client,
            },
        }
        body = json.dumps(doc).encode()
        extra = [(b"retry-after", b"5")] if saturated else None
        return await _reply(send, 503 if saturated else 200, body, "application/json", extra)

    def _authorised(self, scope: Scope) -> bool:
        want = f"Bearer {self.token}".encode()
        got = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        return hmac.compare_digest(got, want)

    async def _body(self, scope: Scope, receive: Receive, cap: int) -> bytes:
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None and length.isdigit() and int(length) > cap:
            raise TooLarge
        chunks, size = [], 0
        async with asyncio.timeout(self.body_timeout):
            while True:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    break
                chunk = msg.get("body", b"")
                size += len(chunk)
                if size > cap:
                    raise TooLarge
                chunks.append(chunk)
                if not msg.get("more_body"):
                    break
        return b"".join(chunks)

    async def _json_request(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        cap: int,
        route: str,
        parse: Callable[[Any], _T],
    ) -> _T | _Refused:
        """A JSON route's body (at most ``cap`` bytes) read and ``parse``d, or the refusal sent
        for it: 413 past the cap, 408 too slow, 400 with ``route: reason`` for BadRequest."""
        try:
            return parse(decode_json(await self._body(scope, receive, cap)))
        except TooLarge:
            return _Refused(await _error(send, 413, "request body too large"))
        except TimeoutError:
            return _Refused(await _error(send, 408, "request body too slow"))
        except BadRequest as exc:
            return _Refused(await _error(send, 400, f"{route}: {exc}"))

    async def _control(self, scope: Scope, receive: Receive, send: Send) -> tuple[int, int]:
        try:
            req = parse_body(await self._body(scope, receive, MAX_BODY))
        except TooLarge:
            return await _error(send, 413, f"request body over {MAX_BODY} bytes")
        except TimeoutError:
            return await _error(send, 408, "request body too slow")
        except BadRequest as exc:
            return await _error(send, 400, str(exc))
        try:
            async with asyncio.timeout(self.request_timeout):
                answer = await measure(self.shared, req)
        except TimeoutError:
            return await _error(send, 504, "measurement took too long")
        return await _reply(send, 200, json.dumps(answer).encode(), "application/json")

    async def _bulk(self, scope: Scope, send: Send) -> tuple[int, int]:
        try:
            n = int(_query_param(scope, "bytes"))
        except ValueError:
            return await _error(send, 400, "bulk: ?bytes=N is required")
        if not 0 < n <= MAX_BULK:
            return await _error(send, 400, f"bulk: bytes must be 1..{MAX_BULK}")
        client = scope.get("client")
        host = str(client[0]) if client else ""
        if self.bulk[host] >= self.max_bulk_per_client:
            return await _error(
                send, 503, "busy: too many bulk streams from your address", [(b"retry-after", b"5")]
            )
        if self.bulk.total() >= self.max_bulk:
            return await _error(send, 503, "busy: too many bulk streams", [(b"retry-after", b"5")])
        self.bulk[host] += 1
        try:
            return await self._stream(n, send)
        finally:
            self.bulk[host] -= 1
            if self.bulk[host] <= 0:
                del self.bulk[host]

    async def _stream(self, n: int, send: Send) -> tuple[int, int]:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/octet-stream"),
                    (b"content-length", str(n).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        sent = 0
        while sent < n:
            chunk = _RANDOM[: min(len(_RANDOM), n - sent)]
            sent += len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": sent < n})
        return 200, sent

    async def _speed(self, scope: Scope, receive: Receive, send: Send) -> tuple[int, int]:
        from probe.measure.throughput import download, first_address

        req = await self._json_request(scope, receive, send, 4096, "speed", _speed_request)
        if isinstance(req, _Refused):
            return req
        url, max_bytes, max_seconds = req
        ip, why = await first_address(self.shared, url)
        if ip is None:
            answer: dict[str, Any] = {
                "bps": None,
                "bytes": 0,
                "seconds": 0.0,
                "bytes_used": 0,
                "failure": why,
            }
        else:
            flow = await download(
                self.shared,
                url,
                ip,
                role="helper",
                max_bytes=max_bytes,
                max_seconds=max_seconds,
                clock0=time.monotonic(),
            )
            body_time = flow.duration - (flow.ttfb or 0.0)
            answer = {
                "bps": flow.bytes * 8 / body_time if flow.bytes and body_time > 0 else None,
                "bytes": flow.bytes,
                "seconds": flow.duration,
                "bytes_used": 0,
                "failure": flow.failure,
            }
        return await _reply(send, 200, json.dumps(answer).encode(), "application/json")

    async def _network(self, scope: Scope, receive: Receive, send: Send) -> tuple[int, int]:
        """The client's network, and ``addr_hmac`` (HMAC-SHA256 of its address under the nonce
        it sent): so it can recognise its own public address without being told it."""
        if scope["method"] != "POST":
            return await _error(send, 405, 'POST {"nonce": HEX}', [(b"allow", b"POST")])
        nonce = await self._json_request(scope, receive, send, 1024, "network", _network_nonce)
        if isinstance(nonce, _Refused):
            return nonce
        client = scope.get("client")
        address = str(client[0]) if client else None
        entry = self.asn_table.lookup(address) if address and self.asn_table else None
        answer = {
            **entry_fields(entry),
            "addr_hmac": addr_hmac(nonce, address) if address else None,
        }
        return await _reply(send, 200, json.dumps(answer).encode(), "application/json")

    async def _edges(self, scope: Scope, receive: Receive, send: Send) -> tuple[int, int]:
        """The networks of servers a probe dialled (issue 25): ``{"addresses": [IP, ...]}``
        (at most :data:`MAX_EDGES`) -> ``{"edges": {IP: {asn, cc, network_name}}}`` from the
        operator's IP-to-ASN table (an address it does not know is left out). Servers'
        addresses only: the client's own is never asked here, and nothing is logged."""
        if scope["method"] != "POST":
            return await _error(send, 405, 'POST {"addresses": [IP, ...]}', [(b"allow", b"POST")])
        addresses = await self._json_request(scope, receive, send, 4096, "edges", _edge_addresses)
        if isinstance(addresses, _Refused):
            return addresses
        found = {}
        for a in addresses:
            entry = self.asn_table.lookup(a) if self.asn_table else None
            if entry is not None:
                found[a] = entry_fields(entry)
        body = json.dumps({"edges": found}).encode()
        return await _reply(send, 200, body, "application/json")

    async def _doh(self, scope: Scope, receive: Receive, send: Send) -> tuple[int, int]:
        try:
            if scope["method"] == "GET":
                q = _query_param(scope, "dns")
                wire = base64.urlsafe_b64decode(q + "=" * (-len(q) % 4))
            elif scope["method"] == "POST":
                wire = await self._body(scope, receive, MAX_DNS_MESSAGE)
            else:
                return await _error(send, 405, "GET or POST", [(b"allow", b"GET, POST")])
            if len(wire) > MAX_DNS_MESSAGE:
                raise TooLarge
            query = dns.message.from_wire(wire)
        except TooLarge:
            return await _error(send, 413, "DNS message too large")
        except TimeoutError:
            return await _error(send, 408, "request body too slow")
        except (ValueError, dns.exception.DNSException):
            return await _error(send, 400, "not a DNS message")
        shared = self.shared
        try:
            # Relayed over the upstream's own transport: UDP, DoT (tls://) or DoH (https://).
            reply, _ = await exchange(shared.cfg.resolver, query, 5.0, shared.doh, shared.dot)
        except (dns.exception.DNSException, DoHStatusError):
            return await _error(send, 502, "upstream resolver failed")
        except failures.network_error_types():
            return await _error(send, 502, "upstream resolver unreachable")
        _drop_untellable(reply, shared.cfg)
        return await _reply(send, 200, reply.to_wire(), "application/dns-message")


def _drop_untellable(reply: dns.message.Message, cfg: MeasureConfig) -> None:
    """Strip from a relayed DNS reply every address record the helper may not pass on
    (:func:`probe.helper.tellable`), as unbound's ``private-address`` does; an RRset left
    empty goes, a CNAME chain stays."""
    for section in (reply.answer, reply.additional):
        kept = []
        for rrset in section:
            if rrset.rdtype not in (dns.rdatatype.A, dns.rdatatype.AAAA):
                kept.append(rrset)
                continue
            rds = [rd for rd in rrset if tellable(rd.address, cfg)]
            if len(rds) == len(rrset):
                kept.append(rrset)
            elif rds:
                kept.append(dns.rrset.from_rdata_list(rrset.name, rrset.ttl, rds))
        section[:] = kept


class _Refused(tuple[int, int]):
    """The (status, bytes) of a refusal already sent."""


def _network_nonce(doc: Any) -> bytes:
    """``{"nonce": HEX}`` -> the nonce's 16 to 64 bytes, or BadRequest."""
    hex_nonce = doc.get("nonce") if isinstance(doc, dict) else None
    try:
        nonce = bytes.fromhex(hex_nonce) if isinstance(hex_nonce, str) else b""
    except ValueError:
        nonce = b""
    if not 16 <= len(nonce) <= 64:
        raise BadRequest("nonce: 16 to 64 random bytes, in hex")
    return nonce


def _edge_addresses(doc: Any) -> list[str]:
    """``{"addresses": [IP, ...]}`` -> the addresses (at most MAX_EDGES), or BadRequest."""
    addresses = doc.get("addresses") if isinstance(doc, dict) else None
    if not isinstance(addresses, list) or len(addresses) > MAX_EDGES:
        raise BadRequest(f"addresses: a list of at most {MAX_EDGES} IP addresses")
    for a in addresses:
        if not isinstance(a, str):
            raise BadRequest("addresses: each an IP address, as text")
        try:
            ipaddress.ip_address(a)
        except ValueError:
            raise BadRequest("addresses: each an IP address") from None
    return addresses


def _speed_request(doc: Any) -> tuple[str, int, float]:
    """(url, max_bytes, max_seconds) of a /speed request, or BadRequest naming the field."""
    if not isinstance(doc, dict):
        raise BadRequest("the body must be a JSON object")
    url = doc.get("url")
    if not isinstance(url, str):
        raise BadRequest(f"url: {shown(url)} is not a URL string")
    try:
        check_url(url)
    except URLError as exc:
        raise BadRequest(f"url: {exc}") from None
    max_bytes = doc.get("max_bytes", 1 << 20)
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
        raise BadRequest(f"max_bytes: {shown(max_bytes)} is not a positive whole number")
    max_seconds = doc.get("max_seconds", 8)
    if (
        isinstance(max_seconds, bool)
        or not isinstance(max_seconds, int | float)
        or not 0 < max_seconds < math.inf
    ):
        raise BadRequest(f"max_seconds: {shown(max_seconds)} is not a positive number")
    return url, min(max_bytes, MAX_BULK), min(float(max_seconds), 15.0)


def _query_param(scope: Scope, name: str) -> str:
    from urllib.parse import parse_qs

    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    if not values:
        raise ValueError(f"missing ?{name}=")
    return str(values[0])


async def _reply(
    send: Send, status: int, body: bytes, ctype: str, extra: list[tuple[bytes, bytes]] | None = None
) -> tuple[int, int]:
    headers = [
        (b"content-type", ctype.encode()),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return status, len(body)


async def _error(
    send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None
) -> tuple[int, int]:
    body = json.dumps({"error": message}).encode()
    return await _reply(send, status, body, "application/json", extra)


def own_addresses(listen_host: str) -> frozenset[str]:
    """The helper's own addresses, which it must never be asked to measure."""
    out = {listen_host}
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            out.add(str(info[4][0]))
    except OSError:
        pass
    return frozenset(a for a in out if a not in ("", "0.0.0.0", "::"))


# -- connections: bounded, so slow or idle clients cannot lock the helper ------------------------
MAX_CONNECTIONS = 2048


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """How long a client may take and how many connections it may hold."""

    header_timeout: float = 10.0  # from connecting (or the last response) to a whole request head
    idle_timeout: float = 5.0  # keep-alive: an idle connection after a response
    per_client: int = 64  # open connections per client address (probes behind one NAT share it)
    total: int = MAX_CONNECTIONS  # open connections in all; past it the oldest idle one goes
    # A peer that reads nothing of what it was sent for this long is dropped. Above the probe's
    # A/B legs (4 s each), so a stalled path is measured as a stall before the helper lets go.
    send_timeout: float = 20.0


_BUSY_BODY = b'{"error": "too many connections from your address"}'
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\nretry-after: 5\r\nconnection: close\r\n\r\n%s"
    % (len(_BUSY_BODY), _BUSY_BODY)
)


class _Guard:
    """The connections of one server, oldest first, and how many each client address holds."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.open: dict[GuardedH11Protocol, None] = {}
        self.by_client: Counter[str] = Counter()


class GuardedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with the limits uvicorn lacks: a deadline for the request
    head (uvicorn waits forever for a client that never finishes its headers), a cap per
    client address, a total cap that closes the oldest idle connection rather than
    refusing the newcomer, so ``/health`` keeps answering under a flood of idle connections,
    and a send timeout (uvicorn waits forever for a peer that never reads: the response, and
    the pool slot its handler holds, stay stuck). Whether a request head is complete is h11's
    own state (``their_state`` leaves IDLE).

    The send timeout watches a connection whenever a peer can leave bytes in its write buffer:
    once the buffer is over its high-water mark (the handler is then blocked until it drains),
    and once a response is complete (its last bytes may be left, and closing waits for them).
    Progress is the kernel's count of bytes the peer acknowledged (TCP_INFO ``bytes_acked``,
    which stops when the peer's receive window stays shut, that is when it reads nothing) or a
    change of the buffer's size: the buffer alone is not enough, as the kernel's own send
    buffer (up to ``tcp_wmem``, 4 MiB) takes a second or more of a slow peer's reading before
    the buffer moves. No progress for ``send_timeout``: the connection is reset, which frees
    both buffers and wakes the handler."""

    guard: ClassVar[_Guard]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        g = self.guard
        self._host = self.client[0] if self.client else ""
        self._deadline: asyncio.TimerHandle | None = None
        self._send_watch: asyncio.TimerHandle | None = None
        self._sent_mark, self._stalled_since = (0, 0), 0.0
        g.by_client[self._host] += 1
        g.open[self] = None
        if g.by_client[self._host] > g.limits.per_client:
            self.transport.write(_BUSY)
            self.transport.close()
            return
        if len(g.open) > g.limits.total:
            # Idle, or closed and waiting for a peer to read what is left: that one is reset,
            # as closing would wait for the peer again.
            oldest = next((c for c in g.open if c is not self and c._evictable()), self)
            if oldest.transport.get_write_buffer_size():
                oldest._reset()
            else:
                oldest.transport.close()
            if oldest is self:
                return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._disarm()
        if self._send_watch is not None:
            self._send_watch.cancel()
            self._send_watch = None
        g = self.guard
        if g.open.pop(self, 0) is None:
            g.by_client[self._host] -= 1
            if g.by_client[self._host] <= 0:
                del g.by_client[self._host]

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._idle():
            self._disarm()  # a whole request head arrived; the app bounds the body

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch_send()  # what the peer has not read yet of the response
        if self._idle() and not self.transport.is_closing():
            self._arm()  # the next request's head has its own deadline

    def pause_writing(self) -> None:
        super().pause_writing()
        self._watch_send()

    def _watch_send(self) -> None:
        if self._send_watch is None and self.transport.get_write_buffer_size():
            self._sent_mark, self._stalled_since = self._send_progress(), self.loop.time()
            self._send_watch = self.loop.call_later(
                self.guard.limits.send_timeout / 4, self._check_send
            )

    def _send_progress(self) -> tuple[int, int]:
        """(bytes the peer acknowledged, or -1 where TCP_INFO cannot say; bytes buffered)."""
        info = tcp_info(self.transport.get_extra_info("socket"))
        acked = info.bytes_acked if info is not None and info.bytes_acked is not None else -1
        return acked, self.transport.get_write_buffer_size()

    def _check_send(self) -> None:
        self._send_watch = None
        mark = self._send_progress()
        if not mark[1]:
            return  # all handed to the kernel; the next pause or response watches again
        now = self.loop.time()
        if mark != self._sent_mark:  # the peer read some (or the handler wrote after it had)
            self._sent_mark, self._stalled_since = mark, now
        elif now - self._stalled_since >= self.guard.limits.send_timeout:
            self._reset()
            return
        self._send_watch = self.loop.call_later(
            self.guard.limits.send_timeout / 4, self._check_send
        )

    def _reset(self) -> None:
        """Drop the connection now, with a reset: a plain close would leave the kernel sending
        what it holds to a peer that does not read (an orphaned socket, its buffer still held)."""
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()

    def _evictable(self) -> bool:
        return self._idle() or self.transport.is_closing()

    def _idle(self) -> bool:
        return self.conn.their_state is h11.IDLE

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.guard.limits.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self._idle() and not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedH11Protocol]:
    """A protocol class for one server, with its own connection table."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"guard": _Guard(limits)})


def server_config(
    app: HelperApp,
    host: str,
    port: int,
    *,
    limits: ConnectionLimits | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> Any:
    """The uvicorn configuration ``probe helper serve`` runs (tests run the same one)."""
    import uvicorn

    limits = limits or ConnectionLimits()
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded_protocol(limits),
        log_level="warning",
        access_log=False,
        server_header=False,
        lifespan="on",
        timeout_keep_alive=int(max(1, limits.idle_timeout)),
        # No limit_concurrency: it answers 503 to every request, /health included, once that
        # many connections are open. The app bounds the work (max_in_flight); the protocol
        # bounds the connections.
        h11_max_incomplete_event_size=16 * 1024,
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
    )


def credential(name: str) -> str | None:
    """The path of systemd's credential ``name`` (``LoadCredential=``, in
    ``$CREDENTIALS_DIRECTORY``, readable by this service alone), or None when there is none."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None
    path = os.path.join(directory, name)
    return path if os.path.isfile(path) else None


SD_LISTEN_FDS_START = 3


def activated_socket() -> socket.socket | None:
    """The listening socket systemd passed (socket activation, as ``sd_listen_fds``: for this
    process when ``LISTEN_PID`` is its own, as fd 3), or None. The variables are then removed,
    so nothing this process starts takes them for its own; one stream socket is expected."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    count = os.environ.get("LISTEN_FDS", "")
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    if count != "1":
        if not count:
            raise ServeError(N_("socket activation: no sockets passed, one expected"))
        raise ServeError(N_("socket activation: {count} sockets passed, one expected"), count=count)
    try:
        sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    except OSError as exc:
        raise ServeError(
            N_("socket activation: fd 3 is not a socket ({problem})"), problem=exc.strerror
        ) from None
    if sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise ServeError(N_("socket activation: fd 3 is not a stream socket (ListenStream=)"))
    sock.set_inheritable(False)
    return sock


def listen_socket(host: str, port: int) -> socket.socket:
    """The bound, listening socket, or ServeError (a port in use is one line, not a trace)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ServeError(
            N_("--listen {endpoint}: {problem}"),
            endpoint=addr.endpoint(host, port),
            problem=exc.strerror or exc,
        ) from None
    sock.set_inheritable(True)
    return sock


def _raise_fd_limit(want: int) -> int:
    """Open files this process may hold (each connection is one), raised towards ``want``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return soft if soft != resource.RLIM_INFINITY else want


def serve(
    host: str,
    port: int,
    upstream: ResolverSpec,
    *,
    token: str | None = None,
    max_in_flight: int = 32,
    max_bulk: int = MAX_BULK_STREAMS,
    max_bulk_per_client: int = MAX_BULK_PER_CLIENT,
    allow_networks: tuple[str, ...] = (),
    tls_cert: str | None = None,
    tls_key: str | None = None,
    ca_bundle: str | None = None,
    timeout: float = 10.0,
    asn_table: Table | None = None,
) -> None:
    import ssl

    import uvicorn

    from probe.measure.net import make_ssl_context

    sock = activated_socket()
    if sock is not None:  # systemd's: its address is the helper's own, never to be measured
        host, port = sock.getsockname()[:2]
    try:
        make_ssl_context(ca_bundle)
    except (ssl.SSLError, ValueError) as exc:  # SSLError first: it is an OSError too
        reason = getattr(exc, "reason", None) or exc
        raise ServeError(
            N_("--ca-bundle {path}: not a PEM file ({problem})"), path=ca_bundle, problem=reason
        ) from None
    except OSError as exc:
        raise ServeError(
            N_("--ca-bundle {path}: cannot read ({problem})"),
            path=ca_bundle,
            problem=exc.strerror or exc,
        ) from None
    cfg = MeasureConfig(
        resolver=upstream,
        control_resolver=None,
        ca_bundle=ca_bundle,
        timeout=timeout,
        deadline=45.0,
        body_cap=16 * 1024 * 1024,
        store_cap=64 * 1024,
        read_deadline=30.0,
        public_only=True,
        allow_networks=allow_networks,
        deny_addrs=own_addresses(host),
    )
    app = HelperApp(
        cfg,
        token=token,
        max_in_flight=max_in_flight,
        max_bulk=max_bulk,
        max_bulk_per_client=max_bulk_per_client,
        asn_table=asn_table,
    )
    if tls_cert and tls_key:  # QUIC needs the certificate: an HTTPS helper answers it on UDP
        app.quic_listen = (host, port, tls_cert, tls_key)
    files = _raise_fd_limit(8192)
    limits = ConnectionLimits(total=max(64, min(MAX_CONNECTIONS, files - 128)))
    config = server_config(app, host, port, limits=limits, tls_cert=tls_cert, tls_key=tls_key)
    try:
        config.load()  # reads the certificate and key now: a bad one is one line
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ServeError(N_("--tls-cert/--tls-key: cannot load ({problem})"), problem=exc) from None
    sock = sock or listen_socket(host, port)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
