"""``probe verify``: real rounds against the loopback world stored in a real database, then
tampered with through sqlite3 as anyone holding the file could: each change is named, by
measurement id; the untouched database verifies."""

from __future__ import annotations

import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlite_utils import Database

from probe.evidence import canonical
from probe.store import Store, migrations
from tests.evidence.chained import rounds_db, sql
from tests.runs import run_fresh
from tests.world import World


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, world: World) -> Path:
    """A database of two real rounds (six measurements, bodies among them)."""
    return rounds_db(world, tmp_path_factory.mktemp("verify"))


@pytest.fixture
def db(built: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of the built database (and its key), for one test to tamper with."""
    copy = tmp_path / "copy.db"
    shutil.copy(built, copy)
    yield copy


def chain(db: Path) -> list[tuple[str, int, str | None]]:
    """(id, seq, body_digests) of the chained measurements, in chain order."""
    con = sqlite3.connect(db)
    try:
        return list(con.execute("SELECT id, seq, body_digests FROM measurements ORDER BY seq"))
    finally:
        con.close()


def verify(db: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], str]:
    code, out, err = run_fresh(["verify", str(db)], capsys)
    return code, out.splitlines(), err


def problems(lines: list[str], kind: str) -> list[str]:
    return [line for line in lines if f": {kind}:" in line]


def test_the_built_database_is_two_real_rounds(built: Path) -> None:
    rows = chain(built)
    assert [seq for _, seq, _ in rows] == list(range(1, 7))
    assert any(digests for _, _, digests in rows)  # bodies, bound by their content


def test_an_untouched_database_verifies(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, err = verify(db, capsys)
    assert code == 0, lines
    assert err == ""
    assert (
        lines[0] == f"{db}: whole: 6 measurements in 1 chain; every hash, link and signature holds"
    )
    # Two rounds: two round heads and a day's (two, if the rounds were either side of midnight).
    assert re.fullmatch(r"device \S+: seq 1\.\.6, [34] signed heads, the last at \S+Z", lines[1])


def test_one_byte_of_a_stored_measurement_altered(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mid = chain(db)[2][0]
    sql(
        db,
        (
            "UPDATE measurements SET observations = "
            "replace(observations, '\"t0\":', '\"t1\":') WHERE id = ?",
            [mid],
        ),
    )
    code, lines, _ = verify(db, capsys)
    assert code == 1
    assert problems(lines, "altered") == [
        f"{mid}: altered: its record no longer matches its hash (seq 3)"
    ]
    assert len([line for line in lines if line.startswith(mid)]) == 1  # nothing else blamed


def test_a_verdict_rewritten_is_not_a_record_altered(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Verdicts are derived (probe reclassify rewrites them from the facts the hash covers).
    sql(db, "UPDATE measurements SET rule_id = 'other', blocking = 'dns'")
    code, lines, _ = verify(db, capsys)
    assert code == 0, lines


def test_one_removed(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mid = chain(db)[3][0]
    sql(db, ("DELETE FROM measurements WHERE id = ?", [mid]))
    code, lines, _ = verify(db, capsys)
    assert code == 1
    assert problems(lines, "removed") == [f"{mid}: removed: seq 4 of its chain is missing"]


def test_the_last_removed_is_named_by_the_signed_head(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sql(db, "DELETE FROM measurements WHERE seq = 6")
    code, lines, _ = verify(db, capsys)
    assert code == 1
    removed = problems(lines, "removed")
    assert len(removed) == 1 and "seq 6" in removed[0] and "signed head" in removed[0], lines


def test_one_inserted(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mid = chain(db)[1][0]
    sql(
        db,
        "CREATE TEMP TABLE t AS SELECT * FROM measurements WHERE seq = 2",
        "UPDATE t SET id = 'forged', seq = NULL, chain_hash = NULL, record_hash = NULL",
        "INSERT INTO measurements SELECT * FROM t",
    )
    code, lines, _ = verify(db, capsys)
    assert code == 1
    assert problems(lines, "inserted") == [
        "forged: inserted: in no chain, and stored after the chain began"
    ]
    assert not any(line.startswith(mid) for line in lines)


def test_one_inserted_with_a_forged_link(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A row given a place in the chain (seq 4 moved up to 7 to make room) by someone without
    # the chain's earlier state: its link cannot hold.
    sql(
        db,
        "CREATE TEMP TABLE t AS SELECT * FROM measurements WHERE seq = 2",
        "UPDATE t SET id = 'forged', seq = 7, chain_hash = '" + "ab" * 32 + "'",
        "INSERT INTO measurements SELECT * FROM t",
    )
    code, lines, _ = verify(db, capsys)
    assert code == 1
    found = problems(lines, "inserted")
    assert len(found) == 1 and found[0].startswith("forged: inserted:"), lines


def test_two_reordered(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = chain(db)[1][0], chain(db)[2][0]
    sql(
        db,
        ("UPDATE measurements SET seq = -1 WHERE id = ?", [a]),
        ("UPDATE measurements SET seq = 2 WHERE id = ?", [b]),
        ("UPDATE measurements SET seq = 3 WHERE id = ?", [a]),
    )
    code, lines, _ = verify(db, capsys)
    assert code == 1
    found = problems(lines, "reordered")
    assert [line.split(":")[0] for line in found] == [b, a], lines
    assert found[0] == f"{b}: reordered: seq 2, but its chain puts it after {a} (seq 3)"


def test_a_body_swapped(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    rows = [(mid, json.loads(d)) for mid, _, d in chain(db) if d]
    key = rows[0][1][0][0]
    users = sorted(mid for mid, digests in rows if key in [k for k, _ in digests])
    sql(
        db,
        (
            "UPDATE bodies SET data = (SELECT data FROM bodies WHERE sha256 != ? LIMIT 1) "
            "WHERE sha256 = ?",
            [key, key],
        ),
    )
    code, lines, _ = verify(db, capsys)
    assert code == 1
    found = problems(lines, "body swapped")
    assert sorted(line.split(":")[0] for line in found) == users, lines
    assert key in found[0]


def test_a_chain_rewritten_whole_is_caught_by_the_signed_heads(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Someone who knows how hashes and links are made alters a measurement and recomputes
    # every hash and link after it: only the device's signatures can tell.
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    con.execute("UPDATE measurements SET url = url || '?' WHERE seq = 2")
    prev = canonical.GENESIS
    for r in list(con.execute("SELECT * FROM measurements ORDER BY seq")):
        rh = canonical.record_hash(dict(r))
        prev = canonical.link(prev, rh)
        con.execute(
            "UPDATE measurements SET record_hash = ?, chain_hash = ? WHERE id = ?",
            [rh, prev, r["id"]],
        )
    con.commit()
    con.close()
    code, lines, _ = verify(db, capsys)
    assert code == 1
    assert problems(lines, "altered") == []
    assert problems(lines, "not as signed"), lines


def test_a_forged_signature(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sql(db, "UPDATE chain_heads SET signature = 'AAAA' WHERE kind = 'day'")
    code, lines, _ = verify(db, capsys)
    assert code == 1
    assert len(problems(lines, "bad signature")) == 1, lines


def test_an_old_database_lists_its_unchained_measurements(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "old.db"
    old = Database(str(p))
    migrations.apply(old, stop_before="m010_chain")
    old.table("meta").insert({"key": "device_id", "value": "dev-old"})
    for i in range(2):
        old.table("measurements").insert(
            {
                "id": f"old{i}",
                "target": "t",
                "url": "u",
                "started_at": "2026-01-01",
                "observations": "{}",
            }
        )
    old.close()
    Store.open(p).close()  # migrated, as any writing command does
    code, lines, _ = verify(p, capsys)
    assert code == 0, lines
    assert (
        lines[0] == f"{p}: whole: 0 measurements in 0 chains; every hash, link and signature holds"
    )
    assert "2 measurements stored before the chain began (unchained, not checked)" in lines
    sql(p, "DELETE FROM measurements WHERE id = 'old1'")
    code, lines, _ = verify(p, capsys)
    assert code == 1
    assert problems(lines, "removed") == ["old1: removed: stored before the chain began"]


def test_not_a_database_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, err = verify(tmp_path / "none.db", capsys)
    assert code == 2 and lines == []
    assert err == f"probe: error: {tmp_path / 'none.db'}: no such database\n"


def test_chain_columns_of_any_type_are_named_not_a_crash(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = chain(db)
    sql(
        db,
        ("UPDATE measurements SET chain_hash = 'zz' WHERE id = ?", [rows[1][0]]),
        ("UPDATE measurements SET seq = 'x' WHERE id = ?", [rows[3][0]]),
        ("UPDATE measurements SET runtime = 9223372036854775807 WHERE id = ?", [rows[4][0]]),
        ("UPDATE measurements SET body_digests = '{\"a\": 1}' WHERE id = ?", [rows[0][0]]),
    )
    code, lines, err = verify(db, capsys)
    assert code == 1 and err == ""
    named = {line.split(":")[0] for line in lines if ": " in line}
    assert {rows[1][0], rows[3][0], rows[4][0], rows[0][0]} <= named, lines
