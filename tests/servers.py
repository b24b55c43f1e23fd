"""Real loopback servers for the measuring code: DNS, DoH, HTTP(S), RST, EOF, blackhole.

Every server binds to an address in 127.0.0.0/8 (Linux answers for the whole range on ``lo``),
so a "site" and a "blockpage" can share a port number on different addresses, as they would on
the internet. Nothing here sends a packet anywhere but loopback.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import re
import socket
import socketserver
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

PAGE = (
    b"<!doctype html><html><head><title>Independent News Today</title></head><body>"
    + b"<p>Reporting the news that matters.</p>" * 60
    + b"</body></html>"
)
BLOCKPAGE = (
    "<html><head><title>Thong bao</title></head><body><h1>Trang web này đã bị chặn"
    "</h1><p>Access restricted.</p></body></html>"
).encode()
OTHER_PAGE = b"<html><head><title>Parked domain for sale</title></head><body>ads</body></html>"
# An ISP notice no fingerprint knows: only a comparison with the real page can tell.
UNKNOWN_BLOCKPAGE = (
    "<html><head><title>Thông báo của nhà mạng</title></head><body><p>Trang này hiện không "
    "truy cập được theo quy định hiện hành.</p></body></html>"
).encode()
IFRAME_BLOCKPAGE = (
    b'<html><head><meta http-equiv="Content-Type" content="text/html"></head><body>'
    b'<iframe src="http://10.10.34.34?type=Invalid Site&policy=MainPolicy" style="width: 100%;'
    b' height: 100%" scrolling="no" marginwidth="0" marginheight="0" frameborder="0"></iframe>'
    b"</body></html>"
)
# What a real site sends: caching, cookies, security headers, and one of its own.
SITE_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "max-age=60, public",
    "Set-Cookie": "session=abc123; Path=/; HttpOnly",
    "Strict-Transport-Security": "max-age=31536000",
    "X-Frame-Options": "SAMEORIGIN",
    "Vary": "Accept-Encoding",
    "X-News-Site": "1",
}


# -- DNS -------------------------------------------------------------------------------------
Zone = dict[str, Any]  # name -> list of IPs | "NXDOMAIN" | "SERVFAIL" | "REFUSED" | "DROP"


def answer(zone: Zone, wire: bytes) -> bytes | None:
    """The reply to a query under ``zone``; None means: do not answer at all. An entry is a
    list of IPs, an rcode ("NXDOMAIN", "SERVFAIL", "REFUSED"), "DROP", ``{"cname": NAME}`` (a
    CNAME, then NAME's own records, as a recursive resolver sends them) or ``{"foreign": (NAME,
    IPs)}`` (records owned by another name: an off-path injector's or a broken resolver's)."""
    q = dns.message.from_wire(wire)
    resp = dns.message.make_response(q)
    resp.flags |= dns.flags.RA
    question = q.question[0]
    name = question.name.to_text(omit_final_dot=True).lower()
    entry = zone.get(name, "NXDOMAIN")
    if entry == "DROP":
        return None
    if isinstance(entry, str):
        resp.set_rcode(dns.rcode.from_text(entry))
        return resp.to_wire()
    owner, seen = question.name, set()
    while isinstance(entry, dict) and "cname" in entry and name not in seen:
        seen.add(name)
        target = entry["cname"]
        resp.answer.append(dns.rrset.from_text(owner, 300, "IN", "CNAME", target + "."))
        owner, name = dns.name.from_text(target), target.lower()
        entry = zone.get(name, [])
    if isinstance(entry, dict) and "foreign" in entry:
        foreign, entry = entry["foreign"]
        owner = dns.name.from_text(foreign)
    for ip in entry if isinstance(entry, list) else []:
        kind = dns.rdatatype.AAAA if ":" in ip else dns.rdatatype.A
        if kind == question.rdtype:
            resp.answer.append(dns.rrset.from_text(owner, 300, "IN", kind, ip))
    return resp.to_wire()


class DNSServer:
    """UDP and TCP DNS on one loopback address and port."""

    def __init__(self, zone: Zone, host: str = "127.0.0.1") -> None:
        self.zone = zone
        # One port number for UDP and TCP: a free UDP port may be taken for TCP (and the
        # other way round), so try until both bind.
        for _ in range(50):
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind((host, 0))
            self.port = self.udp.getsockname()[1]
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind((host, self.port))
                break
            except OSError:
                self.udp.close()
                self.tcp.close()
        else:
            raise RuntimeError(f"no port free for both UDP and TCP on {host}")
        self.tcp.listen(16)
        self.host = host
        self._stop = False
        self._threads = [
            threading.Thread(target=self._serve_udp, daemon=True),
            threading.Thread(target=self._serve_tcp, daemon=True),
        ]
        for t in self._threads:
            t.start()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _serve_udp(self) -> None:
        while not self._stop:
            try:
                data, peer = self.udp.recvfrom(4096)
            except OSError:
                return
            with contextlib.suppress(Exception):
                reply = answer(self.zone, data)
                if reply is not None:
                    self.udp.sendto(reply, peer)

    def _serve_tcp(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            with conn, contextlib.suppress(Exception):
                n = struct.unpack("!H", recv_exactly(conn, 2))[0]
                reply = answer(self.zone, recv_exactly(conn, n))
                if reply is not None:
                    conn.sendall(struct.pack("!H", len(reply)) + reply)

    def close(self) -> None:
        self._stop = True
        self.udp.close()
        self.tcp.close()


class DoTServer:
    """DNS over TLS (RFC 7858) on one loopback address: TLS, then length-prefixed messages.
    ``handshakes`` counts the TLS sessions, so a test can see a connection reused."""

    def __init__(self, zone: Zone, host: str, ctx: ssl.SSLContext) -> None:
        self.zone, self.host, self.ctx = zone, host, ctx
        self.handshakes = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        with contextlib.suppress(OSError, ssl.SSLError), conn:
            tls = self.ctx.wrap_socket(conn, server_side=True)
            self.handshakes += 1
            with tls:
                while True:
                    head = recv_exactly(tls, 2)
                    if not head:
                        return
                    reply = answer(self.zone, recv_exactly(tls, struct.unpack("!H", head)[0]))
                    if reply is not None:
                        tls.sendall(struct.pack("!H", len(reply)) + reply)

    def close(self) -> None:
        self.sock.close()


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    """``n`` bytes from ``sock``, or b"" when the peer closes first."""
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return b""
        buf += chunk
    return buf


# -- HTTP and HTTPS ----------------------------------------------------------------------------
@dataclass
class Site:
    """Routes: path -> (status, headers, body) or a callable(handler) doing it all. Served over
    HTTP/1.1 with keep-alive, as real servers do, under the ``server`` name."""

    routes: dict[str, Any] = field(default_factory=dict)
    server: str = "nginx"


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = site.server
        sys_version = ""

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            route = site.routes.get(self.path.split("?")[0], (404, {}, b"not found"))
            if callable(route):
                route(self)  # a callable route sees ``self.command`` (HEAD: no body)
                return
            status, headers, body = route
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_POST = do_GET
        do_HEAD = do_GET  # as GET without the body

    return Handler


class WebServer:
    def __init__(
        self, site: Site, host: str, port: int = 0, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        ThreadingHTTPServer.allow_reuse_address = True
        self.httpd = ThreadingHTTPServer((host, port), _handler(site))
        self.httpd.daemon_threads = True
        if ssl_context is not None:
            self.httpd.socket = ssl_context.wrap_socket(
                self.httpd.socket, server_side=True, do_handshake_on_connect=False
            )
        self.host, self.port = host, self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def redirect(to: str, status: int = 302) -> tuple[int, dict[str, str], bytes]:
    return status, {"Location": to}, b""


@functools.cache
def _bomb_payload() -> bytes:
    return gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)


def gzip_bomb(handler: BaseHTTPRequestHandler) -> None:
    """64 MiB of zeros compressed to ~64 KiB (once per session): only a decoder with a cap
    survives it."""
    payload = _bomb_payload()
    handler.send_response(200)
    handler.send_header("Content-Encoding", "gzip")
    handler.send_header("Content-Type", "text/html")
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


def object_head(handler: BaseHTTPRequestHandler, size: int, content_type: str) -> int | None:
    """Answer as a CDN does: HEAD with the length, ``Range: bytes=A-B`` with 206 and the total
    in Content-Range. Sends the headers and returns how many body bytes the caller must send
    (None: none, a HEAD)."""
    m = re.fullmatch(r"bytes=(\d+)-(\d*)", handler.headers.get("Range") or "")
    first, last = 0, size - 1
    if m and int(m.group(1)) < size:
        first = int(m.group(1))
        last = min(size - 1, int(m.group(2))) if m.group(2) else size - 1
        handler.send_response(206)
        handler.send_header("Content-Range", f"bytes {first}-{last}/{size}")
    else:
        handler.send_response(200)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(last - first + 1))
    handler.end_headers()
    return None if handler.command == "HEAD" else last - first + 1


def large(
    size: int, rate_bps: int | None = None, content_type: str = "application/octet-stream"
) -> Callable[[BaseHTTPRequestHandler], None]:
    """``size`` bytes; at most ``rate_bps`` if given (a slow server, not a slow network)."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        todo = object_head(handler, size, content_type)
        if todo is None:
            return
        chunk = b"x" * (8192 if rate_bps else 65536)
        start, sent = time.monotonic(), 0
        with contextlib.suppress(OSError):
            while sent < todo:
                part = chunk[: todo - sent]
                handler.wfile.write(part)
                sent += len(part)
                if rate_bps:
                    ahead = sent * 8 / rate_bps - (time.monotonic() - start)
                    if ahead > 0:
                        time.sleep(ahead)

    return route


def echo_forms(address: str) -> list[str]:
    """How servers echo a client's IPv4 address: dotted, dashed, underscored, URL-encoded,
    reversed (in-addr.arpa), decimal and hexadecimal."""
    octets = address.split(".")
    number = sum(int(o) << (8 * (3 - i)) for i, o in enumerate(octets))
    return [
        address,
        "-".join(octets),
        "_".join(octets),
        "%2E".join(octets),
        ".".join(reversed(octets)),
        str(number),
        f"{number:08x}",
        f"0x{number:08X}",
    ]


def echo(address: str | None = None) -> Callable[[BaseHTTPRequestHandler], None]:
    """A page that echoes the client's address (``address``, else the peer it sees) in every
    place a server can: headers, a cookie, the title, the body in every form, and a redirect's
    Location (``/go``); ``/bad`` answers a malformed status line carrying it."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        ip = address or handler.client_address[0]
        forms = echo_forms(ip)
        if handler.path.startswith("/bad"):
            handler.wfile.write(f"HTTP/1.1 2OO {ip}\r\n\r\n".encode())
            handler.close_connection = True
            return
        if handler.path.startswith("/go"):
            handler.send_response(302)
            handler.send_header("Location", f"/?from=ip-{forms[1]}&ip={forms[3]}")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        body = (
            f"<html><head><title>Your address is {ip}</title></head><body>"
            + "".join(f"<p>seen as {f}</p>" for f in forms)
            + "</body></html>"
        ).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("X-Your-IP", ip)
        handler.send_header("X-Forwarded-For", f"{ip}, 198.51.100.1")
        handler.send_header("Set-Cookie", f"visitor=ip-{forms[1]}; Path=/")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return route


def doh_route(zone: Zone) -> Callable[[BaseHTTPRequestHandler], None]:
    def route(handler: BaseHTTPRequestHandler) -> None:
        n = int(handler.headers.get("Content-Length") or 0)
        reply = answer(zone, handler.rfile.read(n))
        if reply is None:
            time.sleep(30)
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "application/dns-message")
        handler.send_header("Content-Length", str(len(reply)))
        handler.end_headers()
        handler.wfile.write(reply)

    return route


# -- misbehaving TCP servers -------------------------------------------------------------------
class _Misbehaving(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def _rst(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class TCPServer:
    """Accepts connections, reads the first bytes (a request or a ClientHello), then
    ``mode``: "rst" resets, "eof" closes cleanly, "hang" says nothing."""

    def __init__(self, mode: str, host: str, port: int = 0) -> None:
        outer = self

        class H(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.settimeout(30)
                with contextlib.suppress(OSError):
                    self.request.recv(4096)
                if outer.mode == "rst":
                    _rst(self.request)
                elif outer.mode == "hang":
                    with contextlib.suppress(OSError):
                        self.request.recv(4096)

        self.mode = mode
        self.server = _Misbehaving((host, port), H)
        self.host, self.port = host, self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Blackhole:
    """A listener whose accept queue is full and never drained: the kernel drops further SYNs,
    so a connect times out, as behind a censor's silent drop."""

    def __init__(self, host: str, port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(0)
        self.host, self.port = host, self.sock.getsockname()[1]
        self._fillers = []
        for _ in range(4):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError, OSError):
                s.connect((host, self.port))
            self._fillers.append(s)
        time.sleep(0.05)

    def close(self) -> None:
        for s in self._fillers:
            s.close()
        self.sock.close()


def free_port(hosts: list[str]) -> int:
    """A TCP port free on every given loopback address."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind((hosts[0], 0))
            port = s.getsockname()[1]
        ok = True
        for h in hosts[1:]:
            with socket.socket() as s2:
                try:
                    s2.bind((h, port))
                except OSError:
                    ok = False
                    break
        if ok:
            return int(port)
    raise RuntimeError("no common free port")


@contextlib.contextmanager
def closing_all(*objs: Any) -> Iterator[None]:
    try:
        yield
    finally:
        for o in objs:
            with contextlib.suppress(Exception):
                o.close()
