"""Throughput: the pure analysis on synthetic flows, events, and real downloads on loopback.

Synthetic flows are built from a rate profile plus seeded noise (randomness is a parameter), so
each case is exact and repeatable; the lab (tests/e2e/test_lab.py) checks the same analysis against
real throttles.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from probe.classify.throughput import analyse, flow_stats, looks_slow
from probe.measure.net import Shared
from probe.measure.throughput import download
from probe.model import Flow, HelperSpeed, Plan
from tests.flows import Profile, const, flow, trials
from tests.world import PUBLIC_ADDRESS, SITE, World


def test_steady_rate_is_measured_after_slow_start() -> None:
    st = flow_stats(flow("target", lambda t: 2e5 if t < 0.3 else 1e6))
    assert st is not None and abs(st.bps / 1e6 - 1) < 0.05 and st.burst_bytes is None


def test_throttled_when_slow_and_significant() -> None:
    a = analyse(trials(const(150e3), const(20e6)))
    assert a.throttled is True and a.ratio < 0.01 and a.p_value < 0.05
    assert a.label == "target_slow_unattributed" and abs(a.bps / 150e3 - 1) < 0.05


def test_not_throttled_when_alike() -> None:
    a = analyse(trials(const(5e6), const(5e6)))
    assert a.throttled is False and a.label is None and 0.8 < a.ratio < 1.25


def test_not_throttled_when_ratio_is_above_half() -> None:
    a = analyse(trials(const(3e6), const(5e6)))
    assert a.throttled is False  # slower, significant even, but not half


def test_bonferroni_correction_for_the_round() -> None:
    few = trials(const(1e6), const(10e6), n=1, seconds=2.0)
    assert analyse(few, tests_in_round=1).p_raw == analyse(few, tests_in_round=40).p_raw
    assert analyse(few, tests_in_round=40).p_value == pytest.approx(
        min(1.0, analyse(few, tests_in_round=1).p_value * 40)
    )
    assert analyse(few, tests_in_round=40).throttled is False


def test_burst_then_throttle() -> None:
    burst = lambda t: 16e6 if t < 0.1 else 1e6  # noqa: E731 - 500 KB in 250 ms, then 1 Mbit/s
    a = analyse(trials(burst, const(20e6)))
    assert a.throttled is True
    assert 400_000 < a.burst_bytes < 600_000 and abs(a.bps / 1e6 - 1) < 0.1


def test_no_burst_from_slow_start_alone() -> None:
    st = flow_stats(flow("target", lambda t: 4e5 if t < 0.25 else 150e3))
    assert st is not None and st.burst_bytes is None


@pytest.mark.parametrize(
    ("ab", "helper_bps", "label"),
    [
        ({"ab_neutral": 50e6, "ab_target": 150e3, "ab_neutral2": 50e6}, 50e6, "sni_targeted"),
        ({"ab_neutral": 50e6, "ab_target": 45e6, "ab_neutral2": 50e6}, 50e6, "ip_targeted"),
        (
            {"ab_neutral": 50e6, "ab_target": 45e6, "ab_neutral2": 50e6},
            160e3,
            "target_slow_unattributed",
        ),  # slow from the helper too: the site's own server
    ],
)
def test_labels_from_ab_and_helper(ab: dict[str, float], helper_bps: float, label: str) -> None:
    flows = trials(const(150e3), const(20e6))
    for role, bps in ab.items():
        flows.append(flow(role, const(bps), seconds=3.0))
    a = analyse(flows, helper_speed=HelperSpeed(bps=helper_bps))
    assert a.label == label


def test_ab_target_that_never_starts_counts_as_zero() -> None:
    flows = trials(const(150e3), const(20e6))
    flows += [
        flow("ab_neutral", const(50e6), seconds=3.0),
        Flow("ab_target", "https://x/bulk", "192.0.2.1", 0, 0.0, None, 4.0, 0, 0, ()),
        flow("ab_neutral2", const(50e6), seconds=3.0),
    ]
    assert analyse(flows).label == "sni_targeted"


def test_handshake_and_stall_labels() -> None:
    slow_start = trials(const(150e3), const(20e6), ttfb=3.0, seconds=8.0)
    assert analyse(slow_start).label == "handshake_throttled"
    stalls = trials(const(150e3), const(20e6), stall=(2.0, 4.5))
    assert analyse(stalls).label == "stall"


def test_congestion_label_when_both_slow_down() -> None:
    drop = lambda t: 10e6 if t < 1.5 else 2e6  # noqa: E731
    a = analyse(trials(drop, drop))
    assert a.throttled is False and a.label == "congestion"


@pytest.mark.parametrize(
    ("rtt", "ooo", "mechanism"),
    [(200_000, 0, "shaper"), (22_000, 12, "policer"), (25_000, 0, None)],
)
def test_mechanism(rtt: int, ooo: int, mechanism: str | None) -> None:
    a = analyse(trials(const(150e3), const(20e6), rtt=rtt, min_rtt=20_000, ooo=ooo))
    assert a.mechanism == mechanism


def test_failed_downloads_give_no_verdict() -> None:
    broken = [Flow("target", "u", None, 0, failure="connection_reset"), flow("control", const(1e6))]
    a = analyse(broken)
    assert a.throttled is None and a.reason == "no complete trial (a download failed)"
    assert looks_slow(broken) is False


def test_plan_profiles() -> None:
    assert Plan.profile("default").max_bytes == 1024 * 1024
    mobile = Plan.profile("mobile")
    assert mobile.worst_case_bytes < Plan.profile("default").worst_case_bytes
    with pytest.raises(ValueError, match="unknown profile"):
        Plan.profile("satellite")


# -- real downloads on loopback ----------------------------------------------------------------
def test_download_samples_and_caps(world: World) -> None:
    async def go() -> tuple[Flow, Flow]:
        shared = Shared.create(world.config())
        try:
            capped = await download(
                shared,
                world.http("big.test", "/large"),
                SITE,
                role="target",
                max_bytes=300_000,
                max_seconds=5,
                clock0=0.0,
            )
            timed = await download(
                shared,
                world.http("hole.test"),
                "127.0.0.40",
                role="target",
                max_bytes=10**6,
                max_seconds=0.6,
                clock0=0.0,
            )
            return capped, timed
        finally:
            await shared.aclose()

    capped, timed = asyncio.run(go())
    assert capped.failure is None and 300_000 <= capped.bytes < 2 * 1024 * 1024
    assert capped.samples and capped.samples[-1].bytes >= 300_000
    assert any(s.min_rtt_us is not None for s in capped.samples)  # TCP_INFO was read
    assert timed.bytes == 0 and timed.duration < 2  # the time cap ends it, whatever happens


# -- the SNI A/B alone (a site with no object to download) --------------------------------------
def ab_only(named: Profile, neutral: Profile, reps: int = 4, **kw: object) -> list[Flow]:
    """Named legs (3 s each, time-capped as a throttled one is) between neutral ones (byte-
    capped: done in half a second on a fast path), alternating the helper's two addresses."""
    rng = random.Random(11)
    out = []
    for k in range(reps):
        role = "ab_neutral" if k % 2 == 0 else "ab_neutral2"
        out.append(flow(role, neutral, seconds=0.5, trial=k, rng=rng))
        out.append(flow("ab_target", named, seconds=3.0, trial=k, rng=rng, **kw))  # type: ignore[arg-type]
    out.append(flow("ab_neutral2" if reps % 2 else "ab_neutral", neutral, seconds=0.5, rng=rng))
    return out


def test_the_ab_alone_sees_sni_throttling() -> None:
    a = analyse(ab_only(const(1e6), const(40e6), rtt=200_000, min_rtt=20_000))
    assert (a.throttled, a.label, a.basis, a.mechanism) == (
        True,
        "sni_targeted",
        "sni_ab",
        "shaper",
    )
    assert a.ab_ratio is not None and a.ab_ratio < 0.05 and a.p_value is not None
    assert a.ratio is None  # no trials: no target/control ratio for probe events


def test_the_ab_alone_clears_an_unthrottled_name() -> None:
    a = analyse(ab_only(const(38e6), const(40e6)))
    assert (a.throttled, a.label, a.basis) == (False, None, "sni_ab")


def test_one_slow_named_leg_is_no_sni_throttling() -> None:
    """The path slowed while one named leg ran (capacity flapping): not every named leg is
    slower than every neutral one, so no verdict of throttling."""
    flows = ab_only(const(30e6), const(40e6))
    i = next(i for i, f in enumerate(flows) if f.role == "ab_target")
    flows[i] = flow("ab_target", const(2e6), seconds=3.0, trial=0)
    assert analyse(flows).throttled is False


def test_the_ab_alone_is_corrected_for_the_round() -> None:
    few = ab_only(const(1e6), const(40e6), reps=1)  # 2 named blocks against 2 neutral
    assert analyse(few, tests_in_round=1).throttled is False  # p >= 1/6: too few to say
    many = ab_only(const(1e6), const(40e6))  # 8 against 5: p = 1/1287 before correcting
    assert analyse(many, tests_in_round=25).throttled is True


def test_a_failed_leg_leaves_the_ab_undecided() -> None:
    flows = ab_only(const(1e6), const(40e6))
    flows[1] = Flow("ab_target", "u", "192.0.2.1", 0, failure="connection_reset")
    a = analyse(flows)
    assert a.throttled is None and a.reason == "SNI A/B incomplete (a download failed)"


def test_the_site_s_own_name_beside_its_cdn_s() -> None:
    """The object on the site's CDN is slow; the A/B finds the site's own name slowed."""
    flows = trials(const(150e3), const(20e6))
    flows += [
        flow("ab_neutral", const(50e6), seconds=3.0),
        flow("ab_target", const(48e6), seconds=3.0),
        flow("ab_neutral2", const(50e6), seconds=3.0),
        flow("ab_site", const(150e3), seconds=3.0),
    ]
    a = analyse(flows, helper_speed=HelperSpeed(bps=50e6))
    assert a.label == "sni_targeted" and a.ab_ratio is not None and a.ab_ratio < 0.01


def test_the_worst_case_covers_every_kind_of_test() -> None:
    for name in ("default", "mobile"):
        p = Plan.profile(name)
        trials_ = p.trials * 2 * p.max_bytes + 4 * p.ab_bytes
        assert p.worst_case_bytes >= max(trials_, (2 * p.ab_only_trials + 1) * p.ab_bytes)


# -- a round: every target gets its object, on loopback ------------------------------------------
def test_a_round_tests_every_target_on_the_objects_its_page_links(
    world: World, tmp_path: object
) -> None:
    """No throughput_url anywhere: the target's page links a large first-party image, the
    control's one of its own; a second target links only a tracker (third party): with no
    helper, its test is skipped as having no object. The pages were stored before the tests
    ran; the tests reached the store through on_result."""
    from probe.classify.fingerprints import builtin
    from probe.config.targets import Target
    from probe.measure.discover import MemoryCache
    from probe.round import ThroughputOptions, run_round
    from tests import servers as S

    port = world.http_port
    site = S.Site(
        {
            "/": (
                200,
                {"Content-Type": "text/html"},
                b"<html><body><img srcset='/img/small.jpg 300w, /img/big.jpg 1200w'></body></html>",
            ),
            # A CDN that names the client in a header: scrubbed from the stored choice too.
            "/img/big.jpg": S.large(3_000_000, content_type=f"image/jpeg; for={PUBLIC_ADDRESS}"),
            "/img/small.jpg": S.large(20_000),
            "/ctl": (200, {"Content-Type": "text/html"}, b"<img src='/img/big.jpg'>"),
            "/bare": (200, {"Content-Type": "text/html"}, b"<img src='https://t.example/p.gif'>"),
        }
    )
    server = S.WebServer(site, "127.0.0.14", port)
    world.zone["tp.test"] = ["127.0.0.14"]
    world.control_zone["tp.test"] = ["127.0.0.14"]
    stored: list[str] = []
    updated: list[object] = []
    plan = Plan(max_bytes=200_000, max_seconds=1.0, trials=1, ab_bytes=50_000, ab_seconds=0.5)
    cache = MemoryCache({})
    try:
        result = asyncio.run(
            run_round(
                [
                    Target(name="site", url=world.http("tp.test")),
                    Target(name="bare", url=world.http("tp.test", "/bare")),
                ],
                [Target(name="ctl", url=world.http("tp.test", "/ctl"), is_control=True)],
                world.config(),
                fingerprints=builtin(),
                on_measurement=lambda m: stored.append(m.target),
                throughput=ThroughputOptions(plan, objects=cache, on_result=updated.append),
                recognisers=[lambda ip: str(ip) == PUBLIC_ADDRESS],
            )
        )
    finally:
        server.close()
        world.zone.pop("tp.test")
        world.control_zone.pop("tp.test")
    assert sorted(stored) == ["bare", "ctl", "site"]  # every page stored before any test
    by = {m.target: m for m in updated}  # each page again, with its test
    tp = by["site"].throughput
    assert tp is not None and tp.object is not None and tp.control_object is not None
    assert tp.url == f"http://tp.test:{port}/img/big.jpg" and tp.object.source == "discovered"
    assert tp.object.size == 3_000_000 and tp.analysis is not None
    assert tp.analysis.basis == "trials" and {f.role for f in tp.flows} == {"target", "control"}
    assert by["site"].bytes_used > 200_000 and tp.bytes_used >= 400_000
    # The round's total follows the tests added after the pages were stored.
    assert result.bytes_used >= by["site"].bytes_used + by["bare"].bytes_used
    bare = by["bare"].throughput
    assert bare is not None and bare.skipped == "no_object" and bare.discovery is not None
    assert "1 on other sites" in bare.discovery
    assert [m.target for m in updated] == ["site", "bare"] or [m.target for m in updated] == [
        "bare",
        "site",
    ]
    assert cache.get("ctl") is not None and cache.get("site") is not None
    assert cache.get("site").content_type == "image/jpeg; for=[scrubbed]"  # type: ignore[union-attr]
    assert tp.object.content_type == "image/jpeg; for=[scrubbed]"


# -- the budget decides, before each test -------------------------------------------------------
@pytest.mark.parametrize(
    ("cap", "reserve", "skipped", "reason"),
    [
        # 20 MB of 25 MB used: a test's worst case fits, but not with the pages' reserve beside it
        ("daily", 6_000_000, "data_cap", "daily cap: 20.0 MB of 25.0 MB used, resets 2026-11-30"),
        ("monthly", 6_000_000, "data_cap", "monthly cap: 20.0 MB of 25.0 MB used, resets 2026-12"),
        ("daily", 0, None, None),  # no reserve: the same test runs
    ],
)
def test_a_test_over_the_cap_is_skipped_by_the_budget_s_decision(
    world: World,
    caplog: pytest.LogCaptureFixture,
    cap: str,
    reserve: int,
    skipped: str | None,
    reason: str | None,
) -> None:
    """Each throughput test asks ``budget.check`` (the caps, the bytes used so far and the
    round's reserve for pages) before it starts: over the cap, it is recorded skipped for the
    data cap and the budget's one-line reason is logged; with room, it runs."""
    import logging
    from datetime import UTC, datetime

    from probe.classify.fingerprints import builtin
    from probe.config.targets import Target
    from probe.round import ThroughputOptions, run_round
    from probe.round.budget import Allowance, Budget, Usage

    plan = Plan(max_bytes=100_000, max_seconds=0.5, trials=1, ab_bytes=20_000, ab_seconds=0.2)
    caps = Budget(daily=25_000_000) if cap == "daily" else Budget(monthly=25_000_000)
    assert 20_000_000 + plan.worst_case_bytes <= 25_000_000 < 20_000_000 + 6_000_000
    tested: list[object] = []
    opts = ThroughputOptions(
        plan,
        allowance=Allowance(caps, reserve=reserve),
        usage=lambda: Usage(20_000_000, 20_000_000),
        clock=lambda: datetime(2026, 11, 29, 12, tzinfo=UTC),
        on_result=tested.append,
    )
    with caplog.at_level(logging.INFO, logger="probe.round"):
        asyncio.run(
            run_round(
                [Target(name="news", url=world.http("news.test"))],
                [Target(name="ctl", url=world.https("news.test"), is_control=True)],
                world.config(),
                fingerprints=builtin(),
                throughput=opts,
            )
        )
    (m,) = tested
    tp = m.throughput  # type: ignore[attr-defined]
    assert tp is not None
    if skipped is None:
        assert tp.skipped != "data_cap"
        assert not [r for r in caplog.records if "cap:" in r.getMessage()]
    else:
        assert tp.skipped == skipped and tp.flows == () and tp.bytes_used == 0
        (line,) = [r.getMessage() for r in caplog.records if "cap:" in r.getMessage()]
        assert reason is not None and reason in line and "news" in line
