"""The one seam where bytes touch the network: TCP connect, TLS handshake, httpx's transport,
and the network resources a round's measurements share.

Contract: ``tcp_connect`` and ``tls_handshake`` raise the OS / SSL exception on failure (the step
functions in :mod:`probe.measure.steps` turn it into a result). ``PinnedBackend`` is an httpcore
network backend that connects every request for a host to the address the measurement chose (so
HTTP goes to the address the DNS step saw, with the right Host and SNI) and counts the bytes each
connection moved, read from the kernel's TCP_INFO where Linux offers it (:func:`tcp_info`, the one
parser of that structure). ``PinnedTransport`` is httpx's own transport over that backend.
:class:`Shared` holds what every target of a round shares (its configuration, TLS contexts, the
DoH client). Which addresses may be dialled, and the other policy the measuring code consults, is
:mod:`probe.measure.config`: pure, no I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpcore
import httpx

from probe.measure.config import MeasureConfig
from probe.model import Certificate

# struct tcp_info (linux/tcp.h): byte offsets of the fields we read (u32, or u64 for bytes).
_TCPI_U32 = {"rtt": 68, "rcv_rtt": 92, "segs_in": 140, "min_rtt": 148, "rcv_ooopack": 224}
_TCPI_U64 = {"bytes_acked": 120, "bytes_received": 128}
_TCPI_SIZE = 232


@dataclass(frozen=True, slots=True)
class TCPInfo:
    """What the kernel says of a TCP connection; None where this kernel's struct is shorter."""

    bytes_acked: int | None = None
    bytes_received: int | None = None
    rtt: int | None = None  # microseconds
    rcv_rtt: int | None = None
    min_rtt: int | None = None
    segs_in: int | None = None
    rcv_ooopack: int | None = None


def tcp_info(sock: socket.socket | None) -> TCPInfo | None:
    """TCP_INFO of a connected socket (Linux), or None where it cannot be read."""
    if sock is None or not hasattr(socket, "TCP_INFO"):
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCPI_SIZE)
    except OSError:
        return None
    values: dict[str, int] = {}
    for name, off in _TCPI_U32.items():
        if len(raw) >= off + 4:
            values[name] = struct.unpack_from("I", raw, off)[0]
    for name, off in _TCPI_U64.items():
        if len(raw) >= off + 8:
            values[name] = struct.unpack_from("Q", raw, off)[0]
    return TCPInfo(**values)


def tcp_bytes(sock: socket.socket | None) -> int | None:
    """Payload bytes sent (acked) plus received on a TCP socket, from TCP_INFO; None if unknown."""
    info = tcp_info(sock)
    if info is None or info.bytes_acked is None or info.bytes_received is None:
        return None
    return info.bytes_acked + info.bytes_received


def note_local_address(sock: socket.socket, into: set[str] | None) -> None:
    """Remember the local address a connected socket uses: with IPv6, or with no NAT, it is the
    volunteer's public address, which must never be stored (see probe.privacy)."""
    if into is None:
        return
    with contextlib.suppress(OSError):
        into.add(str(sock.getsockname()[0]))


def peer_address(stream: Any) -> str | None:
    """The address a connection actually reached, from its socket (not the one asked for)."""
    addr = stream.get_extra_info("server_addr") if stream is not None else None
    return str(addr[0]) if addr else None


async def tcp_connect(
    ip: str, port: int, timeout: float, local_addresses: set[str] | None = None
) -> socket.socket:
    """Connect a non-blocking TCP socket to ip:port within ``timeout`` seconds."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        async with asyncio.timeout(timeout):
            await asyncio.get_running_loop().sock_connect(sock, (ip, port))
    except BaseException:
        sock.close()
        raise
    note_local_address(sock, local_addresses)
    return sock


@dataclass(slots=True)
class TLSResult:
    version: str | None
    cipher: str | None
    alpn: str | None
    certificates: tuple[Certificate, ...]
    bytes: int


def _name(rdns: tuple[tuple[tuple[str, str], ...], ...]) -> str:
    return ",".join(f"{k}={v}" for rdn in reversed(rdns) for k, v in rdn)


def _from_info(info: dict[str, Any], der: bytes) -> Certificate:
    """A certificate summary from the ssl module's decoded form (no extra library needed)."""
    san = tuple(v for k, v in info.get("subjectAltName", ()) if k == "DNS")
    return Certificate(
        subject=_name(info.get("subject", ())),
        issuer=_name(info.get("issuer", ())),
        not_before=info.get("notBefore"),
        not_after=info.get("notAfter"),
        san=san,
        sha256=hashlib.sha256(der).hexdigest(),
    )


def summarise_der(der: bytes) -> Certificate:
    """A certificate summary from DER. Imported lazily: cryptography costs a daemon ~8 MB of
    memory, and it is needed only for certificates that failed verification."""
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        san = tuple(str(v) for v in ext.value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        san = ()
    return Certificate(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc.isoformat(),
        not_after=cert.not_valid_after_utc.isoformat(),
        san=san,
        sha256=hashlib.sha256(der).hexdigest(),
    )


def peer_chain(obj: ssl.SSLObject) -> tuple[Certificate, ...]:
    """The peer's chain (Python >= 3.13) or its leaf certificate (older Pythons)."""
    out: list[Certificate] = []
    chain_fn = getattr(obj, "get_verified_chain", None) if obj.getpeercert() else None
    if chain_fn is None:
        chain_fn = getattr(obj, "get_unverified_chain", None)
    if chain_fn is not None:
        for c in (chain_fn() or [])[:5]:
            der = ssl.PEM_cert_to_DER_cert(c.public_bytes())
            try:
                out.append(_from_info(c.get_info(), der))
            except (AttributeError, ValueError):
                out.append(summarise_der(der))
        if out:
            return tuple(out)
    leaf = obj.getpeercert(binary_form=True)
    if not leaf:
        return ()
    info = obj.getpeercert()
    try:
        return (_from_info(info, leaf) if info else summarise_der(leaf),)
    except ValueError:
        return ()


async def tls_handshake(
    sock: socket.socket, ctx: ssl.SSLContext, server_name: str, timeout: float
) -> TLSResult:
    """Run a TLS handshake on a connected socket through memory BIOs, counting every byte."""
    loop = asyncio.get_running_loop()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_side=False, server_hostname=server_name)
    moved = 0
    async with asyncio.timeout(timeout):
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                pending = outgoing.read()
                if pending:
                    moved += len(pending)
                    await loop.sock_sendall(sock, pending)
                chunk = await loop.sock_recv(sock, 65536)
                if not chunk:
                    raise EOFError("EOF during TLS handshake") from None
                moved += len(chunk)
                incoming.write(chunk)
        pending = outgoing.read()
        if pending:
            moved += len(pending)
            await loop.sock_sendall(sock, pending)
    cipher = obj.cipher()
    return TLSResult(
        version=obj.version(),
        cipher=cipher[0] if cipher else None,
        alpn=obj.selected_alpn_protocol(),
        certificates=peer_chain(obj),
        bytes=moved,
    )


class ByteCounter:
    """Bytes moved by a set of connections (one per measurement)."""

    def __init__(self) -> None:
        self.total = 0

    def add(self, n: int) -> None:
        self.total += n


class _CountingStream(httpcore.AsyncNetworkStream):
    def __init__(
        self, inner: httpcore.AsyncNetworkStream, counter: ByteCounter, sock: socket.socket | None
    ) -> None:
        self._inner = inner
        self._counter = counter
        self._sock = sock
        self._plain = 0  # bytes seen above TLS, the fallback when TCP_INFO is unavailable
        self._closed = False

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = await self._inner.read(max_bytes, timeout)
        self._plain += len(data)
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)
        self._plain += len(buffer)

    def _account(self) -> None:
        if not self._closed:
            self._closed = True
            wire = tcp_bytes(self._sock)
            self._counter.add(wire if wire is not None else self._plain)

    async def aclose(self) -> None:
        self._account()
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        inner = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        stream = _CountingStream(inner, self._counter, self._sock)
        stream._plain = self._plain
        self._closed = True  # the TLS stream accounts for the connection from now on
        return stream

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects every request, whatever its host, to one chosen address (so HTTP goes where the
    DNS step said, and the HTTP client never resolves a name behind our back) and counts bytes;
    everything else is anyio's. One backend per address: a pool built on it can never carry a
    request to another address."""

    def __init__(
        self, counter: ByteCounter, address: str, *, local_addresses: set[str] | None = None
    ) -> None:
        self._inner = httpcore.AnyIOBackend()
        self.counter = counter
        self.address = address
        self.local_addresses = local_addresses  # every local address our sockets used
        self.on_connect: Callable[[socket.socket], None] | None = None  # e.g. for TCP_INFO

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(
            self.address, port, timeout, local_address, socket_options
        )
        sock = stream.get_extra_info("socket")
        if sock is not None:
            note_local_address(sock, self.local_addresses)
            if self.on_connect is not None:
                self.on_connect(sock)
        return _CountingStream(stream, self.counter, sock)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:  # pragma: no cover - never used by the probe
        raise NotImplementedError("unix sockets are not measured")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@contextlib.asynccontextmanager
async def fetch(
    transport: httpx.AsyncBaseTransport,
    url: str,
    headers: dict[str, str],
    timeout: float,
    method: str = "GET",
) -> AsyncIterator[httpx.Response]:
    """One GET (or HEAD) straight through ``transport``, the response streaming: no client
    between, so nothing follows, parses or rejects a hostile Location (httpx's client builds the
    next request even when it does not follow redirects, and raises on ``javascript:``)."""
    request = httpx.Request(
        method, url, headers=headers, extensions={"timeout": httpx.Timeout(timeout).as_dict()}
    )
    response = await transport.handle_async_request(request)
    response.request = request
    try:
        yield response
    finally:
        await response.aclose()


def make_ssl_context(
    ca_bundle: str | None = None, *, verify: bool = True, alpn: tuple[str, ...] = ("http/1.1",)
) -> ssl.SSLContext:
    """The system trust store plus optional extra anchors; HTTP/1.1 ALPN like a browser's.
    Contexts are shared (an SSLContext may serve many connections at once): loading the
    system's trust store costs 60-300 ms of CPU, which a daemon would pay twice a round. A
    changed ``ca_bundle`` file is read again."""
    stamp = _mtime(ca_bundle) if ca_bundle else None
    return _ssl_context(ca_bundle, stamp, verify, alpn)


def _mtime(path: str) -> float | None:
    try:
        return Path(path).stat().st_mtime
    except OSError:
        return None  # load_verify_locations will say why, with the file's name


@functools.lru_cache(maxsize=16)
def _ssl_context(
    ca_bundle: str | None, _stamp: float | None, verify: bool, alpn: tuple[str, ...]
) -> ssl.SSLContext:
    if verify:
        ctx = ssl.create_default_context()
        if ca_bundle:
            ctx.load_verify_locations(cafile=ca_bundle)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


@dataclass(slots=True)
class Shared:
    """What every target of a round shares: TLS contexts, the DoH client, and the local
    addresses the round's sockets used (for probe.privacy)."""

    cfg: MeasureConfig
    ssl_verify: ssl.SSLContext
    ssl_noverify: ssl.SSLContext
    doh: httpx.AsyncClient
    dot: ssl.SSLContext  # DoT to a named resolver (tls://NAME@IP): verified, no HTTP ALPN
    local_addresses: set[str] = field(default_factory=set)

    @classmethod
    def create(cls, cfg: MeasureConfig) -> Shared:
        verify = make_ssl_context(cfg.ca_bundle)
        doh_ctx = make_ssl_context(cfg.ca_bundle)
        doh = httpx.AsyncClient(
            verify=doh_ctx,
            timeout=cfg.timeout,
            trust_env=False,
            headers={"user-agent": "probe-doh"},
        )
        dot = make_ssl_context(cfg.ca_bundle, alpn=())
        return cls(cfg, verify, make_ssl_context(verify=False), doh, dot)

    async def aclose(self) -> None:
        await self.doh.aclose()


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (and exception mapping) over our pinning, counting backend."""

    def __init__(
        self, backend: PinnedBackend, ctx: ssl.SSLContext, *, rcvbuf: int | None = None
    ) -> None:
        super().__init__(verify=ctx, trust_env=False, retries=0)
        # httpx exposes no network_backend argument; the pool it builds is replaced by one
        # that uses our backend (same options otherwise).
        options = [(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)] if rcvbuf else []
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ctx,
            max_connections=4,
            http1=True,
            http2=False,
            network_backend=backend,
            socket_options=options,
        )
