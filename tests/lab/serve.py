"""The lab's servers, run inside the servers namespace: web sites, a blockpage, a DoH frontend.

    ip netns exec NS python -m tests.lab.serve CONFIG.json

CONFIG names the addresses to serve on, the certificate and key, and the honest resolver that
the DoH endpoint forwards to. Prints ``ready`` once every socket is bound, then serves until
killed.
"""

from __future__ import annotations

import json
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests import servers as S
from tests.lab import mirror, replica

NEWS_PAGE = (
    b"<!doctype html><html><head><title>Tin Tuc Doc Lap - Independent News</title></head><body>"
    + b"<p>Reporting what others will not.</p>" * 80
    + b"<img src='/media/%s.jpg' alt='front page'></body></html>"
)
CONTROL_PAGE = (
    b"<html><head><title>Control site</title></head><body>"
    + b"ok " * 400
    + b"<img src='/media/control.jpg'></body>"
)
# A page with no object of its own: only the SNI A/B can test the site's throughput.
PLAIN_PAGE = b"<html><head><title>Plain</title></head><body>" + b"text " * 300 + b"</body></html>"
MEDIA = ("front", "second")  # the news site's front picture, and the one that replaces it


def news_media(state: Path) -> tuple[Any, dict[str, Any]]:
    """The news page and its pictures: the page links the current one (named in ``state``, a
    file the tests write: the site's editors replacing the picture); the others answer 404."""

    def current() -> str:
        name = state.read_text(encoding="utf-8").strip() if state.exists() else MEDIA[0]
        return name if name in MEDIA else MEDIA[0]

    def page(h: BaseHTTPRequestHandler) -> None:
        body = NEWS_PAGE % current().encode()
        h.send_response(200)
        for k, v in {**S.SITE_HEADERS, "X-Site": "news"}.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def picture(name: str) -> Any:
        big = S.large(16 * 1024 * 1024, content_type="image/jpeg")

        def route(h: BaseHTTPRequestHandler) -> None:
            if name != current():
                h.send_response(404)
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            big(h)

        return route

    return page, {f"/media/{n}.jpg": picture(n) for n in MEDIA}


def doh_forward(upstream: tuple[str, int]) -> Any:
    """A DoH (RFC 8484 POST) frontend that relays each query to a UDP resolver."""

    def route(h: BaseHTTPRequestHandler) -> None:
        query = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(3)
            s.sendto(query, upstream)
            reply, _ = s.recvfrom(65535)
        h.send_response(200)
        h.send_header("Content-Type", "application/dns-message")
        h.send_header("Content-Length", str(len(reply)))
        h.end_headers()
        h.wfile.write(reply)

    return route


def main(path: str) -> None:
    cfg = json.loads(Path(path).read_text(encoding="utf-8"))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cfg["cert"], cfg["key"])
    ctx.set_alpn_protocols(["http/1.1"])
    lab = cfg["lab_http"]
    page, media = news_media(Path(cfg["media_state"]))
    site = S.Site(
        {
            "/": page,
            **media,
            "/plain": (200, {"Content-Type": "text/html"}, PLAIN_PAGE),
            "/large": S.large(4 * 1024 * 1024),
            "/tp": S.large(16 * 1024 * 1024),
            "/slowtp": S.large(16 * 1024 * 1024, rate_bps=400_000),
            "/to-httpblocked": S.redirect(f"http://httpblocked.{lab}/"),
            "/to-tcpdrop": S.redirect(f"http://tcpdrop.{lab}/"),
            "/to-metadata": S.redirect("http://169.254.169.254/latest/meta-data/"),
            "/to-blockpage": S.redirect(f"http://{cfg['blockpage_addr']}/"),
        }
    )
    control = S.Site(
        {
            "/": (200, {"Content-Type": "text/html"}, CONTROL_PAGE),
            "/tp": S.large(16 * 1024 * 1024),
            "/media/control.jpg": S.large(16 * 1024 * 1024, content_type="image/jpeg"),
        }
    )
    block = S.Site({"/": (200, {"Content-Type": "text/html; charset=utf-8"}, S.BLOCKPAGE)})
    unknown = S.Site(
        {"/": (200, {"Content-Type": "text/html; charset=utf-8"}, S.UNKNOWN_BLOCKPAGE)},
        server="Viettel-WAF",
    )
    echo = S.echo()  # echoes the peer it sees: the client's own address (no NAT in the lab)
    echo_site = S.Site({"/": echo, "/go": echo, "/bad": echo})
    servers: list[Any] = []
    for ip in cfg["site_addrs"]:
        servers += [S.WebServer(site, ip, 80), S.WebServer(site, ip, 443, ctx)]
    servers += [
        S.WebServer(control, cfg["control_addr"], 80),
        S.WebServer(control, cfg["control_addr"], 443, ctx),
        S.WebServer(block, cfg["blockpage_addr"], 80),
        S.WebServer(unknown, cfg["unknown_block_addr"], 80),
        S.TCPServer("hang", cfg["hang_addr"], 80),
        S.WebServer(echo_site, cfg["echo_addr"], 80),
        S.WebServer(echo_site, cfg["echo_addr"], 443, ctx),
        S.WebServer(mirror.site(), cfg["mirror_addr"], 80),  # every form (tests/lab/mirror.py)
        S.WebServer(mirror.site(), cfg["mirror_addr"], 443, ctx),
    ]
    doh = S.Site({"/dns-query": doh_forward((cfg["honest_dns"], 53))})
    servers.append(S.WebServer(doh, cfg["doh_addr"], 443, ctx))
    # The default targets' front pages, under their real names (tests/lab/replica.py).
    servers += [
        replica.Server(cfg["replica_addr"], 80),
        replica.Server(cfg["replica_addr"], 443, ctx),
    ]
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1])
