"""Datasette serves any probe database with probe's metadata (through Datasette's own test
client): descriptions of every table, view and column, and the canned queries."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from probe.cli import main
from probe.store import Store
from probe.timeutil import iso
from tests.dbs import measurement

datasette_app = pytest.importorskip("datasette.app")


def _fleet(path: Path) -> Path:
    now = datetime.now(UTC)
    store = Store.open(path)
    store.save(measurement("dns_nxdomain", "today", started_at=iso(now), probe_asn="AS7552"))
    store.save(measurement("dns_nxdomain", "old", started_at=iso(now - timedelta(days=3))))
    store.save(measurement("success_http", "fine", started_at=iso(now)))
    for i, (ratio, throttled) in enumerate([(0.1, True), (0.2, True), (0.9, False)]):
        m = measurement("success_https", f"tp{i}", started_at=iso(now), probe_asn="AS7552")
        doc = {"analysis": {"ratio": ratio, "label": "sni_targeted" if throttled else None}}
        store.save(replace(m, verdict=replace(m.verdict, throttled=throttled), throughput=doc))
    store.close()
    return path


def _get(ds: Any, path: str) -> Any:
    async def go() -> Any:
        await ds.invoke_startup()
        r = await ds.client.get(path)
        assert r.status_code == 200, f"{path}: {r.status_code}"
        return r.json() if ".json" in path else r.text

    return asyncio.run(go())


def test_datasette_serves_a_probe_database_with_probes_metadata(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _fleet(tmp_path / "fleet.db")
    assert main(["datasette-metadata", str(db)]) == 0
    meta = json.loads(capsys.readouterr().out)
    ds = datasette_app.Datasette([str(db)], metadata=meta)
    blocked = _get(ds, "/fleet/blocked_today.json?_shape=array")
    assert [r["id"] for r in blocked] == ["today"]
    assert blocked[0]["network"] == "AS7552" and blocked[0]["failure"] == "dns_nxdomain_error"
    throttled = _get(ds, "/fleet/throttled_targets_by_network.json?_shape=array")
    assert throttled == [
        {
            "network": "AS7552",
            "target": "success_https",
            "tests": 3,
            "throttled": 2,
            "mean_ratio": 0.4,
            "labels": "sni_targeted",
            "last_throttled": throttled[0]["last_throttled"],
        }
    ]
    daily = _get(ds, "/fleet/daily_blocking.json?_shape=array")
    assert sum(r["blocked"] for r in daily) == 2
    page = _get(ds, "/fleet/measurements")
    assert (
        "OONI Web Connectivity&#39;s blocking" in page or "OONI Web Connectivity's blocking" in page
    )
    assert "Blocked today" in _get(ds, "/fleet")


def test_every_table_view_and_column_is_described(tmp_path: Path) -> None:
    from probe.analyst.datasette import metadata

    store = Store.open(tmp_path / "probe.db")
    tables = metadata()["databases"]["probe"]["tables"]
    for name in store.db.table_names() + store.db.view_names():
        assert name in tables, f"{name}: no description in probe/data/datasette.json"
        if name.startswith("_"):
            continue
        columns = [c.name for c in store.db[name].columns]
        described = tables[name].get("columns", {})
        assert set(columns) == set(described), f"{name}: {set(columns) ^ set(described)}"
        assert all(described.values()) and tables[name]["description"]
