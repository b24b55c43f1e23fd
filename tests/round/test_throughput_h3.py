"""A round's throughput test with HTTP/3 beside TCP (issue 24), in-process against the loopback
HTTP/3 world (tests/h3world.py): big.test's object over TCP at once and over HTTP/3 throttled,
so the page's QUIC verdict becomes ``quic.slower.throughput`` from the test's trials; the
HTTP/3 flows are in the test's bytes and the budget reckons with them before the test starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from probe.classify.fingerprints import builtin
from probe.config.targets import Target
from probe.model import Measurement, Plan
from probe.round import ThroughputOptions, run_round
from probe.round.budget import Allowance, Budget, Usage
from probe.round.throughput import h3_worst_case
from probe.store import Store
from probe.store.reclassify import reclassify
from tests.h3world import H3World, make_h3_world


@pytest.fixture(scope="module")
def h3w(tmp_path_factory: pytest.TempPathFactory) -> Iterator[H3World]:
    with make_h3_world(tmp_path_factory.mktemp("h3round")) as w:
        yield w


def _round(w: H3World, plan: Plan, **opts: Any) -> tuple[list[Measurement], list[Measurement]]:
    pages: list[Measurement] = []
    tested: list[Measurement] = []
    target = Target(name="big", url=w.url("big.test"), throughput_url=w.url("big.test") + "tp")
    control = Target(
        name="ctl", url=w.url("h3.test"), is_control=True, throughput_url=w.url("h3.test") + "tp"
    )
    tp = ThroughputOptions(plan, on_result=tested.append, **opts)
    asyncio.run(
        run_round(
            [target],
            [control],
            w.config(),
            fingerprints=builtin(),
            throughput=tp,
            on_measurement=pages.append,
        )
    )
    return [m for m in pages if m.target == "big"], tested


def test_the_rounds_test_decides_quic_slower_from_http3_beside_tcp(
    h3w: H3World, tmp_path: Path
) -> None:
    plan = Plan(max_bytes=8 * 1024 * 1024, max_seconds=3.0, trials=3)
    (page,), (m,) = _round(h3w, plan)
    store = Store.open(tmp_path / "p.db")  # as the round's recorder stores them
    store.save(page)
    store.save_throughput(m)
    (row,) = store.rows()
    assert store.verdict(row).quic_rule == "quic.slower.throughput"
    assert reclassify(store, builtin()) == (1, 0)  # replayed with the test's flows: the same
    (row,) = store.rows()
    assert store.verdict(row).quic_rule == "quic.slower.throughput"
    store.close()
    assert (page.verdict.quic, page.verdict.quic_rule) == ("slower", "quic.slower.page")
    tp = m.throughput
    assert tp is not None and tp.skipped is None and tp.analysis is not None
    h3 = [f for f in tp.flows if f.role == "h3"]
    assert [f.trial for f in h3] == [0, 1, 2] and all(f.failure is None for f in h3)
    assert tp.analysis.h3_slower is True and (tp.analysis.h3_ratio or 1) < 0.5
    assert (m.verdict.quic, m.verdict.quic_rule) == ("slower", "quic.slower.throughput")
    assert tp.bytes_used >= sum(f.wire_bytes for f in tp.flows)  # HTTP/3's datagrams too
    assert m.bytes_used == page.bytes_used + tp.bytes_used


def test_the_budget_counts_the_http3_flows_before_the_test(h3w: H3World) -> None:
    """Room for the TCP test's worst case but not for its HTTP/3 flows too: skipped for the
    cap, nothing moved (before, the HTTP/3 flows were not reckoned with)."""
    plan = Plan(max_bytes=1_000_000, max_seconds=0.5, trials=1)
    cap = 50_000_000
    used = cap - plan.worst_case_bytes - h3_worst_case(plan) // 2
    (m,) = _round(
        h3w,
        plan,
        allowance=Allowance(Budget(daily=cap)),
        usage=lambda: Usage(used, used),
        clock=lambda: datetime(2026, 12, 8, 12, tzinfo=UTC),
    )[1]
    assert m.throughput is not None and m.throughput.skipped == "data_cap"
    assert not m.throughput.flows and m.verdict.quic_rule == "quic.slower.page"
