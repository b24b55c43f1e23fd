"""probe merge: fleets joined, idempotent, device ids kept, older schemas read as they are (never
migrated, not even a copy), anything that is not a probe database refused, and nothing copied
that the sources lacked. Hostile sources: tests/analyst/test_merge_hostile.py."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from probe.cli import main
from probe.store import Store, migrations
from tests.dbs import SCENARIOS, example_fleet, golden_db, measurement
from tests.evidence.chained import older_store
from tests.typed_db import varied_db

from probe.store._lazy import without_numpy  # isort: skip

with without_numpy():
    from sqlite_utils import Database


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def _dump(path: Path) -> list[tuple[object, ...]]:
    con = sqlite3.connect(path)
    try:
        rows = []
        for table in ("measurements", "rounds", "bodies"):
            rows += [(table, *r) for r in con.execute(f"SELECT * FROM {table} ORDER BY 1")]
        return rows
    finally:
        con.close()


def test_merge_keeps_device_ids_and_is_idempotent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = golden_db(tmp_path / "hanoi.db", days=2, device_id="dev-hanoi")
    b = golden_db(tmp_path / "saigon.db", days=1, device_id="dev-saigon")
    fleet = tmp_path / "fleet.db"
    code, out, err = _run(["merge", str(a), str(b), "-o", str(fleet)], capsys)
    assert code == 0, err
    n = len(SCENARIOS)
    assert f"{a}: {2 * n} measurements added, 0 already there" in out
    assert f"{fleet}: {3 * n} measurements from 2 devices" in out
    store = Store.open(fleet)
    devices = {r["device_id"] for r in store.rows()}
    assert devices == {"dev-hanoi", "dev-saigon"}
    assert store.device_id not in devices  # the fleet database is no device
    one = Store.open(a)
    assert store.db["bodies"].count == one.db["bodies"].count  # the same pages: stored once
    one.close()
    store.close()
    before = _dump(fleet)
    code, out, _ = _run(["merge", str(a), str(b), str(a), "-o", str(fleet)], capsys)
    assert code == 0 and f"0 measurements added, {2 * n} already there" in out
    assert _dump(fleet) == before  # merging again changes nothing


def test_rows_without_a_device_id_get_their_databases(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "old.db"
    src = older_store(path)  # an older probe: no chain to keep whole
    src.save(measurement("success_http", "m1", device_id=None))
    src.save(measurement("success_http", "m2", device_id=None, source="ooni"))
    src.db.close()
    code, _, err = _run(["merge", str(path), "-o", str(tmp_path / "f.db")], capsys)
    assert code == 0, err
    got = {r["id"]: r["device_id"] for r in Store.open(tmp_path / "f.db").rows()}
    assert got == {"m1": "dev-old", "m2": None}  # an imported OONI row: made by no device of ours


def test_a_chained_rows_device_id_is_kept_as_its_record_holds_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The device id is in the record the chain hashes: filled in, the row would no longer
    verify; the device key says whose it is."""
    src = Store.open(tmp_path / "new.db")
    src.save(measurement("success_http", "m1", device_id=None))
    key = src.device_key().public
    src.close()
    fleet = tmp_path / "f.db"
    code, out, err = _run(["merge", str(tmp_path / "new.db"), "-o", str(fleet)], capsys)
    assert code == 0, err
    assert f"device {key}: its chain verifies (1 measurements" in out
    (row,) = Store.open(fleet).rows()
    assert (row["device_id"], row["device_key"]) == (None, key)
    code, out, err = _run(["verify", str(fleet)], capsys)
    assert code == 0, out + err


def test_an_older_schema_is_read_as_it_is_and_scrubbed_as_m003_would(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "v2.db"
    db = Database(str(path))
    migrations.apply(db, stop_before="m003_one_record_of_observations")
    old = Store(db, str(path))
    old.save(measurement("dns_blockpage_address", "m1"))
    db.table("meta").insert({"key": "device_id", "value": "dev-old"})
    db.execute(  # an older probe kept this header verbatim; m003 scrubs it
        "UPDATE measurements SET observations = json_insert(observations, "
        "'$.http[0].headers[#]', json_array('Via', 'proxy for 203.0.113.9'))"
    )
    assert "203.0.113.9" in str(list(db.query("SELECT observations FROM measurements")))
    db.close()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    code, out, err = _run(["merge", str(path), "-o", str(tmp_path / "f.db")], capsys)
    assert code == 0, err
    assert "1 measurements added" in out and "an older schema" in out and "not migrated" in out
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest  # the source untouched
    left = {p.name for p in tmp_path.iterdir()} - {"f.db-wal", "f.db-shm"}
    assert left == {"f.db", "v2.db"}  # no copy made
    fleet = Store.open(tmp_path / "f.db")
    (row,) = fleet.rows()
    assert row["device_id"] == "dev-1"
    assert "203.0.113.9" not in row["observations"]
    assert '["Via", "proxy for [scrubbed]"]' in row["observations"]
    assert fleet.children("http_requests", "m1")  # the views of the current schema


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "no such database"),
        (lambda p: p.write_bytes(b"not sqlite at all" * 100), "not a usable SQLite database"),
        (lambda p: sqlite3.connect(p).execute("CREATE TABLE t (x)").connection.commit(),
         "not a probe database (tables: t)"),
        (lambda p: sqlite3.connect(p).close(), "not a probe database (tables: none)"),
    ],
)  # fmt: skip
def test_anything_else_is_refused_in_one_line_before_writing(
    tmp_path: Path, make: object, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    good = golden_db(tmp_path / "good.db", days=1)
    bad = tmp_path / "bad.db"
    make(bad)  # type: ignore[operator]
    code, _, err = _run(["merge", str(good), str(bad), "-o", str(tmp_path / "f.db")], capsys)
    assert code == 2 and err.count("\n") == 1 and f"{bad}: {message}" in err
    assert not (tmp_path / "f.db").exists()  # nothing written


def test_nothing_is_copied_that_the_sources_did_not_hold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = golden_db(tmp_path / "nguyen-van-a-hanoi.db", days=1)
    con = sqlite3.connect(src)
    con.execute("CREATE TABLE notes (text)")
    con.execute("INSERT INTO notes VALUES ('home: 12 Hang Bac, 198.51.100.23')")
    con.execute("INSERT INTO meta VALUES ('volunteer', 'Nguyen Van A')")
    con.commit()
    con.close()
    fleet = tmp_path / "fleet.db"
    code, _, err = _run(["merge", str(src), "-o", str(fleet)], capsys)
    assert code == 0, err
    store = Store.open(fleet)
    assert "notes" not in store.db.table_names()
    assert [r["key"] for r in store.db["meta"].rows] == ["device_id"]
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("fleet.db*"))
    for secret in (
        b"Nguyen",
        b"nguyen-van-a",
        b"Hang Bac",
        b"198.51.100.23",
        str(tmp_path).encode(),
    ):
        assert secret not in raw


def test_a_missing_output_folder_and_the_output_as_a_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = golden_db(tmp_path / "a.db", days=1)
    code, _, err = _run(["merge", str(a), "-o", str(tmp_path / "no" / "f.db")], capsys)
    assert code == 2 and "no such folder" in err and not (tmp_path / "no").exists()
    code, _, err = _run(["merge", str(a), "-o", str(a)], capsys)
    assert code == 2 and "is the output itself" in err


def test_honest_databases_merge_whole_with_nothing_quarantined(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every golden scenario, the documented example fleet, and rows with throughput tests,
    OONI imports and a helper's answers: the merge's checks refuse none of them."""
    sources = [
        golden_db(tmp_path / "golden.db", days=2),
        example_fleet(tmp_path / "example.db"),
        varied_db(tmp_path / "varied.db"),
    ]
    fleet = tmp_path / "fleet.db"
    code, out, err = _run(["merge", *map(str, sources), "-o", str(fleet)], capsys)
    assert code == 0, err
    total = 0
    for src in sources:
        n = Store.open(src).db["measurements"].count
        total += n
        assert f"{src}: {n} measurements added, 0 already there, 0 quarantined" in out
    store = Store.open(fleet)
    assert store.db["measurements"].count == total
    assert store.db["quarantine"].count == 0
    store.close()


@pytest.mark.parametrize("lang", ["en", "vi"])
def test_a_refused_source_is_said_in_the_volunteers_language(
    tmp_path: Path, lang: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.test_vietnamese import _vietnamese

    bad = tmp_path / "bad.db"
    sqlite3.connect(bad).execute("CREATE TABLE t (x)").connection.commit()
    code, _, err = _run(["--lang", lang, "merge", str(bad), "-o", str(tmp_path / "f.db")], capsys)
    assert code == 2 and err.count("\n") == 1 and f"{bad}: " in err
    if lang == "vi":
        assert _vietnamese(err), err
    else:
        assert f"{bad}: not a probe database (tables: t)" in err
