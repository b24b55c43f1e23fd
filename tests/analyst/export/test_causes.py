"""Exports carry where each site was served from and the cause of the slowdown a test falls
in (issue 25): JSON Lines, CSV and the Parquet schema, from the same stored removed cache."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from probe.analyst.export.causes import cause_index
from probe.analyst.export.records import records
from probe.store import RowFilter
from tests.analyst.report.test_causes import _store

pq = pytest.importorskip("pyarrow.parquet")

CHANGED = ("2026-03-02T00", "2026-03-02T05")  # the removed cache's six rounds


def _during(at: str) -> bool:
    return CHANGED[0] <= at[:13] <= CHANGED[1]


def test_jsonl_and_csv_carry_the_edges_the_class_and_the_cause(tmp_path: Path) -> None:
    from probe.analyst.export.csv import write_csv

    store = _store(tmp_path)
    try:
        recs = list(records(store))
        buf = io.BytesIO()
        write_csv(store, RowFilter(), buf)
    finally:
        store.close()
    for r in recs:
        tp = r["throughput"]
        want = (
            "local_cache_removed"
            if r["target"] == "facebook" and _during(r["started_at"])
            else None
        )
        assert tp["cause"] == want, (r["target"], r["started_at"])
        assert tp["target_class"] and list(tp["edges"][0]["roles"]) == ["target"]
    moved = next(r for r in recs if r["target"] == "facebook" and _during(r["started_at"]))
    assert (moved["throughput"]["edges"][0]["asn"], moved["throughput"]["edges"][0]["on_net"]) == (
        "AS32934",
        False,
    )
    rows = list(csv.DictReader(io.StringIO(buf.getvalue().decode())))
    causes = [json.loads(r["throughput"])["cause"] for r in rows]
    assert (
        causes.count("local_cache_removed") == 6 == sum(1 for r in recs if r["throughput"]["cause"])
    )


def test_parquet_has_the_edge_columns_and_the_cause(tmp_path: Path) -> None:
    from probe.analyst.export.parquet import write_dataset

    store = _store(tmp_path)
    try:
        write_dataset(store, RowFilter(), str(tmp_path / "ds"))
    finally:
        store.close()
    table = pq.read_table(tmp_path / "ds")
    rows = table.select(
        [
            "target",
            "started_at",
            "target_class",
            "edge_asn",
            "edge_on_net",
            "edge_rtt_ms",
            "slowdown_cause",
        ]
    ).to_pylist()
    fb = [r for r in rows if r["target"] == "facebook"]
    moved = [r for r in fb if r["slowdown_cause"] == "local_cache_removed"]
    assert len(moved) == 6 and all(
        r["edge_asn"] == "AS32934" and r["edge_on_net"] is False for r in moved
    )
    assert all(r["edge_rtt_ms"] > 30 for r in moved)
    assert {r["slowdown_cause"] for r in rows if r not in moved} == {None}
    assert {r["target_class"] for r in rows if r["target"] == "vnexpress"} == {"domestic"}


def test_the_index_answers_within_a_slowdown_only(tmp_path: Path) -> None:
    store = _store(tmp_path)
    try:
        index = cause_index(store)
    finally:
        store.close()
    assert index.cause("facebook", "AS7552", "2026-03-02T02:00:00.000Z") == "local_cache_removed"
    assert index.cause("facebook", "AS7552", "2026-03-01T02:00:00.000Z") is None  # before
    assert index.cause("facebook", "AS7552", "2026-03-02T06:00:00.000Z") is None  # back
    assert index.cause("facebook", "AS1", "2026-03-02T02:00:00.000Z") is None  # elsewhere
    assert index.cause("bbc", "AS7552", "2026-03-02T02:00:00.000Z") is None
