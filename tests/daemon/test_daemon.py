"""The daemon and its companions: schedule (pure, seeded), budget, lock, systemd notify, init,
status, prune, and the real daemon against the loopback world."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probe.cli import main
from probe.config.options import OPTIONS
from probe.config.settings import resolve
from probe.config.targets import Target, load_targets
from probe.daemon import schedule
from probe.daemon.lock import DaemonLock, holder
from probe.daemon.systemd import sd_notify, watchdog_period
from probe.errors import DaemonRunning, TargetsError
from probe.round import budget
from probe.store import RoundRecord, Store
from probe.timeutil import iso
from tests.paths import REPO
from tests.world import World


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


# -- schedule ------------------------------------------------------------------------------
@pytest.mark.parametrize("mean", [2.0, 2700.0])
def test_gaps_are_random_bounded_and_average_the_interval(mean: float) -> None:
    rng = random.Random(11)
    gaps = [schedule.next_gap(mean, rng) for _ in range(20000)]
    assert min(gaps) >= schedule.FLOOR * mean and max(gaps) <= schedule.CAP * mean
    assert abs(sum(gaps) / len(gaps) / mean - 1) < 0.02
    assert len({round(g, 6) for g in gaps}) > 19000  # not a handful of values
    # memoryless enough that the next gap cannot be told from the last: no correlation
    pairs = list(itertools.pairwise(gaps))
    mx = sum(gaps) / len(gaps)
    cov = sum((a - mx) * (b - mx) for a, b in pairs) / len(pairs)
    var = sum((a - mx) ** 2 for a in gaps) / len(gaps)
    assert abs(cov / var) < 0.05


def test_gap_is_a_pure_function_of_interval_and_rng() -> None:
    a = [schedule.next_gap(60, random.Random(5)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    r1, r2 = random.Random(7), random.Random(7)
    assert [schedule.next_gap(60, r1) for _ in range(50)] == [
        schedule.next_gap(60, r2) for _ in range(50)
    ]


def test_backoff_doubles_up_to_a_cap_and_resets() -> None:
    assert [schedule.backoff(n) for n in range(6)] == [1, 2, 4, 8, 8, 8]


def test_trigger_fires_one_gap_after_it_is_asked() -> None:
    now = datetime(2026, 11, 29, tzinfo=UTC)
    trig = schedule.RandomGapTrigger(lambda: 100.0, random.Random(3))
    expect = schedule.next_gap(100.0, random.Random(3))
    assert trig.get_next_fire_time(None, now) == now + timedelta(seconds=expect)


def test_per_target_intervals_decide_what_a_round_measures() -> None:
    now = datetime(2026, 11, 29, 12, tzinfo=UTC)
    fast = Target(name="fast", url="https://a.example/")
    slow = Target(name="slow", url="https://b.example/", interval="6h")
    quick = Target(name="quick", url="https://c.example/", interval=600)
    assert schedule.page_mean([fast, slow], 2700) == 2700
    assert schedule.page_mean([fast, slow, quick], 2700) == 600
    ago = {n: iso(now - timedelta(hours=h)) for n, h in (("fast", 1), ("slow", 1))}
    assert [t.name for t in schedule.due([fast, slow], ago, now, 2700)] == ["fast"]
    ago["slow"] = iso(now - timedelta(hours=5.7))
    assert [t.name for t in schedule.due([fast, slow], ago, now, 2700)] == ["fast", "slow"]
    assert [t.name for t in schedule.due([fast, slow], {}, now, 2700)] == ["fast", "slow"]
    # with a 10-minute target, the default ones come every 45 minutes, not every round
    ago = {"fast": iso(now - timedelta(minutes=20)), "quick": iso(now - timedelta(minutes=9))}
    assert [t.name for t in schedule.due([fast, quick], ago, now, 2700)] == ["quick"]


def test_a_tight_budget_rotates_throughput_tests_through_the_list() -> None:
    """Two tests a day out of five targets: each day the two tested longest ago (never first),
    so after three days every target has had its test."""
    targets = [Target(name=n, url=f"https://{n}.example/") for n in "abcde"]
    last: dict[str, str] = {"c": "2026-11-01T00:00:00.000Z"}
    seen: list[list[str]] = []
    for day in range(3):
        chosen = schedule.least_recently_tested(targets, last, 2)
        seen.append([t.name for t in chosen])
        for t in chosen:
            last[t.name] = f"2026-11-{day + 10:02d}T00:00:00.000Z"
    assert seen == [["a", "b"], ["d", "e"], ["c", "a"]]
    assert len(schedule.least_recently_tested(targets, last, None)) == 5


def test_target_interval_is_validated_with_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "t.yaml"
    p.write_text("targets:\n  - name: a\n    url: https://x/\n    interval: soon\n")
    with pytest.raises(TargetsError, match=r"t.yaml:2: targets\[0\].interval: 'soon' is not"):
        load_targets(p)
    p.write_text("targets:\n  - name: a\n    url: https://x/\n    interval: 6h\n")
    assert load_targets(p).targets[0].interval_seconds == 6 * 3600


# -- budget --------------------------------------------------------------------------------
def test_budget_reasons_and_resets() -> None:
    now = datetime(2026, 12, 31, 23, 0, tzinfo=UTC)
    caps = budget.Budget(daily=25_000_000, monthly=500_000_000)
    assert budget.check(caps, budget.Usage(1_000_000, 1_000_000), 2_000_000, now) is None
    why = budget.check(caps, budget.Usage(24_000_000, 30_000_000), 2_000_000, now)
    assert why == "daily cap: 24.0 MB of 25.0 MB used, resets 2027-01-01T00:00Z"
    why = budget.check(caps, budget.Usage(0, 499_000_000), 2_000_000, now)
    assert why is not None and why.startswith("monthly cap: 499.0 MB of 500.0 MB")
    assert budget.check(budget.Budget(), budget.Usage(10**12, 10**12), 10**9, now) is None


@given(
    daily=st.none() | st.integers(0, 10**9),
    monthly=st.none() | st.integers(0, 10**10),
    today=st.integers(0, 10**9),
    extra=st.integers(0, 10**9),
    per=st.integers(1, 10**8),
    fixed=st.integers(0, 10**7),
    reserve=st.integers(0, 10**7),
)
def test_affordable_is_the_most_tests_check_lets_run(
    daily: int | None,
    monthly: int | None,
    today: int,
    extra: int,
    per: int,
    fixed: int,
    reserve: int,
) -> None:
    """The daemon runs ``affordable`` throughput tests, least recently tested first: exactly as
    many as ``check`` lets through, no more (a cap overrun) and no fewer (tests lost)."""
    now = datetime(2026, 11, 29, tzinfo=UTC)
    caps, used = budget.Budget(daily, monthly), budget.Usage(today, today + extra)
    n = budget.affordable(caps, used, per, fixed=fixed, reserve=reserve)
    if daily is None and monthly is None:
        assert n is None
        return
    assert n is not None and n >= 0
    if n:
        assert budget.check(caps, used, fixed + n * per, now, reserve=reserve) is None
    assert budget.check(caps, used, fixed + (n + 1) * per, now, reserve=reserve) is not None


def test_throughput_gives_way_before_pages() -> None:
    """Between "throughput refused" and "pages refused" there is room: the reserve."""
    now = datetime(2026, 11, 29, tzinfo=UTC)
    caps = budget.Budget(daily=25_000_000)
    page_round, tp_test = 1_000_000, 1_700_000
    used = 0
    first_refused: dict[str, int] = {}
    while used < caps.daily:
        u = budget.Usage(used, used)
        if "throughput" not in first_refused and budget.check(
            caps, u, tp_test, now, reserve=page_round
        ):
            first_refused["throughput"] = used
        if budget.check(caps, u, page_round, now):
            first_refused["pages"] = used
            break
        used += 100_000
    assert first_refused["throughput"] < first_refused["pages"]
    # pages run while a round still fits under the cap, and not once it does not
    assert first_refused["pages"] + page_round > caps.daily >= first_refused["pages"]


# -- lock and systemd ----------------------------------------------------------------------
def test_one_daemon_per_database(tmp_path: Path) -> None:
    db = str(tmp_path / "p.db")
    assert holder(db) is None
    lock = DaemonLock(db).acquire()
    try:
        assert holder(db) == os.getpid()
        with pytest.raises(DaemonRunning, match=rf"p.db: a probe daemon \(PID {os.getpid()}\)"):
            DaemonLock(db).acquire()
    finally:
        lock.release()
    assert holder(db) is None
    DaemonLock(db).acquire().release()  # free again


def test_sd_notify_and_watchdog(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(path)
        assert sd_notify("READY=1", {"NOTIFY_SOCKET": path})
        assert s.recv(100) == b"READY=1"
    assert not sd_notify("READY=1", {})
    assert watchdog_period({"WATCHDOG_USEC": "20000000"}) == 10.0
    assert watchdog_period({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_period({}) is None


# -- init, targets -------------------------------------------------------------------------
def test_init_writes_a_commented_file_that_reads_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "conf" / "settings.toml"
    code, out, err = run_cli(
        ["init", "--config", str(cfg), "--profile", "mobile", "--interval", "4h", "--yes"], capsys
    )
    assert code == 0, err
    assert "visible" in out and "never stored" in out and "delete" in out
    text = cfg.read_text()
    doc = tomllib.loads(text)
    assert doc == {"profile": "mobile", "interval": "4h"}
    for o in OPTIONS:
        if not o.hidden:
            assert f"# {o.name} =" in text or f"{o.name} =" in text, o.name
    s = resolve({}, config=str(cfg), env={})
    assert (s.profile, s.interval, s.max_bytes_per_day) == ("mobile", 4 * 3600, 25_000_000)
    # every commented line, uncommented, is a valid setting too
    uncommented = "\n".join(
        line[2:] if line.startswith("# ") and " = " in line and '"' not in line else line
        for line in text.splitlines()
    )
    tomllib.loads(uncommented)
    code, _, err = run_cli(["init", "--config", str(cfg), "--yes"], capsys)
    assert code == 2 and "already there (--force replaces it)" in err


def test_init_asks_in_a_terminal_only(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "probe", "init", "--config", str(tmp_path / "s.toml")],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert r.returncode == 2 and "pass --yes" in r.stderr
    assert not (tmp_path / "s.toml").exists()


def test_targets_check_warns_without_controls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "t.yaml"
    p.write_text("targets:\n  - name: a\n    url: https://x.example/\n")
    code, _, err = run_cli(["targets", "check", str(p)], capsys)
    assert code == 0 and "has no controls" in err


def test_targets_import_writes_a_complete_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "vn.yaml"
    csv_path = REPO / "tests" / "fixtures" / "test-lists" / "vn.csv"
    code, _, err = run_cli(["targets", "import", str(csv_path), "-o", str(out)], capsys)
    assert code == 0, err
    tl = load_targets(out)
    defaults = load_targets(REPO / "targets.yaml")
    assert tl.targets and [c.url for c in tl.controls] == [c.url for c in defaults.controls]
    code, _, err = run_cli(["targets", "check", str(out)], capsys)
    assert code == 0 and "no controls" not in err


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
    return [
        "--targets",
        str(targets),
        "--resolver",
        world.system_dns.address,
        "--control-resolver",
        world.doh_url,
        "--ca-bundle",
        world.ca_pem,
        "--timeout",
        "1.5",
        "--allow-loopback",
    ]


def test_status_when_not_running_healthy_and_late(
    measured: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(["status", "--db", str(measured.with_name("none.db"))], capsys)
    assert code == 3 and "no database at" in out
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
        ["prune", "--db", str(measured), "--older-than", "180d", "--keep-anomalies"], capsys
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
        ["prune", "--db", str(measured), "--older-than", "26w", "--vacuum"], capsys
    )
    assert code == 0 and "deleted 1 measurements, 1 rounds" in out and "vacuumed" in out
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


def test_a_round_missed_in_sleep_runs_once_on_waking() -> None:
    """The job's planned time is an hour past (a laptop that slept): one run, then a gap."""
    import asyncio

    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    runs: list[datetime] = []

    async def job() -> None:
        runs.append(datetime.now(UTC))

    async def go() -> None:
        sched = AsyncIOScheduler(timezone=UTC, job_defaults=schedule.JOB_DEFAULTS)
        past = datetime.now(UTC) - timedelta(hours=1)
        sched.add_job(
            job,
            schedule.RandomGapTrigger(lambda: 60.0, random.Random(1)),
            next_run_time=past,
        )
        sched.start()
        await asyncio.sleep(0.5)
        nxt = sched.get_jobs()[0].next_run_time
        sched.shutdown(wait=False)
        assert nxt - datetime.now(UTC) > timedelta(seconds=60 * schedule.FLOOR - 1)

    asyncio.run(go())
    assert len(runs) == 1


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


def test_per_tag_intervals_apply_where_the_target_sets_none(tmp_path: Path) -> None:
    """``intervals:`` maps tags to mean gaps: a target with no interval of its own takes the
    shortest of its tags' (it is measured as often as its most watched tag asks), before or
    after the lists in the file."""
    p = tmp_path / "t.yaml"
    body = (
        "targets:\n"
        "  - {name: fb, url: 'https://a.example/', tags: [social, facebook]}\n"
        "  - {name: news, url: 'https://b.example/', tags: [news]}\n"
        "  - {name: own, url: 'https://c.example/', tags: [facebook], interval: 2h}\n"
        "  - {name: plain, url: 'https://d.example/'}\n"
        "controls:\n"
        "  - {name: ctl, url: 'https://e.example/', tags: [news]}\n"
    )
    for text in (
        body + "intervals: {social: 6h, facebook: 15m, news: 90m}\n",
        "intervals:\n  social: 6h\n  facebook: 15m\n  news: 90m\n" + body,
    ):
        p.write_text(text)
        tl = load_targets(p)
        got = {t.name: t.interval_seconds for t in (*tl.targets, *tl.controls)}
        assert got == {"fb": 900, "news": 5400, "own": 7200, "plain": None, "ctl": 5400}
    now = datetime(2026, 11, 29, 12, tzinfo=UTC)
    ago = {t.name: iso(now - timedelta(minutes=20)) for t in tl.targets}
    assert [t.name for t in schedule.due(list(tl.targets), ago, now, 2700)] == ["fb"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("intervals: [6h]\n", r"t.yaml:\d+: 'intervals:' must map tags to durations"),
        ("intervals:\n  news: soon\n", r"t.yaml:\d+: intervals.news: 'soon' is not"),
        ("intervals:\n  news: {a: 1}\n", r"t.yaml:\d+: intervals.news: "),
    ],
)
def test_a_bad_tag_interval_names_file_line_and_tag(
    tmp_path: Path, text: str, message: str
) -> None:
    p = tmp_path / "t.yaml"
    p.write_text("targets:\n  - {name: a, url: 'https://x.example/', tags: [news]}\n" + text)
    with pytest.raises(TargetsError, match=message):
        load_targets(p)


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
    flags = {
        "targets": str(t),
        "resolver": world.system_dns.address,
        "control_resolver": world.doh_url,
        "ca_bundle": world.ca_pem,
        "timeout": "1.5",
        "allow_loopback": True,
        "db": str(tmp_path / "d.db"),
        "max_bytes_per_day": "50M",
        "throughput_bytes": "100K",
        "throughput_seconds": "0.5",
    }
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
