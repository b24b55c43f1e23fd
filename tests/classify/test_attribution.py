"""Attribution of slowdowns (probe.classify.attribution): golden scenarios, one per cause and
ordinary variation with none, replayed by one parametrized test; and each rule's edges."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from probe.classify import attribution as A
from probe.classify.attribution import EdgeTest, attribute

NET = "AS7552"
T0 = datetime(2026, 3, 1, tzinfo=UTC)
HISTORY = 24  # hourly rounds before the change
CHANGE = 6  # rounds of it


@dataclass(frozen=True, slots=True)
class Site:
    name: str
    cls: str
    asn: str
    on_net: bool
    rtt: float  # ms
    mbps: float


SITES = (
    Site("facebook", "foreign_on_net", NET, True, 8, 12),
    Site("youtube", "foreign_on_net", NET, True, 6, 20),
    Site("wikipedia", "foreign_origin", "AS14907", False, 180, 5),
    Site("bbc", "foreign_origin", "AS2906", False, 200, 4),
    Site("nytimes", "foreign_origin", "AS54113", False, 190, 6),
    Site("vnexpress", "domestic", "AS18403", False, 10, 30),
    Site("tuoitre", "domestic", "AS7552", False, 12, 25),
)

Change = Callable[[Site], Site]
Label = Callable[[Site], str | None]


def served(s: Site) -> str:
    """The class where it was served from: a removed cache reads as a foreign origin."""
    if s.cls == "domestic":
        return "domestic"
    return "foreign_on_net" if s.on_net else "foreign_origin"


def series(
    change: Change = lambda s: s,
    label: Label = lambda s: None,
    *,
    seed: int = 0,
    recover: bool = True,
) -> list[EdgeTest]:
    """Every site once a round: ``HISTORY`` ordinary rounds, ``CHANGE`` with ``change`` applied,
    then (``recover``) ordinary again; rates and RTTs vary as a real link's do (about +-25%)."""
    rng = random.Random(seed)
    rounds = HISTORY + CHANGE + (4 if recover else 0)
    out = []
    for r in range(rounds):
        at = (T0 + timedelta(hours=r)).isoformat().replace("+00:00", "Z")
        during = HISTORY <= r < HISTORY + CHANGE
        for base in SITES:
            s = change(base) if during else base
            out.append(
                EdgeTest(
                    s.name,
                    NET,
                    at,
                    s.mbps * 1e6 * rng.uniform(0.75, 1.25),
                    served(s),
                    s.asn,
                    s.on_net,
                    s.rtt * rng.uniform(0.9, 1.3),
                    label(s) if during else None,
                )
            )
    return out


def slower(
    names: set[str] | None = None, *, by: float = 0.2, classes: set[str] | None = None
) -> Change:
    def change(s: Site) -> Site:
        if (names is None or s.name in names) and (classes is None or s.cls in classes):
            return replace(s, mbps=s.mbps * by)
        return s

    return change


def cache_removed(s: Site) -> Site:
    if s.name != "facebook":
        return s
    return replace(s, asn="AS32934", on_net=False, rtt=45, mbps=2)


SCENARIOS: dict[str, tuple[list[EdgeTest], dict[str, str]]] = {
    "local_cache_removed": (series(cache_removed), {"facebook": "local_cache_removed"}),
    "international_degraded": (
        series(slower(classes={"foreign_origin"})),
        {n: "international_degraded" for n in ("wikipedia", "bbc", "nytimes")},
    ),
    "congestion": (
        series(slower(by=0.25)),
        {s.name: "congestion" for s in SITES},
    ),
    "targeted": (
        series(slower({"facebook"}), lambda s: "sni_targeted" if s.name == "facebook" else None),
        {"facebook": "targeted"},
    ),
    "unknown: one origin slow alone": (series(slower({"bbc"})), {"bbc": "unknown"}),
    "cache removed and not back": (
        series(cache_removed, recover=False),
        {"facebook": "local_cache_removed"},
    ),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_each_scenario_gets_its_cause(name: str) -> None:
    tests, expected = SCENARIOS[name]
    found = attribute(tests)
    assert {e.target: e.cause for e in found} == expected
    for e in found:
        assert e.rules_version == A.RULES_VERSION and e.basis
        assert e.rule_id == next(r.id for r in A.RULES if r.cause == e.cause)
        assert e.opened_at == (T0 + timedelta(hours=HISTORY)).isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize("seed", range(20))
def test_ordinary_variation_gets_no_attribution(seed: int) -> None:
    assert attribute(series(seed=seed)) == []


def test_a_removed_cache_carries_the_edge_and_rtt_before_and_after() -> None:
    (e,) = attribute(SCENARIOS["local_cache_removed"][0])
    ev = e.evidence
    assert (ev["before"]["edge_asn"], ev["after"]["edge_asn"]) == (NET, "AS32934")
    assert (ev["before"]["on_net"], ev["after"]["on_net"]) == (True, False)
    assert 7 < ev["before"]["rtt_ms"] < 11 and 40 < ev["after"]["rtt_ms"] < 60
    assert 10e6 < ev["before"]["bps"] < 14e6 and 1.5e6 < ev["after"]["bps"] < 2.5e6
    assert ev["target_class"] == "foreign_on_net"  # what it was, not where it went
    assert ev["foreign_others"]["slow"] == 0 and ev["foreign_others"]["judged"] == 4
    assert e.closed_at is not None and e.as_dict()["cause"] == "local_cache_removed"
    # Not the censor's doing: slow, not throttled, in the verdicts' words.
    assert e.verdict == "anomaly (slow)"
    (t,) = attribute(SCENARIOS["targeted"][0])
    assert t.verdict == "throttled"


def test_an_event_without_a_cause_has_the_events_keys_only() -> None:
    from probe.classify.events import Event

    assert "cause" not in Event("a", NET, "2026-03-01T00:00:00Z").as_dict()


def _facts(**kw: object) -> A.Facts:
    side = A.Side(10, 12e6, 8.0, NET, True)
    base = {
        "target_class": "foreign_on_net",
        "labels": (),
        "before": side,
        "after": A.Side(6, 2e6, 45.0, "AS32934", False),
        "domestic": A.Tally(0, 2),
        "foreign_others": A.Tally(0, 4),
        "origins": A.Tally(0, 3),
    }
    return A.Facts(**{**base, **kw})  # type: ignore[arg-type]


def test_a_cache_is_removed_only_with_every_part_of_its_basis() -> None:
    assert A.judge(_facts()).cause == "local_cache_removed"
    stayed = A.Side(6, 2e6, 45.0, NET, True)
    near = A.Side(6, 2e6, 11.0, "AS32934", False)  # left, but round trips barely rose
    for why, f in {
        "stayed inside": _facts(after=stayed),
        "rtt did not rise": _facts(after=near),
        "others slowed too": _facts(foreign_others=A.Tally(3, 4)),
        "no other foreign site to compare": _facts(foreign_others=A.Tally(0, 0)),
        "an origin, not a cache": _facts(target_class="foreign_origin"),
    }.items():
        assert A.judge(f).cause != "local_cache_removed", why


def test_targeted_needs_most_tests_labelled() -> None:
    assert A.judge(_facts(labels=("sni_targeted", "ip_targeted", "stall"))).cause == "targeted"
    assert A.judge(_facts(labels=("sni_targeted", "stall"))).cause != "targeted"


def test_international_and_congestion_need_their_controls() -> None:
    origin = {"target_class": "foreign_origin", "after": A.Side(6, 1e6, 190.0, "AS1", False)}
    slow_origins = A.Tally(3, 3)
    assert A.judge(_facts(**origin, origins=slow_origins)).cause == "international_degraded"
    # Domestic sites slowed too: the volunteer's link.
    both = _facts(**origin, origins=slow_origins, domestic=A.Tally(2, 2))
    assert A.judge(both).cause == "congestion"
    # No domestic site measured: cannot tell the link from the international capacity.
    blind = _facts(**origin, origins=slow_origins, domestic=A.Tally(0, 0))
    assert A.judge(blind).cause == "unknown"
    # The target alone among origins: one slow origin is not "foreign sites together".
    alone = _facts(**origin, origins=A.Tally(1, 3))
    assert A.judge(alone).cause == "unknown"
