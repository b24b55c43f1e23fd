"""One daemon per database: an flock(2) on ``<db>.lock`` beside it, holding the owner's PID.

Contract: ``DaemonLock(db).acquire()`` takes the lock or raises :class:`DaemonRunning` (an
InputError: one line naming the database and the running daemon's PID, exit 2). The lock file
is created 0600 and opened with O_NOFOLLOW: a symbolic link there is :class:`UnsafePath` (one
line, exit 2), never followed nor replaced, since daemons share the file to exclude each
other. The kernel drops the lock when its process dies, however it dies, so a crash never
leaves a stale lock. ``holder(db)`` says which PID holds it (None: no daemon runs, or a link
stands there); it only reads.
"""

from __future__ import annotations

import errno
import fcntl
import os

from probe.config.files import lock_path, open_private, private_folder
from probe.errors import DaemonRunning
from probe.words import N_

__all__ = ["DaemonLock", "holder", "lock_path", "pid_alive"]


class DaemonLock:
    """An flock(2) on ``<db>.lock`` holding the owner's PID. The kernel drops it when the
    process dies, however it dies, so a crash never leaves a stale lock behind."""

    def __init__(self, db: str) -> None:
        self.path = lock_path(db)
        self.fd: int | None = None

    def acquire(self) -> DaemonLock:
        private_folder(self.path.parent)
        fd = open_private(self.path)  # 0600; a symbolic link there: UnsafePath, exit 2
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            pid = holder(str(self.path)[: -len(".lock")])
            db = self.path.with_suffix("")
            if pid:
                raise DaemonRunning(
                    N_("{path}: a probe daemon (PID {pid}) already measures into this database"),
                    path=db,
                    pid=pid,
                ) from None
            raise DaemonRunning(
                N_("{path}: a probe daemon (another process) already measures into this database"),
                path=db,
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the lock; the file stays (a PID only)
            self.fd = None


def holder(db: str) -> int | None:
    """The PID of the daemon holding ``db``'s lock, or None when no daemon runs."""
    try:
        fd = os.open(lock_path(db), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)  # never a link
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            text = os.read(fd, 64).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
