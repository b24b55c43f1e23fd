"""Everything the probe creates is private to its user (issue 20, item 1): files 0600, folders
0700, whatever the umask. A folder that was already there keeps its mode.

Real files in the test's own temporary folder, under the umasks volunteers' systems have (022,
and 002 where every user has a group of their own); nothing mocked.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from probe.analyst.export.files import destination, new_folder, write_whole
from probe.daemon.lock import DaemonLock
from probe.store import Store
from tests.dbs import measurement
from tests.runs import run_cli


@pytest.fixture(params=[0o022, 0o002], ids=["umask022", "umask002"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield int(request.param)
    finally:
        os.umask(old)


def mode(p: Path) -> int:
    return stat.S_IMODE(p.lstat().st_mode)


def test_the_database_its_wal_and_shm_and_their_folders(tmp_path: Path, umask: int) -> None:
    before = mode(tmp_path)
    db = tmp_path / "data" / "probe" / "probe.db"
    store = Store.open(db)
    try:
        store.save(measurement("success_https", "m1"))
        modes = {p.name: mode(p) for p in db.parent.iterdir()}
    finally:
        store.close()
    # The device key (probe.evidence.keys), made by the first save, is as private.
    assert modes == {
        "probe.db": 0o600,
        "probe.db-wal": 0o600,
        "probe.db-shm": 0o600,
        "probe.db.key": 0o600,
    }
    assert (mode(tmp_path / "data"), mode(db.parent)) == (0o700, 0o700)
    assert mode(tmp_path) == before  # a folder that was there is left alone


def test_the_daemon_lock_and_its_folder(tmp_path: Path, umask: int) -> None:
    lock = DaemonLock(str(tmp_path / "new" / "probe.db")).acquire()
    try:
        assert (mode(lock.path), mode(lock.path.parent)) == (0o600, 0o700)
    finally:
        lock.release()


def test_the_settings_file_probe_init_writes(
    tmp_path: Path, umask: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROBE_DB", str(tmp_path / "data" / "probe.db"))  # its key beside it
    cfg = tmp_path / "config" / "probe" / "settings.toml"
    code, _, err = run_cli(["init", "--config", str(cfg), "--yes"], capsys)
    assert code == 0, err
    assert (mode(cfg), mode(cfg.parent), mode(cfg.parent.parent)) == (0o600, 0o700, 0o700)


def test_files_written_whole_exports_and_dataset_folders(tmp_path: Path, umask: int) -> None:
    write_whole(tmp_path / "made" / "targets.yaml", "targets: []\n")
    with destination(str(tmp_path / "out.jsonl")) as fh:
        fh.write(b"{}\n")
    with new_folder(str(tmp_path / "dataset")) as d:
        (d / "part-0.parquet").write_bytes(b"x")
    assert mode(tmp_path / "made" / "targets.yaml") == 0o600
    assert mode(tmp_path / "made") == 0o700
    assert mode(tmp_path / "out.jsonl") == 0o600
    assert mode(tmp_path / "dataset") == 0o700
