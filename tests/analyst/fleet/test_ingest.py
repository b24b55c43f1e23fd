"""``probe fleet ingest``: batches sealed from a real probe database, read from a folder, into
the dataset; every hostile or broken batch refused with its reason and nothing else lost."""

from __future__ import annotations

import sqlite3
import struct
from pathlib import Path

import pytest

from probe.analyst.fleet import query
from probe.analyst.fleet.dataset import Dataset, FleetError
from probe.analyst.fleet.ingest import REPLAYED, FolderSource, ingest, keygen, load_private_key
from probe.evidence import keys
from probe.evidence.keys import DeviceKey
from probe.fleet import batch
from probe.store import Store
from probe.store.chain import sign_heads
from tests.analyst.fleet.fleets import PRIVATE, device_of, rows_of, seal_db, write
from tests.dbs import report_fleet


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[batch.Sealed]]:
    db = report_fleet(tmp_path_factory.mktemp("fleet") / "probe.db")
    store = Store.open(db)
    try:  # the heads a round's end signs, over the whole history
        store.db.conn.execute("BEGIN")
        sign_heads(store.db.conn, store.device_key(), "2026-11-03T23:00:00.000Z", "round-last")
        store.db.conn.execute("COMMIT")
    finally:
        store.close()
    return db, seal_db(db, per=20)


def run(bucket: Path, ds_path: Path, **kw: object) -> tuple[Dataset, list[str]]:
    ds = Dataset.open(ds_path)
    r = ingest(FolderSource(bucket), ds, collective_private_key=PRIVATE, **kw)  # type: ignore[arg-type]
    return ds, r.lines("bucket", "ds", ds.counts())


def test_every_measurement_arrives_once_with_its_bodies_and_heads(history, tmp_path: Path) -> None:
    db, sealed = history
    ds, lines = run(write(tmp_path / "bucket", sealed), tmp_path / "ds")
    rows, bodies, heads = rows_of(db)
    assert lines[0].startswith(
        f"bucket: {len(sealed)} batches ingested (0 read before), "
        f"{len(rows)} measurements added, 0 already there, 0 quarantined"
    )
    assert ds.counts()["measurements"] == len(rows) == 96
    con = query.connect(tmp_path / "ds")
    assert con.execute("SELECT count(*), count(DISTINCT id) FROM measurements").fetchone() == (
        96,
        96,
    )
    got = con.execute(f"SELECT count(*) FROM read_parquet('{ds.glob('bodies')}')").fetchone()[0]
    assert got == len(bodies) > 0
    held = con.execute(f"SELECT count(*) FROM read_parquet('{ds.glob('heads')}')").fetchone()[0]
    assert held == len(heads) > 0
    assert ds.gaps() == [] and ds.forks() == [] and ds.broken_links() == []


def test_a_second_run_reads_nothing_again_and_changes_nothing(history, tmp_path: Path) -> None:
    _, sealed = history
    bucket = write(tmp_path / "bucket", sealed[:3])
    ds, _ = run(bucket, tmp_path / "ds", compact=False)
    before = sorted(p.name for p in (tmp_path / "ds").rglob("*.parquet"))
    ds.close()
    write(bucket, sealed[3:])
    ds, lines = run(bucket, tmp_path / "ds", compact=False)
    assert lines[0].startswith(f"bucket: {len(sealed) - 3} batches ingested (3 read before)")
    assert set(before) <= {p.name for p in (tmp_path / "ds").rglob("*.parquet")}
    ds.close()
    ds, lines = run(bucket, tmp_path / "ds")
    assert lines[0].startswith(
        f"bucket: 0 batches ingested ({len(sealed)} read before), 0 measurements"
    )
    assert ds.counts()["measurements"] == 96


def test_the_same_records_in_another_batch_are_already_there(history, tmp_path: Path) -> None:
    db, sealed = history
    rows, _, _ = rows_of(db)
    again = batch.seal(
        rows[:5], signing_key=device_of(db), collective_public_key=_public(), prev=None
    )
    _ds, lines = run(write(tmp_path / "bucket", [*sealed, again]), tmp_path / "ds")
    assert "96 measurements added, 5 already there, 0 quarantined" in lines[0]


def _public() -> str:
    return batch.public_of(PRIVATE)


def test_hostile_batches_are_rejected_with_their_reason_and_nothing_else_lost(
    history, tmp_path: Path
) -> None:
    _, sealed = history
    bucket = write(tmp_path / "bucket", sealed)
    _other_private, other_public = batch.collective_keypair()
    evil = DeviceKey.generate()
    largest = max(len(s.data) for s in sealed)
    hostile = {
        "x/truncated.pbatch": sealed[0].data[:-10],
        "x/wrong-key.pbatch": batch.seal(
            [], signing_key=evil, collective_public_key=other_public, prev=None
        ).data,
        "x/damaged.pbatch": sealed[1].data[:40]
        + bytes([sealed[1].data[40] ^ 1])
        + sealed[1].data[41:],
        "x/not.pbatch": b"hello, this is not a batch at all" * 3,
        "x/bad-signature.pbatch": _payload_changed(sealed[3]),
        "x/replayed.pbatch": sealed[2].data,
        "x/oversized.pbatch": b"PBATCH1\n" + b"\0" * (largest + 1),
    }
    for name, data in hostile.items():
        (bucket / name).parent.mkdir(parents=True, exist_ok=True)
        (bucket / name).write_bytes(data)
    ds, lines = run(bucket, tmp_path / "ds", max_bytes=largest)
    reasons = dict(ds.con.execute("SELECT name, reason FROM rejected").fetchall())
    assert reasons == {
        "x/truncated.pbatch": batch.TRUNCATED,
        "x/wrong-key.pbatch": batch.WRONG_KEY,
        "x/damaged.pbatch": batch.DAMAGED,
        "x/not.pbatch": batch.NOT_A_BATCH,
        "x/bad-signature.pbatch": batch.BAD_SIGNATURE,
        "x/replayed.pbatch": REPLAYED,
        "x/oversized.pbatch": batch.OVERSIZED,
    }
    assert ds.counts()["measurements"] == 96
    assert "7 batches rejected" in lines[0]


def _payload_changed(sealed: batch.Sealed) -> bytes:
    """The batch with one byte of its signed payload changed, sealed again to the collective
    (what a bucket operator who had the collective's private key could do)."""
    from nacl.public import PrivateKey, PublicKey, SealedBox

    inner = bytearray(SealedBox(PrivateKey(keys.from_b64url(PRIVATE))).decrypt(
        sealed.data[batch.HEADER :]
    ))  # fmt: skip
    inner[-1] ^= 1
    box = SealedBox(PublicKey(keys.from_b64url(_public()))).encrypt(bytes(inner))
    return sealed.data[: batch.HEADER - 8] + struct.pack(">Q", len(box)) + bytes(box)


def test_a_batch_signed_by_another_key_than_its_records_is_quarantined(
    history, tmp_path: Path
) -> None:
    db, _ = history
    rows, _, _ = rows_of(db)
    evil = DeviceKey.generate()
    forged = batch.seal(rows[:3], signing_key=evil, collective_public_key=_public(), prev=None)
    ds, _lines = run(write(tmp_path / "bucket", [forged]), tmp_path / "ds")
    assert ds.counts()["measurements"] == 0
    why = {r for (r,) in ds.con.execute("SELECT reason FROM quarantine")}
    assert why == {"device_key: not the key that signed the batch"}


def test_an_altered_record_is_quarantined_and_the_rest_added(history, tmp_path: Path) -> None:
    db, _ = history
    rows, _, _ = rows_of(db)
    key = device_of(db)
    altered = [dict(r) for r in rows[:4]]
    altered[1]["target"] = "somewhere-else"  # still a valid row: only its hash says so
    sealed = batch.seal(altered, signing_key=key, collective_public_key=_public(), prev=None)
    ds, lines = run(write(tmp_path / "bucket", [sealed]), tmp_path / "ds")
    assert "3 measurements added, 0 already there, 1 quarantined" in lines[0]
    assert ds.con.execute("SELECT row_id, kind, reason FROM quarantine").fetchall() == [
        (rows[1]["id"], "invalid", "record_hash: not the hash of the record (altered on the way)")
    ]


def test_a_row_the_merge_refuses_is_quarantined_with_the_merges_reason(
    history, tmp_path: Path
) -> None:
    db, _ = history
    rows, _, _ = rows_of(db)
    bad = [dict(r) for r in rows[:2]]
    bad[0]["observations"] = '{"dns": [], "nonsense": 1}'
    sealed = batch.seal(bad, signing_key=device_of(db), collective_public_key=_public(), prev=None)
    ds, _lines = run(write(tmp_path / "bucket", [sealed]), tmp_path / "ds")
    (reason,) = ds.con.execute("SELECT reason FROM quarantine").fetchone()
    assert reason.startswith("observations:"), reason
    assert ds.counts()["measurements"] == 1


def test_gaps_and_forks_are_reported_per_device(history, tmp_path: Path) -> None:
    db, sealed = history
    rows, _, _ = rows_of(db)
    key = device_of(db)
    # A fork: another record at seq 3, well hashed and signed (the device's key was copied).
    other = dict(rows[2]) | {"id": "a-second-history", "target": "elsewhere"}
    from probe.evidence import canonical

    other["record_hash"] = canonical.record_hash(other)
    other["chain_hash"] = canonical.link(rows[1]["chain_hash"], other["record_hash"])
    fork = batch.seal([other], signing_key=key, collective_public_key=_public(), prev=None)
    missing = sealed[1]  # seq 21..40 does not arrive in time
    bucket = write(tmp_path / "bucket", [s for s in sealed if s is not missing])
    ds, lines = run(bucket, tmp_path / "ds")
    problems = [line for line in lines if line.startswith(f"device {key.public}")]
    assert problems == [
        f"device {key.public}: gap: seq 21 to 40 missing",
        f"device {key.public}: gap: batch {missing.digest} named as previous, never seen",
    ]
    ds.close()
    ds, lines = run(write(bucket, [fork]), tmp_path / "ds")
    problems = [line for line in lines if line.startswith(f"device {key.public}")]
    assert problems[-1] == (
        f"device {key.public}: fork: seq 3 of this device already held by measurement "
        f"{rows[2]['id']} (measurement a-second-history refused)"
    )
    # The missing batch arrives late: the gap closes, its links to both sides hold.
    ds.close()
    ds, lines = run(write(bucket, [missing]), tmp_path / "ds")
    assert ds.gaps() == [] and ds.broken_links() == [] and len(ds.forks()) == 1
    assert ds.counts()["measurements"] == 96


def test_a_broken_link_is_quarantined(history, tmp_path: Path) -> None:
    db, _ = history
    rows, _, _ = rows_of(db)
    key = device_of(db)
    bad = [dict(r) for r in rows[:3]]
    bad[2]["chain_hash"] = "0" * 64
    sealed = batch.seal(bad, signing_key=key, collective_public_key=_public(), prev=None)
    ds, _ = run(write(tmp_path / "bucket", [sealed]), tmp_path / "ds")
    assert [(k, r) for k, r, _ in ds.broken_links()] == [(key.public, rows[2]["id"])]
    assert ds.counts()["measurements"] == 2


def test_a_run_cut_short_is_undone_and_read_again_whole(
    history, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, sealed = history
    bucket = write(tmp_path / "bucket", sealed)
    written = []

    def cut(self: Dataset, rel: str, table: object) -> None:
        if len(written) == 7:  # part-way through a batch's files
            raise OSError(28, "No space left on device")
        written.append(rel)
        original(self, rel, table)

    original = Dataset._write
    monkeypatch.setattr(Dataset, "_write", cut)
    with pytest.raises(OSError):
        run(bucket, tmp_path / "ds")
    monkeypatch.setattr(Dataset, "_write", original)
    ds, _lines = run(bucket, tmp_path / "ds")
    con = query.connect(tmp_path / "ds")
    assert con.execute("SELECT count(*), count(DISTINCT id) FROM measurements").fetchone() == (
        96,
        96,
    )
    assert ds.counts()["measurements"] == 96
    assert not list((tmp_path / "ds").rglob("*.tmp"))


def test_compaction_joins_small_files_and_keeps_every_row(history, tmp_path: Path) -> None:
    _, sealed = history
    ds, _ = run(write(tmp_path / "bucket", sealed), tmp_path / "ds", compact=False)
    before = len(list((tmp_path / "ds").rglob("*.parquet")))
    joined = ds.compact(min_files=2)
    after = len(list((tmp_path / "ds").rglob("*.parquet")))
    assert joined > 0 and after < before
    con = query.connect(tmp_path / "ds")
    assert con.execute("SELECT count(*), count(DISTINCT id) FROM measurements").fetchone() == (
        96,
        96,
    )


def test_keygen_writes_a_pair_never_over_a_key(tmp_path: Path) -> None:
    public = keygen(tmp_path / "collective.key")
    assert (tmp_path / "collective.key").stat().st_mode & 0o777 == 0o600
    private = load_private_key(tmp_path / "collective.key")
    assert batch.public_of(private) == public
    assert (tmp_path / "collective.key.pub").read_text().strip() == public
    with pytest.raises(FleetError, match="already exists"):
        keygen(tmp_path / "collective.key")
    (tmp_path / "bad.key").write_text("not a key")
    with pytest.raises(FleetError, match=r"bad\.key: not a collective private key"):
        load_private_key(tmp_path / "bad.key")


def test_an_ingest_killed_mid_run_loses_nothing_and_duplicates_nothing(
    history, tmp_path: Path
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    db, _ = history
    sealed = seal_db(db, per=1)  # 96 batches: a run long enough to be killed in
    bucket = write(tmp_path / "bucket", sealed)
    (tmp_path / "collective.key").write_text(PRIVATE)
    args = [sys.executable, "-m", "probe", "fleet", "ingest", str(bucket), str(tmp_path / "ds"),
            "--key", str(tmp_path / "collective.key"), "--no-compact"]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while _batches_in(tmp_path / "ds") < 3:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    ds = Dataset.open(tmp_path / "ds")
    cut = ds.counts()["batches"]
    assert 0 < cut < len(sealed)  # killed part-way
    ds.close()
    ds, lines = run(bucket, tmp_path / "ds")
    assert lines[0].startswith(f"bucket: {len(sealed) - cut} batches ingested ({cut} read before)")
    con = query.connect(tmp_path / "ds")
    assert con.execute("SELECT count(*), count(DISTINCT id) FROM measurements").fetchone() == (
        96,
        96,
    )


def _batches_in(ds: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{ds / '_fleet.sqlite'}?mode=ro", uri=True)
        try:
            return int(con.execute("SELECT count(*) FROM batches").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:  # not made yet
        return 0


def test_a_file_still_being_copied_is_read_again_next_time(history, tmp_path: Path) -> None:
    _, sealed = history
    bucket = tmp_path / "bucket"
    path = bucket / sealed[0].key
    path.parent.mkdir(parents=True)
    path.write_bytes(sealed[0].data[: len(sealed[0].data) // 2])  # half-way through a copy
    ds, lines = run(bucket, tmp_path / "ds")
    assert "1 batches rejected (1 truncated)" in lines[0]
    ds.close()
    path.write_bytes(sealed[0].data)
    ds, lines = run(bucket, tmp_path / "ds")
    assert lines[0].startswith("bucket: 1 batches ingested (0 read before), 20 measurements")
    # Any other refusal is final: the object is not read again.
    (bucket / "junk.pbatch").write_bytes(b"not a batch, and never will be")
    ds.close()
    _, lines = run(bucket, tmp_path / "ds")
    _, again = run(bucket, tmp_path / "ds")
    assert "1 batches rejected (1 not a batch)" in lines[0]
    assert again[0].startswith("bucket: 0 batches ingested (2 read before)")
    assert "0 batches rejected" in again[0]
