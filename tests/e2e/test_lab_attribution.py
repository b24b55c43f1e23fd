"""Why is it slow, end to end (issue 25): probe rounds through the international lab
(tests/lab/international.py), each cause made for real, and the attribution read back from the
stored measurements; ordinary variation, twenty times, gives none.

A shared history of ordinary rounds first (the attribution judges each site by its own past),
then each scenario on a copy of it: the change, then rounds under it.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from probe.classify.attribution import attribute
from probe.store import Store
from tests.lab import LabUnavailable, check_available
from tests.lab.international import IntlLab, running_intl_lab

# Rounds take seconds each; the shared history and the twenty repetitions run in fixtures.
pytestmark = [pytest.mark.lab, pytest.mark.timeout(600)]

HISTORY = 6  # ordinary rounds before any change: the events' min_history and one more
UNDER = 3  # rounds under a change (an event opens after two)
REPEATS = 20


@pytest.fixture(scope="module")
def lab() -> Iterator[IntlLab]:
    try:
        check_available()
    except LabUnavailable as exc:
        pytest.skip(str(exc))
    with running_intl_lab() as lab:
        yield lab


@pytest.fixture(scope="module")
def history(lab: IntlLab) -> Path:
    db = lab.tmp / "history.db"
    lab.rounds([db], HISTORY)
    return db


def _copy(src: Path, dst: Path) -> Path:
    """A database and its device key, as a volunteer's machine would hold them."""
    with (
        contextlib.closing(sqlite3.connect(src)) as a,
        contextlib.closing(sqlite3.connect(dst)) as b,
    ):
        a.backup(b)
    key = src.with_name(src.name + ".key")
    if key.exists():
        shutil.copy2(key, dst.with_name(dst.name + ".key"))
    return dst


def _causes(db: Path) -> dict[str, Any]:
    store = Store.open(db)
    try:
        found = attribute(store.edge_tests())
    finally:
        store.close()
    return {e.target: (e.cause, e.evidence) for e in found}


SCENARIOS: dict[str, tuple[Callable[[IntlLab], Any], dict[str, str]]] = {
    "local cache removed": (lambda lab: lab.cache_removed(), {"fb": "local_cache_removed"}),
    "international capacity degraded": (
        lambda lab: lab.international_degraded(),
        {"wiki": "international_degraded", "bbc": "international_degraded"},
    ),
    "congestion of the access link": (
        lambda lab: lab.congestion(),
        {n: "congestion" for n in ("dom1", "dom2", "fb", "wiki", "bbc")},
    ),
    # An address throttled with no helper to show it: neither targeting nor a removed cache
    # can be claimed; the edge stayed where it was.
    "cache throttled, no evidence": (lambda lab: lab.cache_throttled(), {"fb": "unknown"}),
}


def test_a_named_throttle_the_helper_shows_is_targeted(lab: IntlLab, history: Path) -> None:
    """Facebook's name throttled (its Host header, its SNI): with the helper abroad, the SNI
    A/B test labels it, and the slowdown is attributed to targeting, not to the cache."""
    db = _copy(history, lab.tmp / "targeted.db")
    with lab.targeted():
        # Trials long and many enough for a significant test (Mann-Whitney over 1-second
        # rates, Bonferroni-corrected for the round's five tests); two rounds open the event.
        lab.rounds([db], 2, helper=True, throughput_seconds="4", throughput_trials="3")
    found = _causes(db)
    assert {t: c for t, (c, _) in found.items()} == {"fb": "targeted"}, found
    assert found["fb"][1]["after"]["edge_asn"] == "AS64500"  # still the cache


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_each_cause_gets_its_attribution(lab: IntlLab, history: Path, name: str) -> None:
    change, expected = SCENARIOS[name]
    db = _copy(history, lab.tmp / f"{name.replace(' ', '-')}.db")
    with change(lab):
        lab.rounds([db], UNDER)
    found = _causes(db)
    assert {t: c for t, (c, _) in found.items()} == expected, found
    if name == "local cache removed":
        ev = found["fb"][1]
        assert (ev["before"]["edge_asn"], ev["after"]["edge_asn"]) == ("AS64500", "AS64530")
        assert ev["before"]["rtt_ms"] < 5 < 30 < ev["after"]["rtt_ms"]  # the delay line's 40 ms
        assert ev["after"]["bps"] < ev["before"]["bps"] / 2


@pytest.fixture(scope="module")
def ordinary(lab: IntlLab, history: Path) -> list[dict[str, Any]]:
    dbs = [_copy(history, lab.tmp / f"ordinary-{i}.db") for i in range(REPEATS)]
    lab.rounds(dbs, 2)  # two: enough for an event to open, were there one
    return [_causes(db) for db in dbs]


@pytest.mark.parametrize("i", range(REPEATS))
def test_ordinary_variation_gets_no_attribution(ordinary: list[dict[str, Any]], i: int) -> None:
    assert ordinary[i] == {}
