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


def test_the_baseline_is_the_last_twenty_tests() -> None:
    """21 tests of history: a 4.0, then ten at 1.0 and ten at 2.0. The baseline is the median of
    the last 20 (ten and ten: sqrt(2)); the 4.0 is out of the window (with it, 2.0)."""
    (e,) = find_events(_series([4.0] + [1.0] * 10 + [2.0] * 10 + [0.01, 0.01]))
    assert e.baseline_ratio is not None and math.isclose(e.baseline_ratio, math.sqrt(2))


def test_a_single_dip_counts_in_the_baseline() -> None:
    """A test below the baseline, then one back: no event, and both join the history (the
    baseline is of the tests outside any event). History 1, 1, 1, 2, 2, 2, then 0.1 and 2:
    eight log ratios, median (0 + log 2) / 2, so the later event's baseline is sqrt(2) (2
    without the dip)."""
    ratios = [1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 0.1, 2.0]
    assert find_events(_series(ratios)) == []
    (e,) = find_events(_series([*ratios, 0.01, 0.01]))
    assert e.baseline_ratio is not None and math.isclose(e.baseline_ratio, math.sqrt(2))


def test_a_single_test_with_nothing_through_is_no_event() -> None:
    """A ratio of zero (the target got nothing) is below, but alone it is no event; the
    history goes on (log 0 is left out of it)."""
    assert find_events(_series([1.0] * 8 + [0.0] + [1.0] * 3)) == []
    (e,) = find_events(_series([1.0] * 8 + [0.0] + [1.0] * 3 + [0.1, 0.1]))
    assert e.baseline_ratio == 1.0


def test_an_event_s_label_counts_the_tests_after_it_opened() -> None:
    """Opened by two sni_targeted tests, it goes on with three ip_targeted ones: the most
    common label of all five is ip_targeted."""
    ts = [ThroughputTest("fb", "AS1", f"2026-11-{i + 1:02d}T00:00:00Z", 1.0) for i in range(6)]
    for i, label in enumerate(["sni_targeted"] * 2 + ["ip_targeted"] * 3, 6):
        ts.append(ThroughputTest("fb", "AS1", f"2026-11-{i + 1:02d}T00:00:00Z", 0.1, True, label))
    (e,) = find_events(ts)
    assert e.labels == ["sni_targeted"] * 2 + ["ip_targeted"] * 3 and e.label == "ip_targeted"
