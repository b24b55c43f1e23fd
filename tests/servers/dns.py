"""Loopback resolvers: plain DNS (UDP and TCP), DNS over TLS and DNS over HTTPS, each
answering from a zone (name -> addresses, a CNAME, records for another name, an rcode or silence).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

# -- DNS -------------------------------------------------------------------------------------
Zone = dict[str, Any]  # name -> list of IPs | "NXDOMAIN" | "SERVFAIL" | "REFUSED" | "DROP"


def answer(zone: Zone, wire: bytes) -> bytes | None:
    """The reply to a query under ``zone``; None means: do not answer at all. An entry is a
    list of IPs, an rcode ("NXDOMAIN", "SERVFAIL", "REFUSED"), "DROP", ``{"cname": NAME}`` (a
    CNAME, then NAME's own records, as a recursive resolver sends them) or ``{"foreign": (NAME,
    IPs)}`` (records owned by another name: an off-path injector's or a broken resolver's) or
    ``{"txt": TEXT}`` (a TXT record in the question's class: a resolver's "what is my address";
    TEXT may be a list of records, each a string or a tuple of character-strings, in zone-file
    syntax, so ``\\200`` is the byte 200 (decimal); with ``"class": "CH"`` only a question in that
    class is answered, as Cloudflare's ``whoami.cloudflare`` is) or ``{"https": RDATA, "addrs":
    IPs}`` (an HTTPS record, e.g. ``1 . alpn="h3" port=443``)."""
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
    if isinstance(entry, dict) and "txt" in entry:  # in the question's class (CH for whoami)
        cls = dns.rdataclass.to_text(question.rdclass)
        if question.rdtype == dns.rdatatype.TXT and entry.get("class", cls) == cls:
            records = entry["txt"] if isinstance(entry["txt"], list) else [entry["txt"]]
            texts = [
                " ".join(f'"{s}"' for s in (r if isinstance(r, tuple) else (r,))) for r in records
            ]
            resp.answer.append(dns.rrset.from_text_list(question.name, 0, cls, "TXT", texts))
        return resp.to_wire()
    if isinstance(entry, dict) and "https" in entry:  # an HTTPS record (type 65) beside addresses
        if question.rdtype == dns.rdatatype.HTTPS:
            resp.answer.append(
                dns.rrset.from_text(question.name, 300, "IN", "HTTPS", entry["https"])
            )
            return resp.to_wire()
        entry = entry.get("addrs", [])
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
