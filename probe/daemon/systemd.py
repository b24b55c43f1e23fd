"""systemd's service protocol, as the daemon speaks it: notifications and the watchdog.

Contract: :func:`sd_notify` sends one state line (``READY=1``, ``STATUS=...``, ``WATCHDOG=1``,
``STOPPING=1``) to ``$NOTIFY_SOCKET`` (a path, or an abstract socket written ``@name``) and
says whether it was sent; with no socket, or one that refuses, it is a quiet no-op, so the same
daemon runs under systemd, in a terminal or in a container. :func:`watchdog_period` reads
``$WATCHDOG_USEC``/``$WATCHDOG_PID`` and says how often to ping. The environment is a
parameter (``os.environ`` by default), so both are tested without systemd.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


def sd_notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. "READY=1") to systemd's notify socket; False when there is none."""
    env = os.environ if env is None else env
    address = env.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(address)
            s.sendall(state.encode())
    except OSError:
        return False
    return True


def watchdog_period(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings systemd expects (half its WatchdogSec), or None
    (no watchdog, or one meant for another process)."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or (pid.isdigit() and int(pid) != os.getpid()):
        return None
    return int(usec) / 2e6
