"""Loopback servers for the edges the main world (tests/world.py) does not reach.

DNS over TLS (a trustme certificate for ``dns.test``), DoH servers that answer 403 and 500, a
resolver that answers with the wrong message id, and a web site with 307/308 redirects, deflate
and raw-deflate bodies, a large body and a body cut by a reset. :func:`make_edges` builds them
into a :class:`tests.world.World`, so a test measures through the same public entry point
(``World.measure``) as every other. Every server binds to 127.0.3.0/24 only.
"""

from __future__ import annotations

import contextlib
import io
import socket
import ssl
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import dns.message
import trustme
import uvicorn

from probe.helper.server import HelperApp
from probe.measure.config import MeasureConfig
from tests import servers as S
from tests.world import World

EDGE_SITE = "127.0.3.10"
EDGE_DNS = "127.0.3.53"
DOT = "127.0.3.54"
DOH_403 = "127.0.3.55"
DOH_500 = "127.0.3.56"
WRONG_ID = "127.0.3.57"
DOT_NAME = "dns.test"
CUT_AFTER = 10_000  # bytes of the body sent before the reset
ZONE: S.Zone = {"edge.test": [EDGE_SITE], "www.edge.test": [EDGE_SITE]}


class WrongIdDNS:
    """UDP and TCP DNS whose every reply carries another message id than the query's."""

    def __init__(self, zone: S.Zone, host: str) -> None:
        self.zone = zone
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((host, 0))
        self.host, self.port = host, self.udp.getsockname()[1]
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((host, self.port))
        self.tcp.listen(8)
        threading.Thread(target=self._serve_udp, daemon=True).start()
        threading.Thread(target=self._serve_tcp, daemon=True).start()

    def _reply(self, wire: bytes) -> bytes:
        msg = dns.message.from_wire(S.answer(self.zone, wire) or b"")
        msg.id = (msg.id + 1) % 65536
        return msg.to_wire()

    def _serve_udp(self) -> None:
        while True:
            try:
                data, peer = self.udp.recvfrom(4096)
            except OSError:
                return
            with contextlib.suppress(Exception):
                self.udp.sendto(self._reply(data), peer)

    def _serve_tcp(self) -> None:
        while True:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            with conn, contextlib.suppress(Exception):
                n = struct.unpack("!H", S.recv_exactly(conn, 2))[0]
                reply = self._reply(S.recv_exactly(conn, n))
                conn.sendall(struct.pack("!H", len(reply)) + reply)

    def close(self) -> None:
        self.udp.close()
        self.tcp.close()


def encoded(encoding: str, body: bytes) -> Any:
    """A route serving ``body`` compressed: "deflate" (zlib-wrapped, RFC 9110) or "raw-deflate"
    (no zlib header, as some servers send under the name "deflate")."""
    if encoding == "deflate":
        payload = zlib.compress(body)
    else:
        c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        payload = c.compress(body) + c.flush()

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("Content-Encoding", "deflate")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    return route


def cut_mid_body(handler: BaseHTTPRequestHandler) -> None:
    """Headers for 100 kB, the first ``CUT_AFTER`` bytes, then a TCP reset."""
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html")
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    handler.wfile.write(b"<html><head><title>Cut</title></head>" + b"x" * (CUT_AFTER - 38))
    handler.wfile.flush()
    time.sleep(0.2)  # the client has read the headers: what fails now is the body
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.connection.close()
    handler.close_connection = True
    handler.wfile = io.BytesIO()  # the server's own flush after the route has nowhere to go


def edge_routes(port: int) -> dict[str, Any]:
    page = (200, {"Content-Type": "text/html; charset=utf-8"}, S.PAGE)
    return {
        "/": page,
        "/moved": page,
        "/r307": S.redirect("/moved", 307),
        "/r308": S.redirect("/moved", 308),
        "/r308-abs": S.redirect(f"http://www.edge.test:{port}/moved", 308),
        "/deflate": encoded("deflate", S.PAGE),
        "/raw-deflate": encoded("raw-deflate", S.PAGE),
        "/large": S.large(2 * 1024 * 1024),
        "/cut": cut_mid_body,
        "/bomb": S.gzip_bomb,
    }


@dataclass
class Edges:
    world: World  # measures through the edge site and the edge resolver
    ca: trustme.CA
    ca_pem: str
    dot: S.DoTServer
    doh_403: str
    doh_500: str
    wrong_id: WrongIdDNS
    http_port: int

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        return ctx


@contextlib.contextmanager
def make_edges(tmp: Path) -> Iterator[Edges]:
    ca = trustme.CA()
    pem = tmp / "edge-ca.pem"
    ca.cert_pem.write_to_path(str(pem))

    def server_ctx(*names: str) -> ssl.SSLContext:
        c = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(*names).configure_cert(c)
        return c

    site = S.Site()
    web = S.WebServer(site, EDGE_SITE, 0)
    site.routes.update(edge_routes(web.port))  # the absolute redirect names the port
    forbidden = S.Site({"/dns-query": (403, {"Content-Type": "text/plain"}, b"forbidden")})
    broken = S.Site({"/dns-query": (500, {"Content-Type": "text/plain"}, b"upstream down")})
    objs: list[Any] = [
        web,
        dns_server := S.DNSServer(ZONE, host=EDGE_DNS),
        dot := S.DoTServer(ZONE, DOT, server_ctx(DOT_NAME, DOT)),
        d403 := S.WebServer(forbidden, DOH_403, 0, server_ctx(DOH_403)),
        d500 := S.WebServer(broken, DOH_500, 0, server_ctx(DOH_500)),
        wrong := WrongIdDNS(ZONE, WRONG_ID),
    ]
    try:
        world = World(
            web.port,
            0,
            str(pem),
            dns_server,
            dns_server,
            f"https://{DOH_403}:{d403.port}/dns-query",
            ZONE,
            ZONE,
        )
        yield Edges(
            world,
            ca,
            str(pem),
            dot,
            f"https://{DOH_403}:{d403.port}/dns-query",
            f"https://{DOH_500}:{d500.port}/dns-query",
            wrong,
            web.port,
        )
    finally:
        for o in objs:
            o.close()


@contextlib.contextmanager
def helper_app(cfg: MeasureConfig) -> Iterator[str]:
    """The test helper in this process (uvicorn in a thread) with a given configuration, as
    ``probe helper serve`` builds it; yields its base URL."""
    app = HelperApp(cfg, log=io.StringIO())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="on")
    )
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        t.join(10)
