"""``probe wipe``: everything the probe holds on this machine, found from the settings, removed.

Contract: :func:`plan` lists what the settings name and the probe made: the database with its
-wal, -shm and a crash's -journal, its device key and the daemon's lock
(:func:`probe.config.files.db_files`),
the settings file it read, and the probe's own platform folders, which go only once empty. It
never lists a symbolic link (the probe makes none: such a name is ``left``, with why), and it
refuses, in one line and before anything is removed, a database that is not a probe database
(:class:`StoreError`) and one a daemon measures into (:class:`DaemonRunning`). :func:`remove`
takes the daemon's lock first, so no daemon starts meanwhile, removes the files (the lock last,
still held) and the empty folders, and returns what it removed. The probe writes no log file
(its logs go to stderr, the journal's) and keeps no key but the device key beside the
database, so there is nothing else to find.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from probe.config.files import db_files, lock_path
from probe.config.options import APP
from probe.daemon.lock import DaemonLock, holder
from probe.errors import DaemonRunning, StoreError, UnsafePath
from probe.store.db import Connection
from probe.words import N_


@dataclass(frozen=True, slots=True)
class Wipe:
    db: Path
    files: tuple[Path, ...]  # the probe's files there now, in the order they are removed
    folders: tuple[Path, ...]  # the probe's own folders, removed when nothing else is in them
    # "PATH: why" (str() is the English line), for names in the probe's place it did not make
    left: tuple[UnsafePath, ...]

    @property
    def empty(self) -> bool:
        return not self.files


def own_folders() -> tuple[Path, ...]:
    """The platform's folders named after the probe (its data and config directories): the
    only folders a wipe removes, and only when empty. A checkout's results/ or systemd's
    StateDirectory belong to the checkout and to systemd."""
    return (Path(platformdirs.user_data_dir(APP)), Path(platformdirs.user_config_dir(APP)))


def plan(db: str, config: str | None) -> Wipe:
    """What a wipe of this database and settings file would remove; raises StoreError for a
    database that is not the probe's and DaemonRunning while a daemon holds its lock."""
    dbp = Path(db)
    if dbp.is_file() and not dbp.is_symlink() and dbp.stat().st_size > 0:
        _check_is_probe_db(dbp)  # first: reading it may leave a -shm, listed below
    pid = holder(db)
    if pid is not None:
        if pid > 0:
            raise DaemonRunning(
                N_(
                    "{path}: a probe daemon (PID {pid}) measures into this database: stop it "
                    "first (systemctl stop probe, or Ctrl-C), nothing removed"
                ),
                path=db,
                pid=pid,
            )
        raise DaemonRunning(
            N_(
                "{path}: a probe daemon (another process) measures into this database: stop it "
                "first (systemctl stop probe, or Ctrl-C), nothing removed"
            ),
            path=db,
        )
    files: list[Path] = []
    left: list[UnsafePath] = []
    for p in db_files(dbp) + ([Path(config)] if config else []):
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode):
            left.append(UnsafePath(N_("{path}: a symbolic link (the probe makes none)"), path=p))
        elif stat.S_ISREG(st.st_mode):
            files.append(p)
        else:
            left.append(UnsafePath(N_("{path}: not a regular file"), path=p))
    folders = tuple(f for f in own_folders() if f in {p.parent for p in files})
    return Wipe(dbp, tuple(files), folders, tuple(left))


def _check_is_probe_db(p: Path) -> None:
    try:
        Connection.open_source(p).close()
    except StoreError as exc:
        raise StoreError(N_("{problem}; nothing removed"), problem=exc) from None


def remove(w: Wipe) -> list[Path]:
    """Remove what :func:`plan` found, holding the daemon's lock while doing it."""
    lock = None
    if w.db.parent.is_dir() and not lock_path(w.db).is_symlink():
        lock = DaemonLock(str(w.db)).acquire()  # DaemonRunning if one started meanwhile
    removed: list[Path] = []
    try:
        for p in w.files:
            if p != lock_path(w.db):
                p.unlink(missing_ok=True)
                removed.append(p)
        if lock is not None:
            lock.path.unlink(missing_ok=True)  # still held: no daemon starts on it meanwhile
            if lock.path in w.files:
                removed.append(lock.path)
    finally:
        if lock is not None:
            lock.release()
    removed.sort(key=w.files.index)
    for folder in w.folders:
        try:
            folder.rmdir()
        except OSError:
            continue  # something else lives there: kept
        removed.append(folder)
    return removed
