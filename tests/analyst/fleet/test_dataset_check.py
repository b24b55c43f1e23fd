"""The dataset's check of a record (``Dataset._check``: the merge's check first, the column
scan only when it objects or the row may hold what the scan refuses) against its reference,
the scan first and then the merge's check: the same row, or the same reason, for any JSON
values in any columns."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from probe import words
from probe.analyst.fleet import dataset
from probe.analyst.merge import M_COLUMNS, Bad, check_measurement
from probe.evidence import canonical
from probe.store.rows import verdict_from_row
from tests.analyst.fleet.test_dataset import Rows, json_values
from tests.dbs import golden_db


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> Rows:
    db = golden_db(tmp_path_factory.mktemp("golden") / "probe.db", days=1)
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    return Rows(dict(r) for r in con.execute("SELECT * FROM measurements ORDER BY seq"))


def reference(values: dict[str, Any]) -> dict[str, Any]:
    """The check as it was: every column scanned, then the merge's check, the chain's columns,
    the record hash, the words anew."""
    for c in (*M_COLUMNS, *dataset.CHAIN_COLUMNS):
        v = values.get(c)
        if isinstance(v, str) and not dataset._utf8(v):
            raise Bad(f"{c}: not UTF-8 text (a lone surrogate)")
        if isinstance(v, int) and not -(2**63) <= v < 2**63:
            raise Bad(f"{c}: a number out of range (64 bits)")
    checked = check_measurement({k: values.get(k) for k in M_COLUMNS}, False)
    row = {c: getattr(checked.row, c) for c in M_COLUMNS}
    for c, t in dataset.CHAIN_COLUMNS.items():
        v = values.get(c)
        wrong = isinstance(v, bool) or not isinstance(v, int if t == pa.int64() else str)
        if v is not None and wrong:
            raise Bad(f"{c}: {type(v).__name__}, not {t}")
        row[c] = v
    if row["seq"] is not None and row["seq"] < 1:
        raise Bad("seq: not a place in a chain (they start at 1)")
    if row["record_hash"] is not None:
        try:
            ours = canonical.record_hash(values)
        except (ValueError, TypeError) as exc:
            raise Bad(f"record_hash: the record has no canonical form ({exc})") from None
        if ours != row["record_hash"]:
            raise Bad("record_hash: not the hash of the record (altered on the way)")
    tp = checked.throughput
    analysis = tp.analysis if tp is not None else None
    row["throughput_label"] = analysis.label if analysis is not None else None
    row["throughput_ratio"] = analysis.ratio if analysis is not None else None
    row["verdict"] = words.of(verdict_from_row(row), throttle_label=row["throughput_label"])
    return row


def outcome(fn: Any, values: dict[str, Any]) -> tuple[str, Any]:
    try:
        row = fn(values)
    except Bad as bad:
        return ("bad", bad.reason)
    return ("ok", row)


def ours(values: dict[str, Any]) -> dict[str, Any]:
    ds = dataset.Dataset(Path("/nonexistent"), None)  # type: ignore[arg-type]
    return ds._check(values, None)


big = st.sampled_from([2**63, -(2**63) - 1, 2**70, 2**64 - 1, 2**63 - 1, "\ud800", "x\udfff"])


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.integers(0, 1000),
    draw_hash=st.booleans(),
    dropped=st.sets(st.sampled_from(M_COLUMNS), max_size=2) | st.just(set()),
    extra=st.booleans(),
    changes=st.lists(
        st.tuples(st.sampled_from([*M_COLUMNS, *dataset.CHAIN_COLUMNS]), json_values | big),
        max_size=3,
    ),
)
@example(which=0, draw_hash=True, dropped=set(), extra=False, changes=[("runtime", 2**70)])
@example(which=0, draw_hash=True, dropped={"target"}, extra=True, changes=[])
@example(which=0, draw_hash=True, dropped={"category"}, extra=False, changes=[])
@example(
    which=0, draw_hash=True, dropped=set(), extra=False, changes=[("body_proportion", -(2**63) - 1)]
)
@example(which=0, draw_hash=True, dropped=set(), extra=False, changes=[("bytes_used", 2**64)])
@example(
    which=0,
    draw_hash=True,
    dropped=set(),
    extra=False,
    changes=[("target", 2**70), ("id", "\ud800")],
)
@example(
    which=0,
    draw_hash=True,
    dropped=set(),
    extra=False,
    changes=[("observations", '{"url": "\ud800"}')],
)
@example(
    which=0,
    draw_hash=True,
    dropped=set(),
    extra=False,
    changes=[("blockpage", "a\ud800"), ("target", 5)],
)
def test_the_check_judges_as_the_scan_then_the_merge(
    rows: Rows,
    which: int,
    changes: list[tuple[str, Any]],
    draw_hash: bool,
    dropped: set[str],
    extra: bool,
) -> None:
    values = dict(rows[which % len(rows)])
    for name, value in changes:
        values[name] = value
    for name in dropped:  # a column the record lacks reads as null
        del values[name]
    if extra:  # and one no probe writes is not read
        values["zz_column"] = "\ud800"
    values = json.loads(json.dumps(values))  # as a batch carries them
    if draw_hash:  # the record hash of the changed record, so that the rest is checked too
        with contextlib.suppress(ValueError, TypeError):
            values["record_hash"] = canonical.record_hash(values)
    assert outcome(ours, values) == outcome(reference, values)


def test_the_verdicts_remembered_are_the_verdicts(rows: Rows) -> None:
    for r in rows:
        row = dict(r) | {"throughput_label": None}
        expected = words.of(verdict_from_row(row), throttle_label=None)
        assert dataset._verdict_words(row) == expected
        assert dataset._verdict_words(row) == expected  # remembered


def test_the_files_keep_no_statistics_of_the_json_texts(rows: Rows, tmp_path: Path) -> None:
    # A min and a max of kilobytes of JSON text in every page and row group make the files a
    # tenth larger and filter nothing; the other columns keep theirs (DuckDB prunes by them).
    ds = dataset.Dataset.open(tmp_path / "ds")
    for i in range(0, len(rows), 10):  # batches of ten: several files a partition
        part = [dict(r) for r in rows[i : i + 10]]
        ds.add(f"{i:064x}", part, device_key=rows[0]["device_key"])
    assert ds.counts()["measurements"] == len(rows)
    stats_of(tmp_path / "ds")
    assert ds.compact(min_files=2) > 0  # a compaction writes the files again
    stats_of(tmp_path / "ds")


def stats_of(root: Path) -> None:
    import pyarrow.parquet as pq

    files = sorted((root / "measurements").rglob("*.parquet"))
    assert files
    for f in files:
        meta = pq.ParquetFile(f).metadata
        names = [meta.schema.column(i).name for i in range(meta.num_columns)]
        group = meta.row_group(0)
        stats = {n: group.column(i).is_stats_set for i, n in enumerate(names)}
        assert not any(stats[n] for n in dataset.NO_STATISTICS if n in stats), f
        assert stats["started_at"] and stats["target"], f
