"""Opening a probe database, and the one write path: how every transaction is taken.

Contract: ``Connection.open(path)`` creates (0600, in folders made 0700, so SQLite makes its
-wal and -shm 0600 too) or migrates the database (raising :class:`StoreError` with a one-line
message naming the file and the cause: not a probe database, not SQLite, a full disk, a
read-only mount) and enables WAL; ``open(path,
readonly=True)`` (reading commands) writes nothing, even on a read-only mount; ``open_source``
opens another probe database to merge from, read-only and never created. Every write goes
through :meth:`Connection._write`: ``BEGIN IMMEDIATE`` (the write lock first, so a transaction
cannot fail half-way for want of it), retried while another connection holds the lock, for up
to ``write_patience`` seconds; WAL readers never block it. Nothing else begins a transaction.
"""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Self, TypeVar
from urllib.parse import quote

from probe.config.files import open_private, private_folder, refuse_link
from probe.errors import StoreError
from probe.store._lazy import without_numpy
from probe.store.schema import migrations
from probe.words import N_

with without_numpy():
    from sqlite_utils import Database


T = TypeVar("T")


BUSY_TIMEOUT = 10.0  # seconds SQLite itself waits for another connection's lock


WRITE_PATIENCE = 120.0  # seconds a writer keeps retrying while others hold the write lock


class Connection:
    """One probe database: its connection, how it was opened, and the one write path. The
    store's readers, writers and maintenance build on it (``probe.store.Store``)."""

    def __init__(self, db: Database, path: str) -> None:
        self.db = db
        self.path = path
        # Seconds a write keeps retrying while another process holds the write lock (the
        # daemon's PatientStore keeps waiting measurements itself and asks for none).
        self.write_patience = WRITE_PATIENCE
        # How a second, reading connection opens this database (the export's read-ahead).
        self.read_uri = f"file:{quote(str(Path(path).resolve()))}?mode=ro"

    @classmethod
    def open(cls, path: str | Path, *, create: bool = True, readonly: bool = False) -> Self:
        """The store at ``path``, created and migrated as needed. ``readonly`` (export, events,
        status) opens it without writing anything, even on a read-only mount; such a
        database must already be migrated, unless it can be written after all."""
        p = Path(path)
        if (readonly or not create) and not p.exists():
            raise StoreError(N_("{path}: no such database"), path=p)
        if readonly:
            store = cls._open_readonly(p)
            if store is not None:
                return store
        if create:
            _create_private(p)
        try:
            db = Database(sqlite3.connect(str(p), timeout=BUSY_TIMEOUT))
            store = cls(db, str(p))
            db.execute("PRAGMA foreign_keys = ON")
            store._check_is_probe_db()
            if db.journal_mode != "wal":
                store._retry(db.enable_wal)
            if migrations.pending(db) or not has_device_id(db):
                store._write(store._migrate)
        except sqlite3.DatabaseError as exc:
            raise _db_problem(p, exc) from None
        except OSError as exc:
            raise StoreError(N_("{path}: {problem}"), path=p, problem=exc.strerror or exc) from None
        return store

    @classmethod
    def _open_readonly(cls, p: Path) -> Self | None:
        """A read-only store, or None when the database needs migrating and can be written."""
        uri = f"file:{quote(str(p.resolve()))}?mode=ro"
        try:
            try:
                conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT)
                conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            except sqlite3.OperationalError as exc:
                # A WAL database on a read-only mount without its -shm file: nobody can write
                # it there, so reading it as immutable is safe.
                if not _readonly_fs(p) or _code(exc) != sqlite3.SQLITE_CANTOPEN:
                    raise
                uri += "&immutable=1"
                conn = sqlite3.connect(uri, uri=True)
            db = Database(conn)
            store = cls(db, str(p))
            store.read_uri = uri
            store._check_is_probe_db()
            if migrations.pending(db) or not has_device_id(db):
                db.close()
                if _readonly_fs(p) or not os.access(p, os.W_OK):
                    raise StoreError(
                        N_(
                            "{path}: written by an older probe and read-only here, so it cannot "
                            "be migrated; open it once where it can be written"
                        ),
                        path=p,
                    )
                return None
        except sqlite3.DatabaseError as exc:
            raise _db_problem(p, exc) from None
        return store

    def _check_is_probe_db(self) -> None:
        names = set(self.db.table_names())
        if names and "_sqlite_migrations" not in names and "measurements" not in names:
            raise StoreError(
                N_("{path}: not a probe database (tables: {tables})"),
                path=self.path,
                tables=", ".join(sorted(names)),
            )

    def _migrate(self) -> None:
        """Inside the write transaction: another process may have migrated meanwhile, and
        sqlite-utils' own transactions become savepoints within ours."""
        migrations.apply(self.db)
        if not has_device_id(self.db):
            self.db.table("meta").insert({"key": "device_id", "value": str(uuid.uuid4())})

    def _write(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in one write transaction (BEGIN IMMEDIATE: the write lock is taken
        first, so the transaction cannot fail half-way for want of it), retried while
        another writer holds the lock; readers in WAL mode never hold it."""

        def once() -> T:
            conn = self.db.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn()
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result

        try:
            return self._retry(once)
        except sqlite3.DatabaseError as exc:
            # A full disk, a read-only mount or a corrupt file is the database's problem and
            # one line; a constraint our own row broke is a bug and stays an exception.
            if isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError:
                raise _db_problem(Path(self.path), exc, self.write_patience) from None
            raise

    def _retry(self, fn: Callable[[], T]) -> T:
        """``fn()``, again while SQLite says busy (each try already waits BUSY_TIMEOUT), for
        up to WRITE_PATIENCE seconds in all."""
        deadline = time.monotonic() + self.write_patience
        delay = 0.05
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if _code(exc) not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                    raise
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    @property
    def device_id(self) -> str:
        return str(self.db.table("meta").get("device_id")["value"])

    def close(self) -> None:
        self.db.close()

    @classmethod
    def open_source(cls, path: str | Path) -> Self:
        """A probe database to read from without writing to it (read-only, never created):
        for merging. Raises :class:`StoreError` for anything that is not a probe database."""
        p = Path(path)
        if not p.is_file():
            raise StoreError(N_("{path}: no such database"), path=p)
        try:
            conn = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True)
            db = Database(conn)
            names = set(db.table_names())
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                N_("{path}: not a usable SQLite database ({problem})"), path=p, problem=exc
            ) from None
        if not names:
            raise StoreError(N_("{path}: not a probe database (tables: none)"), path=p)
        if "measurements" not in names:
            raise StoreError(
                N_("{path}: not a probe database (tables: {tables})"),
                path=p,
                tables=", ".join(sorted(names)),
            )
        return cls(db, str(p))

    def pending_migrations(self) -> list[str]:
        """Migrations this database lacks; raises :class:`StoreError` when it has some this
        version of probe does not know (it was made by a newer probe)."""
        known = {m.name for m in migrations.pending(Database(memory=True))}
        applied = {m.name for m in migrations.applied(self.db)}
        newer = sorted(applied - known)
        if newer:
            raise StoreError(
                N_("{path}: made by a newer probe (migration {migration})"),
                path=self.path,
                migration=newer[0],
            )
        return [m.name for m in migrations.pending(self.db)]


def _create_private(p: Path) -> None:
    """A new database file, empty and 0600 (its folders 0700) before SQLite opens it: SQLite
    gives the -wal and -shm files it creates the database file's mode. A file already there
    keeps its mode; a symbolic link to nothing is refused, never created through."""
    if p.exists() or str(p) == ":memory:":
        return
    if p.is_symlink():
        raise refuse_link(p)
    try:
        private_folder(p.parent)
    except OSError as exc:
        raise StoreError(
            N_("{path}: cannot create its folder ({problem})"), path=p, problem=exc.strerror
        ) from None
    try:
        os.close(open_private(p))
    except OSError as exc:
        raise StoreError(
            N_("{path}: cannot create the database ({problem})"),
            path=p,
            problem=exc.strerror or exc,
        ) from None


def _code(exc: sqlite3.Error) -> int:
    """SQLite's primary result code (SQLITE_BUSY for SQLITE_BUSY_SNAPSHOT and the like)."""
    return int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def _disk_full(p: Path) -> bool:
    try:
        st = os.statvfs(p.resolve().parent)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024


def _readonly_fs(p: Path) -> bool:
    try:
        return bool(os.statvfs(p.resolve().parent).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _db_problem(
    p: Path, exc: sqlite3.DatabaseError, patience: float = WRITE_PATIENCE
) -> StoreError:
    """One line naming the database and what SQLite said (as SQLite said it), in words a
    volunteer can act on."""
    code = _code(exc)
    # A full disk is SQLITE_FULL, or an I/O error when the WAL index cannot grow.
    if code == sqlite3.SQLITE_FULL or (code == sqlite3.SQLITE_IOERR and _disk_full(p)):
        template = N_("{path}: the disk is full ({problem}); what was stored before is kept")
    elif code == sqlite3.SQLITE_READONLY or (code == sqlite3.SQLITE_CANTOPEN and _readonly_fs(p)):
        template = (
            N_("{path}: cannot write, the database is on a read-only file system ({problem})")
            if _readonly_fs(p)
            else N_("{path}: cannot write, the database is read-only ({problem})")
        )
    elif code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StoreError(
            N_("{path}: still locked by another process after {seconds} s ({problem})"),
            path=p,
            seconds=f"{BUSY_TIMEOUT + patience:.0f}",
            problem=exc,
        )
    elif code in (sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM):
        template = N_("{path}: cannot use the database file ({problem})")
    else:  # SQLITE_NOTADB, SQLITE_CORRUPT and the rest
        template = N_("{path}: not a usable SQLite database ({problem})")
    return StoreError(template, path=p, problem=exc)


def has_device_id(db: Database) -> bool:
    with suppress(Exception):
        return bool(list(db.query("SELECT 1 FROM meta WHERE key = 'device_id'")))
    return False
