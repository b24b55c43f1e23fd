"""The helper under clients that ask for bytes and never read them (issue 20, item 1): control
requests are answered while 40 of them stay open, a peer that reads nothing is dropped after the
send timeout, ``/bulk`` streams are capped per client address and in total, and ``/health`` says
which pool is full.

The slow readers are real sockets with a tiny receive buffer (set before connecting, so the
window the helper sees is tiny too) that send one request and never read a byte.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx

from probe.helper.server import MAX_BULK, ConnectionLimits
from tests.servers.helper import ask, helper_server
from tests.world import World

SLOW_READERS = 40


def slow_reader(
    port: int, source: str, nbytes: int = MAX_BULK, rcvbuf: int = 1024
) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # 1024: the kernel's minimum
    s.bind((source, 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET /bulk?bytes={nbytes} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return s


@contextmanager
def slow_readers(port: int, n: int, *, one_address: bool = False) -> Iterator[list[socket.socket]]:
    """``n`` slow readers, each from its own loopback address unless ``one_address``."""
    with ExitStack() as stack:
        socks = []
        for i in range(n):
            s = slow_reader(port, "127.0.6.1" if one_address else f"127.0.5.{i + 1}")
            socks.append(stack.enter_context(s))
        time.sleep(0.5)  # every request is in, and every stream the helper started is stuck
        yield socks


def client(source: str = "127.0.0.254") -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=15)


def health(base: str) -> tuple[int, Any]:
    with client() as c:
        r = c.get(base + "/health")
    return r.status_code, r.json()


def test_control_requests_are_answered_under_40_slow_readers(world: World) -> None:
    """The issue's done-when: a control request answered within 15 s while 40 slow readers stay
    open (``probe helper serve``'s defaults: 32 requests in flight)."""
    with helper_server(world) as (base, _), slow_readers(int(base.rsplit(":", 1)[1]), SLOW_READERS):
        t0 = time.monotonic()
        r = ask(base, world.http("news.test"), timeout=15)
        took = time.monotonic() - t0
        assert r.status_code == 200, (
            f"control request under {SLOW_READERS} slow readers: {r.status_code} in "
            f"{took * 1000:.0f} ms: {r.text}"
        )
        print(f"control request under {SLOW_READERS} slow readers: 200 in {took * 1000:.0f} ms")
        code, doc = health(base)
        # 32 streams stuck (the total), 8 refused; the control pool is apart and empty.
        assert code == 200 and doc["full"] == ["bulk"] and doc["bulk"]["open"] == 32, doc
        assert doc["control"]["in_flight"] == 0, doc


TCP_CLOSE = 7  # tcpi_state, the first byte of struct tcp_info


def dropped(s: socket.socket) -> bool:
    """The helper closed ``s`` (reset it): read from the kernel, without reading a byte."""
    return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0] == TCP_CLOSE


def test_a_peer_that_reads_nothing_is_dropped_after_the_send_timeout(world: World) -> None:
    limits = ConnectionLimits(send_timeout=1.0)
    with (
        helper_server(world, limits) as (base, _),
        slow_readers(int(base.rsplit(":", 1)[1]), 8) as socks,
    ):
        assert health(base)[1]["bulk"]["open"] == 8
        t0 = time.monotonic()
        while health(base)[1]["bulk"]["open"] and time.monotonic() - t0 < 10:
            time.sleep(0.1)
        took = time.monotonic() - t0 + 0.5
        still = health(base)[1]["bulk"]["open"]
        assert still == 0, f"{still} of 8 streams still open {took:.1f} s after they stalled"
        assert all(dropped(s) for s in socks), "a stalled connection is still open"
        print(f"8 slow readers dropped {took:.1f} s after they stalled (send timeout 1 s)")


def test_a_peer_that_reads_slowly_keeps_its_stream(world: World) -> None:
    """Slow is not stalled: 64 KiB at a time every 50 ms (a throttled probe), for several send
    timeouts, and every byte arrives. 4 MiB: past what the helper's kernel buffers hold for
    one connection, so its write buffer fills, pauses and drains again and again."""
    limits = ConnectionLimits(send_timeout=1.0)
    n = 4 * 1024 * 1024
    with helper_server(world, limits) as (base, _):
        s = slow_reader(int(base.rsplit(":", 1)[1]), "127.0.5.200", n, rcvbuf=64 * 1024)
        got, body, t0 = b"", b"", time.monotonic()
        with s:
            while len(body) < n and (chunk := s.recv(64 * 1024)) and time.monotonic() - t0 < 30:
                got += chunk
                body = got.partition(b"\r\n\r\n")[2]
                time.sleep(0.05)  # at most 1.3 MB/s
        took = time.monotonic() - t0
    assert len(body) == n, f"{len(body)} of {n} bytes in {took:.1f} s (send timeout 1 s)"
    assert took > 2 * limits.send_timeout  # it did outlast the timeout
    print(f"a slow reader: {n} bytes in {took:.1f} s ({n / took / 1024:.0f} KiB/s), not dropped")


def first_line(s: socket.socket) -> bytes:
    """The status line of the answer (the first bytes only: a stream stays stuck)."""
    return s.recv(12)


def test_bulk_streams_are_capped_per_client_address_and_in_total(world: World) -> None:
    with helper_server(world, max_bulk=6, max_bulk_per_client=2) as (base, _):
        port = int(base.rsplit(":", 1)[1])
        with slow_readers(port, 4, one_address=True) as mine, slow_readers(port, 8) as others:
            assert [first_line(s) for s in mine].count(b"HTTP/1.1 200") == 2
            assert [first_line(s) for s in others].count(b"HTTP/1.1 200") == 4
            code, doc = health(base)
            assert code == 200 and doc["full"] == ["bulk"], doc
            assert doc["bulk"] == {"open": 6, "max": 6, "max_per_client": 2}, doc
            with client("127.0.6.1") as c:
                busy = c.get(base + "/bulk?bytes=1")
            assert busy.status_code == 503 and busy.headers["retry-after"] == "5"
            assert busy.json()["error"] == "busy: too many bulk streams from your address"
            with client("127.0.7.1") as c:
                busy = c.get(base + "/bulk?bytes=1")
            assert busy.status_code == 503
            assert busy.json()["error"] == "busy: too many bulk streams"
            # The control pool is apart: control requests are answered all the while.
            assert ask(base, world.http("news.test"), timeout=15).status_code == 200


def test_health_is_503_naming_the_pool_when_control_requests_cannot_be_served(
    world: World,
) -> None:
    import threading

    with helper_server(world, max_in_flight=1) as (base, _):
        code, doc = health(base)
        assert code == 200 and doc["status"] == "ok" and doc["full"] == [], doc
        slow = threading.Thread(target=ask, args=(base, world.https("hole.test")))
        slow.start()  # its connection times out: a slow measurement holds the only slot
        time.sleep(0.3)
        code, doc = health(base)
        slow.join()
        assert code == 503 and doc["status"] == "saturated" and doc["full"] == ["control"], doc
        assert doc["control"] == {"in_flight": 1, "max": 1}, doc
        assert health(base)[0] == 200
