"""One throughput test's sequence (probe.measure.throughput.run_test) on the loopback world:
skipped without an address or an object, trials that alternate which request leaves first,
numbered, with the object repeated, and a pause between trials but none after the last; then
the SNI A/B's legs, in order, on the helper's addresses, and when the helper's own download is
asked for."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time

import httpx

from probe.measure import throughput as tp
from probe.measure.net import Shared
from probe.measure.throughput import Download, run_test
from probe.model import HelperSpeed, Plan
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


# -- the SNI A/B's legs ------------------------------------------------------------------------
A, B, C = "127.0.0.1", "127.0.0.2", "127.0.0.3"


def legs(
    world: World,
    target: Download | None,
    control: Download | None,
    addresses: tuple[str, ...],
    *,
    site_host: str | None = None,
    trials: int = 1,
    suspicious: bool = False,
) -> tuple[list[tuple[str, str, str | None, int]], list[tuple[str, int, float]]]:
    """(role, name, address, trial) of each A/B leg, and the helper's /speed calls. The bulk
    endpoint is a closed port: the legs fail at once, which is all the order needs."""
    asked: list[tuple[str, int, float]] = []

    async def speed(url: str, max_bytes: int, max_seconds: float) -> HelperSpeed:
        asked.append((url, max_bytes, max_seconds))
        return HelperSpeed(bps=1e6)

    helper = tp.HelperBulk("https://127.0.0.1/", addresses, closed_port(), speed)
    plan = Plan(trials=1, max_bytes=len(PAGE), ab_only_trials=trials, ab_seconds=1.0)

    async def go() -> tp.TestResult:
        shared = Shared.create(world.config())
        try:
            return await run_test(
                shared,
                target,
                control,
                plan,
                helper=helper,
                site_host=site_host,
                suspicious=lambda flows: suspicious,
            )
        finally:
            await shared.aclose()

    result = asyncio.run(go())
    out = [
        (f.role, httpx.URL(f.url).host, f.ip, f.trial)
        for f in result.flows
        if f.role.startswith("ab_")
    ]
    return out, asked


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


N = tp.NEUTRAL_SNI


def test_with_an_object_the_ab_is_one_named_leg_between_two_neutral_ones(world: World) -> None:
    target = Download(world.http("news.test", "/"))
    control = Download(world.http("news.test", "/"))
    got, asked = legs(world, target, control, (A, B), site_host=None)
    assert got == [
        ("ab_neutral", N, A, 0),
        ("ab_target", "news.test", A, 0),
        ("ab_neutral2", N, B, 0),
    ]
    assert asked == []  # not suspicious: the helper's own download is not asked for


def test_a_site_whose_object_is_on_another_name_gets_a_leg_of_its_own(world: World) -> None:
    target = Download(world.http("news.test", "/"))
    control = Download(world.http("news.test", "/"))
    got, _ = legs(world, target, control, (A, B), site_host="WWW.News.Test")
    assert got[-1] == ("ab_site", "www.news.test", A, 0) and len(got) == 4
    same, _ = legs(world, target, control, (A, B), site_host="News.Test")
    assert [role for role, *_ in same] == ["ab_neutral", "ab_target", "ab_neutral2"]


def test_a_suspicious_test_asks_the_helpers_own_download_of_the_object(world: World) -> None:
    target = Download(world.http("news.test", "/"))
    control = Download(world.http("news.test", "/"))
    _, asked = legs(world, target, control, (A, B), suspicious=True)
    assert asked == [(target.url, len(PAGE), Plan().max_seconds)]


def test_the_ab_alone_alternates_neutral_legs_and_the_helpers_addresses(world: World) -> None:
    got, asked = legs(world, None, None, (A, B, C), site_host="News.Test", trials=3)
    assert got == [
        ("ab_neutral", N, A, 0),
        ("ab_target", "news.test", A, 0),
        ("ab_neutral2", N, B, 1),
        ("ab_target", "news.test", A, 1),
        ("ab_neutral", N, A, 2),
        ("ab_target", "news.test", A, 2),
        ("ab_neutral2", N, B, 3),
    ]
    assert asked == []  # no object: nothing for the helper to download
    one, _ = legs(world, None, None, (A,), site_host="news.test", trials=2)
    assert {ip for _, _, ip, _ in one} == {A}
    two, _ = legs(world, None, None, (A, B), site_host="news.test", trials=2)
    assert [ip for role, _, ip, _ in two if role == "ab_neutral2"] == [B]
    assert [r for r, *_ in two][-1] == "ab_neutral"  # trials=2: the last neutral is the first's


def test_without_a_control_object_the_ab_alone_names_the_site_not_the_object(
    world: World,
) -> None:
    target = Download(world.http("news.test", "/"))  # an object on another name than the site
    got, _ = legs(world, target, None, (A, B), site_host="www.site.test", trials=1)
    assert [name for role, name, _, _ in got if role == "ab_target"] == ["www.site.test"]
