"""Files and folders the probe makes on this machine: private to its user, never through a link.

Contract: :func:`private_folder` makes a folder and every missing parent 0700 (a folder that was
already there keeps its mode). :func:`open_private` opens the probe's own file, creating it 0600
when it is missing; a symbolic link at its name is refused (:class:`UnsafePath`), never
followed. :func:`temp_beside` is a new temporary file in a destination's folder, 0600 unless
told otherwise, to be renamed over the final name with ``os.replace``: a rename replaces the
name itself (a symbolic link there included) and never writes through it. Modes are set with
fchmod/chmod after creation, so the umask does not matter. :func:`db_files` names the files
SQLite, the daemon and the chain keep beside a database (``probe wipe`` removes them):
:func:`key_path` is the device key's (``probe.evidence.keys``).

This is the lowest layer that every writer can import (the store, the daemon, the analysts'
exports, ``probe init``); the measuring code writes no file.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from probe.errors import UnsafePath
from probe.words import N_

FILE_MODE = 0o600
FOLDER_MODE = 0o700


def private_folder(path: str | Path) -> None:
    """``path`` and each missing parent, made 0700; raises OSError as ``os.mkdir`` does."""
    p = Path(path).absolute()
    missing: list[Path] = []
    while not p.is_dir():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, FOLDER_MODE)
        except FileExistsError:
            if not folder.is_dir():
                raise
            continue  # made by someone else meanwhile: theirs, left as it is
        os.chmod(folder, FOLDER_MODE, follow_symlinks=False)


def refuse_link(path: str | Path) -> UnsafePath:
    return UnsafePath(
        N_(
            "{path}: is a symbolic link; the probe never writes through one where its own file "
            "belongs (remove the link if you did not make it)"
        ),
        path=path,
    )


def open_private(path: str | Path, flags: int = os.O_RDWR) -> int:
    """A file descriptor on the probe's own file at ``path``: created 0600 when missing (its
    folder must exist), opened as it is otherwise; a symbolic link there is refused."""
    for _ in range(3):  # a file removed between the two opens: create it again
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            pass
        else:
            os.fchmod(fd, FILE_MODE)
            return fd
        try:
            return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise refuse_link(path) from None
            raise
    raise FileNotFoundError(errno.ENOENT, "removed while being opened", str(path))


def temp_beside(dest: Path, mode: int = FILE_MODE) -> tuple[int, Path]:
    """A new temporary file (descriptor, path) in ``dest``'s folder, with ``mode``; the caller
    writes it, then ``os.replace(path, dest)`` or unlinks it. Raises OSError."""
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        os.fchmod(fd, mode)
    except OSError:
        os.close(fd)
        Path(name).unlink(missing_ok=True)
        raise
    return fd, Path(name)


def lock_path(db: str | Path) -> Path:
    """The daemon's lock beside a database: ``<db>.lock``."""
    p = Path(db)
    return p.with_name(p.name + ".lock")


def key_path(db: str | Path) -> Path:
    """The device key beside a database: ``<db>.key`` (``probe.evidence.keys``)."""
    p = Path(db)
    return p.with_name(p.name + ".key")


def db_files(db: str | Path) -> list[Path]:
    """Every file the probe and SQLite keep for the database ``db``: the database, its WAL,
    its shared-memory index, a rollback journal left by a crash, the device key, and the
    daemon's lock."""
    p = Path(db)
    sqlite = [p.with_name(p.name + s) for s in ("-wal", "-shm", "-journal")]
    return [p, *sqlite, key_path(p), lock_path(p)]
