"""The QUIC steps inside the per-target deadline (probe.measure.quic.measure_within, as
probe.round.target.measure_target runs it), against the loopback HTTP/3 world: hole.test's
UDP is silent, so its handshake and then the neutral name's each wait the whole timeout; a
deadline shorter than two timeouts ends the target there, the step in flight failed as a
timeout (closed vocabulary, raw "target deadline") and the datagrams it sent still counted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from probe import failures
from probe.classify.fingerprints import builtin
from probe.config.targets import Target
from probe.measure import quic, steps
from probe.measure.net import ByteCounter, Shared
from probe.measure.runner import measure_url
from probe.model import Measurement
from probe.privacy import Scrubber
from probe.round import measure_target
from tests.h3world import H3World, make_h3_world


@pytest.fixture(scope="module")
def h3w(tmp_path_factory: pytest.TempPathFactory) -> Iterator[H3World]:
    with make_h3_world(tmp_path_factory.mktemp("h3deadline")) as w:
        yield w


def _measure_target(w: H3World, host: str, **kw: Any) -> tuple[Measurement, float]:
    async def go() -> tuple[Measurement, float]:
        shared = Shared.create(w.config(**kw))
        t0 = time.monotonic()
        try:
            m = await measure_target(
                shared,
                None,
                Target(name=host, url=w.url(host)),
                round_id="r",
                device_id=None,
                fingerprints=builtin(),
                network_ok=True,
                scrubber=Scrubber(shared.local_addresses),
            )
            return m, time.monotonic() - t0
        finally:
            await shared.aclose()

    return asyncio.run(go())


def test_silent_udp_ends_the_target_at_its_deadline_with_the_quic_step_timed_out(
    h3w: H3World,
) -> None:
    m, wall = _measure_target(h3w, "hole.test", timeout=1.0, deadline=1.5)
    q = m.observations.quic
    assert q is not None and q.skipped is None
    assert 1.4 <= wall < 1.8, wall  # the deadline, not two timeouts (2 s)
    system, neutral = q.handshakes
    assert (system.role, system.failure, system.raw_failure) == (
        "system",
        failures.GENERIC_TIMEOUT,
        "timeout",  # its own timeout, inside the deadline
    )
    assert (neutral.role, neutral.failure, neutral.raw_failure) == (
        "neutral_sni",
        failures.GENERIC_TIMEOUT,
        quic.DEADLINE,  # cut short by the deadline
    )
    assert neutral.t <= 1.6 and neutral.bytes >= 1200  # its Initial went out: it counts
    assert q.bytes >= system.bytes + neutral.bytes + sum(d.bytes for d in q.dns)
    tcp_only = _measure_target(h3w, "hole.test", timeout=1.0, deadline=1.5, quic=False)[0]
    assert m.bytes_used - tcp_only.bytes_used >= q.bytes - 0.1 * tcp_only.bytes_used
    assert (m.verdict.quic, m.verdict.quic_rule) == ("blocked", "quic.blocked")


def test_a_deadline_already_spent_skips_the_quic_steps(h3w: H3World) -> None:
    async def go() -> Any:
        shared = Shared.create(h3w.config())
        try:
            obs, _, _ = await measure_url(shared, h3w.url("h3.test"))
            ctx = steps.StepContext(
                time.monotonic(), 1.0, shared.ssl_verify, shared.ssl_noverify, ByteCounter()
            )
            return await quic.measure_within(shared, ctx, obs, time.monotonic() - 0.1)
        finally:
            await shared.aclose()

    q = asyncio.run(go())
    assert (q.host, q.skipped, q.handshakes, q.bytes) == ("h3.test", quic.SKIPPED_DEADLINE, (), 0)


def test_a_deadline_during_the_http3_get_fails_the_get_and_counts_its_bytes(
    h3w: H3World,
) -> None:
    """big.test's HTTP/3 page comes at BIG_RATE (256 KiB at 400 KiB/s: over half a second)."""

    async def go() -> Any:
        shared = Shared.create(h3w.config())
        try:
            obs, _, _ = await measure_url(shared, h3w.url("big.test"))
            ctx = steps.StepContext(
                time.monotonic(), 1.0, shared.ssl_verify, shared.ssl_noverify, ByteCounter()
            )
            return await quic.measure_within(shared, ctx, obs, time.monotonic() + 0.4)
        finally:
            await shared.aclose()

    q = asyncio.run(go())
    (hs,) = q.handshakes
    (get,) = q.http
    assert hs.ok and (get.role, get.failure, get.raw_failure) == (
        "h3",
        failures.GENERIC_TIMEOUT,
        quic.DEADLINE,
    )
    assert q.bytes > 50_000  # the part of the page that came before the deadline
