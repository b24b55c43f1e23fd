"""``probe upload`` killed mid-upload (a real process, SIGKILL), then run again: nothing lost,
nothing duplicated. A relay in front of SeaweedFS holds the upload at the moment to kill:
half of the object sent (the store never got it), or all of it sent and the store's answer
held (the store has it; the probe never heard so)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from probe.fleet import batch
from tests.fleet.test_upload import PRIVATE, PUBLIC, chain_order, opened, probe_db, stored_rows
from tests.servers import s3 as S

REPO = Path(__file__).resolve().parents[2]


def probe_upload(db: Path, url: str, creds: Path, tmp: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PROBE_CONFIG": str(tmp / "empty.toml"),
    }
    (tmp / "empty.toml").write_text("")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "probe",
            "upload",
            "--db",
            str(db),
            "--upload-url",
            url,
            "--collective-key",
            PUBLIC,
            "--upload-credentials",
            str(creds),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def outbox(db: Path) -> list[tuple[str, str | None, bool]]:
    import sqlite3

    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT digest, acked_at, data IS NOT NULL FROM outbox").fetchall()
    finally:
        con.close()
    return [(str(d), a, bool(h)) for d, a, h in rows]


@pytest.mark.parametrize("mode", ["stall_request", "stall_response"])
def test_killed_mid_upload_then_resumed_loses_and_duplicates_nothing(
    bucket: S.S3, tmp_path: Path, mode: str
) -> None:
    db = tmp_path / "p.db"
    store = probe_db(db, 6)
    device = store.device_key().public
    store.close()
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"access_key": S.WRITER[0], "secret_key": S.WRITER[1]}))
    relay = S.Relay(bucket.ports["s3"], mode, after=3000)
    try:
        proc = probe_upload(db, f"http://127.0.0.1:{relay.port}/{S.BUCKET}", creds, tmp_path)
        stalled = relay.stalled.wait(60)
        os.kill(proc.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
        assert stalled, err
        assert proc.returncode == -signal.SIGKILL
    finally:
        relay.close()
    # The batch was made and kept, not acknowledged.
    [(digest, acked, held)] = outbox(db)
    assert acked is None and held
    stored = bucket.objects(f"batches/{device}/")
    assert len(stored) == (1 if mode == "stall_response" else 0)

    again = probe_upload(db, bucket.url, creds, tmp_path)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert b"0 batches made, 1 sent (6 measurements" in out
    [(digest2, acked, held)] = outbox(db)
    assert digest2 == digest and acked is not None and not held
    batches = chain_order(opened(bucket, device))
    assert [b.digest for b in batches] == [digest]
    assert [r["id"] for b in batches for r in b.records] == [r["id"] for r in stored_rows(db)]

    third = probe_upload(db, bucket.url, creds, tmp_path)
    out, _ = third.communicate(timeout=120)
    assert b"0 batches made, 0 sent" in out
    assert len(bucket.objects(f"batches/{device}/")) == 1
    assert isinstance(
        batch.open_batch(
            next(iter(bucket.objects(f"batches/{device}/").values())),
            collective_private_key=PRIVATE,
            max_bytes=1 << 26,
        ),
        batch.Batch,
    )
