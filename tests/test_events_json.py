"""``probe events --json``: one JSON document, as ``status --json`` and ``config --json`` print
(issue 21), holding the same events as ``--format jsonl``."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from probe.model import ThroughputAnalysis, ThroughputRecord
from probe.store import Store
from tests.dbs import measurement
from tests.runs import run_fresh


@pytest.fixture
def throttled(tmp_path: Path) -> Path:
    """Facebook well below its own history for its last three tests: one open event."""
    db = tmp_path / "e.db"
    s = Store.open(db)
    ratios = [1.0, 0.9, 1.1, 1.0, 0.95, 1.05, 0.1, 0.1, 0.12]
    for i, r in enumerate(ratios):
        s.save(
            replace(
                measurement("success_http", f"m{i}"),
                started_at=f"2026-11-{i + 1:02d}T00:00:00.000Z",
                target="facebook",
                probe_asn="AS7552",
                throughput=ThroughputRecord(
                    analysis=ThroughputAnalysis(ratio=r, label="sni_targeted")
                ),
            )
        )
    s.close()
    return db


def test_events_json_is_one_document(throttled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_fresh(["events", "--db", str(throttled), "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)  # one document, not lines
    assert isinstance(doc, dict) and out.count("\n") == 1
    code, lines, _ = run_fresh(["events", "--db", str(throttled), "--format", "jsonl"], capsys)
    assert code == 0
    assert doc["events"] == [json.loads(line) for line in lines.splitlines()]
    assert doc["db"] == str(throttled) and doc["count"] == len(doc["events"]) == 1
    (ev,) = doc["events"]
    assert ev["target"] == "facebook" and ev["network"] == "AS7552" and ev["closed_at"] is None
    code, out, _ = run_fresh(
        ["events", "--db", str(throttled), "--json", "--open", "--target", "nobody"], capsys
    )
    assert code == 0 and json.loads(out)["events"] == [] and json.loads(out)["count"] == 0


def test_events_json_and_format_jsonl_is_bad_input(
    throttled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_fresh(
        ["events", "--db", str(throttled), "--json", "--format", "jsonl"], capsys
    )
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert "--json" in err and "--format" in err


def test_events_json_of_a_missing_database_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_fresh(["events", "--db", str(tmp_path / "none.db"), "--json"], capsys)
    assert code == 2 and out == "" and len(err.splitlines()) == 1 and "none.db" in err
    assert not (tmp_path / "none.db").exists()
