"""Loopback web servers (HTTP/1.1 with keep-alive, HTTPS with trustme certificates), their
pages, and routes for redirects, bombs, large bodies and echoes of the volunteer's address.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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


def all_forms(address: str) -> list[str]:
    """Every form of ``address`` that must never be stored: the echoed ones, lower-cased, and
    zero-padded octets."""
    return [f.lower() for f in echo_forms(address)] + [
        ".".join(f"{int(o):03d}" for o in address.split("."))
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
