"""Throttling events (probe.classify.events): opened when a target's throughput falls well below
its own rolling baseline (median and MAD of its log ratios), closed when it is back."""

from __future__ import annotations

import math
import random

from probe.classify.events import Event, ThroughputTest, find_events


def _series(ratios: list[float], throttled: bool | None = None) -> list[ThroughputTest]:
    return [
        ThroughputTest("facebook", "AS7552", f"2026-11-{i + 1:02d}T00:00:00Z", r, throttled)
        for i, r in enumerate(ratios)
    ]


def test_event_opens_and_closes() -> None:
    rng = random.Random(3)
    normal = [rng.uniform(0.8, 1.2) for _ in range(10)]
    ratios = [*normal, 0.1, 0.12, 0.09, 0.11, 1.0, 0.95]
    (e,) = find_events(_series(ratios))
    assert (e.opened_at, e.closed_at) == ("2026-11-11T00:00:00Z", "2026-11-15T00:00:00Z")
    assert e.ratios == [0.1, 0.12, 0.09, 0.11]
    assert 0.8 < (e.baseline_ratio or 0) < 1.2


def test_single_dip_is_no_event_and_open_event_stays_open() -> None:
    assert find_events(_series([1.0] * 8 + [0.1] + [1.0] * 3)) == []
    (e,) = find_events(_series([1.0] * 8 + [0.2, 0.2, 0.2]))
    assert e.open


def test_without_history_the_throttled_verdicts_decide() -> None:
    (e,) = find_events(_series([0.1, 0.1, 0.1], throttled=True))
    assert e.open and e.baseline_ratio is None
    assert find_events(_series([0.1, 0.1, 0.1], throttled=False)) == []


def test_the_baseline_spread_is_the_median_absolute_deviation() -> None:
    """History's log ratios 1, 2, 0, 1.5, 0.5: median 1, MAD 0.5 (x 1.4826), so "well below"
    is a log ratio under 1 - 3 x 0.74 = -1.22 (ratio 0.295): 0.2 is below, 0.35 is not."""
    history = [math.exp(x) for x in (1.0, 2.0, 0.0, 1.5, 0.5)]
    (e,) = find_events(_series([*history, 0.2, 0.2]))
    assert e.opened_at == "2026-11-06T00:00:00Z"
    assert e.baseline_ratio is not None and math.isclose(e.baseline_ratio, math.e)
    assert find_events(_series([*history, 0.35, 0.35])) == []


def test_an_event_as_a_row() -> None:
    e = Event(
        "facebook",
        "AS7552",
        "2026-11-06T00:00:00Z",
        "2026-11-09T00:00:00Z",
        baseline_ratio=0.9,
        ratios=[0.1, 0.3, 0.2],
        labels=["ip_targeted", "sni_targeted", "ip_targeted"],
    )
    assert e.as_dict() == {
        "target": "facebook",
        "network": "AS7552",
        "opened_at": "2026-11-06T00:00:00Z",
        "closed_at": "2026-11-09T00:00:00Z",
        "tests": 3,
        "baseline_ratio": 0.9,
        "median_ratio": 0.2,
        "label": "ip_targeted",  # the most frequent, not the greatest
        "verdict": "throttled",  # in the verdicts' words (probe.words)
    }
    slow = Event("x", "", "t", labels=["target_slow_unattributed"])
    assert slow.as_dict()["verdict"] == "anomaly (slow)"
    empty = Event("x", "", "2026-11-06T00:00:00Z").as_dict()
    assert (empty["median_ratio"], empty["label"], empty["tests"]) == (None, None, 0)
    assert not e.open and Event("x", "", "t").open
