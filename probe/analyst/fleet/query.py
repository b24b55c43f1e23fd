"""The fleet's dataset read with DuckDB: the same views, filters and records as a SQLite file.

Contract: :func:`is_dataset` says whether a path is a dataset folder (it holds the manifest of
:mod:`probe.analyst.fleet.dataset`). :func:`connect` opens an in-memory DuckDB whose view
``measurements`` is the dataset's measurements (the Hive partitions ``day``, ``country`` and
``network`` as text columns) and whose views ``daily_blocking`` and ``throughput_tests`` say
what the store's views of the same names say (schema m009 and m005), column for column; so
:class:`probe.store.RowFilter`'s SQL selects the same measurements. :func:`throughput_tests`
(for ``probe events``) and :func:`stored` (for the exports) give what the store's methods of
the same names give; :func:`reads` is the dataset as ``probe report`` and the CSV export read a
store (:class:`Rows`: ``stream``, ``stored``, ``span``, ``throughput_tests``).
:func:`export` is ``probe export`` from a dataset (JSON Lines, CSV), and
:data:`DAILY_BLOCKING` the one text of the daily-blocking query for DuckDB, ClickHouse
(:func:`clickhouse_table`) and Spark. The dataset's own ``verdict`` column is the words of
the verdict it was ingested with (as the store's ``verdicts`` view computes them).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

from probe import words
from probe.analyst.fleet import MANIFEST, is_dataset
from probe.analyst.fleet.dataset import FleetError
from probe.classify.attribution import EdgeTest
from probe.classify.events import ThroughputTest
from probe.store import RowFilter, Store, Stored
from probe.store.reads import STORED_COLUMNS, stored_from_row
from probe.words import N_


def _in(words_: Iterable[str]) -> str:
    return ", ".join(words.sql_text(w) for w in words_)


# "can't tell" in a form every engine reads alike: Spark SQL reads 'can''t tell' as two
# literals joined ('cant tell'), so no quote is written inside one.
_CANT = "verdict LIKE 'can_t tell'"
_BLOCKED = f"verdict IN ({_in(sorted(words.BLOCKED))})"
# Not an anomaly: probe.words.NOT_ANOMALIES but can't tell (said as _CANT); the first two
# are the accessible ones.
_FINE = [words.ACCESSIBLE, words.ACCESSIBLE_NO_CONTROL, words.DOWN, words.OFFLINE]
assert {*_FINE, words.CANT_TELL} == set(words.NOT_ANOMALIES)

# The store's daily_blocking view (schema m009) over the dataset; the same text for DuckDB,
# ClickHouse (chdb, s3()) and Spark SQL but for the table it reads.
DAILY_BLOCKING = f"""
SELECT day, target, network,
       count(*) AS measurements,
       sum(CASE WHEN {_BLOCKED} THEN 1 ELSE 0 END) AS blocked,
       sum(CASE WHEN verdict IN ({_in(_FINE)}) OR {_CANT} THEN 0 ELSE 1 END) AS anomalies,
       sum(CASE WHEN verdict IN ({_in(_FINE[:2])}) THEN 1 ELSE 0 END) AS accessible,
       sum(CASE WHEN {_CANT} THEN 1 ELSE 0 END) AS cant_tell,
       sum(CASE WHEN verdict = {words.sql_text(words.OFFLINE)} THEN 1 ELSE 0 END) AS offline,
       round(1.0 * sum(CASE WHEN {_BLOCKED} THEN 1 ELSE 0 END)
             / nullif(sum(CASE WHEN {_CANT} OR verdict = {words.sql_text(words.OFFLINE)}
                               THEN 0 ELSE 1 END), 0), 4) AS blocking_rate
FROM {{table}} WHERE is_control = 0
GROUP BY day, target, network ORDER BY day, target, network"""


def clickhouse_table(source: str = "file('DATASET/measurements/**/*.parquet', Parquet)") -> str:
    """The dataset's measurements as a ClickHouse table expression over a table function
    (``file(...)`` for chdb, ``s3(...)`` for a server): ClickHouse reads Hive partition values
    as they are in the path, percent-encoded, so they are decoded here."""
    return (
        "(SELECT * REPLACE (decodeURLComponent(toString(network)) AS network, "
        "decodeURLComponent(toString(country)) AS country, toString(day) AS day) "
        f"FROM {source} SETTINGS use_hive_partitioning = 1)"
    )


THROUGHPUT_TESTS = """
SELECT id AS measurement_id, started_at, target, category, network, probe_asn, probe_cc,
       throttled, throughput_ratio AS ratio, throughput_label AS label
FROM {table} WHERE throughput_ratio IS NOT NULL ORDER BY started_at"""


def read_sql(glob: str) -> str:
    """DuckDB's table function over a dataset's measurement files."""
    return (
        f"read_parquet('{glob.replace(chr(39), chr(39) * 2)}', hive_partitioning = true, "
        "union_by_name = true, "
        "hive_types = {'day': VARCHAR, 'country': VARCHAR, 'network': VARCHAR})"
    )


def connect(path: str | Path) -> Any:
    """An in-memory DuckDB with the dataset's views (see the contract)."""
    import duckdb

    if not is_dataset(path):
        raise FleetError(
            N_("{path}: not a fleet dataset (no {manifest})"), path=path, manifest=MANIFEST
        )
    con = duckdb.connect()
    glob = str(Path(path) / "measurements" / "**" / "*.parquet")
    if not any((Path(path) / "measurements").glob("**/*.parquet")):
        from probe.analyst.fleet.dataset import SCHEMA

        cols = ", ".join(
            f"CAST(NULL AS {_duck(t)}) AS {n}"
            for n, t in zip(SCHEMA.names, SCHEMA.types, strict=True)
        )
        parts = ", ".join(f"CAST(NULL AS VARCHAR) AS {p}" for p in ("day", "country", "network"))
        con.execute(f"CREATE VIEW measurements AS SELECT {cols}, {parts} WHERE false")
    else:
        con.execute(f"CREATE VIEW measurements AS SELECT * FROM {read_sql(glob)}")
    con.execute(f"CREATE VIEW daily_blocking AS {DAILY_BLOCKING.format(table='measurements')}")
    con.execute(f"CREATE VIEW throughput_tests AS {THROUGHPUT_TESTS.format(table='measurements')}")
    return con


def _duck(t: Any) -> str:
    import pyarrow as pa

    if pa.types.is_integer(t):
        return "BIGINT"
    if pa.types.is_floating(t):
        return "DOUBLE"
    return "VARCHAR"


def throughput_tests(path: str | Path, targets: Iterable[str] = ()) -> list[ThroughputTest]:
    """What :meth:`probe.store.Store.throughput_tests` gives, from the dataset."""
    names = list(targets)
    where = f"WHERE target IN ({', '.join('?' for _ in names)})" if names else ""
    con = connect(path)
    try:
        rows = con.execute(
            "SELECT target, network, started_at, throttled, ratio, label FROM throughput_tests "
            f"{where} ORDER BY started_at",
            names,
        ).fetchall()
    finally:
        con.close()
    return [
        ThroughputTest(r[0], r[1], r[2], float(r[4]), None if r[3] is None else bool(r[3]), r[5])
        for r in rows
    ]


def edge_tests(path: str | Path, targets: Iterable[str] = ()) -> list[EdgeTest]:
    """What :meth:`probe.store.Store.edge_tests` gives, from the dataset: its measurements
    with a throughput record (their few columns the view reads) are copied into an in-memory
    SQLite database given the store's own ``edge_tests`` view (m013), so what an edge test is
    stays said in one place."""
    from sqlite_utils import Database

    from probe.store import schema
    from probe.store.reads import edge_tests_of

    con = connect(path)
    try:
        rows = con.execute(
            "SELECT id, started_at, target, is_control, probe_asn, resolver, throughput "
            "FROM measurements WHERE throughput IS NOT NULL"
        ).fetchall()
    finally:
        con.close()
    db = Database(memory=True)
    columns = ("id", "started_at", "target", "is_control", "probe_asn", "resolver", "throughput")
    db.table("measurements").create(
        {c: (int if c == "is_control" else str) for c in columns}, pk="id"
    )
    db.table("measurements").insert_all(dict(zip(columns, r, strict=True)) for r in rows)
    schema.m013_edges(db)
    return edge_tests_of(db, targets)


def stored(path: str | Path, f: RowFilter, *, batch: int = 2000) -> Iterator[Stored]:
    """The measurements ``f`` selects, oldest first, as the store's :meth:`stored` gives them
    (one batch in memory)."""
    where, params = f.where()
    con = connect(path)
    try:
        cur = con.execute(
            f"SELECT {', '.join(STORED_COLUMNS)} FROM measurements "
            f"WHERE true AND {where} ORDER BY started_at, id",
            params,
        )
        while rows := cur.fetchmany(batch):
            for row in rows:
                yield stored_from_row(dict(zip(STORED_COLUMNS, row, strict=True)))
    finally:
        con.close()


def export(
    path: str | Path, f: RowFilter, fmt: str, output: str | None, *, excel: bool = False
) -> int:
    """``probe export`` from a dataset: JSON Lines or CSV, the same bytes as from the SQLite
    file the measurements came from."""
    from probe.analyst.export.causes import cause_index
    from probe.analyst.export.csv import write_csv
    from probe.analyst.export.files import destination
    from probe.analyst.export.jsonl import write_jsonl
    from probe.analyst.export.records import record

    if fmt not in ("jsonl", "csv"):
        raise FleetError(
            N_("--format {format}: a fleet dataset exports jsonl or csv (it is Parquet already)"),
            format=fmt,
        )
    if excel and fmt != "csv":
        raise FleetError(N_("--excel goes with --format csv"))
    with destination(output) as out:
        if fmt == "csv":
            # The CSV writer reads columns in bulk from a store's stream(): the dataset's rows
            # stand in for it (what it reads of a store is that one method).
            return write_csv(reads(path), f, out, excel=excel)
        causes = cause_index(reads(path))
        return write_jsonl(
            (
                record(m, for_json=True, cause=causes.cause(m.target, m.network, m.started_at))
                for m in stored(path, f)
            ),
            out,
        )


# The store's export columns (probe.store.reads.EXPORT_COLUMNS) in DuckDB's words.
EXPORT_COLUMNS = {
    "ooni_verdict": "json_extract_string(extra, '$.ooni_verdict')",
    "observations_utf8": "encode(observations)",
    "throttle_label": "throughput_label",
}


class Rows:
    """A dataset read as the analysts' commands read a store: :meth:`stream` (the CSV export),
    :meth:`stored`, :meth:`span` (the report), :meth:`throughput_tests` (the report, events),
    each giving what the :class:`probe.store.Store` method of the same name gives."""

    def __init__(self, path: str | Path) -> None:
        self.path = path

    def stream(
        self, f: RowFilter, columns: Sequence[str] = (), *, batch: int = 2000
    ) -> Iterator[list[tuple[Any, ...]]]:
        select = ", ".join(f"{EXPORT_COLUMNS.get(c, c)} AS {c}" for c in columns)
        where, params = f.where()
        con = connect(self.path)
        try:
            cur = con.execute(
                f"SELECT {select} FROM measurements WHERE true AND {where} ORDER BY started_at, id",
                params,
            )
            while rows := cur.fetchmany(batch):
                yield rows
        finally:
            con.close()

    def stored(self, f: RowFilter) -> Iterator[Stored]:
        return stored(self.path, f)

    def span(self, f: RowFilter) -> tuple[str | None, str | None, int]:
        where, params = f.where()
        con = connect(self.path)
        try:
            first, last, n = con.execute(
                "SELECT min(started_at), max(started_at), count(*) FROM measurements "
                f"WHERE true AND {where}",
                params,
            ).fetchone()
        finally:
            con.close()
        return first, last, int(n)

    def throughput_tests(self, targets: Iterable[str] = ()) -> list[ThroughputTest]:
        return throughput_tests(self.path, targets)

    def edge_tests(self, targets: Iterable[str] = ()) -> list[EdgeTest]:
        return edge_tests(self.path, targets)


def reads(path: str | Path) -> Store:
    """The dataset as the report and the exports read a store (they read only what
    :class:`Rows` has)."""
    return cast(Store, Rows(path))
