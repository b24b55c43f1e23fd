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

NEWS_PAGE = (
    b"<!doctype html><html><head><title>Tin Tuc Doc Lap - Independent News</title></head><body>"
    + b"<p>Reporting what others will not.</p>" * 80
    + b"</body></html>"
)
CONTROL_PAGE = b"<html><head><title>Control site</title></head><body>" + b"ok " * 400 + b"</body>"


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
    site = S.Site(
        {
            "/": (200, {**S.SITE_HEADERS, "X-Site": "news"}, NEWS_PAGE),
            "/large": S.large(4 * 1024 * 1024),
            "/tp": S.large(16 * 1024 * 1024),
            "/slowtp": S.large(16 * 1024 * 1024, rate_bps=400_000),
            "/to-httpblocked": S.redirect(f"http://httpblocked.{lab}/"),
            "/to-tcpdrop": S.redirect(f"http://tcpdrop.{lab}/"),
            "/to-metadata": S.redirect("http://169.254.169.254/latest/meta-data/"),
        }
    )
    control = S.Site(
        {"/": (200, {"Content-Type": "text/html"}, CONTROL_PAGE), "/tp": S.large(16 * 1024 * 1024)}
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
    ]
    doh = S.Site({"/dns-query": doh_forward((cfg["honest_dns"], 53))})
    servers.append(S.WebServer(doh, cfg["doh_addr"], 443, ctx))
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1])
