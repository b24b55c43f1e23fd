"""The chain as the store writes it: each measurement hashed and linked as it is saved, heads
signed at each round's end, an old database migrated with its rows kept and listed unchained."""

from __future__ import annotations

import json
import sqlite3
import stat
import zlib
from dataclasses import replace
from pathlib import Path

from sqlite_utils import Database

from probe.evidence import canonical, heads, keys
from probe.store import RoundRecord, Store, migrations
from tests.dbs import measurement

SCENARIOS = ("blockpage_injection_consistent_dns", "dns_nxdomain", "large_body")


def rows(db: Path) -> list[dict[str, object]]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM measurements ORDER BY seq")]
    finally:
        con.close()


def test_each_measurement_is_hashed_and_linked_as_saved(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    store = Store.open(db)
    for i, name in enumerate(SCENARIOS):
        store.save(measurement(name, f"m{i}"))
    store.close()
    key = keys.load_key(keys.key_path(db))
    assert stat.S_IMODE(keys.key_path(db).stat().st_mode) == 0o600
    stored = rows(db)
    assert [r["seq"] for r in stored] == [1, 2, 3]
    assert [r["chain_prev"] for r in stored] == [None, "m0", "m1"]
    prev = canonical.GENESIS
    for r in stored:
        assert r["device_key"] == key.public
        assert r["record_hash"] == canonical.record_hash(r)
        assert r["chain_hash"] == canonical.link(prev, str(r["record_hash"]))
        prev = str(r["chain_hash"])


def test_bodies_are_bound_by_their_stored_content(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    store = Store.open(db)
    m = measurement("blockpage_injection_consistent_dns", "m0")
    store.save(m)
    store.save(replace(m, id="m1"))  # the same body again: stored once, bound by both
    store.close()
    con = sqlite3.connect(db)
    stored = dict(con.execute("SELECT sha256, data FROM bodies").fetchall())
    con.close()
    with_body = [h for h in m.observations.http if h.body_sha256 and h.body is not None]
    assert with_body
    for r in rows(db):
        digests = json.loads(str(r["body_digests"]))
        assert [k for k, _ in digests] == list(dict.fromkeys(h.body_sha256 for h in with_body))
        for k, content in digests:
            assert content == canonical.content_hash(zlib.decompress(stored[k]))


def test_what_is_derived_later_leaves_the_record_alone(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    store = Store.open(db)
    m = measurement("dns_nxdomain", "m0")
    store.save(m)
    before = rows(db)[0]
    other = measurement("blockpage_injection_consistent_dns", "x").verdict
    store.update_verdict("m0", other)  # what reclassify does
    store.save_throughput(replace(m, bytes_used=99999))  # a throughput test added later
    store.close()
    after = rows(db)[0]
    assert after["rule_id"] != before["rule_id"] and after["bytes_used"] == 99999
    assert after["record_hash"] == before["record_hash"] == canonical.record_hash(after)


def test_heads_signed_at_each_rounds_end_and_for_the_day(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    store = Store.open(db)
    r = RoundRecord(
        id="r1", device_id=store.device_id, started_at="2026-12-07T10:00:00.000Z", kind="run"
    )
    store.save_round(r)  # started: nothing to sign yet
    store.save(measurement("dns_nxdomain", "m0"))
    store.save(measurement("dns_nxdomain", "m1"))
    store.save_round(replace(r, finished_at="2026-12-07T10:05:00.000Z", status="ok"))
    r2 = replace(r, id="r2", started_at="2026-12-07T11:00:00.000Z")
    store.save(measurement("dns_nxdomain", "m2"))
    store.save_round(replace(r2, finished_at="2026-12-07T11:05:00.000Z", status="ok"))
    store.close()
    key = keys.load_key(keys.key_path(db))
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    found = {(h["kind"], h["label"]): dict(h) for h in con.execute("SELECT * FROM chain_heads")}
    tips = {
        r["seq"]: r["chain_hash"] for r in con.execute("SELECT seq, chain_hash FROM measurements")
    }
    con.close()
    assert set(found) == {("round", "r1"), ("round", "r2"), ("day", "2026-12-07")}
    assert found[("round", "r1")]["seq"] == 2 and found[("round", "r2")]["seq"] == 3
    assert found[("day", "2026-12-07")]["seq"] == 3  # the day's last state
    for h in found.values():
        head = heads.check(str(h["statement"]).encode(), str(h["signature"]))
        assert head is not None and head.device_key == key.public
        assert (head.seq, head.chain_hash, head.kind) == (h["seq"], tips[h["seq"]], h["kind"])


def test_an_old_database_keeps_its_rows_listed_unchained(tmp_path: Path) -> None:
    p = tmp_path / "old.db"
    db = Database(str(p))
    migrations.apply(db, stop_before="m010_chain")
    db.table("meta").insert({"key": "device_id", "value": "dev-old"})
    for i in range(3):
        db.table("measurements").insert(
            {
                "id": f"old{i}",
                "target": "t",
                "url": "u",
                "started_at": f"2026-01-0{i + 1}T00:00:00.000Z",
                "observations": "{}",
            }
        )
    db.close()
    store = Store.open(p)
    store.save(measurement("dns_nxdomain", "new"))
    store.close()
    stored = {r["id"]: r for r in rows(p)}
    assert set(stored) == {"old0", "old1", "old2", "new"}
    assert [stored[f"old{i}"]["seq"] for i in range(3)] == [None, None, None]
    assert stored["new"]["seq"] == 1 and stored["new"]["chain_prev"] is None
    con = sqlite3.connect(p)
    listed = [r[0] for r in con.execute("SELECT id FROM unchained_measurements ORDER BY id")]
    meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    con.close()
    assert listed == ["old0", "old1", "old2"]
    assert meta["chain_unchained"] == "3" and meta["chain_since"].endswith("Z")


def test_a_store_on_an_unmigrated_older_schema_writes_as_it_did(tmp_path: Path) -> None:
    # Tests (and the merge's copies) hand a Store an older database without migrating it.
    p = tmp_path / "v9.db"
    db = Database(str(p))
    migrations.apply(db, stop_before="m010_chain")
    store = Store(db, str(p))
    store.save(measurement("dns_nxdomain", "m1"))
    store.save_round(
        RoundRecord(id="r", device_id="d", started_at="t", kind="run", finished_at="t")
    )
    assert [r["id"] for r in db.query("SELECT id FROM measurements")] == ["m1"]
    db.close()
    assert not keys.key_path(p).exists()  # no chain there, so no key made for it
