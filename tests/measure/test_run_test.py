"""One throughput test's sequence (probe.measure.throughput.run_test) on the loopback world:
skipped without an address or an object, trials that alternate which request leaves first,
numbered, with the object repeated, and a pause between trials but none after the last."""

from __future__ import annotations

import asyncio
import itertools
import time

from probe.measure import throughput as tp
from probe.measure.net import Shared
from probe.measure.throughput import Download, run_test
from probe.model import Plan
from tests.servers import PAGE
from tests.world import World


def run(
    world: World, target: Download | None, control: Download | None, plan: Plan
) -> tp.TestResult:
    async def go() -> tp.TestResult:
        shared = Shared.create(world.config())
        try:
            return await run_test(shared, target, control, plan)
        finally:
            await shared.aclose()

    return asyncio.run(go())


def test_a_target_or_control_without_an_address_is_skipped_with_nothing_sent(
    world: World,
) -> None:
    ok = Download(world.http("news.test", "/"))
    nx = Download(world.http("nowhere.test", "/"))
    for target, control in ((nx, ok), (ok, nx)):
        got = run(world, target, control, Plan(trials=1))
        assert (got.skipped, got.flows) == ("no_address", [])


def test_without_an_object_and_a_helper_nothing_is_tested_and_says_which_is_missing(
    world: World,
) -> None:
    ok = Download(world.http("news.test", "/"))
    assert run(world, None, ok, Plan()).skipped == "no_object"
    assert run(world, ok, None, Plan()).skipped == "no_control_object"
    assert run(world, None, None, Plan()).skipped == "no_object"


def test_trials_alternate_which_leaves_first_and_are_numbered_with_the_object_repeated(
    world: World,
) -> None:
    target = Download(world.http("news.test", "/"), repeat=3)
    control = Download(world.http("news.test", "/"), repeat=1)
    t0 = time.monotonic()
    got = run(world, target, control, Plan(trials=3, max_bytes=10 * len(PAGE)))
    took = time.monotonic() - t0
    assert [(f.role, f.trial) for f in got.flows] == [
        ("target", 0),
        ("control", 0),
        ("control", 1),
        ("target", 1),
        ("target", 2),
        ("control", 2),
    ]
    sizes = {(f.role, f.bytes) for f in got.flows}
    assert sizes == {("target", 3 * len(PAGE)), ("control", len(PAGE))}, sizes
    # a pause between trials (each trial starts a gap after the one before ended) ...
    by_trial = [[f for f in got.flows if f.trial == k] for k in range(3)]
    for before, after in itertools.pairwise(by_trial):
        ended = max(f.start + f.duration for f in before)
        assert min(f.start for f in after) >= ended + tp.TRIAL_GAP * 0.9
    # ... and none after the last: the test returns once its last flow has ended
    last_end = max(f.start + f.duration for f in got.flows)
    assert took - last_end < tp.TRIAL_GAP * 0.9
