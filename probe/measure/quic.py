"""HTTP/3: discovery, QUIC handshakes and an HTTP/3 GET, each a timed record (issue 24).

Contract: :func:`measure` never raises on a network failure. From a measurement's TCP
observations it finds the target's first HTTPS origin, learns whether the origin offers HTTP/3
(the ``Alt-Svc`` header of any response it sent, and the DNS HTTPS record through the resolver
under test and the control resolver), then handshakes QUIC v1 (ALPN ``h3``, the origin's name as
SNI, the certificate verified) with the addresses the TCP steps dialled, and sends one HTTP/3
GET on the first system connection that worked. When no system handshake worked and none heard
anything back, one more handshake with a neutral name to the same address asks whether it is
the name that is blocked (an SNI A/B over QUIC), and, given the test helper's QUIC address,
the same A/B against the helper's listener (:func:`helper_ab`), all at once. Failures are
df-007 strings with the operation ``quic_handshake``
(:func:`probe.failures.classify_quic_close` for a closed connection); every datagram's bytes
count for the data budget. aioquic does the protocol; this module owns the UDP socket
(connected, so an ICMP port unreachable is ``connection_refused``).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import re
import socket
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, cast

import dns.exception
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.svcbbase
import httpx
from aioquic.h3.connection import H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import (
    ConnectionTerminated,
    HandshakeCompleted,
    ProtocolNegotiated,
    QuicEvent,
    StreamReset,
)
from cryptography.hazmat.primitives.serialization import Encoding

from probe import addr, failures
from probe.measure import dns as dnsq
from probe.measure import net, steps
from probe.measure.config import NEUTRAL_SNI, MeasureConfig, skip_address
from probe.model import (
    Certificate,
    DNSQuery,
    H3Endpoint,
    HTTPTransaction,
    Observations,
    QUICHandshake,
    QUICObservations,
)
from probe.pages import extract_title

H3 = "h3"
MAX_SYSTEM = 2  # system addresses handshaken per target
MAX_CONTROL = 1  # and control-only ones
SYSTEM, NEUTRAL = "system", "neutral_sni"
HELPER_SNI, HELPER_NEUTRAL = "helper_sni", "helper_neutral"  # the A/B against the test helper
ROLE_H3 = "h3"  # HTTPTransaction.role of an HTTP/3 GET


# -- discovery -------------------------------------------------------------------------------
_TOKEN = re.compile(r"\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True, slots=True)
class AltSvc:
    """One alternative of an ``Alt-Svc`` header (RFC 7838)."""

    protocol: str
    host: str | None  # None: the origin's own host
    port: int
    max_age: int = 86400


def parse_alt_svc(value: str) -> list[AltSvc]:
    """Every well-formed alternative of an ``Alt-Svc`` value, in order; ``clear`` and anything
    malformed give none. Never raises: the header is the outside world's."""
    out: list[AltSvc] = []
    for alt in _split(value, ","):
        parts = _split(alt, ";")
        if not parts:
            continue
        m = _TOKEN.match(parts[0])
        if m is None:
            continue
        rest = parts[0][m.end() :].strip()
        q = _QUOTED.fullmatch(rest)
        authority = _unquote(q.group(1)) if q else rest
        host, _, port_text = authority.rpartition(":")
        if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            continue
        host = host.strip("[]")
        max_age = 86400
        for param in parts[1:]:
            name, _, val = param.partition("=")
            val = val.strip().strip('"')
            if name.strip().lower() == "ma" and val.isascii() and val.isdigit():
                max_age = int(val)
        out.append(AltSvc(_pct_decode(m.group(1)), host or None, int(port_text), max_age))
    return out


def _split(text: str, sep: str) -> list[str]:
    """``text`` split at ``sep`` outside double quotes; empty pieces dropped."""
    parts, cur, quoted, escaped = [], [], False, False
    for ch in text:
        if escaped:
            cur.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            cur.append(ch)
            escaped = True
        elif ch == '"':
            quoted = not quoted
            cur.append(ch)
        elif ch == sep and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _pct_decode(token: str) -> str:
    """A protocol-id's percent-encoding (RFC 7838 3: ``h3`` is plain, ``w%3Dx`` is ``w=x``)."""
    return re.sub(r"%([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), token)


def alt_svc_endpoints(headers: Iterable[str], host: str) -> list[H3Endpoint]:
    """The HTTP/3 endpoints the ``Alt-Svc`` values advertise for ``host``: ``h3`` only, on the
    same host (another host would be another server to trust; it is recorded, not dialled)."""
    out: list[H3Endpoint] = []
    for value in headers:
        for alt in parse_alt_svc(value):
            if alt.protocol != H3:
                continue
            other = alt.host if alt.host and alt.host.lower() != host else None
            ep = H3Endpoint("alt-svc", H3, alt.port, other)
            if ep not in out:
                out.append(ep)
    return out


def https_rr_endpoints(q: DNSQuery, host: str) -> list[H3Endpoint]:
    """The HTTP/3 endpoints an HTTPS record answer advertises (service mode, ALPN ``h3``; the
    port 443 unless it names one)."""
    out: list[H3Endpoint] = []
    for a in q.answers:
        if a.type != "HTTPS":
            continue
        try:
            rd: Any = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.HTTPS, a.value)
        except (dns.exception.DNSException, ValueError):
            continue
        if rd.priority == 0:  # alias mode: names another record, not an endpoint
            continue
        params = rd.params
        alpn = params.get(dns.rdtypes.svcbbase.ParamKey.ALPN)
        ids = [i.decode("ascii", "replace") for i in alpn.ids] if alpn is not None else []
        if H3 not in ids:
            continue
        port_param = params.get(dns.rdtypes.svcbbase.ParamKey.PORT)
        port = port_param.port if port_param is not None else 443
        target = rd.target.to_text(omit_final_dot=True).lower()
        other = target if target and target not in (".", "", host) else None
        ep = H3Endpoint("https-rr", H3, int(port), other)
        if ep not in out:
            out.append(ep)
    return out


def https_origin(obs: Observations) -> tuple[str, int, str] | None:
    """(host, port, url) of the system chain's first HTTPS hop, or None."""
    for h in obs.http:
        if h.role != SYSTEM:
            continue
        url = httpx.URL(h.url)
        if url.scheme == "https":
            host = url.raw_host.decode("ascii").lower()
            return host, url.port or 443, h.url
    return None


def _addresses(obs: Observations, host: str, role: str) -> list[str]:
    return list(
        dict.fromkeys(
            a
            for q in obs.dns
            if q.hostname == host and q.resolver == role and q.query_type in ("A", "AAAA")
            for a in q.addrs
        )
    )


# -- the QUIC client -------------------------------------------------------------------------
class QUICClosed(Exception):
    """The connection ended before what we waited for (CONNECTION_CLOSE, ours or the peer's)."""

    def __init__(self, error_code: int, reason: str) -> None:
        super().__init__(f"0x{error_code:x}: {reason}")
        self.error_code = error_code
        self.reason = reason


@dataclass(slots=True)
class _Response:
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    events: asyncio.Queue[H3Event | BaseException] = field(default_factory=asyncio.Queue)


class _Client(asyncio.DatagramProtocol):
    """One QUIC connection on one connected UDP socket, its bytes counted."""

    def __init__(
        self, quic: QuicConnection, loop: asyncio.AbstractEventLoop, *, h3: bool = True
    ) -> None:
        self.quic = quic
        self.want_h3 = h3  # open HTTP/3's streams once ALPN says h3 (a GET will follow)
        self.loop = loop
        self.transport: asyncio.DatagramTransport | None = None
        self.connected: asyncio.Future[None] = loop.create_future()
        self.h3: H3Connection | None = None
        self.streams: dict[int, _Response] = {}
        self.sent = 0
        self.received = 0
        self._timer: asyncio.TimerHandle | None = None
        self.closed: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr_: Any) -> None:
        self.received += len(data)
        self.quic.receive_datagram(data, addr_, now=self.loop.time())
        self._process()

    def error_received(self, exc: Exception) -> None:
        self._fail(exc)  # an ICMP error on the connected socket (port unreachable: refused)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or QUICClosed(0, "socket closed"))

    def _fail(self, exc: BaseException) -> None:
        if self.closed is None:
            self.closed = exc
        if not self.connected.done():
            self.connected.set_exception(exc)
            self.connected.exception()  # retrieved: a handshake nobody awaits any more is fine
        for r in self.streams.values():
            r.events.put_nowait(exc)

    def _process(self) -> None:
        while (event := self.quic.next_event()) is not None:
            self._event(event)
        self.transmit()

    def _event(self, event: QuicEvent) -> None:
        if isinstance(event, ProtocolNegotiated) and event.alpn_protocol == H3 and self.want_h3:
            self.h3 = H3Connection(self.quic)
        elif isinstance(event, HandshakeCompleted) and not self.connected.done():
            self.connected.set_result(None)
        elif isinstance(event, ConnectionTerminated):
            self._fail(QUICClosed(event.error_code, event.reason_phrase))
        elif isinstance(event, StreamReset) and event.stream_id in self.streams:
            err = QUICClosed(event.error_code, "stream reset")
            self.streams[event.stream_id].events.put_nowait(err)
        if self.h3 is not None:
            for h3_event in self.h3.handle_event(event):
                sid = getattr(h3_event, "stream_id", None)
                if sid in self.streams:
                    self.streams[sid].events.put_nowait(h3_event)

    def transmit(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        for data, _ in self.quic.datagrams_to_send(now=self.loop.time()):
            self.sent += len(data)
            try:
                self.transport.sendto(data)
            except OSError as exc:
                self._fail(exc)
                return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        at = self.quic.get_timer()
        if at is not None:
            self._timer = self.loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.quic.handle_timer(now=self.loop.time())
        self._process()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.quic.close()
            self.transmit()
            self.transport.close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @property
    def bytes(self) -> int:
        return self.sent + self.received


def _configuration(
    server_name: str, verify: bool, ca_bundle: str | None, timeout: float
) -> QuicConfiguration:
    cfg = QuicConfiguration(
        is_client=True,
        alpn_protocols=[H3],
        server_name=server_name,
        verify_mode=ssl.CERT_REQUIRED if verify else ssl.CERT_NONE,
        idle_timeout=max(timeout, 1.0) * 2,
    )
    if verify and ca_bundle:
        cfg.load_verify_locations(cafile=ca_bundle)
    return cfg


def _certificates(quic: QuicConnection) -> tuple[Certificate, ...]:
    tls: Any = quic.tls
    chain = [tls._peer_certificate, *tls._peer_certificate_chain]
    return tuple(net.summarise_der(c.public_bytes(Encoding.DER)) for c in chain if c is not None)


def _cipher(quic: QuicConnection) -> str | None:
    schedule = quic.tls.key_schedule
    return None if schedule is None else "TLS_" + schedule.cipher_suite.name


async def handshake(
    ctx: steps.StepContext,
    ip: str,
    port: int,
    server_name: str,
    *,
    ca_bundle: str | None,
    sources: tuple[str, ...] = (SYSTEM,),
    role: str = SYSTEM,
    verify: bool = True,
    keep: bool = False,
    tally: Tally | None = None,
) -> tuple[QUICHandshake, _Client | None]:
    """One QUIC handshake, its record, and the open connection when ``keep`` and it worked
    (the caller closes it). A failure is a result: the record's ``failure``. Cancelled from
    outside (the per-target deadline), it closes its socket and leaves its part in ``tally``."""
    loop = asyncio.get_running_loop()
    t0 = ctx.now()
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    quic = QuicConnection(configuration=_configuration(server_name, verify, ca_bundle, ctx.timeout))
    client: _Client | None = None
    failure: failures.FailureInfo | None = None
    sock = socket.socket(family, socket.SOCK_DGRAM)
    started = QUICHandshake(ip, port, server_name, sources, role, (H3,), t0=t0)
    key = tally.begin(started) if tally is not None else 0
    try:
        sock.setblocking(False)
        sock.connect((ip, port))
        net.note_local_address(sock, ctx.local_addresses)
        _, client = await loop.create_datagram_endpoint(
            lambda: _Client(quic, loop, h3=keep), sock=sock
        )
        if tally is not None:
            tally.opened(key, client)
        quic.connect(sock.getpeername(), now=loop.time())
        client.transmit()
        async with asyncio.timeout(ctx.timeout):
            await client.connected
    except asyncio.CancelledError:
        if client is not None:
            client.close()
        else:
            sock.close()
        raise
    except TimeoutError:
        failure = failures.FailureInfo(failures.GENERIC_TIMEOUT, failures.OP_QUIC, "timeout")
    except QUICClosed as exc:
        failure = failures.classify_quic_close(exc.error_code, exc.reason)
    except OSError as exc:
        failure = failures.classify(exc, failures.OP_QUIC)
    if client is None:
        sock.close()
    record = QUICHandshake(
        ip,
        port,
        server_name,
        sources,
        role,
        (H3,),
        f"0x{quic._version:08x}" if quic._version is not None else None,
        "TLSv1.3" if failure is None else None,
        _cipher(quic) if failure is None else None,
        quic.tls.alpn_negotiated if failure is None else None,
        _certificates(quic),
        bool(client is not None and client.received),
        None if failure is None else failure.failure,
        None if failure is None else failure.raw,
        t0,
        ctx.now(),
        0,
        client.bytes if client is not None else 0,
    )
    if failure is None and keep:
        if tally is not None:
            tally.end(key, record)
        return record, client
    if client is not None:
        client.close()
        record = replace(record, bytes=client.bytes)
    if tally is not None:
        tally.end(key, record)
    return record, None


def get_fields(u: httpx.URL, headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    """An HTTP/3 GET of ``u``'s header fields: the pseudo-headers, then ``headers``."""
    path = u.raw_path.decode("ascii") or "/"
    return [
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":authority", u.netloc),
        (b":path", path.encode("ascii")),
        *((k.lower().encode(), v.encode()) for k, v in headers.items()),
    ]


async def http3_get(
    ctx: steps.StepContext,
    client: _Client,
    url: str,
    ip: str,
    port: int,
    body_cap: int,
    read_deadline: float | None = None,
) -> HTTPTransaction:
    """One HTTP/3 GET on an open connection, summarised as the TCP GET is (no body kept)."""
    t0 = ctx.now()
    u = httpx.URL(url)
    before = client.bytes
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    length, truncated, kept = 0, False, bytearray()
    digest = hashlib.sha256()
    failure: failures.FailureInfo | None = None
    try:
        assert client.h3 is not None, "a handshake that negotiated h3 has its H3 connection"
        sid = client.quic.get_next_available_stream_id()
        resp = client.streams[sid] = _Response()
        fields = get_fields(u, steps.REQUEST_HEADERS)
        client.h3.send_headers(sid, fields, end_stream=True)
        client.transmit()
        decoder: Any = None
        async with asyncio.timeout(read_deadline or ctx.timeout * 2):
            while True:
                ev = await resp.events.get()
                if isinstance(ev, BaseException):
                    raise ev
                if isinstance(ev, HeadersReceived) and status is None:
                    pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in ev.headers]
                    status = int(dict(pairs).get(":status", "0") or 0)
                    headers = tuple((k, v) for k, v in pairs if not k.startswith(":"))
                    encoding = dict((k, v) for k, v in headers).get("content-encoding", "")
                    decoder = steps._Decoder(encoding or "identity")
                elif isinstance(ev, DataReceived) and decoder is not None:
                    out, more = decoder.feed(ev.data, body_cap - length)
                    length += len(out)
                    digest.update(out)
                    if len(kept) < 64 * 1024:
                        kept += out[: 64 * 1024 - len(kept)]
                    if more or length >= body_cap:
                        truncated = True
                        break
                if getattr(ev, "stream_ended", False):
                    break
    except TimeoutError:
        failure = failures.FailureInfo(failures.GENERIC_TIMEOUT, failures.OP_HTTP, "timeout")
    except QUICClosed as exc:
        info = failures.classify_quic_close(exc.error_code, exc.reason)
        failure = failures.FailureInfo(info.failure, failures.OP_HTTP, info.raw)
    except OSError as exc:
        failure = failures.classify(exc, failures.OP_HTTP)
    used = client.bytes - before
    if failure is not None:
        op = failures.OP_HTTP if status is None else failures.OP_READ
        return HTTPTransaction(
            url=url,
            role=ROLE_H3,
            ip=ip,
            port=port,
            status_code=status,
            headers=headers,
            failure=failure.failure,
            raw_failure=failure.raw,
            failed_operation=op,
            t0=t0,
            t=ctx.now(),
            bytes=used,
        )
    location = dict((k.lower(), v) for k, v in headers).get("location")
    return HTTPTransaction(
        url=url,
        role=ROLE_H3,
        ip=ip,
        port=port,
        status_code=status,
        headers=headers,
        title=extract_title(bytes(kept)),
        body_length=length,
        body_sha256=digest.hexdigest(),
        body_truncated=truncated,
        location=location,
        t0=t0,
        t=ctx.now(),
        bytes=used,
    )


# -- one target ------------------------------------------------------------------------------
async def _https_records(
    cfg: MeasureConfig, ctx: steps.StepContext, host: str, shared: net.Shared
) -> list[DNSQuery]:
    specs = [(SYSTEM, cfg.resolver)]
    if cfg.control_resolver is not None:
        specs.append(("control", cfg.control_resolver))
    jobs = [
        dnsq.query(
            host,
            "HTTPS",
            spec,
            role=role,
            timeout=cfg.timeout,
            clock0=ctx.clock0,
            client=shared.doh,
            tls=shared.dot,
        )
        for role, spec in specs
    ]
    return list(await asyncio.gather(*jobs))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def measure(
    shared: net.Shared,
    ctx: steps.StepContext,
    obs: Observations,
    *,
    neutral_sni: str = NEUTRAL_SNI,
    helper: tuple[str, int] | None = None,
    tally: Tally | None = None,
) -> QUICObservations:
    """The HTTP/3 observations of one measured target (see the module's contract);
    ``helper``: the test helper's QUIC address, for the SNI A/B against it; ``tally``: where
    the steps leave what they did as they go (:func:`measure_within` reads it on a deadline)."""
    tally = Tally() if tally is None else tally
    cfg = shared.cfg
    if not cfg.quic:
        return QUICObservations(skipped="off")
    origin = https_origin(obs)
    if origin is None:
        return QUICObservations(skipped="no_https")
    host, _tcp_port, url = origin
    advertised = [
        v
        for h in obs.http
        if _same_origin(h.url, origin)
        for k, v in h.headers
        if k.lower() == "alt-svc"
    ]
    found = alt_svc_endpoints(advertised, host)
    queries: list[DNSQuery] = [] if _is_ip(host) else await _https_records(cfg, ctx, host, shared)
    for q in queries:
        found += [e for e in https_rr_endpoints(q, host) if e not in found]
    used = sum(q.bytes for q in queries)
    base = QUICObservations(host=host, discovery=tuple(found), dns=tuple(queries), bytes=used)
    tally.base = base
    own = [e for e in found if e.host is None]
    if not own:
        return replace(base, skipped="not_advertised")
    port = own[0].port
    system = _addresses(obs, host, SYSTEM) or ([host] if _is_ip(host) else [])
    control = _addresses(obs, host, "control")
    wanted = [(ip, (SYSTEM,) + (("control",) if ip in control else ())) for ip in system]
    wanted = [w for w in wanted if not skip_address(w[0], cfg)][:MAX_SYSTEM]
    extra = [ip for ip in control if ip not in system and not skip_address(ip, cfg)]
    wanted += [(ip, ("control",)) for ip in extra[:MAX_CONTROL]]
    if not wanted:
        return replace(base, skipped="no_address")
    results = await asyncio.gather(
        *(
            handshake(
                ctx, ip, port, host, ca_bundle=cfg.ca_bundle, sources=s, keep=True, tally=tally
            )
            for ip, s in wanted
        )
    )
    handshakes = [r for r, _ in results]
    clients = [(r, c) for r, c in results if c is not None]
    http: list[HTTPTransaction] = []
    try:
        chosen = next(((r, c) for r, c in clients if SYSTEM in r.sources), None)
        if chosen is not None:
            r, c = chosen
            tally.get = HTTPTransaction(url=url, role=ROLE_H3, ip=r.ip, port=port, t0=ctx.now())
            http.append(await http3_get(ctx, c, url, r.ip, port, cfg.body_cap, cfg.read_deadline))
            tally.get = None
            tally.http.extend(http)
    finally:
        for _, c in clients:
            c.close()
    # The connections' bytes, now that they are closed (the handshake record's own share kept).
    used += sum(c.bytes for _, c in clients) + sum(
        h.bytes for h in handshakes if all(h is not r for r, _ in clients)
    )
    sys_hs = [h for h in handshakes if SYSTEM in h.sources]
    if sys_hs and not any(h.ok or h.answered for h in sys_hs):
        # The neutral name to the same address, and the A/B against the helper, at once.
        neutral, ab = await asyncio.gather(
            handshake(
                ctx,
                sys_hs[0].ip,
                port,
                neutral_sni,
                ca_bundle=None,
                role=NEUTRAL,
                verify=False,
                tally=tally,
            ),
            helper_ab(ctx, helper, host, neutral_sni, tally) if helper is not None else _none(),
        )
        handshakes += [neutral[0], *ab]
        used += neutral[0].bytes + sum(h.bytes for h in ab)
    return replace(base, handshakes=tuple(handshakes), http=tuple(http), bytes=used)


async def helper_ab(
    ctx: steps.StepContext,
    helper: tuple[str, int],
    host: str,
    neutral_sni: str = NEUTRAL_SNI,
    tally: Tally | None = None,
) -> list[QUICHandshake]:
    """The SNI A/B over QUIC against the test helper's listener (probe.helper.quic), which
    completes a handshake for any name: the site's name, then a neutral one, unverified. The
    helper's address is on nobody's blocklist, so only the name can make the difference."""
    ip, port = helper
    named, neutral = await asyncio.gather(
        handshake(
            ctx, ip, port, host, ca_bundle=None, role=HELPER_SNI, verify=False,
            sources=("helper",), tally=tally,
        ),
        handshake(
            ctx, ip, port, neutral_sni, ca_bundle=None, role=HELPER_NEUTRAL, verify=False,
            sources=("helper",), tally=tally,
        ),
    )  # fmt: skip
    return [named[0], neutral[0]]


async def _none() -> list[QUICHandshake]:
    return []


async def helper_endpoint(shared: net.Shared, url: str) -> tuple[str, int] | None:
    """The test helper's address and port from its URL (a name through the resolver under
    test, as the helper client's own connection goes); None for a plain-HTTP helper (it has no
    certificate, so no QUIC listener) or a name that does not resolve."""
    u = httpx.URL(url)
    if u.scheme != "https":
        return None
    host = u.raw_host.decode("ascii")
    port = u.port or 443
    if _is_ip(host):
        return host, port
    q = await dnsq.query(
        host, "A", shared.cfg.resolver, role=SYSTEM, timeout=shared.cfg.timeout, clock0=0.0,
        client=shared.doh, tls=shared.dot,
    )  # fmt: skip
    return (q.addrs[0], port) if q.addrs else None


# -- the per-target deadline -----------------------------------------------------------------
DEADLINE = "target deadline"  # raw_failure of a step the deadline cut (as probe.measure.runner)
SKIPPED_DEADLINE = "deadline"  # QUICObservations.skipped: the deadline came before any step


@dataclass(slots=True)
class Tally:
    """What one target's QUIC steps did so far, left by them as they go, so that a deadline
    cutting them short still finds every handshake (finished, or in flight) and every byte."""

    base: QUICObservations | None = None  # discovery done: the host, the HTTPS records
    started: list[QUICHandshake] = field(default_factory=list)  # in the order they began
    done: dict[int, QUICHandshake] = field(default_factory=dict)
    clients: dict[int, _Client] = field(default_factory=dict)  # every connection opened
    http: list[HTTPTransaction] = field(default_factory=list)
    get: HTTPTransaction | None = None  # the HTTP/3 GET in flight

    def begin(self, h: QUICHandshake) -> int:
        self.started.append(h)
        return len(self.started) - 1

    def opened(self, key: int, client: _Client) -> None:
        self.clients[key] = client

    def end(self, key: int, record: QUICHandshake) -> None:
        self.done[key] = record

    def _cut(self, key: int, h: QUICHandshake, now: float) -> QUICHandshake:
        c = self.clients.get(key)
        return replace(
            h,
            answered=bool(c is not None and c.received),
            failure=failures.GENERIC_TIMEOUT,
            raw_failure=DEADLINE,
            t=now,
            bytes=c.bytes if c is not None else 0,
        )

    def cut_short(self, ctx: steps.StepContext, host: str | None) -> QUICObservations:
        """The observations as the deadline left them: the steps in flight failed as
        ``generic_timeout_error`` (raw :data:`DEADLINE`), every connection's bytes counted."""
        for c in self.clients.values():
            c.close()  # (those already closed stay as they are)
        if self.base is None:
            return QUICObservations(host=host, skipped=SKIPPED_DEADLINE)
        now = ctx.now()
        handshakes = [self.done.get(i) or self._cut(i, h, now) for i, h in enumerate(self.started)]
        http = list(self.http)
        if self.get is not None:
            http.append(
                replace(
                    self.get, failure=failures.GENERIC_TIMEOUT, raw_failure=DEADLINE,
                    failed_operation=failures.OP_HTTP, t=now,
                )
            )  # fmt: skip
        used = self.base.bytes + sum(c.bytes for c in self.clients.values())
        return replace(self.base, handshakes=tuple(handshakes), http=tuple(http), bytes=used)


async def measure_within(
    shared: net.Shared,
    ctx: steps.StepContext,
    obs: Observations,
    deadline_at: float,
    *,
    helper_url: str | None = None,
    neutral_sni: str = NEUTRAL_SNI,
) -> QUICObservations:
    """:func:`measure` (and the helper's QUIC address from ``helper_url``, when given) inside
    the per-target deadline, ``deadline_at`` on the monotonic clock: cut short there, the steps
    in flight are failed as timeouts and every datagram already sent or received still counts
    (:meth:`Tally.cut_short`)."""
    if not shared.cfg.quic:
        return QUICObservations(skipped="off")
    origin = https_origin(obs)
    tally = Tally()
    remaining = deadline_at - time.monotonic()
    if remaining <= 0:
        host = origin[0] if origin is not None else None
        return QUICObservations(host=host, skipped=SKIPPED_DEADLINE)
    try:
        async with asyncio.timeout(remaining):
            ab = await helper_endpoint(shared, helper_url) if helper_url is not None else None
            return await measure(shared, ctx, obs, neutral_sni=neutral_sni, helper=ab, tally=tally)
    except TimeoutError:
        return tally.cut_short(ctx, origin[0] if origin is not None else None)


def working_endpoint(obs: Observations) -> tuple[str, int] | None:
    """(host, UDP port) of the site's HTTP/3 endpoint when a system handshake with it worked:
    where the throughput test fetches its object over HTTP/3 too (probe.measure.h3flow)."""
    q = obs.quic
    if q is None or q.host is None:
        return None
    ok = next((h for h in q.handshakes if h.ok and h.role == SYSTEM and SYSTEM in h.sources), None)
    return None if ok is None else (q.host, ok.port)


def _same_origin(url: str, origin: tuple[str, int, str]) -> bool:
    u = httpx.URL(url)
    return (
        u.scheme == "https"
        and u.raw_host.decode("ascii").lower() == origin[0]
        and (u.port or addr.port_of_scheme("https")) == origin[1]
    )
