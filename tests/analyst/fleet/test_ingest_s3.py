"""``probe fleet ingest`` from a real S3 server (SeaweedFS on loopback): the probes' batches
put with their write-only key, read with the collective's; a store that is away is one line,
and the next run takes everything."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from probe.fleet import batch
from tests.analyst.fleet.fleets import PRIVATE, seal_db
from tests.dbs import report_fleet
from tests.runs import run_fresh
from tests.servers.s3 import ADMIN, BUCKET, S3, WRITER, seaweedfs


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    with seaweedfs(tmp_path_factory.mktemp("weed")) as server:
        yield server


def put(server: S3, sealed: list[batch.Sealed], prefix: str) -> None:
    client = server.client(WRITER)  # the volunteer's key: it can only write
    for s in sealed:
        client.put_object(BUCKET, f"{prefix}/{s.key}", io.BytesIO(s.data), len(s.data))


def ingest(s3: S3, prefix: str, ds: Path, key: Path, capsys: pytest.CaptureFixture[str],
           identity: tuple[str, str] = ADMIN) -> tuple[int, str, str]:  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", identity[0])
        mp.setenv("AWS_SECRET_ACCESS_KEY", identity[1])
        return run_fresh(
            ["fleet", "ingest", f"s3://{BUCKET}/{prefix}", str(ds), "--key", str(key),
             "--endpoint", s3.endpoint],
            capsys,
        )  # fmt: skip


def test_batches_from_the_bucket_arrive_once(
    s3: S3, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = report_fleet(tmp_path / "probe.db")
    sealed = seal_db(db, per=30)
    put(s3, sealed[:2], "one")
    key = tmp_path / "collective.key"
    key.write_text(PRIVATE)
    code, out, err = ingest(s3, "one", tmp_path / "ds", key, capsys)
    assert code == 0, err
    assert out.splitlines()[0].startswith(
        f"s3://{BUCKET}/one: 2 batches ingested (0 read before), 60 measurements added"
    )
    put(s3, sealed, "one")  # the same two again (the same objects: content addresses), and the rest
    code, out, err = ingest(s3, "one", tmp_path / "ds", key, capsys)
    assert out.splitlines()[0].startswith(
        f"s3://{BUCKET}/one: {len(sealed) - 2} batches ingested (2 read before), "
        "36 measurements added"
    )
    assert (
        out.splitlines()[-1]
        == f"{tmp_path / 'ds'}: 96 measurements from 1 devices, {len(sealed)} batches"
    )


def test_a_key_that_cannot_read_and_a_store_away_are_one_line_and_lose_nothing(
    s3: S3, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = report_fleet(tmp_path / "probe.db")
    put(s3, seal_db(db, per=50), "two")
    key = tmp_path / "collective.key"
    key.write_text(PRIVATE)
    code, out, err = ingest(s3, "two", tmp_path / "ds", key, capsys, identity=WRITER)
    assert code == 2 and err.strip() == (
        f"probe: error: s3://{BUCKET}/two: the store did not give the batches (AccessDenied)"
    )
    s3.stop()
    try:
        code, out, err = ingest(s3, "two", tmp_path / "ds", key, capsys)
        assert code == 2 and err.startswith(
            f"probe: error: s3://{BUCKET}/two: the store did not give the batches ("
        ), err
        assert err.count("\n") == 1
    finally:
        s3.start()
    code, out, err = ingest(s3, "two", tmp_path / "ds", key, capsys)
    assert code == 0, err
    assert "96 measurements added" in out.splitlines()[0]


def test_a_probes_uploads_ingested_equal_its_own_database(
    s3: S3, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole road: the probe's own upload (probe.fleet.upload, its write-only key) to the
    bucket, probe fleet ingest from it; the dataset says what the probe's database says."""
    import sqlite3

    from probe.analyst.fleet import query
    from probe.fleet import s3 as fleet_s3
    from probe.fleet import upload as up
    from probe.store import Store

    db = report_fleet(tmp_path / "probe.db")
    store = Store.open(db)
    dest = fleet_s3.Destination(
        fleet_s3.parse_bucket_url(f"{s3.url}/three"), WRITER[0], WRITER[1],
        http=fleet_s3.pool(None),
    )  # fmt: skip
    r = up.upload(store, up.Plan(dest, batch.public_of(PRIVATE), limit=25))
    store.close()
    assert (r.sent, r.measurements, r.failure) == (4, 96, None)
    key = tmp_path / "collective.key"
    key.write_text(PRIVATE)
    code, out, err = ingest(s3, "three", tmp_path / "ds", key, capsys)
    assert code == 0, err
    assert "4 batches ingested (0 read before), 96 measurements added" in out.splitlines()[0]
    assert not [line for line in out.splitlines() if line.startswith("device ")]  # no gap, fork
    expected = sqlite3.connect(db).execute("SELECT * FROM daily_blocking").fetchall()
    assert query.connect(tmp_path / "ds").execute("SELECT * FROM daily_blocking").fetchall() == (
        expected
    )
    for name, src in (("ds", tmp_path / "ds"), ("db", db)):
        code, _, err = run_fresh(
            ["export", "--db", str(src), "-o", str(tmp_path / f"{name}.jsonl")], capsys
        )
        assert code == 0, err
    assert (tmp_path / "ds.jsonl").read_bytes() == (tmp_path / "db.jsonl").read_bytes()


def test_a_published_dataset_is_read_in_the_bucket_by_clickhouses_s3_function(
    s3: S3, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    chdb = pytest.importorskip("chdb")
    import msgspec

    from probe.analyst.fleet import query

    db = report_fleet(tmp_path / "probe.db")
    put(s3, seal_db(db, per=1), "four")  # many small files: the second run compacts
    key = tmp_path / "collective.key"
    key.write_text(PRIVATE)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", ADMIN[0])
        mp.setenv("AWS_SECRET_ACCESS_KEY", ADMIN[1])
        argv = ["fleet", "ingest", f"s3://{BUCKET}/four", str(tmp_path / "ds"), "--key",
                str(key), "--endpoint", s3.endpoint, "--no-compact",
                "--publish", f"s3://{BUCKET}/dataset"]  # fmt: skip
        code, out, err = run_fresh(argv, capsys)
        assert code == 0, err
        files = len(list((tmp_path / "ds").rglob("*.parquet")))
        assert out.splitlines()[-1] == f"s3://{BUCKET}/dataset: {files} files put, 0 removed"
        # Compacted: the joined file put, its inputs removed from the bucket too.
        code, out, err = run_fresh(argv[:-3] + argv[-2:], capsys)
        assert code == 0, err
        assert out.splitlines()[-1].endswith(" removed") and " 0 removed" not in out
    url = f"{s3.endpoint}/{BUCKET}/dataset/measurements/**/*.parquet"
    table = query.clickhouse_table(f"s3('{url}', '{ADMIN[0]}', '{ADMIN[1]}', 'Parquet')")
    text = str(chdb.query(query.DAILY_BLOCKING.format(table=table), "JSONCompactEachRow"))
    got = [tuple(msgspec.json.decode(line)) for line in text.splitlines()]
    assert got == sqlite3.connect(db).execute("SELECT * FROM daily_blocking").fetchall()
