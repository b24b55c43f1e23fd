"""The daemon uploads on its own schedule while it measures (a real daemon over the loopback
world, a real SeaweedFS): every measurement it stored reaches the bucket once, in chain order,
and a stop in the middle of it loses nothing."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from probe.fleet import s3
from probe.fleet import upload as up
from probe.store import Store
from tests.daemon.test_daemon import Daemon, rounds
from tests.fleet.test_upload import PUBLIC, chain_order, opened
from tests.runs import as_flags, world_settings
from tests.servers import s3 as S
from tests.world import World


def uploads(lines: list[dict[str, Any]]) -> list[str]:
    return [x["msg"] for x in lines if str(x.get("msg", "")).startswith("upload: ")]


def sent(lines: list[dict[str, Any]]) -> list[int]:
    """The batch counts of the daemon's uploads that sent something."""
    counts = [re.match(r"upload: (\d+) batches sent", m) for m in uploads(lines)]
    return [int(c[1]) for c in counts if c and int(c[1]) > 0]


def test_the_daemon_uploads_what_it_measures_on_its_own_schedule(
    tmp_path: Path, world: World, bucket: S.S3, monkeypatch: pytest.MonkeyPatch
) -> None:
    targets = tmp_path / "t.yaml"
    targets.write_text(
        f"targets:\n  - name: news\n    url: {world.http('news.test')}\n"
        f"  - name: blocked\n    url: {world.http('blocked.test')}\n"
        f"controls:\n  - name: ctl\n    url: {world.https('news.test')}\n"
    )
    db = tmp_path / "d.db"
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"access_key": S.WRITER[0], "secret_key": S.WRITER[1]}))
    monkeypatch.setenv("PROBE_UPLOAD_URL", bucket.url)
    monkeypatch.setenv("PROBE_COLLECTIVE_KEY", PUBLIC)
    monkeypatch.setenv("PROBE_UPLOAD_CREDENTIALS", str(creds))
    args = [*as_flags(world_settings(world, targets)), "--db", str(db)]
    d = Daemon([*args, "--interval", "1s", "--upload-interval", "2s"], tmp_path / "d.log")
    try:
        lines = d.wait_for(
            lambda ls: (
                # Two uploads of its own that each sent: the schedule repeats, and the
                # second batch chains onto the first whatever the rounds' pace.
                len(rounds(ls)) >= 3 and len(sent(ls)) >= 2
            ),
            timeout=90,
        )
        assert not [x for x in lines if x.get("level") == "error"], lines
    finally:
        code, took = d.stop()
    assert code == 0 and took < 15
    # What the stop left waiting, sent now; then the bucket holds every measurement once.
    store = Store.open(db)
    device = store.device_key().public
    dest = s3.Destination(s3.parse_bucket_url(bucket.url), S.WRITER[0], S.WRITER[1])
    up.upload(store, up.Plan(dest, PUBLIC))
    store.close()
    con = sqlite3.connect(db)
    ids = [
        r[0]
        for r in con.execute(
            "SELECT id FROM measurements WHERE device_key = ? ORDER BY seq", [device]
        )
    ]
    con.close()
    batches = chain_order(opened(bucket, device))
    assert len(batches) >= 2
    assert [r["id"] for b in batches for r in b.records] == ids


def test_a_half_made_upload_setup_stops_the_daemon_before_anything(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from tests.paths import REPO

    env = {**os.environ, "PROBE_UPLOAD_URL": "http://127.0.0.1:1/fleet", "PYTHONPATH": str(REPO)}
    env.pop("PROBE_COLLECTIVE_KEY", None)
    r = subprocess.run(
        [sys.executable, "-m", "probe", "daemon", "--db", str(tmp_path / "x.db")],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
        check=False,
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("probe: error: upload_url: needs collective_key"), r.stderr
    assert not (tmp_path / "x.db").exists()


def test_a_stop_while_an_upload_is_in_flight_logs_no_error(
    tmp_path: Path, world: World, bucket: S.S3, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM while the daemon waits for the store's answer: the upload's job is cancelled at
    the exit, which is the stop, not an error (the lab fleet test saw APScheduler log one)."""
    import signal
    import time

    targets = tmp_path / "t.yaml"
    targets.write_text(
        f"targets:\n  - name: news\n    url: {world.http('news.test')}\n"
        f"controls:\n  - name: ctl\n    url: {world.https('news.test')}\n"
    )
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"access_key": S.WRITER[0], "secret_key": S.WRITER[1]}))
    relay = S.Relay(bucket.ports["s3"], "stall_response")  # the store has it; no answer
    try:
        monkeypatch.setenv("PROBE_UPLOAD_URL", f"http://127.0.0.1:{relay.port}/{S.BUCKET}")
        monkeypatch.setenv("PROBE_COLLECTIVE_KEY", PUBLIC)
        monkeypatch.setenv("PROBE_UPLOAD_CREDENTIALS", str(creds))
        args = [*as_flags(world_settings(world, targets)), "--db", str(tmp_path / "d.db")]
        d = Daemon([*args, "--interval", "1s", "--upload-interval", "1s"], tmp_path / "d.log")
        try:
            assert relay.stalled.wait(60), d.log_path.read_text()
            d.proc.send_signal(signal.SIGTERM)
            d.wait_for(lambda ls: any(x.get("msg") == "stopped" for x in ls), timeout=15)
            time.sleep(0.5)  # the exit cancels what still runs
        finally:
            relay.close()  # the answer never comes: the upload's thread ends with it
            code, _ = d.stop()
    finally:
        relay.close()
    assert code == 0
    assert not [x for x in d.lines() if x.get("level") == "error"], d.log_path.read_text()
