"""A real HTTP/3 server on loopback (aioquic), a UDP black hole, and Alt-Svc for the TCP side.

:class:`H3Server` serves a :class:`~tests.servers.http.Site`'s static routes (``path ->
(status, headers, body)``) over QUIC with a trustme certificate, on its own thread and event
loop, so the measuring code meets it as it would meet a CDN's HTTP/3 edge: version 1, ALPN
``h3``, any client address. It counts the handshakes it completed and the paths asked for.
:func:`with_alt_svc` gives a site whose every static answer advertises HTTP/3 on a port, as
real HTTPS servers do with ``Alt-Svc``.
:class:`UDPBlackhole` reads every datagram and answers none (a silent drop).
:class:`SNIFilter` is a censor: a UDP relay that reads the server name in each flow's QUIC
Initial packets (:class:`ClientHelloReader`) and drops the flows that name a blocked site.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import trustme
from aioquic._crypto import CryptoError
from aioquic.asyncio import QuicConnectionProtocol, serve
from aioquic.asyncio.server import QuicServer
from aioquic.buffer import Buffer, BufferReadError
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.crypto import CryptoPair
from aioquic.quic.events import HandshakeCompleted, ProtocolNegotiated, QuicEvent
from aioquic.quic.packet import QuicPacketType, pull_quic_header
from aioquic.tls import Alert, pull_client_hello

from tests.servers.http import Site


def with_alt_svc(site: Site, port: int, max_age: int = 86400) -> Site:
    """``site`` with ``Alt-Svc: h3=":PORT"; ma=...`` on every static answer."""
    value = f'h3=":{port}"; ma={max_age}'
    routes: dict[str, Any] = {}
    for path, route in site.routes.items():
        if isinstance(route, tuple):
            status, headers, body = route
            routes[path] = (status, {**headers, "Alt-Svc": value}, body)
        else:
            routes[path] = route
    return replace(site, routes=routes)


@contextlib.contextmanager
def _cert_files(leaf: trustme.LeafCert) -> Iterator[tuple[str, str]]:
    with (
        leaf.cert_chain_pems[0].tempfile() as cert,
        leaf.private_key_pem.tempfile() as key,
    ):
        yield cert, key


class H3Server:
    """HTTP/3 over QUIC v1 on ``host``:``port`` (0: any free UDP port)."""

    def __init__(
        self,
        site: Site,
        host: str,
        leaf: trustme.LeafCert | tuple[str, str],  # a trustme leaf, or (cert, key) files
        port: int = 0,
        *,
        rate: float | None = None,
    ) -> None:
        self.site = site
        self.rate = rate  # bytes per second of a body (a throttle on UDP); None: at once
        self.host = host
        self.handshakes = 0
        self.requests: list[str] = []
        config = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
        if isinstance(leaf, tuple):
            config.load_cert_chain(*leaf)
        else:
            with _cert_files(leaf) as (cert, key):
                config.load_cert_chain(cert, key)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: QuicServer | None = None
        self._thread = threading.Thread(target=self._run, args=(config, port), daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._server is None:
            raise RuntimeError(f"HTTP/3 server on {host} did not start")
        sock = self._server._transport.get_extra_info("socket")  # type: ignore[union-attr]
        self.port: int = sock.getsockname()[1]

    def _run(self, config: QuicConfiguration, port: int) -> None:
        asyncio.set_event_loop(self._loop)
        owner = self

        class Protocol(QuicConnectionProtocol):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self._h3: H3Connection | None = None

            def quic_event_received(self, event: QuicEvent) -> None:
                if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
                    self._h3 = H3Connection(self._quic)
                if isinstance(event, HandshakeCompleted):
                    owner.handshakes += 1
                if self._h3 is not None:
                    for h3_event in self._h3.handle_event(event):
                        self._h3_event(h3_event)

            def _h3_event(self, event: H3Event) -> None:
                if not isinstance(event, HeadersReceived) or self._h3 is None:
                    return
                fields = dict(event.headers)
                path = fields.get(b":path", b"/").decode("latin-1").split("?")[0]
                owner.requests.append(path)
                route = owner.site.routes.get(path)
                if not isinstance(route, tuple):
                    route = (404, {"Content-Type": "text/plain"}, b"not found")
                status, headers, body = route
                head = [(b":status", str(status).encode()), (b"server", owner.site.server.encode())]
                head += [(k.lower().encode(), str(v).encode()) for k, v in headers.items()]
                head.append((b"content-length", str(len(body)).encode()))
                method = fields.get(b":method", b"GET")
                self._h3.send_headers(event.stream_id, head, end_stream=method == b"HEAD")
                if method != b"HEAD":
                    self._send(event.stream_id, body)
                self.transmit()

            def _send(self, stream_id: int, body: bytes) -> None:
                assert self._h3 is not None
                if owner.rate is None or len(body) <= 16384:
                    self._h3.send_data(stream_id, body, end_stream=True)
                    self.transmit()
                    return
                self._h3.send_data(stream_id, body[:16384], end_stream=False)
                self.transmit()
                owner._loop.call_later(16384 / owner.rate, self._send, stream_id, body[16384:])

        async def start() -> None:
            self._server = await serve(
                self.host, port, configuration=config, create_protocol=Protocol
            )
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()

        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


class UDPBlackhole:
    """Reads every datagram on ``host``:``port`` and never answers: a filter's silent drop."""

    def __init__(self, host: str, port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.host, self.port = host, self.sock.getsockname()[1]
        self.datagrams = 0
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                self.sock.recv(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self.datagrams += 1

    def close(self) -> None:
        self._stop = True
        self.sock.close()


def write_ca(ca: trustme.CA, path: Path) -> str:
    """The CA's certificate as a PEM file (the probe's ``--ca-bundle``)."""
    ca.cert_pem.write_to_path(str(path))
    return str(path)


# -- a censor that reads the server name in QUIC Initial packets --------------------------------
class ClientHelloReader:
    """The TLS ClientHello a QUIC client sends in its Initial packets, and the server name in
    it. Initial packets are protected with keys anyone can derive from the packet's destination
    connection id (RFC 9001 5.2): a middlebox needs no secret to read them, only aioquic's
    crypto. :meth:`feed` takes a flow's datagrams in order (a large ClientHello spans several,
    as a post-quantum key share makes Chrome's) and returns the name once the ClientHello is
    whole; None until then, and for anything that is not a QUIC v1 Initial."""

    def __init__(self) -> None:
        self._crypto: dict[int, bytes] = {}
        self.server_name: str | None = None
        self.done = False

    def feed(self, datagram: bytes) -> str | None:
        if self.done:
            return self.server_name
        buf = Buffer(data=datagram)
        while not buf.eof():
            start = buf.tell()
            try:
                header = pull_quic_header(buf, host_cid_length=8)
            except ValueError:
                break
            if header.packet_type != QuicPacketType.INITIAL or header.version is None:
                break
            pair = CryptoPair()
            pair.setup_initial(cid=header.destination_cid, is_client=False, version=header.version)
            encrypted_at = buf.tell() - start
            end = start + header.packet_length
            buf.seek(end)
            try:
                _, payload, _ = pair.decrypt_packet(datagram[start:end], encrypted_at, 0)
            except (CryptoError, ValueError):
                continue
            self._frames(payload)
        hello = self._hello()
        if hello is not None:
            self.done = True
            self.server_name = hello
        return self.server_name

    def _frames(self, payload: bytes) -> None:
        p = Buffer(data=payload)
        try:
            while not p.eof():
                kind = p.pull_uint_var()
                if kind in (0x00, 0x01):  # PADDING, PING
                    continue
                if kind in (0x02, 0x03):  # ACK (with ECN counts)
                    p.pull_uint_var(), p.pull_uint_var()
                    ranges = p.pull_uint_var()
                    p.pull_uint_var()
                    for _ in range(2 * ranges + (3 if kind == 0x03 else 0)):
                        p.pull_uint_var()
                elif kind == 0x06:  # CRYPTO
                    offset, length = p.pull_uint_var(), p.pull_uint_var()
                    self._crypto[offset] = p.pull_bytes(length)
                else:
                    return
        except BufferReadError:
            return

    def _hello(self) -> str | None:
        data, at = b"", 0
        while at in self._crypto:
            data += self._crypto[at]
            at = len(data)
        if len(data) < 4 or len(data) < 4 + int.from_bytes(data[1:4], "big"):
            return None
        try:
            return pull_client_hello(Buffer(data=data)).server_name or ""
        except (BufferReadError, ValueError, Alert):
            return ""


class SNIFilter:
    """A UDP relay on ``host``:``port`` to ``upstream`` that drops every datagram of a flow
    whose QUIC Initial names a server in ``blocked`` (both ways), and relays other flows as
    they are: what Russia's and China's filters do to QUIC. ``seen`` lists the names read."""

    def __init__(self, host: str, upstream: tuple[str, int], blocked: set[str], port: int = 0):
        self.listen = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.listen.bind((host, port))
        self.host, self.port = host, self.listen.getsockname()[1]
        self.upstream, self.blocked = upstream, {b.lower() for b in blocked}
        self.seen: list[str] = []
        self.dropped = 0
        self._flows: dict[Any, tuple[socket.socket, ClientHelloReader]] = {}
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.listen, selectors.EVENT_READ, None)
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            for key, _ in self._selector.select(0.2):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data, peer = sock.recvfrom(65535)
                except OSError:
                    continue
                if key.data is None:
                    self._from_client(data, peer)
                else:
                    self._from_server(data, key.data)

    def _from_client(self, data: bytes, peer: Any) -> None:
        if peer not in self._flows:
            up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            up.connect(self.upstream)
            self._flows[peer] = (up, ClientHelloReader())
            self._selector.register(up, selectors.EVENT_READ, peer)
        up, reader = self._flows[peer]
        was_done = reader.done
        name = reader.feed(data)
        if reader.done and not was_done and name is not None:
            self.seen.append(name)
        if name is not None and name.lower() in self.blocked:
            self.dropped += 1
            return
        with contextlib.suppress(OSError):
            up.send(data)

    def _from_server(self, data: bytes, peer: Any) -> None:
        _, reader = self._flows[peer]
        if reader.server_name is not None and reader.server_name.lower() in self.blocked:
            return
        with contextlib.suppress(OSError):
            self.listen.sendto(data, peer)

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        for up, _ in self._flows.values():
            up.close()
        self.listen.close()
        self._selector.close()
