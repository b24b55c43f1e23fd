"""``probe wipe`` (issue 20, item 5): everything the probe holds on this machine, and nothing else.

It removes what the settings name (the database with its -wal, -shm and a crash's -journal, the
daemon's lock, the settings file) and the probe's own platform folders once they are empty;
asks first in a terminal (``--yes`` skips the question; no terminal and no ``--yes``: refused,
exit 2); refuses while a daemon holds the lock, and refuses a database that is not the probe's.

Click's CliRunner and real files in the test's temporary folder; the question is asked in a real
pseudo-terminal. Nothing mocked.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from probe.cli import main
from probe.daemon.lock import DaemonLock
from probe.store import Store
from tests.dbs import measurement
from tests.terminal import in_a_terminal


@pytest.fixture
def probe_files(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A probe database as a killed writer leaves it (-wal and -shm beside it, a lock), a
    settings file, and the volunteer's own files beside both."""
    data, conf = tmp_path / "data", tmp_path / "conf"
    conf.mkdir()
    cfg = conf / "settings.toml"
    cfg.write_text('profile = "mobile"\n', encoding="utf-8")
    (conf / "notes.txt").write_text("mine", encoding="utf-8")
    db = data / "probe.db"
    store = Store.open(db)  # kept open: its -wal and -shm stay, as after a kill
    store.save(measurement("success_https", "m1"))
    DaemonLock(str(db)).acquire().release()
    (data / "other.db").write_text("mine", encoding="utf-8")
    (data / "probe.db.bak").write_text("mine", encoding="utf-8")
    try:
        yield db, cfg
    finally:
        store.close()


@dataclass
class Result:
    exit_code: int
    output: str  # stdout and stderr, interleaved


def wipe(*args: str) -> Result:
    """``probe wipe`` through the entry point (its one-line errors and exit statuses), in
    click's CliRunner isolation: stdin is no terminal there."""
    with CliRunner().isolation() as (_, _, output):
        code = main(["wipe", *args])
    return Result(code, output.getvalue().decode())


def names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_wipe_removes_the_probe_s_files_and_nothing_else(probe_files: tuple[Path, Path]) -> None:
    db, cfg = probe_files
    assert {"probe.db", "probe.db-wal", "probe.db-shm", "probe.db.lock"} <= names(db.parent)
    r = wipe("--db", str(db), "--config", str(cfg), "--yes")
    assert r.exit_code == 0, r.output
    assert names(db.parent) == {"other.db", "probe.db.bak"}
    assert names(cfg.parent) == {"notes.txt"}
    removed = [line for line in r.output.splitlines() if line.startswith("removed ")]
    assert removed == [
        f"removed {p}"
        for p in (db, *(db.with_name(db.name + s) for s in ("-wal", "-shm", ".key", ".lock")), cfg)
    ]


def test_no_terminal_and_no_yes_is_refused(probe_files: tuple[Path, Path]) -> None:
    db, cfg = probe_files
    r = wipe("--db", str(db), "--config", str(cfg))
    assert r.exit_code == 2, r.output
    assert "--yes" in r.output.strip().splitlines()[-1]
    assert db.exists() and cfg.exists()


def test_a_running_daemon_s_lock_refuses_the_wipe(probe_files: tuple[Path, Path]) -> None:
    db, cfg = probe_files
    lock = DaemonLock(str(db)).acquire()  # a daemon measuring into this database
    try:
        r = wipe("--db", str(db), "--config", str(cfg), "--yes")
    finally:
        lock.release()
    assert r.exit_code == 2, r.output
    (line,) = r.output.strip().splitlines()
    assert f"(PID {os.getpid()})" in line and "stop it" in line
    assert db.exists() and cfg.exists()


def test_a_database_that_is_not_the_probe_s_is_left_alone(tmp_path: Path) -> None:
    other = tmp_path / "thesis.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE chapters (n)")
    con.commit()
    con.close()
    r = wipe("--db", str(other), "--yes")
    assert r.exit_code == 2, r.output
    assert "not a probe database" in r.output and "nothing removed" in r.output
    assert other.exists()


def test_nothing_to_remove(tmp_path: Path) -> None:
    r = wipe("--db", str(tmp_path / "none.db"), "--config", os.devnull, "--yes")
    assert r.exit_code == 0, r.output
    assert "nothing to remove" in r.output
    assert os.path.exists(os.devnull)


def test_a_link_in_the_probe_s_place_is_left(tmp_path: Path) -> None:
    """The probe makes no links: one at the database's name is not the probe's to remove."""
    real = tmp_path / "elsewhere.db"
    Store.open(real).close()
    link = tmp_path / "probe.db"
    link.symlink_to(real)
    r = wipe("--db", str(link), "--yes")
    assert r.exit_code == 0, r.output
    assert link.is_symlink() and real.exists()
    assert f"left {link}: a symbolic link" in r.output


def test_the_probe_s_own_platform_folders_go_once_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    data, conf = tmp_path / "share" / "probe", tmp_path / "config" / "probe"
    Store.open(data / "probe.db").close()
    conf.mkdir(parents=True)
    (conf / "settings.toml").write_text("", encoding="utf-8")
    (tmp_path / "share" / "probe" / "keep.txt").write_text("mine", encoding="utf-8")
    r = wipe("--db", str(data / "probe.db"), "--yes")  # the settings file: found by default
    assert r.exit_code == 0, r.output
    assert not conf.exists() and (tmp_path / "config").exists()
    assert names(data) == {"keep.txt"}  # not empty: kept, with the volunteer's file
    assert f"removed {conf}" in r.output.splitlines()


# -- the question, in a real terminal ---------------------------------------------------------
def _in_a_terminal(args: list[str], answer: bytes) -> tuple[int, str]:
    return in_a_terminal(args, [(b"[y/N]", answer)])


@pytest.mark.parametrize(("answer", "code", "kept"), [(b"n\n", 1, True), (b"y\n", 0, False)])
def test_the_question_in_a_terminal(
    probe_files: tuple[Path, Path], answer: bytes, code: int, kept: bool
) -> None:
    db, cfg = probe_files
    status, screen = _in_a_terminal(["wipe", "--db", str(db), "--config", str(cfg)], answer)
    assert status == code, screen
    assert str(db) in screen and "[y/N]" in screen
    assert db.exists() is kept and cfg.exists() is kept


def test_a_link_left_is_said_in_vietnamese(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere.db"
    Store.open(real).close()
    link = tmp_path / "probe.db"
    link.symlink_to(real)
    with CliRunner().isolation() as (_, _, output):
        main(["--lang", "vi", "wipe", "--db", str(link), "--yes"])
    r = Result(0, output.getvalue().decode())
    (line,) = [x for x in r.output.splitlines() if str(link) in x and "probe:" in x]
    assert "symbolic link" not in line and "liên kết" in line, line
