"""TCP, TLS and HTTP steps: each returns one timed record and never raises on network failure.

Contract: ``tcp_tls_step`` connects to one address and, for HTTPS, handshakes on the same
connection with the target's SNI and verifies the certificate; when verification fails it
handshakes once more without verifying, only to record which certificate was presented.
``http_step`` does one GET (no redirect following: the runner records every hop) through the
pinned backend, reads at most ``body_cap`` bytes *after* decompression (a gzip bomb stops at the
cap), and summarises the response: status, headers, title, length, SHA-256, truncation.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import ssl
import time
import zlib
from dataclasses import dataclass

import httpx

from probe import failures
from probe.measure import net
from probe.model import Certificate, HTTPTransaction, TCPConnect, TLSHandshake
from probe.pages import decode_text, extract_title

USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
REQUEST_HEADERS = {
    "User-Agent": USER_AGENT,
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "en-US,en;q=0.9",
    "Accept-Encoding": "gzip, deflate",
}


@dataclass(slots=True)
class StepContext:
    clock0: float
    timeout: float
    ssl_verify: ssl.SSLContext
    ssl_noverify: ssl.SSLContext
    counter: net.ByteCounter
    local_addresses: set[str] | None = None  # filled by every connection (probe.privacy)

    def now(self) -> float:
        return time.monotonic() - self.clock0


async def tcp_tls_step(
    ctx: StepContext,
    ip: str,
    port: int,
    server_name: str | None,
    sources: tuple[str, ...],
    depth: int,
) -> tuple[TCPConnect, TLSHandshake | None]:
    t0 = ctx.now()
    try:
        sock = await net.tcp_connect(ip, port, ctx.timeout, ctx.local_addresses)
    except failures.network_error_types() as exc:
        info = failures.classify(exc, failures.OP_CONNECT)
        tcp = TCPConnect(ip, port, sources, info.failure, info.raw, t0, ctx.now(), depth)
        return tcp, None
    tcp = TCPConnect(ip, port, sources, None, None, t0, ctx.now(), depth)
    if server_name is None:
        ctx.counter.add(net.tcp_bytes(sock) or 0)
        sock.close()
        return tcp, None
    t1 = ctx.now()
    try:
        res = await net.tls_handshake(sock, ctx.ssl_verify, server_name, ctx.timeout)
    except failures.network_error_types() as exc:
        info = failures.classify(exc, failures.OP_TLS)
        ctx.counter.add(net.tcp_bytes(sock) or 0)
        sock.close()
        certs: tuple[Certificate, ...] = ()
        if info.failure in failures.CERT_FAILURES:
            certs = await _presented_certificates(ctx, ip, port, server_name)
        tls = TLSHandshake(
            ip,
            port,
            server_name,
            sources,
            certificates=certs,
            failure=info.failure,
            raw_failure=info.raw,
            t0=t1,
            t=ctx.now(),
            depth=depth,
        )
        return tcp, tls
    ctx.counter.add(net.tcp_bytes(sock) or res.bytes)
    sock.close()
    tls = TLSHandshake(
        ip,
        port,
        server_name,
        sources,
        res.version,
        res.cipher,
        res.alpn,
        res.certificates,
        None,
        None,
        t1,
        ctx.now(),
        depth,
        res.bytes,
    )
    return tcp, tls


async def _presented_certificates(
    ctx: StepContext, ip: str, port: int, server_name: str
) -> tuple[Certificate, ...]:
    """Evidence only: who answered with which certificate, when verification failed."""
    try:
        sock = await net.tcp_connect(ip, port, ctx.timeout, ctx.local_addresses)
    except failures.network_error_types():
        return ()
    try:
        res = await net.tls_handshake(sock, ctx.ssl_noverify, server_name, ctx.timeout)
        return res.certificates
    except failures.network_error_types():
        return ()
    finally:
        ctx.counter.add(net.tcp_bytes(sock) or 0)
        sock.close()


class _Decoder:
    """Content-Encoding decoding with a hard cap on the decoded size."""

    def __init__(self, encoding: str) -> None:
        enc = encoding.strip().lower()
        self._obj: zlib._Decompress | None = None
        if enc in ("gzip", "x-gzip"):
            self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif enc == "deflate":
            self._obj = zlib.decompressobj(zlib.MAX_WBITS)
        self._deflate = enc == "deflate"

    def feed(self, data: bytes, limit: int) -> tuple[bytes, bool]:
        """Decode up to ``limit`` bytes; the flag says more output was pending (truncated)."""
        if self._obj is None:
            return data[:limit], len(data) > limit
        try:
            out = self._obj.decompress(data, limit + 1)
        except zlib.error:
            if self._deflate:  # some servers send raw deflate without the zlib header
                self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
                self._deflate = False
                return self.feed(data, limit)
            raise
        more = len(out) > limit or bool(self._obj.unconsumed_tail)
        return out[:limit], more


async def http_step(
    ctx: StepContext,
    transport: httpx.AsyncBaseTransport,
    url: str,
    ip: str,
    port: int,
    role: str,
    depth: int,
    body_cap: int,
    store_cap: int,
    *,
    read_deadline: float | None = None,
    headers_out: dict[str, str] | None = None,
) -> HTTPTransaction:
    t0 = ctx.now()
    base = functools.partial(
        HTTPTransaction, url=url, role=role, ip=ip, port=port, depth=depth, t0=t0
    )
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    kept = bytearray()  # the first ``store_cap`` bytes: the title and fingerprints need no more
    length = 0
    digest = hashlib.sha256()
    truncated = False
    peer = ip  # until the socket says where it really went
    try:
        async with asyncio.timeout(read_deadline or ctx.timeout * 2):
            headers_sent = headers_out or REQUEST_HEADERS
            async with net.fetch(transport, url, headers_sent, ctx.timeout) as resp:
                peer = net.peer_address(resp.extensions.get("network_stream")) or ip
                status = resp.status_code
                headers = tuple(
                    (k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.headers.raw
                )
                decoder = _Decoder(resp.headers.get("content-encoding", "identity"))
                async for chunk in resp.aiter_raw():
                    out, more = decoder.feed(chunk, body_cap - length)
                    length += len(out)
                    digest.update(out)
                    if len(kept) < store_cap:
                        kept += out[: store_cap - len(kept)]
                    if more or length >= body_cap:
                        truncated = True
                        break
    except failures.network_error_types() as exc:
        op = failures.OP_HTTP if status is None else failures.OP_READ
        info = failures.classify(exc, op)
        return base(
            ip=peer,
            status_code=status,
            headers=headers,
            failure=info.failure,
            raw_failure=info.raw,
            failed_operation=info.operation,
            t=ctx.now(),
        )
    body = bytes(kept)
    content_type = dict((k.lower(), v) for k, v in headers).get("content-type")
    location = dict((k.lower(), v) for k, v in headers).get("location")
    return base(
        ip=peer,
        status_code=status,
        headers=headers,
        title=extract_title(body),
        body_length=length,
        body_sha256=digest.hexdigest(),
        body_truncated=truncated,
        body=decode_text(body, content_type),
        location=location,
        t=ctx.now(),
    )
