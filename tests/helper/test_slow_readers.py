"""The helper under clients that ask for bytes and never read them (issue 20, item 1): control
requests are answered while 40 of them stay open, a peer that reads nothing is dropped after the
send timeout, ``/bulk`` streams are capped per client address and in total, and ``/health`` says
which pool is full.

The slow readers are real sockets with a tiny receive buffer (set before connecting, so the
window the helper sees is tiny too) that send one request and never read a byte.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from probe.helper.server import MAX_BULK, ConnectionLimits
from tests.servers.helper import ask, helper_server
from tests.world import World

SLOW_READERS = 40


@dataclass(frozen=True)
class Certs:
    files: tuple[str, str]  # the helper's certificate chain and key (PEM)
    trust: ssl.SSLContext  # a client's trust in them


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    d = Path(tmp_path_factory.mktemp("helper-tls"))
    leaf.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
    leaf.private_key_pem.write_to_path(str(d / "key.pem"))
    trust = ssl.create_default_context()
    ca.configure_trust(trust)
    return Certs((str(d / "cert.pem"), str(d / "key.pem")), trust)


@dataclass(frozen=True)
class Helper:
    """A running helper, over HTTP or (``trust`` set) HTTPS, as its clients reach it."""

    base: str
    trust: ssl.SSLContext | None

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])

    def client(self, source: str = "127.0.0.254") -> httpx.Client:
        transport = httpx.HTTPTransport(local_address=source, verify=self.trust or True)
        return httpx.Client(transport=transport, timeout=15)

    def health(self) -> tuple[int, Any]:
        with self.client() as c:
            r = c.get(self.base + "/health")
        return r.status_code, r.json()

    def ask(self, url: str) -> httpx.Response:
        return ask(self.base, url, timeout=15, verify=self.trust or True)

    def slow_reader(self, source: str, nbytes: int = MAX_BULK, rcvbuf: int = 1024) -> socket.socket:
        """One request for ``nbytes`` of /bulk through a receive buffer of ``rcvbuf`` bytes
        (1024: the kernel's minimum, near enough), over TLS too when the helper speaks it."""
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connecting
        s.bind((source, 0))
        s.settimeout(5)
        s.connect(("127.0.0.1", self.port))
        if self.trust is not None:
            s = self.trust.wrap_socket(s, server_hostname="127.0.0.1")
        s.sendall(f"GET /bulk?bytes={nbytes} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        return s

    @contextmanager
    def slow_readers(self, n: int, *, one_address: bool = False) -> Iterator[list[socket.socket]]:
        """``n`` slow readers, each from its own loopback address unless ``one_address``."""
        with ExitStack() as stack:
            socks = []
            for i in range(n):
                s = self.slow_reader("127.0.6.1" if one_address else f"127.0.5.{i + 1}")
                socks.append(stack.enter_context(s))
            time.sleep(0.5)  # every request is in, and every stream the helper started is stuck
            yield socks


@contextmanager
def helper(
    world: World, certs: Certs | None = None, limits: ConnectionLimits | None = None, **kw: Any
) -> Iterator[Helper]:
    tls = certs.files if certs is not None else None
    with helper_server(world, limits, tls=tls, **kw) as (base, _):
        yield Helper(base, certs.trust if certs is not None else None)


@pytest.fixture(params=["http", "https"])
def scheme_certs(request: pytest.FixtureRequest, certs: Certs) -> Certs | None:
    """Both ways the helper is served: the probe's /bulk legs are HTTPS."""
    return certs if request.param == "https" else None


def test_control_requests_are_answered_under_40_slow_readers(
    world: World, scheme_certs: Certs | None
) -> None:
    """The issue's done-when: control requests answered within 15 s while 40 slow readers stay
    open (``probe helper serve``'s defaults: 32 control requests in flight, 32 bulk streams)."""
    with helper(world, scheme_certs) as h, h.slow_readers(SLOW_READERS):
        times = []
        for _ in range(5):
            t0 = time.monotonic()
            r = h.ask(world.http("news.test"))
            times.append(time.monotonic() - t0)
            assert r.status_code == 200, (
                f"control request under {SLOW_READERS} slow readers: {r.status_code} in "
                f"{times[-1] * 1000:.0f} ms: {r.text}"
            )
        print(
            f"control requests under {SLOW_READERS} slow readers ({h.base.split(':')[0]}): "
            f"200, median {sorted(times)[2] * 1000:.0f} ms, worst {max(times) * 1000:.0f} ms"
        )
        code, doc = h.health()
        # 32 streams stuck (the total), 8 refused; the control pool is apart and empty.
        assert code == 200 and doc["full"] == ["bulk"] and doc["bulk"]["open"] == 32, doc
        assert doc["control"]["in_flight"] == 0, doc


TCP_CLOSE = 7  # tcpi_state, the first byte of struct tcp_info


def dropped(s: socket.socket) -> bool:
    """The helper closed ``s`` (reset it): read from the kernel, without reading a byte."""
    return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0] == TCP_CLOSE


def test_a_peer_that_reads_nothing_is_dropped_after_the_send_timeout(
    world: World, scheme_certs: Certs | None
) -> None:
    limits = ConnectionLimits(send_timeout=1.0)
    with helper(world, scheme_certs, limits) as h, h.slow_readers(8) as socks:
        assert h.health()[1]["bulk"]["open"] == 8
        t0 = time.monotonic()
        while h.health()[1]["bulk"]["open"] and time.monotonic() - t0 < 10:
            time.sleep(0.1)
        took = time.monotonic() - t0 + 0.5
        still = h.health()[1]["bulk"]["open"]
        assert still == 0, f"{still} of 8 streams still open {took:.1f} s after they stalled"
        assert all(dropped(s) for s in socks), "a stalled connection is still open"
        print(f"8 slow readers dropped {took:.1f} s after they stalled (send timeout 1 s)")


def test_a_peer_that_reads_slowly_keeps_its_stream(
    world: World, scheme_certs: Certs | None
) -> None:
    """Slow is not stalled: 64 KiB at a time every 50 ms (a throttled probe), for several send
    timeouts, and every byte arrives. 4 MiB: past what the helper's kernel buffers hold for
    one connection, so its write buffer fills, pauses and drains again and again."""
    limits = ConnectionLimits(send_timeout=1.0)
    n = 4 * 1024 * 1024
    with helper(world, scheme_certs, limits) as h:
        got, t0 = bytearray(), time.monotonic()
        with h.slow_reader("127.0.5.200", n, rcvbuf=64 * 1024) as s:
            while len(got) - got.find(b"\r\n\r\n") - 4 < n and time.monotonic() - t0 < 30:
                tick = len(got)
                while len(got) - tick < 64 * 1024 and (chunk := s.recv(64 * 1024)):
                    got += chunk  # TLS gives 16 KiB records: several reads make a tick's 64 KiB
                time.sleep(0.05)  # at most 1.3 MB/s
                if len(got) == tick:
                    break  # the helper closed
        took = time.monotonic() - t0
        body = bytes(got).partition(b"\r\n\r\n")[2]
    assert len(body) == n, f"{len(body)} of {n} bytes in {took:.1f} s (send timeout 1 s)"
    assert took > 2 * limits.send_timeout  # it did outlast the timeout
    print(f"a slow reader: {n} bytes in {took:.1f} s ({n / took / 1024:.0f} KiB/s), not dropped")


def first_line(s: socket.socket) -> bytes:
    """The status line of the answer (the first bytes only: a stream stays stuck)."""
    return s.recv(12)


def test_bulk_streams_are_capped_per_client_address_and_in_total(world: World) -> None:
    with (
        helper(world, max_bulk=6, max_bulk_per_client=2) as h,
        h.slow_readers(4, one_address=True) as mine,
        h.slow_readers(8) as others,
    ):
        assert [first_line(s) for s in mine].count(b"HTTP/1.1 200") == 2
        assert [first_line(s) for s in others].count(b"HTTP/1.1 200") == 4
        code, doc = h.health()
        assert code == 200 and doc["full"] == ["bulk"], doc
        assert doc["bulk"] == {"open": 6, "max": 6, "max_per_client": 2}, doc
        with h.client("127.0.6.1") as c:
            busy = c.get(h.base + "/bulk?bytes=1")
        assert busy.status_code == 503 and busy.headers["retry-after"] == "5"
        assert busy.json()["error"] == "busy: too many bulk streams from your address"
        with h.client("127.0.7.1") as c:
            busy = c.get(h.base + "/bulk?bytes=1")
        assert busy.status_code == 503
        assert busy.json()["error"] == "busy: too many bulk streams"
        # The control pool is apart: control requests are answered all the while.
        assert h.ask(world.http("news.test")).status_code == 200


def test_health_is_503_naming_the_pool_when_control_requests_cannot_be_served(
    world: World,
) -> None:
    import threading

    with helper(world, max_in_flight=1) as h:
        code, doc = h.health()
        assert code == 200 and doc["status"] == "ok" and doc["full"] == [], doc
        slow = threading.Thread(target=h.ask, args=(world.https("hole.test"),))
        slow.start()  # its connection times out: a slow measurement holds the only slot
        time.sleep(0.3)
        code, doc = h.health()
        slow.join()
        assert code == 503 and doc["status"] == "saturated" and doc["full"] == ["control"], doc
        assert doc["control"] == {"in_flight": 1, "max": 1}, doc
        assert h.health()[0] == 200
