"""The exporters that read columns in bulk (CSV, Parquet) name only columns the store has, and
take their lists from its one declaration (``STORED_COLUMNS``), so a renamed or dropped column
fails here rather than in an analyst's export."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.analyst.export import csv, parquet
from probe.analyst.export.records import FLAT
from probe.store import EXPORT_COLUMNS, STORED_COLUMNS, Store, Stored
from probe.store.reads import STORED_FLAT, STORED_JSON

READERS = {"csv": csv._SQL, "parquet": parquet._READ}


@pytest.mark.parametrize("name", READERS)
def test_every_column_an_exporter_reads_is_the_stores(name: str, tmp_path: Path) -> None:
    store = Store.open(tmp_path / "p.db")
    have = set(store.columns()) | set(EXPORT_COLUMNS)
    unknown = [c for c in READERS[name] if c not in have]
    assert not unknown, f"{name} reads columns the store does not have: {unknown}"


@pytest.mark.parametrize("name", READERS)
def test_bulk_readers_take_the_stores_flat_columns(name: str) -> None:
    assert READERS[name][: len(STORED_FLAT)] == STORED_FLAT


def test_the_flat_and_json_columns_are_the_stored_ones() -> None:
    assert set(STORED_FLAT) | set(STORED_JSON) == set(STORED_COLUMNS)
    assert set(STORED_JSON) <= set(Stored.__struct_fields__)


def test_the_records_flat_fields_are_stored_columns() -> None:
    """CSV writes the record's flat fields from the columns it reads: each must be one."""
    assert set(FLAT) - {"verdict"} <= set(STORED_FLAT)


def test_parquets_schema_reads_only_stored_columns() -> None:
    """Every Parquet column that is not computed is read by that name from the store."""
    read = [n for n, _ in parquet.FLAT + parquet.ADDED if n not in parquet._COMPUTED]
    assert set(read) <= set(parquet._READ)
    assert {n for n, _ in parquet.NESTED} - {"dns", "tcp", "tls", "http"} <= set(parquet._READ)
