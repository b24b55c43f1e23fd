"""One history both ways: ingested into the fleet dataset and read with DuckDB and chdb, and
read from the SQLite file it came from, gives the same numbers, events and exports."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec
import pytest

from probe.analyst.fleet import query
from probe.classify.events import find_events
from probe.store import RowFilter, Store
from probe.store.chain import sign_heads
from tests.analyst.fleet.fleets import PRIVATE, seal_db, write
from tests.dbs import golden_db, report_fleet
from tests.runs import run_fresh


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the SQLite file, the dataset ingested from its batches by ``probe fleet ingest``)."""
    from probe.cli import main

    tmp = tmp_path_factory.mktemp("both")
    db = golden_db(report_fleet(tmp / "probe.db"), days=2)  # every verdict, can't tell too
    store = Store.open(db)
    store.db.conn.execute("BEGIN")
    sign_heads(store.db.conn, store.device_key(), "2026-11-03T23:00:00.000Z", "round-last")
    store.db.conn.execute("COMMIT")
    store.close()
    write(tmp / "bucket", seal_db(db, per=7))
    (tmp / "collective.key").write_text(PRIVATE + "\n")
    code = main(["fleet", "ingest", str(tmp / "bucket"), str(tmp / "ds"),
                 "--key", str(tmp / "collective.key")])  # fmt: skip
    assert code == 0
    return db, tmp / "ds"


def test_daily_blocking_is_the_same_from_the_dataset_and_the_sqlite_file(both) -> None:
    db, ds = both
    sqlite_rows = sqlite3.connect(db).execute("SELECT * FROM daily_blocking").fetchall()
    duck = query.connect(ds).execute("SELECT * FROM daily_blocking").fetchall()
    assert duck == sqlite_rows
    # Every measured (not control) measurement counted once, over many days and targets.
    con = sqlite3.connect(db)
    (measured,) = con.execute("SELECT count(*) FROM measurements WHERE is_control = 0").fetchone()
    assert sum(r[3] for r in sqlite_rows) == measured and len(sqlite_rows) > 100
    assert all(sum(r[i] for r in sqlite_rows) > 0 for i in range(3, 9))  # every kind of count


def test_the_same_daily_blocking_in_clickhouse_chdb(both) -> None:
    chdb = pytest.importorskip("chdb")
    db, ds = both
    sql = query.DAILY_BLOCKING.format(
        table=query.clickhouse_table(f"file('{ds}/measurements/**/*.parquet', Parquet)")
    )
    got = [
        tuple(msgspec.json.decode(line))
        for line in str(chdb.query(sql, "JSONCompactEachRow")).splitlines()
    ]
    expected = sqlite3.connect(db).execute("SELECT * FROM daily_blocking").fetchall()
    assert [r[:9] for r in got] == [r[:9] for r in expected]
    assert [r[9] for r in got] == [r[9] for r in expected]


def test_throughput_tests_and_events_are_the_same(both) -> None:
    db, ds = both
    store = Store.open(db, create=False, readonly=True)
    key = lambda t: (t.at, t.network, t.target)  # noqa: E731
    assert sorted(query.throughput_tests(ds), key=key) == sorted(store.throughput_tests(), key=key)
    events = [e.as_dict() for e in find_events(query.throughput_tests(ds))]
    assert events == [e.as_dict() for e in find_events(store.throughput_tests())]
    assert len(events) == 1  # facebook on AS7552, second day


def test_probe_events_reads_a_dataset(both, capsys: pytest.CaptureFixture[str]) -> None:
    db, ds = both
    code, from_ds, _ = run_fresh(["events", "--db", str(ds), "--format", "jsonl"], capsys)
    assert code == 0
    code, from_db, _ = run_fresh(["events", "--db", str(db), "--format", "jsonl"], capsys)
    assert from_ds == from_db and from_ds.count("\n") == 1


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
@pytest.mark.parametrize(
    "flags", [[], ["--blocked", "--network", "AS7552"], ["--since", "2026-11-02"]]
)
def test_probe_export_from_a_dataset_writes_the_same_bytes(
    both, tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str, flags: list[str]
) -> None:
    db, ds = both
    for name, src in (("ds", ds), ("db", db)):
        code, _, err = run_fresh(
            ["export", "--db", str(src), "--format", fmt, "-o", str(tmp_path / name), *flags],
            capsys,
        )
        assert code == 0, err
    assert (tmp_path / "ds").read_bytes() == (tmp_path / "db").read_bytes()
    assert (tmp_path / "ds").read_bytes().count(b"\n") > 1


def test_a_filter_selects_the_same_measurements(both) -> None:
    db, ds = both
    store = Store.open(db, create=False, readonly=True)
    for f in (RowFilter(throttled=True), RowFilter(targets=("facebook",), categories=("GRP",))):
        assert list(query.stored(ds, f)) == list(store.stored(f))


def test_an_export_the_dataset_cannot_make_says_so(
    both, capsys: pytest.CaptureFixture[str]
) -> None:
    _, ds = both
    code, _, err = run_fresh(["export", "--db", str(ds), "--format", "ooni"], capsys)
    assert code == 2
    assert err.strip() == (
        "probe: error: --format ooni: a fleet dataset exports jsonl or csv (it is Parquet already)"
    )


@pytest.mark.spark
def test_spark_reads_the_dataset_and_gets_the_same_numbers(
    both, request: pytest.FixtureRequest
) -> None:
    if "spark" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("opt-in: scripts/check-spark (pytest -m spark)")
    from pyspark.sql import SparkSession

    db, ds = both
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("probe-fleet")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.bindAddress", "127.0.0.1")
        # day, country and network stay text, as DuckDB and ClickHouse read them
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        .getOrCreate()
    )
    try:
        spark.read.parquet(str(ds / "measurements")).createOrReplaceTempView("measurements")
        rows = [
            tuple(r) for r in spark.sql(query.DAILY_BLOCKING.format(table="measurements")).collect()
        ]
    finally:
        spark.stop()
    expected = sqlite3.connect(db).execute("SELECT * FROM daily_blocking").fetchall()
    assert [r[:9] for r in rows] == [r[:9] for r in expected]
    assert [None if r[9] is None else float(r[9]) for r in rows] == [r[9] for r in expected]


def test_the_documented_query_is_the_one_the_tests_run() -> None:
    from tests.paths import REPO

    doc = (REPO / "docs" / "analysts.md").read_text(encoding="utf-8")
    assert query.DAILY_BLOCKING.format(table="measurements").strip() in doc
    assert "hive_types = {'day': VARCHAR, 'country': VARCHAR, 'network': VARCHAR}" in doc
    assert query.read_sql("x").endswith(
        "hive_types = {'day': VARCHAR, 'country': VARCHAR, 'network': VARCHAR})"
    )


@pytest.mark.parametrize("flags", [[], ["--since", "2026-11-02", "--lang", "vi"]])
def test_probe_report_from_a_dataset_is_the_same_page(
    both, tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str]
) -> None:
    db, ds = both
    for name, src in (("ds", ds), ("db", db)):
        code, _, err = run_fresh(
            ["report", "--db", str(src), "-o", str(tmp_path / f"{name}.html"), *flags], capsys
        )
        assert code == 0, err
    import re

    def page_of(name: str) -> str:  # matplotlib names clip paths and markers at random
        text = (tmp_path / f"{name}.html").read_text(encoding="utf-8")
        return re.sub(r"\b[pm][0-9a-f]{10}\b", "id#", text)

    page = page_of("ds")
    assert page == page_of("db")
    assert "facebook" in page and "<svg" in page
