"""The daemon's schedule: random gaps, backoff, the trigger, which targets a round measures."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest

from probe.config.targets import Target
from probe.daemon import schedule
from probe.timeutil import iso


@pytest.mark.parametrize("mean", [2.0, 2700.0])
def test_gaps_are_random_bounded_and_average_the_interval(mean: float) -> None:
    rng = random.Random(11)
    gaps = [schedule.next_gap(mean, rng) for _ in range(20000)]
    assert min(gaps) >= schedule.FLOOR * mean and max(gaps) <= schedule.CAP * mean
    assert abs(sum(gaps) / len(gaps) / mean - 1) < 0.02
    assert len({round(g, 6) for g in gaps}) > 19000  # not a handful of values
    # memoryless enough that the next gap cannot be told from the last: no correlation
    pairs = list(itertools.pairwise(gaps))
    mx = sum(gaps) / len(gaps)
    cov = sum((a - mx) * (b - mx) for a, b in pairs) / len(pairs)
    var = sum((a - mx) ** 2 for a in gaps) / len(gaps)
    assert abs(cov / var) < 0.05


def test_gap_is_a_pure_function_of_interval_and_rng() -> None:
    a = [schedule.next_gap(60, random.Random(5)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    r1, r2 = random.Random(7), random.Random(7)
    assert [schedule.next_gap(60, r1) for _ in range(50)] == [
        schedule.next_gap(60, r2) for _ in range(50)
    ]


def test_backoff_doubles_up_to_a_cap_and_resets() -> None:
    assert [schedule.backoff(n) for n in range(6)] == [1, 2, 4, 8, 8, 8]


def test_trigger_fires_one_gap_after_it_is_asked() -> None:
    now = datetime(2026, 11, 29, tzinfo=UTC)
    trig = schedule.RandomGapTrigger(lambda: 100.0, random.Random(3))
    expect = schedule.next_gap(100.0, random.Random(3))
    assert trig.get_next_fire_time(None, now) == now + timedelta(seconds=expect)


def test_per_target_intervals_decide_what_a_round_measures() -> None:
    now = datetime(2026, 11, 29, 12, tzinfo=UTC)
    fast = Target(name="fast", url="https://a.example/")
    slow = Target(name="slow", url="https://b.example/", interval="6h")
    quick = Target(name="quick", url="https://c.example/", interval=600)
    assert schedule.page_mean([fast, slow], 2700) == 2700
    assert schedule.page_mean([fast, slow, quick], 2700) == 600
    ago = {n: iso(now - timedelta(hours=h)) for n, h in (("fast", 1), ("slow", 1))}
    assert [t.name for t in schedule.due([fast, slow], ago, now, 2700)] == ["fast"]
    ago["slow"] = iso(now - timedelta(hours=5.7))
    assert [t.name for t in schedule.due([fast, slow], ago, now, 2700)] == ["fast", "slow"]
    assert [t.name for t in schedule.due([fast, slow], {}, now, 2700)] == ["fast", "slow"]
    # with a 10-minute target, the default ones come every 45 minutes, not every round
    ago = {"fast": iso(now - timedelta(minutes=20)), "quick": iso(now - timedelta(minutes=9))}
    assert [t.name for t in schedule.due([fast, quick], ago, now, 2700)] == ["quick"]


def test_a_tight_budget_rotates_throughput_tests_through_the_list() -> None:
    """Two tests a day out of five targets: each day the two tested longest ago (never first),
    so after three days every target has had its test."""
    from probe.store.reads import ThroughputAttempt

    targets = [Target(name=n, url=f"https://{n}.example/") for n in "abcde"]
    last = {"c": ThroughputAttempt("2026-11-01T00:00:00.000Z")}
    seen: list[list[str]] = []
    for day in range(3):
        got = schedule.throughput_rotation(targets, last, helper=False, room=2, per=1, bare=0)
        seen.append([t.name for t in got.targets])
        for t in got.targets:
            last[t.name] = ThroughputAttempt(f"2026-11-{day + 10:02d}T00:00:00.000Z")
    assert seen == [["a", "b"], ["d", "e"], ["c", "a"]]
    everything = schedule.throughput_rotation(targets, last, helper=False, room=None, per=1, bare=0)
    assert len(everything.targets) == 5


def test_a_round_missed_in_sleep_runs_once_on_waking() -> None:
    """The job's planned time is an hour past (a laptop that slept): one run, then a gap."""
    import asyncio

    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    runs: list[datetime] = []

    async def job() -> None:
        runs.append(datetime.now(UTC))

    async def go() -> None:
        sched = AsyncIOScheduler(timezone=UTC, job_defaults=schedule.JOB_DEFAULTS)
        past = datetime.now(UTC) - timedelta(hours=1)
        sched.add_job(
            job,
            schedule.RandomGapTrigger(lambda: 60.0, random.Random(1)),
            next_run_time=past,
        )
        sched.start()
        await asyncio.sleep(0.5)
        nxt = sched.get_jobs()[0].next_run_time
        sched.shutdown(wait=False)
        assert nxt - datetime.now(UTC) > timedelta(seconds=60 * schedule.FLOOR - 1)

    asyncio.run(go())
    assert len(runs) == 1
