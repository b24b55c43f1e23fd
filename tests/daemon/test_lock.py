"""One daemon per database."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from probe.daemon.lock import DaemonLock, holder
from probe.errors import DaemonRunning


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
