"""A symbolic link planted at a path the probe writes is never written through (issue 20, item 3).

Someone who can write in a shared folder (``/tmp``, a shared Downloads) plants ``out.csv ->
~/.ssh/authorized_keys`` and waits for the volunteer's ``probe export -o out.csv``. Output files
are written to a temporary file in the same folder and renamed over the name: the rename replaces
the link itself and the victim is untouched. The daemon's lock is opened with O_NOFOLLOW, and a
link there is refused in one line, exit 2: it is shared state between daemons, so the probe
neither follows nor silently replaces it (and never deletes what it did not make).

Real files, links and processes in the test's own temporary folder; nothing mocked.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from probe.analyst.export.files import destination, write_whole
from probe.daemon.lock import DaemonLock, holder
from probe.errors import UnsafePath
from tests.dbs import SCENARIOS, golden_db
from tests.paths import REPO
from tests.runs import run_fresh
from tests.world import World

VICTIM_TEXT = "ssh-ed25519 AAAA the volunteer's own key\n"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return golden_db(tmp_path_factory.mktemp("db") / "p.db", days=1)


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    v = home / "authorized_keys"
    v.write_text(VICTIM_TEXT, encoding="utf-8")
    v.chmod(0o644)
    return v


def planted(folder: Path, name: str, target: Path) -> Path:
    shared = folder / "shared"
    shared.mkdir(exist_ok=True)
    link = shared / name
    link.symlink_to(target)
    return link


def untouched(victim: Path) -> bool:
    return (victim.read_text(encoding="utf-8"), stat.S_IMODE(victim.stat().st_mode)) == (
        VICTIM_TEXT,
        0o644,
    )


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "ooni"])
def test_export_replaces_a_planted_link_and_leaves_its_target(
    fmt: str, db: Path, tmp_path: Path, victim: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    link = planted(tmp_path, f"out.{fmt}", victim)
    code, _, err = run_fresh(["export", "--db", str(db), "--format", fmt, "-o", str(link)], capsys)
    assert code == 0, err
    assert untouched(victim)
    assert not link.is_symlink() and stat.S_IMODE(link.stat().st_mode) == 0o600
    assert len(link.read_text(encoding="utf-8").splitlines()) >= len(SCENARIOS)


def test_a_link_to_nothing_is_not_created_through(tmp_path: Path) -> None:
    target = tmp_path / "home" / ".bashrc"
    target.parent.mkdir()
    link = planted(tmp_path, "report.html", target)
    with destination(str(link)) as fh:
        fh.write(b"<html></html>")
    assert not target.exists()
    assert not link.is_symlink() and link.read_bytes() == b"<html></html>"


def test_the_report_replaces_a_planted_link(
    db: Path, tmp_path: Path, victim: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    link = planted(tmp_path, "report.html", victim)
    code, _, err = run_fresh(["report", "--db", str(db), "-o", str(link)], capsys)
    assert code == 0, err
    assert untouched(victim)
    assert link.read_text(encoding="utf-8").startswith("<!doctype html>")


def test_the_reports_plots_replace_planted_links(
    db: Path, tmp_path: Path, victim: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``probe report --png DIR`` into a shared folder where ``timeline.png`` is a link."""
    link = planted(tmp_path, "timeline.png", victim)
    out = tmp_path / "report.html"
    code, _, err = run_fresh(
        ["report", "--db", str(db), "-o", str(out), "--png", str(link.parent)], capsys
    )
    assert code == 0, err
    assert untouched(victim)
    assert not link.is_symlink() and link.read_bytes().startswith(b"\x89PNG")


def test_files_written_whole_replace_a_planted_link(tmp_path: Path, victim: Path) -> None:
    link = planted(tmp_path, "targets.yaml", victim)
    write_whole(link, "targets: []\n")
    assert untouched(victim)
    assert not link.is_symlink() and link.read_text(encoding="utf-8") == "targets: []\n"


def test_a_link_to_a_fifo_is_still_streamed_to(tmp_path: Path) -> None:
    """``-o /dev/stdout`` is a link to a descriptor: what is not a regular file is written to
    as it is, through a link too (replacing it would break it; writing it changes no file)."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = planted(tmp_path, "to-pipe", fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        with destination(str(link)) as fh:
            fh.write(b"streamed\n")
        assert os.read(reader, 100) == b"streamed\n"
    finally:
        os.close(reader)
    assert link.is_symlink()


# -- the daemon's lock --------------------------------------------------------------------------
def test_a_link_at_the_lock_is_refused_and_its_target_untouched(
    tmp_path: Path, victim: Path
) -> None:
    data = tmp_path / "shared"
    link = planted(tmp_path, "probe.db.lock", victim)
    with pytest.raises(UnsafePath, match=rf"^{link}: is a symbolic link; "):
        DaemonLock(str(data / "probe.db")).acquire()
    assert untouched(victim) and link.is_symlink()
    assert holder(str(data / "probe.db")) is None  # status does not read through it either


def test_the_daemon_refuses_a_planted_lock_in_one_line_exit_2(
    tmp_path: Path, victim: Path, world: World
) -> None:
    link = planted(tmp_path, "probe.db.lock", victim)
    targets = tmp_path / "t.yaml"
    targets.write_text(f"targets:\n  - {{name: news, url: '{world.http('news.test')}'}}\n")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "probe",
            "daemon",
            "--db",
            str(link.parent / "probe.db"),
            "--targets",
            str(targets),
            "--resolver",
            world.system_dns.address,
            "--control-resolver",
            "udp://" + world.control_dns.address,
            "--allow-loopback",
            "--no-throughput",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=20,
        check=False,
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(f"probe: error: {link}: is a symbolic link")
    assert len(r.stderr.strip().splitlines()) == 1
    assert untouched(victim) and not (link.parent / "probe.db").exists()
