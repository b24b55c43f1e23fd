"""A real HTTP/3 server on loopback (aioquic), a UDP black hole, and Alt-Svc for the TCP side.

:class:`H3Server` serves a :class:`~tests.servers.http.Site`'s static routes (``path ->
(status, headers, body)``) over QUIC with a trustme certificate, on its own thread and event
loop, so the measuring code meets it as it would meet a CDN's HTTP/3 edge: version 1, ALPN
``h3``, any client address. It counts the handshakes it completed and the paths asked for.
:func:`with_alt_svc` gives a site whose every static answer advertises HTTP/3 on a port, as
real HTTPS servers do with ``Alt-Svc``.
:class:`UDPBlackhole` reads every datagram and answers none (a silent drop).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import trustme
from aioquic.asyncio import QuicConnectionProtocol, serve
from aioquic.asyncio.server import QuicServer
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import HandshakeCompleted, ProtocolNegotiated, QuicEvent

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

    def __init__(self, site: Site, host: str, leaf: trustme.LeafCert, port: int = 0) -> None:
        self.site = site
        self.host = host
        self.handshakes = 0
        self.requests: list[str] = []
        config = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
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
                    self._h3.send_data(event.stream_id, body, end_stream=True)
                self.transmit()

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
