"""The one seam where bytes touch the network: TCP connect, TLS handshake, and httpx's backend.

Contract: ``tcp_connect`` and ``tls_handshake`` raise the OS / SSL exception on failure (the step
functions in :mod:`probe.measure.steps` turn it into a result). ``PinnedBackend`` is an httpcore
network backend that connects every request for a host to the address the measurement chose (so
HTTP goes to the address the DNS step saw, with the right Host and SNI) and counts the bytes each
connection moved, read from the kernel's TCP_INFO where Linux offers it.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpcore

from probe.model import Certificate

# struct tcp_info (linux/tcp.h): tcpi_bytes_acked at 120, tcpi_bytes_received at 128 (u64).
_TCPI_BYTES_ACKED = 120
_TCPI_BYTES_RECEIVED = 128
_TCPI_LEN = 136


def tcp_bytes(sock: socket.socket | None) -> int | None:
    """Payload bytes sent (acked) plus received on a TCP socket, from TCP_INFO; None if unknown."""
    if sock is None or not hasattr(socket, "TCP_INFO"):
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCPI_LEN)
    except OSError:
        return None
    if len(raw) < _TCPI_LEN:
        return None
    acked, received = struct.unpack_from("QQ", raw, _TCPI_BYTES_ACKED)
    return int(acked + received)


async def tcp_connect(ip: str, port: int, timeout: float) -> socket.socket:
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
    """Connects host names to chosen addresses and counts bytes; everything else is anyio's."""

    def __init__(self, counter: ByteCounter, pins: dict[str, str] | None = None) -> None:
        self._inner = httpcore.AnyIOBackend()
        self.counter = counter
        self.pins: dict[str, str] = dict(pins or {})
        self.on_connect: Callable[[socket.socket], None] | None = None  # e.g. for TCP_INFO

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        address = self.pins.get(host.lower())
        if address is None:  # never let the HTTP client resolve names behind our back
            raise httpcore.ConnectError(f"no address chosen for {host}")
        stream = await self._inner.connect_tcp(
            address, port, timeout, local_address, socket_options
        )
        sock = stream.get_extra_info("socket")
        if self.on_connect is not None and sock is not None:
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
