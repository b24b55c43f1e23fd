"""``probe prune`` deletes chained measurements and says so in the database (issue 22, m011): the
seq ranges it deleted, per device, recorded in the same transaction and signed with the
device's key. ``probe verify`` then reports them as pruned, not removed, and still checks the
link of the measurement after each range; a deletion that was not recorded, or a record not
signed by the device, is still "removed"."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.evidence import keys, pruned
from probe.store import Store
from tests.dbs import measurement
from tests.evidence.chained import NEW, OLD, dated_db, older_store, rows, sql
from tests.runs import run_fresh


def _prune(db: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code, out, err = run_fresh(
        ["prune", "--db", str(db), "--older-than", "180d", "--yes", *args], capsys
    )
    assert code == 0, err
    return out


def _verify(db: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code, out, _ = run_fresh(["verify", str(db)], capsys)
    return code, out


def test_a_prune_is_recorded_signed_and_verify_says_pruned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = dated_db(tmp_path / "p.db", [("success_http", OLD)] * 3 + [("success_http", NEW)] * 2)
    assert _verify(db, capsys)[0] == 0
    _prune(db, capsys)
    assert [r["seq"] for r in rows(db)] == [4, 5]
    (record,) = rows(db, "chain_pruned", "first_seq")
    key = keys.load_key(keys.key_path(db))
    assert (record["device_key"], record["first_seq"], record["last_seq"]) == (key.public, 1, 3)
    found = pruned.check(str(record["statement"]).encode(), str(record["signature"]))
    assert found is not None and (found.first, found.last, found.by) == (1, 3, key.public)
    code, out = _verify(db, capsys)
    assert code == 0, out
    assert "removed" not in out
    assert "3 measurements pruned from 1 chain, as their devices recorded and signed" in out


def test_a_prune_keeping_anomalies_records_each_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = [
        ("success_http", OLD),
        ("dns_nxdomain", OLD),  # an anomaly: kept
        ("success_http", OLD),
        ("success_http", OLD),
        ("success_http", NEW),
    ]
    db = dated_db(tmp_path / "p.db", plan)
    _prune(db, capsys, "--keep-anomalies")
    assert [r["seq"] for r in rows(db)] == [2, 5]
    ranges = [(r["first_seq"], r["last_seq"]) for r in rows(db, "chain_pruned", "first_seq")]
    assert ranges == [(1, 1), (3, 4)]
    code, out = _verify(db, capsys)
    assert code == 0, out
    # Then the anomaly goes too: the ranges join into one, signed again.
    _prune(db, capsys)
    ranges = [(r["first_seq"], r["last_seq"]) for r in rows(db, "chain_pruned", "first_seq")]
    assert ranges == [(1, 4)]
    code, out = _verify(db, capsys)
    assert code == 0, out
    assert "4 measurements pruned" in out


def test_a_deletion_not_recorded_is_still_removed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = dated_db(tmp_path / "p.db", [("success_http", OLD)] * 3 + [("success_http", NEW)] * 3)
    _prune(db, capsys)
    sql(db, "DELETE FROM measurements WHERE seq = 5")  # by hand, beside the prune
    code, out = _verify(db, capsys)
    assert code == 1
    assert "m5: removed: seq 5 of its chain is missing" in out, out
    assert "3 measurements pruned" in out


@pytest.mark.parametrize("case", ["another key", "widened", "no link"])
def test_a_prune_record_not_signed_by_the_device_is_removed(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Someone deleting measurements writes a prune record for them: without the device's key
    it cannot be signed by it; a signed record of another range does not cover this one; a
    record whose chain hash is not the pruned one's leaves the next link unproven."""
    db = dated_db(tmp_path / "p.db", [("success_http", NEW)] * 4)
    ch = {r["seq"]: r["chain_hash"] for r in rows(db)}
    device = str(rows(db)[0]["device_key"])
    own = keys.load_key(keys.key_path(db))
    last_hash = ch[2]
    if case == "another key":
        statement, sig = pruned.sign(keys.DeviceKey.generate(), device, 1, 2, ch[2], NEW)
    elif case == "widened":  # the device's signed record of seq 1, stored as 1..2
        statement, sig = pruned.sign(own, device, 1, 1, ch[1], NEW)
    else:
        last_hash = "ab" * 32
        statement, sig = pruned.sign(own, device, 1, 2, last_hash, NEW)
    sql(
        db,
        "DELETE FROM measurements WHERE seq IN (1, 2)",
        (
            "INSERT INTO chain_pruned (device_key, first_seq, last_seq, last_chain_hash, at, "
            "by_key, statement, signature) VALUES (?, 1, 2, ?, ?, ?, ?, ?)",
            [device, last_hash, NEW, device, statement.decode(), sig],
        ),
    )
    code, out = _verify(db, capsys)
    assert code == 1, out
    if case == "no link":
        assert "m3: inserted: its link to the chain does not hold (seq 3)" in out, out
    else:
        assert "m2: removed: seq 1..2 of its chain is missing" in out, out
        assert "pruned" not in out, out


def test_prune_on_a_database_before_the_chain_records_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "old.db"
    old = older_store(path)
    old.save(measurement("success_http", "m1", started_at=OLD.format(1)))
    old.db.close()
    _prune(path, capsys)
    store = Store.open(path)  # migrated now: the chain table is there, and empty
    assert store.db["measurements"].count == 0
    assert store.db["chain_pruned"].count == 0
    assert store.db["unchained_measurements"].count == 0  # pruned, not removed
    store.close()
    code, out = _verify(path, capsys)
    assert code == 0, out


def test_a_bundle_of_what_follows_a_prune_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = dated_db(tmp_path / "p.db", [("success_http", OLD)] * 2 + [("success_http", NEW)] * 2)
    _prune(db, capsys)
    out = tmp_path / "e.zip"
    code, _, err = run_fresh(["evidence", "--db", str(db), "--id", "m3", "-o", str(out)], capsys)
    assert code == 0, err
    code, lines, _ = run_fresh(["verify", "--bundle", str(out)], capsys)
    assert code == 0, lines
