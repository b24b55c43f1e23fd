"""The store's typed read (probe.store.reads): ``Store.stored`` gives back, oldest first and
streamed, what was saved: the verdict, the observations (without bodies), the control evidence,
the throughput test and the row's columns as typed fields."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from probe.store import STORED_COLUMNS, RowFilter, Store, Stored
from tests.dbs import SCENARIOS, helper_saw_it_work, measurement


def test_stored_gives_back_what_was_saved(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "p.db")
    saved = [
        measurement(
            name,
            f"m{i:03d}",
            started_at=f"2026-11-01T00:{i:02d}:00.000Z",
            control=helper_saw_it_work(name) if i % 2 else None,
            probe_asn="AS7552" if i % 3 else None,
            resolver="udp://192.0.2.1:53",
        )
        for i, name in enumerate(SCENARIOS)
    ]
    for m in saved:
        store.save(m)
    got = list(store.stored(RowFilter()))
    assert [s.id for s in got] == [m.id for m in saved]
    for m, s in zip(saved, got, strict=True):
        assert isinstance(s, Stored)
        assert s.verdict == m.verdict
        assert s.control == m.control
        assert s.throughput == m.throughput
        no_bodies = tuple(replace(h, body=None) for h in m.observations.http)
        assert s.observations == replace(m.observations, http=no_bodies)
        assert (s.is_control, s.network_ok, s.category) == (
            m.is_control,
            m.network_ok,
            m.category,
        )
        assert s.network == (m.probe_asn or m.resolver)
    store.close()


def test_the_columns_it_reads_are_the_stores_own(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "p.db")
    derived = {"network"}
    assert set(STORED_COLUMNS) - derived <= set(store.columns())
    store.close()
