"""The daemon and what is still tested beside it: unfinished rounds, status, prune, the patient
store, its log lines, and the real daemon against the loopback world."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from probe.config.settings import resolve
from probe.daemon.lock import DaemonLock
from probe.store import RoundRecord, Store
from probe.timeutil import iso
from tests.paths import REPO
from tests.runs import as_flags, run_cli, world_settings
from tests.world import World


# -- the store: unfinished rounds, status, prune --------------------------------------------
def _round(store: Store, rid: str, started: str, **kw: Any) -> None:
    store.save_round(RoundRecord(rid, store.device_id, started, "pages", **kw))


def test_unfinished_rounds_are_closed_when_their_writer_is_gone(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "p.db")
    _round(store, "dead", "2026-11-29T10:00:00.000Z", pid=999999)
    _round(store, "alive", "2026-11-29T10:00:00.000Z", pid=os.getpid())
    n = store.close_unfinished_rounds(lambda pid: pid == os.getpid(), "crash")
    assert n == 1
    rows = {r["id"]: r for r in store.db.query("SELECT * FROM rounds")}
    assert rows["dead"]["status"] == "interrupted" and rows["dead"]["finished_at"]
    assert rows["alive"]["finished_at"] is None


@pytest.fixture
def measured(tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]) -> Path:
    """A database with one round of the loopback world in it."""
    t = tmp_path / "t.yaml"
    t.write_text(
        f"targets:\n  - name: news\n    url: {world.http('news.test')}\n"
        f"  - name: blocked\n    url: {world.http('blocked.test')}\n"
        f"  - name: news-tls\n    url: {world.https('news.test')}\n"
        f"controls:\n  - name: ctl\n    url: {world.https('news.test')}\n"
    )
    db = tmp_path / "m.db"
    code, _, err = run_cli(["run", "-q", "--db", str(db), *_world_args(world, t)], capsys)
    assert code == 0, err
    return db


def _world_args(world: World, targets: Path) -> list[str]:
    return as_flags(world_settings(world, targets))


def test_status_when_not_running_healthy_and_late(
    measured: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["status", "--db", str(measured.with_name("none.db"))], capsys)
    assert code == 2 and "no such file" in err  # a --db given by hand: a typo
    code, out, _ = run_cli(["status", "--db", str(measured)], capsys)
    assert code == 3 and "not running" in out and "measured   4 today, 4 in total" in out
    code, out, _ = run_cli(["status", "--db", str(measured), "--json"], capsys)
    doc = json.loads(out)
    assert doc["running"] is False and doc["last_round"]["anomalies"] == 1
    assert [a["target"] for a in doc["anomalous_24h"]] == ["blocked"]
    assert doc["anomalous_24h"][0]["verdict"] == "blockpage"  # a known fingerprint matched
    store = Store.open(measured)
    now = datetime.now(UTC)
    lock = DaemonLock(str(measured)).acquire()  # "a daemon", as far as status can tell
    try:
        store.save_daemon(
            {"pid": os.getpid(), "started_at": iso(now), "interval": 3600.0, "backoff": 1.0}
        )
        code, out, _ = run_cli(["status", "--db", str(measured), "--json"], capsys)
        doc = json.loads(out)
        assert (code, doc["running"], doc["pid"], doc["health"]) == (
            0,
            True,
            os.getpid(),
            "healthy",
        )
        store.save_daemon({"interval": 60.0})  # the last round is now over 2 x 60 s old?
        store.db.execute("UPDATE rounds SET started_at = ?", [iso(now - timedelta(minutes=3))])
        code, out, _ = run_cli(["status", "--db", str(measured)], capsys)
        assert code == 4 and "late" in out
    finally:
        lock.release()


def test_prune_deletes_old_measurements_and_orphaned_bodies(
    measured: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store.open(measured)
    old = iso(datetime.now(UTC) - timedelta(days=200))
    store.db.execute("UPDATE measurements SET started_at = ?", [old])
    store.db.execute("UPDATE rounds SET started_at = ?", [old])
    bodies = store.db.table("bodies").count
    assert bodies > 0
    code, out, err = run_cli(
        ["prune", "--db", str(measured), "--older-than", "180d", "--keep-anomalies", "--yes"],
        capsys,
    )
    assert code == 0, err
    left = [r["target"] for r in store.db.query("SELECT target FROM measurements")]
    assert left == ["blocked"] and "deleted 3 measurements" in out
    referenced = {
        r["body_sha256"]
        for r in store.db.query("SELECT body_sha256 FROM http_requests WHERE body_sha256 NOTNULL")
    }
    assert {r["sha256"] for r in store.db.query("SELECT sha256 FROM bodies")} == referenced
    code, out, _ = run_cli(
        ["prune", "--db", str(measured), "--older-than", "26w", "--vacuum", "--yes"], capsys
    )
    assert code == 0 and "deleted 1 measurement, 1 round" in out and "vacuumed" in out
    assert store.db.table("bodies").count == 0
    assert next(iter(store.db.query("PRAGMA integrity_check")))["integrity_check"] == "ok"
    code, _, err = run_cli(["prune", "--db", str(measured), "--older-than", "soon"], capsys)
    assert code == 2 and "--older-than" in err


# -- the real daemon, over loopback ----------------------------------------------------------
class Daemon:
    """``python -m probe daemon`` in a child process, its log read as JSON lines."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log_path = log
        self.fh = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "probe", "daemon", "--log-format", "json", *args],
            stdout=subprocess.DEVNULL,
            stderr=self.fh,
            cwd=REPO,
        )

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"msg": line, "level": "raw"})
        return out

    def wait_for(self, pred: Any, timeout: float = 60) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.lines()
            if pred(lines):
                return lines
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"timed out; log: {self.log_path.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, float]:
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        code = self.proc.wait(15)
        self.fh.close()
        return code, time.monotonic() - t0


def rounds(lines: list[dict[str, Any]], kind: str = "pages") -> list[dict[str, Any]]:
    return [x for x in lines if x.get("kind") == kind and "round" in x]


@pytest.fixture
def daemon_env(tmp_path: Path, world: World) -> Iterator[tuple[Path, list[str]]]:
    t = tmp_path / "t.yaml"
    t.write_text(
        f"targets:\n  - name: news\n    url: {world.http('news.test')}\n"
        f"  - name: blocked\n    url: {world.http('blocked.test')}\n"
        f"controls:\n  - name: ctl\n    url: {world.https('news.test')}\n"
    )
    yield t, [*_world_args(world, t), "--db", str(tmp_path / "d.db")]


def test_daemon_runs_rounds_reloads_refuses_a_second_and_stops(
    tmp_path: Path, daemon_env: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    targets, args = daemon_env
    d = Daemon([*args, "--interval", "1s"], tmp_path / "d.log")
    try:
        d.wait_for(lambda ls: len(rounds(ls)) >= 2)
        # a second daemon on the same database: one line naming the first's PID, exit 2
        r = subprocess.run(
            [sys.executable, "-m", "probe", "daemon", *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=30,
            check=False,
        )
        assert r.returncode == 2, r.stderr
        assert f"a probe daemon (PID {d.proc.pid}) already measures" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        code, out, _ = run_cli(["status", *args[-2:], "--json"], capsys)
        doc = json.loads(out)
        assert (code, doc["pid"]) == (0, d.proc.pid)
        # the next round is planned, unless one is being measured right now
        assert doc["next_round"] or doc["state"].startswith("measuring"), doc
        assert doc["last_round"]["kind"] == "pages"
        # SIGHUP with a broken file: one logged line, the old targets kept
        good = targets.read_text()
        targets.write_text(good + "  - name: [broken\n")
        d.proc.send_signal(signal.SIGHUP)
        lines = d.wait_for(lambda ls: any("reload rejected" in x["msg"] for x in ls))
        (err,) = [x for x in lines if "reload rejected" in x["msg"]]
        assert err["level"] == "error" and "t.yaml" in err["msg"]
        n = len(rounds(d.lines()))
        d.wait_for(lambda ls: len(rounds(ls)) >= n + 1)
        assert rounds(d.lines())[-1]["targets"] == 2
        # SIGHUP with a good file: the next rounds measure the new list
        targets.write_text(
            good.replace(
                "controls:",
                "  - name: news2\n    url: "
                + good.split("url: ")[1].split("\n")[0]
                + "\ncontrols:",
            )
        )
        d.proc.send_signal(signal.SIGHUP)
        d.wait_for(lambda ls: any(x["msg"].startswith("reloaded: 3 targets") for x in ls))
        d.wait_for(lambda ls: rounds(ls)[-1]["targets"] == 3)
    finally:
        code, took = d.stop()
    assert code == 0 and took < 10
    store = Store.open(args[-1])
    assert not list(store.db.query("SELECT id FROM rounds WHERE finished_at IS NULL"))
    code, out, _ = run_cli(["status", "--db", args[-1]], capsys)
    assert code == 3 and "not running (stopped" in out


def test_daemon_budget_stops_pages_and_says_so(
    tmp_path: Path, daemon_env: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, args = daemon_env
    d = Daemon([*args, "--interval", "1s", "--max-bytes-per-day", "40K"], tmp_path / "d.log")
    try:
        lines = d.wait_for(lambda ls: any("budget: pages rounds stop" in x["msg"] for x in ls))
        done = rounds(lines)
        assert 1 <= len(done) <= 4
        _code, out, _ = run_cli(["status", "--db", args[-1], "--json"], capsys)
        doc = json.loads(out)
        assert doc["state"] == "paused (budget)" and doc["last_round"]["status"] == "budget"
        assert doc["last_round"]["note"].startswith("daily cap: ")
        assert doc["data"]["max_per_day"] == 40_000
    finally:
        d.stop()
    store = Store.open(args[-1])
    assert store.bytes_used_since("") <= 40_000


def test_daemon_bad_settings_exit_2_before_anything(tmp_path: Path) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "probe",
            "daemon",
            "--interval",
            "soon",
            "--db",
            str(tmp_path / "x.db"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
        check=False,
    )
    assert r.returncode == 2 and r.stderr.startswith("probe: error: --interval")
    assert not (tmp_path / "x.db").exists()


def test_database_errors_are_logged_and_retried(
    tmp_path: Path, daemon_env: tuple[Path, list[str]]
) -> None:
    """An exclusive lock held by another process: the daemon logs, keeps the measurements
    in memory, and writes them once the database takes writes again."""
    _, args = daemon_env
    db = args[-1]
    Store.open(db).close()
    d = Daemon([*args, "--interval", "1s"], tmp_path / "d.log")
    try:
        d.wait_for(lambda ls: len(rounds(ls)) >= 1)
        con = sqlite3.connect(db, timeout=10)  # waits out a write of the daemon
        con.execute("BEGIN EXCLUSIVE")
        d.wait_for(lambda ls: any(x["level"] == "error" for x in ls), timeout=30)
        con.rollback()
        con.close()
        d.wait_for(
            lambda ls: any("writing again" in x["msg"] for x in ls) or len(rounds(ls)) >= 4,
            timeout=30,
        )
        assert d.proc.poll() is None  # never a crash
    finally:
        code, _ = d.stop()
    assert code == 0
    store = Store.open(db)
    ids = {r["id"] for r in store.db.query("SELECT id FROM measurements")}
    assert len(ids) >= 3


def test_patient_store_keeps_measurements_until_the_database_takes_them(tmp_path: Path) -> None:
    from probe.daemon.daemon import PatientStore
    from probe.model import Measurement, Observations, Verdict

    def m(i: int) -> Measurement:
        v = Verdict(False, True, "ok", "1", "local")
        url = f"https://x{i}.example/"
        return Measurement(f"m{i}", f"t{i}", url, iso(datetime.now(UTC)), Observations(url), v)

    db = tmp_path / "p.db"
    store = PatientStore(Store.open(db))
    store.db.execute("PRAGMA busy_timeout = 0")
    other = sqlite3.connect(db, timeout=0, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    store.save(m(1))
    store.save(m(2))  # the database is locked: no exception, both wait
    assert len(store.pending) == 2 and "locked" in (store.last_error or "")
    other.execute("ROLLBACK")
    other.close()
    store.save(m(3))
    assert not store.pending and store.last_error is None
    assert {r["id"] for r in store.db.query("SELECT id FROM measurements")} == {"m1", "m2", "m3"}
    store.save(replace(m(4), target=None))  # type: ignore[arg-type]  # a bad row, not a bad db
    store.save(m(5))
    assert not store.pending and store.exists("m5") and not store.exists("m4")


def test_log_lines_for_journald_and_collectors(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import logging

    from probe.daemon.daemon import setup_logging

    log = logging.getLogger("probe.daemon")
    for fmt, journal in (("text", "1:2"), ("json", "")):
        out = io.StringIO()
        monkeypatch.setenv("JOURNAL_STREAM", journal)
        setup_logging(fmt, out)
        log.warning("round abc pages: 3 targets", extra={"fields": {"targets": 3, "bytes": 10}})
        log.info("plain")
        lines = out.getvalue().splitlines()
        if fmt == "text":  # journald reads the syslog priority and stamps the time itself
            assert lines == ["<4>round abc pages: 3 targets", "<6>plain"]
        else:
            doc = json.loads(lines[0])
            assert (doc["level"], doc["targets"], doc["bytes"]) == ("warning", 3, 10)
            assert doc["msg"].startswith("round abc") and doc["ts"].endswith("Z")
    for name in ("probe", "apscheduler"):  # leave logging as other tests expect it
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
        logging.getLogger(name).setLevel(logging.NOTSET)


def test_the_daemon_s_reserve_reaches_the_round_without_touching_settings(
    tmp_path: Path, world: World
) -> None:
    """A throughput round gets the budget's caps and the pages' reserve as one explicit
    allowance; the settings it runs with are the daemon's own, caps unchanged. (The round runner
    is a parameter: here the real ``run_once``, with its arguments noted on the way.)"""
    from probe.daemon.daemon import Daemon as InProcess
    from probe.round import RoundResult, RoundSetup, prepare, run_once
    from probe.round.budget import Allowance, Budget

    t = tmp_path / "t.yaml"
    t.write_text(
        f"targets:\n  - name: news\n    url: {world.http('news.test')}\n"
        f"controls:\n  - name: ctl\n    url: {world.https('news.test')}\n"
    )
    flags = world_settings(
        world,
        t,
        tmp_path / "d.db",
        max_bytes_per_day="50M",
        throughput_bytes="100K",
        throughput_seconds="0.5",
    )
    settings = resolve(flags, env={})
    seen: list[tuple[RoundSetup, dict[str, Any]]] = []

    async def noting(setup: RoundSetup, store: Store, **kw: Any) -> RoundResult:
        seen.append((setup, kw))
        return await run_once(setup, store, **kw)

    store = Store.open(settings.db)
    d = InProcess(flags, None, settings, prepare(settings), store, run=noting)
    asyncio.run(d._round("throughput"))
    ((setup, kw),) = seen
    assert setup.settings is d.settings and setup.settings.max_bytes_per_day == 50_000_000
    assert kw["allowance"] == Allowance(Budget(daily=50_000_000), reserve=d.page_estimate(2))
    assert kw["kind"] == "throughput" and kw["throughput"] is True


@pytest.mark.parametrize("lang", ["en", "vi"])
def test_a_rejected_reload_is_logged_in_the_daemons_language(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture, lang: str
) -> None:
    """The reload's reason is one of probe's errors: a Vietnamese daemon logs it in Vietnamese
    (before, the line began in Vietnamese and went on in English), naming the file and line."""
    import probe.daemon.daemon as daemon_module
    from probe.round import prepare
    from probe.words import translator

    t = tmp_path / "t.yaml"
    t.write_text(
        f"targets:\n  - name: news\n    url: {world.http('news.test')}\n"
        f"controls:\n  - name: ctl\n    url: {world.https('news.test')}\n"
    )
    flags = world_settings(world, t, tmp_path / "d.db")
    settings = resolve(flags, env={})
    store = Store.open(settings.db)
    saved = daemon_module._tr, daemon_module._lang
    daemon_module._tr, daemon_module._lang = translator(lang), lang
    try:
        d = daemon_module.Daemon(flags, None, settings, prepare(settings), store)
        t.write_text("targets: [\n")
        with caplog.at_level("ERROR", logger=daemon_module.log.name):
            d.reload()
    finally:
        daemon_module._tr, daemon_module._lang = saved
        store.close()
    (line,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert str(t) in line and d.settings is settings  # the old settings kept
    english = "reload rejected, keeping the old settings: " in line
    assert english == (lang == "en"), line
    if lang == "vi":
        assert not re.search(r"\b(cannot|not|expected|line|file)\b", line), line
