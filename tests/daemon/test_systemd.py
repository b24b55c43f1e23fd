"""systemd's notify socket and watchdog."""

from __future__ import annotations

import socket
from pathlib import Path

from probe.daemon.systemd import sd_notify, watchdog_period


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
