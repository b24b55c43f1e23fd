"""Uploads to a real S3 server (SeaweedFS on loopback): every measurement once, in order; a store
that is away or refuses leaves the batches waiting; a pre-signed policy, a SOCKS5 proxy, the
data budget and keep_uploaded."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from probe import failures
from probe.evidence import canonical
from probe.fleet import batch, s3
from probe.fleet import upload as up
from probe.round import budget
from probe.store import RoundRecord, Store
from tests.dbs import measurement
from tests.servers import s3 as S
from tests.servers.tcp import free_port

PRIVATE, PUBLIC = batch.collective_keypair()
SCENARIOS = ("blockpage_injection_consistent_dns", "dns_nxdomain", "large_body", "success_https")


def probe_db(path: Path, n: int, *, start: int = 0) -> Store:
    store = Store.open(path)
    for i in range(start, start + n):
        name = SCENARIOS[i % len(SCENARIOS)]
        store.save(measurement(name, f"m{i}", started_at=f"2026-11-29T00:{i:02d}:00.000Z"))
    store.save_round(
        RoundRecord(
            id=f"r{start}",
            device_id=store.device_id,
            started_at="2026-11-29T00:00:00.000Z",
            kind="run",
            finished_at=f"2026-11-29T00:{start + n:02d}:00.000Z",
            targets=n,
            network_ok=True,
        )
    )
    return store


def writer(server: S.S3, **kw: Any) -> s3.Destination:
    return s3.Destination(
        s3.parse_bucket_url(server.url), S.WRITER[0], S.WRITER[1], http=s3.pool(None), **kw
    )


def plan(dest: s3.Destination, **kw: Any) -> up.Plan:
    return up.Plan(dest, PUBLIC, **kw)


def opened(server: S.S3, device: str) -> list[batch.Batch]:
    out = []
    for key, data in sorted(server.objects(f"batches/{device}/").items()):
        b = batch.open_batch(data, collective_private_key=PRIVATE, max_bytes=64 << 20)
        assert isinstance(b, batch.Batch), (key, b)
        assert batch.parse_object_key(key) == (device, b.digest)
        out.append(b)
    return out


def chain_order(batches: list[batch.Batch]) -> list[batch.Batch]:
    """The batches in their prev order, checking there is one chain without a gap."""
    by_prev = {b.prev: b for b in batches}
    assert len(by_prev) == len(batches)
    out, prev = [], None
    while prev in by_prev:
        out.append(by_prev[prev])
        prev = out[-1].digest
    assert len(out) == len(batches)
    return out


def stored_rows(path: Path) -> list[dict[str, Any]]:
    con = sqlite3.connect(path)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM measurements ORDER BY seq")]
    finally:
        con.close()


def test_every_measurement_reaches_the_bucket_once_in_chain_order(
    bucket: S.S3, tmp_path: Path
) -> None:
    store = probe_db(tmp_path / "p.db", 5)
    device = store.device_key().public
    r = up.upload(store, plan(writer(bucket), limit=2))
    assert (r.made, r.sent, r.measurements, r.waiting, r.failure) == (3, 3, 5, 0, None)
    assert r.bytes > 0
    batches = chain_order(opened(bucket, device))
    records = [rec for b in batches for rec in b.records]
    assert records == stored_rows(tmp_path / "p.db")
    assert [rec["seq"] for rec in records] == [1, 2, 3, 4, 5]
    assert all(canonical.record_hash(rec) == rec["record_hash"] for rec in records)
    # The bodies the records name travel with them, their content hash as bound.
    named = {k: v for rec in records for k, v in json.loads(rec["body_digests"] or "[]")}
    bodies = {b["sha256"]: b for bb in batches for b in bb.bodies}
    assert named and set(bodies) == set(named)
    assert all(canonical.content_hash(bodies[k]["text"].encode()) == v for k, v in named.items())
    # The round's signed heads reach the batch holding their measurement.
    heads = [h for b in batches for h in b.heads]
    assert {h["kind"] for h in heads} == {"round", "day"} and all(h["seq"] == 5 for h in heads)

    again = up.upload(store, plan(writer(bucket), limit=2))
    assert (again.made, again.sent, again.bytes) == (0, 0, 0)
    store.close()
    store = probe_db(tmp_path / "p.db", 2, start=5)
    more = up.upload(store, plan(writer(bucket), limit=2))
    assert (more.made, more.sent, more.measurements) == (1, 1, 2)
    batches = chain_order(opened(bucket, device))
    assert [rec["id"] for b in batches for rec in b.records] == [f"m{i}" for i in range(7)]
    # Each head travels once: the new round's, and its day's head re-signed at seq 7.
    assert [(h["kind"], h["seq"]) for h in batches[-1].heads] == [("day", 7), ("round", 7)]
    store.close()


def test_a_head_signed_after_its_batch_left_goes_with_the_next(
    bucket: S.S3, tmp_path: Path
) -> None:
    store = Store.open(tmp_path / "p.db")
    for i in range(3):
        store.save(measurement("dns_nxdomain", f"m{i}"))
    up.upload(store, plan(writer(bucket)))  # mid-round: no head yet
    store.save_round(
        RoundRecord(
            id="r1",
            device_id=store.device_id,
            started_at="2026-11-29T00:00:00.000Z",
            kind="run",
            finished_at="2026-11-29T00:10:00.000Z",
        )
    )
    store.save(measurement("dns_nxdomain", "m3"))
    r = up.upload(store, plan(writer(bucket)))
    assert r.sent == 1
    first, second = chain_order(opened(bucket, store.device_key().public))
    assert first.heads == []
    assert [(h["kind"], h["label"], h["seq"]) for h in second.heads] == [
        ("day", "2026-11-29", 3),
        ("round", "r1", 3),
    ]
    assert [rec["seq"] for rec in second.records] == [4]
    assert store.db.execute("SELECT count(*) FROM outbox WHERE data IS NOT NULL").fetchone()[0] == 0
    store.close()


def test_a_store_that_is_away_keeps_the_batches_until_it_is_back(
    bucket: S.S3, tmp_path: Path
) -> None:
    store = probe_db(tmp_path / "p.db", 3)
    device = store.device_key().public
    away = s3_destination_at(free_port(["127.0.0.1"]))
    r = up.upload(store, plan(away, limit=2))
    assert (r.made, r.sent, r.waiting, r.failure) == (2, 0, 2, failures.CONNECTION_REFUSED)
    assert bucket.objects(f"batches/{device}/") == {}
    # Measured meanwhile: the next run makes a batch after the waiting ones, sends all three.
    store.close()
    store = probe_db(tmp_path / "p.db", 1, start=3)
    r = up.upload(store, plan(writer(bucket), limit=2))
    assert (r.made, r.sent, r.measurements, r.waiting, r.failure) == (1, 3, 4, 0, None)
    batches = chain_order(opened(bucket, device))
    assert [rec["seq"] for b in batches for rec in b.records] == [1, 2, 3, 4]
    attempts = store.db.execute("SELECT sum(attempts) FROM outbox").fetchone()[0]
    assert attempts == 4  # one refused, three acknowledged
    store.close()


def s3_destination_at(port: int) -> s3.Destination:
    return s3.Destination(
        s3.parse_bucket_url(f"http://127.0.0.1:{port}/{S.BUCKET}"), S.WRITER[0], S.WRITER[1]
    )


def test_a_store_that_refuses_the_credentials_keeps_the_batch(bucket: S.S3, tmp_path: Path) -> None:
    store = probe_db(tmp_path / "p.db", 1)
    wrong = s3.Destination(s3.parse_bucket_url(bucket.url), S.WRITER[0], "not-the-secret")
    r = up.upload(store, plan(wrong))
    assert (r.sent, r.waiting, r.failure) == (0, 1, failures.HTTP_REQUEST_FAILED)
    r = up.upload(store, plan(writer(bucket)))
    assert (r.sent, r.waiting, r.failure) == (1, 0, None)
    store.close()


def test_write_only_credentials_cannot_read_or_delete_what_they_wrote(
    bucket: S.S3, tmp_path: Path
) -> None:
    from minio.error import S3Error

    store = probe_db(tmp_path / "p.db", 1)
    up.upload(store, plan(writer(bucket)))
    key = store.db.execute("SELECT object_key FROM outbox").fetchone()[0]
    client = bucket.client(S.WRITER)
    for read in (
        lambda: client.get_object(S.BUCKET, key),
        lambda: list(client.list_objects(S.BUCKET, recursive=True)),
        lambda: client.remove_object(S.BUCKET, key),  # the bucket is write-once
    ):
        try:
            read()
        except S3Error as exc:
            assert exc.code == "AccessDenied"
        else:
            raise AssertionError("a write-only key could read or delete")
    assert key in bucket.objects()
    store.close()


def test_a_presigned_policy_writes_only_under_its_device(bucket: S.S3, tmp_path: Path) -> None:
    store = probe_db(tmp_path / "p.db", 2)
    device = store.device_key().public
    policy = s3.presign(bucket.url, device, access_key=S.WRITER[0], secret_key=S.WRITER[1])
    dest = s3.Destination(s3.parse_bucket_url(bucket.url), policy=policy)
    r = up.upload(store, plan(dest))
    assert (r.sent, r.failure) == (1, None)
    assert len(opened(bucket, device)) == 1
    # Another device's policy: the store refuses, the batch waits.
    other = probe_db(tmp_path / "q.db", 1)
    r = up.upload(other, plan(dest))
    assert (r.sent, r.waiting, r.failure) == (0, 1, failures.HTTP_REQUEST_FAILED)
    assert bucket.objects(f"batches/{other.device_key().public}/") == {}
    store.close()
    other.close()


def test_uploads_go_through_a_socks5_proxy(bucket: S.S3, tmp_path: Path) -> None:
    proxy = S.Socks5()
    try:
        store = probe_db(tmp_path / "p.db", 1)
        url = f"socks5h://127.0.0.1:{proxy.port}"
        dest = s3.Destination(
            s3.parse_bucket_url(bucket.url), S.WRITER[0], S.WRITER[1], http=s3.pool(url)
        )
        r = up.upload(store, plan(dest))
        assert (r.sent, r.failure) == (1, None)
        assert proxy.asked == [("127.0.0.1", bucket.ports["s3"])]
        assert len(opened(bucket, store.device_key().public)) == 1
        store.close()
    finally:
        proxy.close()


def test_uploads_count_against_the_data_budget(bucket: S.S3, tmp_path: Path) -> None:
    store = probe_db(tmp_path / "p.db", 3)
    before = store.bytes_used_since("2000-01-01T00:00:00.000Z")
    r = up.upload(store, plan(writer(bucket), limit=1, caps=budget.Budget(daily=10_000_000)))
    assert r.sent == 3
    assert store.bytes_used_since("2000-01-01T00:00:00.000Z") == before + r.bytes
    # A cap the next batch would pass: it waits, said why; nothing is sent.
    store.close()
    store = probe_db(tmp_path / "p.db", 1, start=3)
    used = store.bytes_used_since(datetime.now(UTC).strftime("%Y-%m-%dT00:00:00.000Z"))
    r = up.upload(store, plan(writer(bucket), caps=budget.Budget(daily=used + 100)))
    assert (r.made, r.sent, r.waiting, r.bytes) == (1, 0, 1, 0)
    assert r.budget is not None and r.budget.startswith("daily cap")
    store.close()


def test_keep_uploaded_deletes_only_what_the_collective_holds(bucket: S.S3, tmp_path: Path) -> None:
    store = probe_db(tmp_path / "p.db", 4)
    later = datetime(2026, 12, 30, tzinfo=UTC)
    r = up.upload(store, plan(writer(bucket), limit=2, keep_uploaded=86400.0), now=lambda: later)
    assert (r.sent, r.pruned) == (2, 3)  # the last one stays: the chain goes on from it
    left = stored_rows(tmp_path / "p.db")
    assert [m["seq"] for m in left] == [4]
    # Not yet acknowledged: kept, whatever its age (the one held back as the tip goes now).
    store.close()
    store = probe_db(tmp_path / "p.db", 2, start=4)
    away = s3_destination_at(free_port(["127.0.0.1"]))
    r = up.upload(store, plan(away, keep_uploaded=86400.0), now=lambda: later)
    assert (r.sent, r.pruned) == (0, 1)
    assert [m["seq"] for m in stored_rows(tmp_path / "p.db")] == [5, 6]
    # Measurements keep chaining after the pruned ones.
    store.save(measurement("dns_nxdomain", "m-after"))
    assert [m["seq"] for m in stored_rows(tmp_path / "p.db")] == [5, 6, 7]
    store.close()


def test_the_digest_is_a_content_address_so_a_resend_is_the_same_object(
    bucket: S.S3, tmp_path: Path
) -> None:
    store = probe_db(tmp_path / "p.db", 2)
    up.upload(store, plan(writer(bucket)))
    key, device = store.db.execute("SELECT object_key, device_key FROM outbox").fetchone()
    first = bucket.objects(f"batches/{device}/")
    # Sent again (as after a kill between the store's answer and its record): one object.
    store.db.execute("UPDATE outbox SET acked_at = NULL, data = ?", [first[key]])
    r = up.upload(store, plan(writer(bucket)))
    assert r.sent == 1
    assert bucket.objects(f"batches/{device}/") == first
    store.close()


def test_probe_status_says_what_was_uploaded_and_what_waits(
    bucket: S.S3, tmp_path: Path, capsys: Any
) -> None:
    from tests.runs import run_cli

    db = tmp_path / "p.db"
    store = probe_db(db, 3)
    code, out, _ = run_cli(["status", "--db", str(db), "--json"], capsys)
    assert json.loads(out)["uploads"] is None
    up.upload(store, plan(writer(bucket), limit=2))
    store.close()
    store = probe_db(db, 1, start=3)
    up.upload(store, plan(s3_destination_at(free_port(["127.0.0.1"]))))
    store.close()
    code, out, _ = run_cli(["status", "--db", str(db), "--json"], capsys)
    doc = json.loads(out)["uploads"]
    assert (doc["acked_batches"], doc["acked_measurements"], doc["waiting_batches"]) == (2, 3, 1)
    assert doc["last_error"] == failures.CONNECTION_REFUSED and doc["last_acked_at"]
    code, out, _ = run_cli(["status", "--db", str(db)], capsys)
    (line,) = [x for x in out.splitlines() if x.startswith("uploaded")]
    assert line.startswith("uploaded   3 measurements in 2 batches, 1 waiting (last ")
    assert line.endswith("; the store did not take a batch: connection_refused")
