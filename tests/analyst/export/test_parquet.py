"""The Parquet dataset: its documented schema, DuckDB and Polars reading it as it is, the
documented query's output, and (opt-in, ``scripts/check-spark``) Spark getting the same numbers.

``python -m tests.analyst.export.test_parquet`` prints the schema and the query's output as
docs/analysts.md shows them; the tests fail when the two disagree.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

pa = pytest.importorskip("pyarrow")
duckdb = pytest.importorskip("duckdb")
pq = pytest.importorskip("pyarrow.parquet")

from probe.analyst.export.parquet import SCHEMA, SCHEMA_VERSION, schema_text  # noqa: E402
from probe.cli import main  # noqa: E402
from tests.dbs import SCENARIOS, example_fleet, golden_db  # noqa: E402
from tests.paths import REPO  # noqa: E402

DOC = REPO / "docs" / "analysts.md"

# The documented query, the same text for DuckDB and Spark SQL, over a view named measurements.
QUERY = """\
SELECT CAST(date AS STRING) AS day, target, network,
       count(*) AS measurements,
       sum(CASE WHEN verdict IN ('blockpage', 'blocked (dns)', 'blocked (tcp_ip)',
                                 'blocked (tls/http failure)') THEN 1 ELSE 0 END) AS blocked,
       sum(CASE WHEN verdict IN ('accessible', 'accessible (no control)', 'down', 'offline')
                  OR verdict LIKE 'can_t tell' THEN 0 ELSE 1 END) AS anomalies,
       round(sum(CASE WHEN verdict IN ('blockpage', 'blocked (dns)', 'blocked (tcp_ip)',
                                       'blocked (tls/http failure)') THEN 1 ELSE 0 END)
             / nullif(sum(CASE WHEN verdict LIKE 'can_t tell' OR verdict = 'offline'
                               THEN 0 ELSE 1 END), 0), 3) AS blocking_rate
FROM measurements
WHERE NOT is_control
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3"""


def _export(db: Path, out: Path, *flags: str) -> None:
    assert main(["export", "--db", str(db), "--format", "parquet", "-o", str(out), *flags]) == 0


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("fleet")
    _export(example_fleet(tmp / "fleet.db"), tmp / "dataset")
    return tmp / "dataset"


def duckdb_rows(dataset: Path) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    glob = str(dataset / "**" / "*.parquet")
    con.execute(
        "CREATE VIEW measurements AS "
        f"SELECT * FROM read_parquet('{glob}', hive_partitioning = true)"
    )
    return [tuple(r) for r in con.execute(QUERY).fetchall()]


def table(rows: list[tuple[Any, ...]]) -> str:
    head = "| day | target | network | measurements | blocked | anomalies | blocking_rate |"
    lines = [head, "|---|---|---|---:|---:|---:|---:|"]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def test_the_schema_is_the_documented_one() -> None:
    doc = DOC.read_text(encoding="utf-8")
    assert f"```\n{schema_text()}```" in doc, "docs/analysts.md: schema out of date"
    assert SCHEMA.metadata[b"probe.schema"].decode() == SCHEMA_VERSION
    # Stable: columns are only ever added at the end. Version 1 starts with these.
    assert SCHEMA.names[:8] == [
        "id", "started_at", "target", "url", "category", "is_control", "verdict", "blocking",
    ]  # fmt: skip


def test_every_file_has_the_schema_and_a_day(fleet: Path) -> None:
    files = sorted(fleet.glob("date=*/*.parquet"))
    assert [f.parent.name for f in files] == [f"date=2026-11-0{d}" for d in (1, 2, 3)]
    for f in files:
        schema = pq.read_schema(f)
        assert schema.equals(SCHEMA)
        assert schema.metadata[b"probe.schema"] == SCHEMA_VERSION.encode()


def test_duckdb_runs_the_documented_query(fleet: Path) -> None:
    rows = duckdb_rows(fleet)
    assert rows[0] == ("2026-11-01", "facebook", "AS45899", 4, 0, 0, 0.0)
    # A TLS reset seen from this network only: an anomaly, not blocked (the words' meaning).
    assert ("2026-11-01", "facebook", "AS7552", 4, 0, 3, 0.0) in rows
    assert ("2026-11-02", "rfa-vietnamese", "AS45899", 4, 3, 3, 0.75) in rows
    assert ("2026-11-02", "wikipedia", "AS7552", 4, 0, 0, 0.0) in rows  # 3 judged, 1 offline
    doc = DOC.read_text(encoding="utf-8")
    assert f"```sql\n{QUERY}\n```" in doc
    assert table(rows) in doc, "docs/analysts.md: the query's output is out of date"


def test_values_match_the_json_lines_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = golden_db(tmp_path / "g.db", days=1)
    _export(db, tmp_path / "ds")
    capsys.readouterr()
    main(["export", "--db", str(db)])
    recs = {r["id"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    rows = pq.read_table(tmp_path / "ds").to_pylist()
    assert len(rows) == len(recs) == len(SCENARIOS)
    for row in rows:
        rec = recs[row["id"]]
        assert row["verdict"] == rec["verdict"]
        assert row["blocking"] == (
            None if rec["blocking"] is None else str(rec["blocking"]).lower()
        )
        assert row["accessible"] == rec["accessible"] and row["offline"] == rec["offline"]
        assert row["started_at"].isoformat().startswith(rec["started_at"][:19])
        assert [q["answers"] for q in row["dns"]] == [
            [{**a, "ttl": a.get("ttl")} for a in q["answers"]] for q in rec["dns"]
        ]
        assert [c["sources"] for c in row["tls"]] == [c["sources"] for c in rec["tls"]]
        assert [[(h["name"], h["value"]) for h in x["headers"]] for x in row["http"]] == [
            [tuple(h) for h in x["headers"]] for x in rec["http"]
        ]
        assert row["control"] is None and row["ooni_verdict"] is None


def test_polars_reads_it_as_it_is(fleet: Path) -> None:
    pl = pytest.importorskip("polars")
    df = pl.scan_parquet(fleet / "**" / "*.parquet", hive_partitioning=True).collect()
    assert df.height == 72 and "date" in df.columns
    blocked = df.filter(pl.col("verdict") == "blocked (dns)")
    assert blocked.height == 19
    assert blocked["dns"].list.len().min() == 4


def test_an_existing_folder_is_never_overwritten(
    fleet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = golden_db(tmp_path / "g.db", days=1)
    out = tmp_path / "ds"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    code = main(["export", "--db", str(db), "--format", "parquet", "-o", str(out)])
    assert code == 2 and "already exists" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    shutil.rmtree(out)
    out.mkdir()  # an empty folder is fine
    _export(db, out, "--since", "2026-12-01")  # and so is an empty selection
    assert list(out.iterdir()) == []


@pytest.mark.spark
def test_spark_gets_the_same_numbers(fleet: Path, request: pytest.FixtureRequest) -> None:
    if "spark" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("opt-in: scripts/check-spark (pytest -m spark)")
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[1]")
        .appName("probe-parquet")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    try:
        spark.read.parquet(str(fleet)).createOrReplaceTempView("measurements")
        rows = [tuple(r) for r in spark.sql(QUERY).collect()]
        assert spark.read.parquet(str(fleet)).count() == 72
    finally:
        spark.stop()
    assert rows == duckdb_rows(fleet)


if __name__ == "__main__":  # the documented schema and output: see docs/analysts.md
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        _export(example_fleet(Path(d) / "fleet.db"), Path(d) / "dataset")
        sys.stdout.write(schema_text() + "\n" + table(duckdb_rows(Path(d) / "dataset")))
