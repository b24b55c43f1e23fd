"""Loopback STUN servers: one that answers a binding request with the address a NAT in front of
the client would have shown (``mapped``), as a public STUN server sees a volunteer behind a home
router, and hostile ones (silence, garbage, a wrong transaction id, an error). Messages are
built by aioice, the library the probe's client uses; the real server the tests also run is
coturn (:func:`coturn`)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

from aioice import stun

BEHAVIOURS = ("answer", "silent", "garbage", "wrong_id", "error", "no_address")


class StunServer:
    """UDP on a loopback port; ``behaviour`` one of :data:`BEHAVIOURS`."""

    def __init__(self, mapped: str = "203.0.113.5", behaviour: str = "answer") -> None:
        assert behaviour in BEHAVIOURS, behaviour
        self.mapped, self.behaviour = mapped, behaviour
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _reply(self, data: bytes, peer: tuple[str, int]) -> bytes | None:
        request = stun.parse_message(data)
        if self.behaviour == "silent":
            return None
        if self.behaviour == "garbage":
            return b"\x01\x01\x00\x08" + b"\xff" * 30
        tid = request.transaction_id
        if self.behaviour == "wrong_id":
            tid = bytes(b ^ 0xFF for b in tid)
        if self.behaviour == "error":
            reply = stun.Message(stun.Method.BINDING, stun.Class.ERROR, tid)
            reply.attributes["ERROR-CODE"] = (400, "Bad Request")
            return bytes(reply)
        reply = stun.Message(stun.Method.BINDING, stun.Class.RESPONSE, tid)
        if self.behaviour == "answer":
            reply.attributes["XOR-MAPPED-ADDRESS"] = (self.mapped, peer[1])
        return bytes(reply)

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(2048)
            except OSError:
                return
            self.requests += 1
            with contextlib.suppress(Exception):
                reply = self._reply(data, peer)
                if reply is not None:
                    self.sock.sendto(reply, peer)

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def coturn() -> Iterator[str]:
    """coturn's ``turnserver``, STUN only, on a free loopback port: ``host:port``."""
    binary = shutil.which("turnserver")
    if binary is None:
        raise RuntimeError("coturn's turnserver is not installed (scripts/check installs it)")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen(
        [
            binary,
            "--stun-only",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            "--listening-ip",
            "127.0.0.1",
            "--listening-port",
            str(port),
            "--log-file",
            "stdout",
            "--simple-log",
            "--no-stdout-log",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_binding(port, p)
        yield f"127.0.0.1:{port}"
    finally:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _wait_for_binding(port: int, p: subprocess.Popen[bytes]) -> None:
    """Until coturn answers a binding request (it takes a moment to listen)."""
    deadline = time.monotonic() + 15
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise RuntimeError(f"turnserver exited with status {p.returncode}")
            s.sendto(
                bytes(stun.Message(stun.Method.BINDING, stun.Class.REQUEST)), ("127.0.0.1", port)
            )
            with contextlib.suppress(TimeoutError):
                s.recvfrom(2048)
                return
    raise RuntimeError("turnserver did not answer within 15 s")
