"""The dataset's own contract: an explicit schema, and any record a signed batch may carry
(JSON values in any field) added or quarantined with a reason, never a crash."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe.analyst.fleet import query
from probe.analyst.fleet.dataset import (
    CHAIN_COLUMNS,
    DERIVED_COLUMNS,
    SCHEMA,
    Dataset,
    FleetError,
    _arrow_type,
    encode_value,
    partition_of,
)
from probe.analyst.merge import M_COLUMNS
from tests.dbs import golden_db
from tests.strategies import values

# What a signed batch's JSON may hold that no honest probe writes: numbers past 53 and 64
# bits, a lone surrogate (JSON's "\ud800" escape), and the usual junk.
edges = st.sampled_from([2**53 + 1, 2**63, -(2**63) - 1, 2**70, 1e300, "\ud800", "a\x00b", -1, 0])
json_values = st.recursive(
    st.one_of(edges, values.filter(lambda v: not isinstance(v, float) or v == v)),  # no NaN
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=5,
)


class Rows(list[dict[str, Any]]):
    def __repr__(self) -> str:  # Hypothesis prints its arguments: not 200 kB of rows
        return f"<{len(self)} golden rows>"


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> Rows:
    db = golden_db(tmp_path_factory.mktemp("golden") / "probe.db", days=1)
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    return Rows(dict(r) for r in con.execute("SELECT * FROM measurements ORDER BY seq"))


def test_the_schema_is_every_column_of_the_merges_row_type_by_name() -> None:
    names = SCHEMA.names
    chain = [c for c in CHAIN_COLUMNS if c not in M_COLUMNS]
    assert names == [*M_COLUMNS, *chain, *DERIVED_COLUMNS] and len(set(names)) == len(names)
    types = dict(zip(names, SCHEMA.types, strict=True))
    assert types["is_control"] == pa.int8() and types["runtime"] == pa.float64()
    assert types["bytes_used"] == pa.int64() and types["target"] == pa.string()
    assert not set(names) & {"day", "country", "network"}  # those live in the folder names


def test_a_field_type_the_schema_does_not_know_stops_the_import() -> None:
    class Odd(msgspec.Struct):
        when: bytes

    info = msgspec.inspect.type_info(Odd)
    assert isinstance(info, msgspec.inspect.StructType)
    with pytest.raises(TypeError, match=r"MeasurementRow\.when: no Arrow type"):
        _arrow_type("when", info.fields[0].type)


@pytest.mark.parametrize(
    ("value", "segment"),
    [("AS7552", "AS7552"), ("?", "%3F"), ("1.2.3.4:53", "1.2.3.4%3A53"), ("a/b", "a%2Fb"),
     ("..", "%2E%2E"), ("", "%2E%2E")],
)  # fmt: skip
def test_partition_values_are_safe_path_segments(value: str, segment: str) -> None:
    assert encode_value(value) == segment


def test_partitions_follow_the_stores_network() -> None:
    row = {"started_at": "2026-11-01T02:00:00Z", "probe_asn": None, "resolver": "10.0.0.1"}
    assert partition_of(row) == ("2026-11-01", "unknown", "10.0.0.1")
    assert partition_of(row | {"probe_asn": "AS1", "probe_cc": "VN"}) == ("2026-11-01", "VN", "AS1")


def test_a_folder_that_is_not_a_dataset_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(FleetError, match="not a fleet dataset"):
        Dataset.open(tmp_path / "x")
    (tmp_path / "f").write_text("a file")
    with pytest.raises(FleetError, match="not a folder"):
        Dataset.open(tmp_path / "f")
    with pytest.raises(FleetError, match="not a fleet dataset"):
        query.connect(tmp_path / "x")


def test_an_empty_dataset_reads_as_no_rows(tmp_path: Path) -> None:
    Dataset.open(tmp_path / "ds").close()
    con = query.connect(tmp_path / "ds")
    assert con.execute("SELECT count(*) FROM daily_blocking").fetchone() == (0,)
    assert query.throughput_tests(tmp_path / "ds") == []


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    changes=st.lists(
        st.tuples(st.integers(0, 2), st.sampled_from([*M_COLUMNS, *CHAIN_COLUMNS]), json_values),
        min_size=1,
        max_size=2,
    )
)
def test_any_record_is_added_or_quarantined_never_a_crash(
    rows: list[dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
    changes: list[tuple[int, str, Any]],
) -> None:
    records = [dict(r) for r in rows[:3]]
    for i, name, value in changes:
        records[i][name] = value
    # As a batch carries them: through JSON and back (lone surrogates as their escapes).
    records = [json.loads(json.dumps(r)) for r in records]
    ds = Dataset.open(tmp_path_factory.mktemp("ds"))
    added = ds.add("f" * 64, records, device_key=rows[0]["device_key"])
    assert added.added + added.seen + added.quarantined == len(records)
    con = query.connect(ds.root)
    assert con.execute("SELECT count(*) FROM measurements").fetchone() == (added.added,)
    held = ds.con.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    # One quarantine row per (batch, id, kind): two records under one bad id are one row.
    assert (held > 0) == (added.quarantined > 0) and held <= added.quarantined


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("runtime", 2**60, "record_hash: the record has no canonical form"),
        ("bytes_used", 2**70, "bytes_used: a number out of range (64 bits)"),
        ("seq", 2**70, "seq: a number out of range (64 bits)"),
        ("seq", 0, "measurements: Expected `int` >= 1 - at `$.seq`"),  # the merge's row type
        ("target", "x\ud800", "target: not UTF-8 text (a lone surrogate)"),
        ("id", "\ud800", "id: not UTF-8 text (a lone surrogate)"),
        ("device_key", 7, "measurements: Expected `str | null`, got `int` - at `$.device_key`"),
        ("seq", True, "measurements: Expected `int | null`, got `bool` - at `$.seq`"),
    ],
)
def test_values_no_probe_writes_are_quarantined_with_their_reason(
    rows: Rows, tmp_path: Path, field: str, value: Any, reason: str
) -> None:
    record = dict(rows[0]) | {field: value}
    ds = Dataset.open(tmp_path / "ds")
    added = ds.add("e" * 64, [record, rows[1]], device_key=rows[0]["device_key"])
    assert (added.added, added.quarantined) == (1, 1)
    (why,) = ds.con.execute("SELECT reason FROM quarantine").fetchone()
    assert why.startswith(reason), why


def test_signed_heads_are_kept_as_signed_and_any_other_refused(tmp_path: Path) -> None:
    from probe.evidence import heads
    from probe.evidence.keys import DeviceKey

    key = DeviceKey.generate()
    statement, signature = heads.sign(key, 7, "ab" * 32, "2026-11-01T02:00:00Z", heads.DAY)
    good = {"device_key": key.public, "kind": "day", "label": "2026-11-01", "seq": 7,
            "chain_hash": "ab" * 32, "at": "2026-11-01T02:00:00Z",
            "statement": statement.decode(), "signature": signature}  # fmt: skip
    hostile = [
        good | {"seq": 8},  # not what it signed
        good | {"seq": True},  # 1 == True in Python, and no int64 to Arrow
        good | {"label": {"a": 1}},
        good | {"signature": signature[::-1]},
        good | {"label": "x", "device_key": DeviceKey.generate().public},
    ]
    ds = Dataset.open(tmp_path / "ds")
    ds.add("d" * 64, [], device_key=key.public, heads=[good, *hostile])
    assert ds.con.execute("SELECT row_id, kind, reason FROM quarantine").fetchall() == [
        ("", "head", "5 signed heads refused: their signature or columns do not hold")
    ]
    con = query.connect(tmp_path / "ds")
    got = con.execute(f"SELECT seq, label, statement FROM read_parquet('{ds.glob('heads')}')")
    assert got.fetchall() == [(7, "2026-11-01", statement.decode())]
    ds.add("c" * 64, [], device_key=key.public, heads=[good])  # again, in a later batch
    assert ds.con.execute("SELECT count(*) FROM heads").fetchone() == (1,)


def test_a_dataset_made_by_a_newer_probe_is_refused(tmp_path: Path) -> None:
    Dataset.open(tmp_path / "ds").close()
    con = sqlite3.connect(tmp_path / "ds" / "_fleet.sqlite")
    con.execute("PRAGMA user_version = 99")
    con.close()
    with pytest.raises(FleetError, match=r"made by a newer probe \(dataset version 99\)"):
        Dataset.open(tmp_path / "ds")
