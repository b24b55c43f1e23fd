"""The classifier replayed over recorded observations (golden scenarios).

The recordings in ``tests/golden/scenarios`` were made by ``python -m tests.golden.record`` from
the real measuring code in the loopback world; each carries the verdict we expect, written by
hand in ``tests/golden/record.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from probe.classify import RULES, classify
from probe.model import control_from_json, observations_from_json
from tests.paths import GOLDEN

SCENARIOS = sorted((GOLDEN).glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_golden(path: Path) -> None:
    doc = _load(path)
    obs = observations_from_json(doc["observations"])
    v = classify(obs, control=control_from_json(doc["control"]), network_ok=doc["network_ok"])
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
        doc = _load(path)
        obs = observations_from_json(doc["observations"])
        v = classify(obs, control=control_from_json(doc["control"]), network_ok=doc["network_ok"])
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


def test_classifier_is_pure() -> None:
    doc = _load(SCENARIOS[0])
    obs = observations_from_json(doc["observations"])
    assert classify(obs, network_ok=True) == classify(obs, network_ok=True)
