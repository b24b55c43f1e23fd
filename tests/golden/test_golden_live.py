"""Golden scenarios, live: every one measured again as a round measures it.

- Fresh: a stored recording equals a new one (timings, byte counts, certificates and port
  numbers aside), so a golden recorded by older code fails here and is re-recorded with
  ``python -m tests.golden.record``.
- Live equals replayed (issue 9, defect 5): each live measurement is stored, ``probe
  reclassify`` runs over the database, and every verdict field read back equals the live one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from probe.model import Measurement
from probe.store import Store
from probe.store.reclassify import reclassify
from tests.golden.record import (
    HERE,
    SCENARIOS,
    fingerprints_of,
    helper_for,
    normalised,
    record_one,
)
from tests.world import World

Live = dict[str, tuple[dict[str, Any], Measurement]]


@pytest.fixture(scope="module")
def live(world: World) -> Iterator[Live]:
    with helper_for(world) as base:
        yield {name: record_one(world, name, base) for name in SCENARIOS}


def test_every_scenario_is_recorded() -> None:
    stored = {p.stem for p in HERE.glob("*.json")}
    assert stored == set(SCENARIOS), "run: python -m tests.golden.record"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_golden_recording_is_fresh(live: Live, name: str) -> None:
    stored = json.loads((HERE / f"{name}.json").read_text(encoding="utf-8"))
    fresh, _ = live[name]
    assert normalised(stored) == normalised(fresh), (
        f"{name}: the stored recording is stale; run: python -m tests.golden.record"
    )


def test_live_and_replayed_verdicts_agree(live: Live, tmp_path: Path) -> None:
    # One database per fingerprint file: ``probe reclassify`` takes one set for a whole store.
    groups: dict[str | None, list[Measurement]] = {}
    for name, (_, m) in live.items():
        groups.setdefault(SCENARIOS[name].fingerprints, []).append(m)
    by_target = {m.target: m for _, m in live.values()}
    for n, (fps, ms) in enumerate(groups.items()):
        store = Store.open(tmp_path / f"golden{n}.db")
        for i, m in enumerate(ms):
            store.save(replace_id(m, f"g{i:03d}"))
        assert reclassify(store, fingerprints_of(fps)) == (len(ms), 0)
        for row in store.rows():
            assert store.verdict(row) == by_target[row["target"]].verdict, row["target"]


def replace_id(m: Measurement, mid: str) -> Measurement:
    from dataclasses import replace

    return replace(m, id=mid, network_ok=SCENARIOS[m.target].network_ok)
