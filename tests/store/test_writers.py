"""Several processes on one database: every finished measurement of every writer is stored,
and readers never block a writer (issue 10, item 2). Real processes, real SQLite locking."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.paths import REPO
from tests.runs import run_args
from tests.world import World

STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def no_process_left() -> Iterator[None]:
    """A failing test kills the processes it started."""
    yield
    while STARTED:
        p = STARTED.pop()
        if p.poll() is None:
            p.kill()
        p.communicate()


def spawn(*args: str) -> subprocess.Popen[str]:
    p = subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    STARTED.append(p)
    return p


def writer(db: Path, tag: str, n: int, *extra: str) -> subprocess.Popen[str]:
    return spawn("-m", "tests.writer", str(db), tag, str(n), *extra)


def ids(db: Path) -> set[str]:
    con = sqlite3.connect(db)
    try:
        return {r[0] for r in con.execute("SELECT id FROM measurements")}
    finally:
        con.close()


@pytest.mark.parametrize("writers", [2, 4])
def test_concurrent_writers_store_everything(tmp_path: Path, writers: int) -> None:
    db = tmp_path / "shared.db"  # created by the writers themselves, all at once
    n = 100
    procs = [writer(db, f"w{k}", n) for k in range(writers)]
    reader = writer(db, "r", 2, "read")  # a long read transaction in the middle of it all
    finished: set[str] = set()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.strip().splitlines()[-1:]
        lines = out.split()
        assert lines[-1] == "done"
        finished.update(lines[:-1])
    reader.communicate(timeout=30)
    assert len(finished) == writers * n
    assert ids(db) == finished
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()


def test_two_probe_runs_on_one_database(tmp_path: Path, world: World) -> None:
    lines = [f"  - {{name: t{i}, url: '{world.http('news.test', f'/?{i}')}'}}" for i in range(20)]
    targets = tmp_path / "t.yaml"
    targets.write_text("targets:\n" + "\n".join(lines) + "\n", encoding="utf-8")
    db = tmp_path / "r.db"
    procs = [spawn("-m", "probe", *run_args(world, targets, db)) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    con = sqlite3.connect(db)
    try:
        assert con.execute("SELECT count(*) FROM measurements").fetchone()[0] == 40
        assert (
            con.execute("SELECT count(*) FROM rounds WHERE finished_at IS NOT NULL").fetchone()[0]
            == 2
        )
    finally:
        con.close()
