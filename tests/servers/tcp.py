"""Loopback TCP servers that misbehave (reset, close, hang, drop SYNs), and a port free on many
loopback addresses at once.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any


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
