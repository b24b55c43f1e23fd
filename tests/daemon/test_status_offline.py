"""``probe status``: an offline daemon is not healthy, times are local beside UTC, caps in words,
and a missing ``--db`` is bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from probe.daemon import status as S
from probe.daemon.lock import DaemonLock
from probe.store import RoundRecord, Store
from probe.timeutil import iso
from tests.paths import REPO
from tests.runs import run_fresh
from tests.world import World


def _db(tmp_path: Path, *, network_ok: bool, now: datetime) -> Path:
    path = tmp_path / "p.db"
    store = Store.open(path)
    rec = RoundRecord(
        "r1",
        store.device_id,
        iso(now - timedelta(minutes=5)),
        "pages",
        finished_at=iso(now - timedelta(minutes=4)),
        status="ok" if network_ok else "offline",
        network_ok=network_ok,
        targets=3,
    )
    store.save_round(rec)
    store.save_daemon(
        {
            "pid": os.getpid(),
            "started_at": iso(now - timedelta(hours=1)),
            "interval": 3600.0,
            "backoff": 1.0,
            "state": "idle" if network_ok else "offline",
            "next_pages_at": iso(now + timedelta(minutes=30)),
            "max_bytes_per_day": 25_000_000,
            "max_bytes_per_month": None,
        }
    )
    store.close()
    return path


@pytest.mark.parametrize(
    ("network_ok", "code", "health"), [(True, 0, "healthy"), (False, 5, "offline")]
)
def test_offline_is_its_own_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], network_ok: bool, code: int, health: str
) -> None:
    now = datetime.now(UTC)
    db = _db(tmp_path, network_ok=network_ok, now=now)
    lock = DaemonLock(str(db)).acquire()
    try:
        got, out, err = run_fresh(["status", "--db", str(db), "--json"], capsys)
        doc = json.loads(out)
        assert (got, doc["exit"], doc["health"].split(":")[0]) == (code, code, health), err
        got, out, _ = run_fresh(["status", "--db", str(db)], capsys)
        assert got == code
        health_line = next(line for line in out.splitlines() if line.startswith("health"))
        assert ("healthy" in health_line) is network_ok, health_line
    finally:
        lock.release()


def test_status_help_documents_the_offline_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_fresh(["status", "--help"], capsys)
    assert code == 0 and "5: it runs, but" in " ".join(out.split()), out


def test_times_are_local_beside_utc_and_caps_in_words() -> None:
    now = datetime(2026, 12, 7, 16, 0, tzinfo=UTC)
    doc = {
        "running": True,
        "pid": 42,
        "since": "2026-12-07T15:00:00.000Z",
        "state": "idle",
        "next_round": "2026-12-07T16:30:00.000Z",
        "next_throughput": None,
        "backoff": 1.0,
        "last_error": None,
        "last_round": {
            "started_at": "2026-12-07T15:55:00.000Z",
            "kind": "pages",
            "status": "ok",
            "targets": 1,
            "anomalies": 1,
            "bytes_used": 1000,
            "note": None,
            "public_address": "echo",
        },
        "measurements": {"today": 1, "total": 1},
        "data": {"today": 1000, "month": 1000, "max_per_day": None, "max_per_month": None},
        "throttling_events": [
            {"target": "t", "opened_at": "2026-12-07T14:00:00.000Z", "label": None}
        ],
        "anomalous_24h": [],
        "health": "healthy",
        "exit": 0,
    }
    hanoi = ZoneInfo("Asia/Ho_Chi_Minh")
    text = "\n".join(S.render(doc, tz=hanoi))
    assert "2026-12-07 23:30 (16:30 UTC)" in text, text  # the next round, in Hanoi's time
    assert "2026-12-07 22:55 (15:55 UTC)" in text
    assert "no daily cap" in text and "no monthly cap" in text and "cap -" not in text
    assert "1 measurement," in text and "1 anomaly," in text and "1 open event" in text, text
    assert "0 targets in the last 24 h" in text
    vi = "\n".join(S.render(doc, tz=hanoi, lang="vi"))
    assert "không giới hạn hằng ngày" in vi and "2026-12-07 23:30 (16:30 UTC)" in vi, vi
    del now


def test_status_on_a_missing_db_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere.db"
    code, out, err = run_fresh(["status", "--db", str(missing)], capsys)
    assert (code, out) == (2, "")
    assert err == f"probe: error: --db: {missing}: no such file (is it the right path?)\n"
    assert not missing.exists()


# -- the daemon, offline, over loopback ---------------------------------------------------------
@pytest.mark.parametrize(
    ("lang", "says"),
    [
        ("en", "offline: the control did not load (c1: connection_refused)"),
        ("vi", "mất kết nối: không trang nào trong 1 trang đối chứng tải được"),
    ],
)
def test_the_daemon_explains_an_offline_round_and_status_says_offline(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str], lang: str, says: str
) -> None:
    t = tmp_path / "t.yaml"
    t.write_text(
        f"targets:\n  - name: news\n    url: {world.http('news.test')}\n"
        f"controls:\n  - name: c1\n    url: {world.http('refused.test')}\n"
    )
    db = tmp_path / "d.db"
    log = tmp_path / "d.log"
    args = [sys.executable, "-m", "probe", "--lang", lang, "daemon", "--log-format", "json"]
    args += ["--targets", str(t), "--db", str(db), "--interval", "1s", "--timeout", "1.5"]
    args += ["--resolver", world.system_dns.address, "--control-resolver", world.doh_url]
    args += ["--ca-bundle", world.ca_pem, "--allow-loopback"]
    with log.open("w") as fh:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=fh, cwd=REPO)
    try:
        deadline, lines = time.monotonic() + 60, []
        while time.monotonic() < deadline and not any(says in x for x in lines):
            time.sleep(0.2)
            lines = [
                json.loads(x)["msg"] for x in log.read_text().splitlines() if x.startswith("{")
            ]
            assert proc.poll() is None, log.read_text()
        offline = [x for x in lines if says in x]
        assert offline, log.read_text()[-2000:]
        round_word = {"en": "round ", "vi": "vòng đo "}[lang]
        assert "\n" not in offline[0] and offline[0].startswith(round_word)
        code, out, _ = run_fresh(["status", "--db", str(db), "--json"], capsys)
        assert code == 5 and json.loads(out)["health"].startswith("offline"), out
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
