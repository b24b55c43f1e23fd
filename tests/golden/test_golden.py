"""The classifier replayed over recorded observations (golden scenarios).

The recordings in ``tests/golden/scenarios`` were made by ``python -m tests.golden.record`` from
the real measuring code in the loopback world; each carries the verdict we expect, written by
hand in ``tests/golden/record.py``. A golden that names a ``fingerprints`` file (a user-supplied
OONI fingerprint file) is replayed with it beside the built-in set, as it was measured.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from probe.classify import RULES, classify
from probe.model import Verdict, control_from_json, observations_from_json
from tests.golden.record import fingerprints_of
from tests.paths import GOLDEN

SCENARIOS = sorted((GOLDEN).glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _replay(doc: dict[str, Any]) -> Verdict:
    return classify(
        observations_from_json(doc["observations"]),
        control=control_from_json(doc["control"]),
        fingerprints=fingerprints_of(doc.get("fingerprints")),
        network_ok=doc["network_ok"],
    )


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_golden(path: Path) -> None:
    doc = _load(path)
    v = _replay(doc)
    assert "rule_id" in doc["expected"], f"{path.stem}: every golden pins its rule"
    for key, want in doc["expected"].items():
        assert getattr(v, key) == want, f"{path.stem}: {key} = {getattr(v, key)!r}, want {want!r}"


def test_there_are_enough_scenarios() -> None:
    assert len(SCENARIOS) >= 25


def test_rules_have_unique_ids_and_reasons() -> None:
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    assert all(r.why for r in RULES)
    assert RULES[-1].id == "undetermined"


def test_every_blocking_value_is_reached() -> None:
    seen = set()
    for path in SCENARIOS:
        v = _replay(_load(path))
        seen.add((v.blocking, v.accessible))
    assert {
        (False, True),
        (False, False),
        ("dns", False),
        ("tcp_ip", False),
        ("http-failure", False),
        ("http-diff", False),
        (None, None),
    } <= seen


def test_every_rule_is_some_goldens_verdict() -> None:
    """A rule no recording reaches can be deleted, or its verdict changed, and every golden
    still passes. The catch-all ``undetermined`` is reached too (a page loaded with neither a
    control resolver nor a helper: nothing to compare), so no rule is exempt."""
    reached = {_replay(_load(path)).rule_id for path in SCENARIOS}
    assert reached == {r.id for r in RULES}, (
        f"no golden reaches {sorted(set(r.id for r in RULES) - reached)}"
    )


def test_classifier_is_pure() -> None:
    doc = _load(SCENARIOS[0])
    obs = observations_from_json(doc["observations"])
    assert classify(obs, network_ok=True) == classify(obs, network_ok=True)
