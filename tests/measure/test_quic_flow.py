"""The throughput test's object over HTTP/3 (probe.measure.h3flow), beside TCP in run_test's
trials, against the loopback HTTP/3 world (tests/h3world.py): big.test's HTTP/3 server is
throttled to BIG_RATE while its TCP is not; hole.test's UDP is a black hole.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from probe import failures
from probe.measure import h3flow
from probe.measure.net import Shared
from probe.measure.throughput import Download, run_test
from probe.model import Flow, Plan
from tests.h3world import BIG, BIG_RATE, HOLE, OK, H3World, make_h3_world


@pytest.fixture(scope="module")
def h3w(tmp_path_factory: pytest.TempPathFactory) -> Iterator[H3World]:
    with make_h3_world(tmp_path_factory.mktemp("h3flow")) as w:
        yield w


def _flow(w: H3World, host: str, ip: str, **kw: float) -> Flow:
    async def go() -> Flow:
        shared = Shared.create(w.config(timeout=kw.pop("timeout", 1.0)))
        try:
            return await h3flow.download(
                shared,
                f"https://{host}:{w.port}/tp",
                ip,
                max_bytes=int(kw.pop("max_bytes", 4 * 1024 * 1024)),
                max_seconds=kw.pop("max_seconds", 1.0),
                clock0=time.monotonic(),
            )
        finally:
            await shared.aclose()

    return asyncio.run(go())


def test_an_http3_flow_is_sampled_like_a_tcp_one(h3w: H3World) -> None:
    f = _flow(h3w, "big.test", BIG, max_seconds=1.5)
    assert (f.role, f.failure, f.ip) == ("h3", None, BIG)
    # cut off by max_seconds (not a failure) at about the server's rate
    assert 0.3 * BIG_RATE * 1.5 < f.bytes < 2 * BIG_RATE * 1.5, f.bytes
    assert 1.4 <= f.duration < 2.5 and f.ttfb is not None and f.connect_s is not None
    assert f.wire_bytes > f.bytes  # every datagram, both ways, for the data budget
    counts = [s.bytes for s in f.samples]
    assert len(counts) >= 4 and counts == sorted(counts) and counts[-1] >= f.bytes
    assert any(s.rtt_us is not None and s.min_rtt_us is not None for s in f.samples)


def test_an_http3_flow_stops_at_its_byte_cap(h3w: H3World) -> None:
    f = _flow(h3w, "h3.test", OK, max_bytes=300_000, max_seconds=5.0)
    assert f.failure is None and 300_000 <= f.bytes < 300_000 + 65_536
    assert f.duration < 4.0  # the cap ended it, not the time


def test_an_http3_flow_to_silent_udp_fails_as_a_timeout_with_its_bytes(h3w: H3World) -> None:
    f = _flow(h3w, "hole.test", HOLE, timeout=0.5, max_seconds=3.0)
    assert (f.failure, f.bytes) == (failures.GENERIC_TIMEOUT, 0)
    assert f.wire_bytes >= 1200  # the Initial packets sent still cost the volunteer


def test_run_test_fetches_the_object_over_http3_beside_tcp_in_every_trial(h3w: H3World) -> None:
    plan = Plan(max_bytes=2 * 1024 * 1024, max_seconds=1.0, trials=2)

    async def go() -> list[Flow]:
        shared = Shared.create(h3w.config())
        try:
            res = await run_test(
                shared,
                Download(f"https://big.test:{h3w.port}/tp"),
                Download(f"https://h3.test:{h3w.port}/tp"),
                plan,
                h3_port=h3w.port,
            )
            assert res.bytes_used == sum(f.wire_bytes or f.bytes for f in res.flows)
            return res.flows
        finally:
            await shared.aclose()

    flows = asyncio.run(go())
    assert sorted((f.trial, f.role) for f in flows) == [
        (t, r) for t in (0, 1) for r in ("control", "h3", "target")
    ]
    by = {(f.trial, f.role): f for f in flows}
    for t in (0, 1):
        h3, tcp = by[(t, "h3")], by[(t, "target")]
        assert h3.url == tcp.url and h3.ip == tcp.ip == BIG
        assert abs(h3.start - tcp.start) < 0.2  # the same moment
        assert h3.failure is None and h3.bytes < tcp.bytes  # HTTP/3 throttled, TCP not


def test_a_flow_whose_time_ends_in_the_handshake_still_counts_its_datagrams(
    h3w: H3World,
) -> None:
    f = _flow(h3w, "hole.test", HOLE, timeout=1.0, max_seconds=0.5)
    assert (f.failure, f.bytes) == (None, 0)  # the time cap, as a TCP flow's: not a failure
    assert f.wire_bytes >= 1200 and f.duration < 0.9
