"""SQLite storage through sqlite-utils: schema by migrations, WAL, one transaction per measurement.

Contract: ``Store.open(path)`` creates or migrates the database (raising :class:`StoreError`
with a one-line message naming the file and the cause: not a probe database, not SQLite, a full
disk, a read-only mount) and enables WAL; ``Store.open(path, readonly=True)`` (reading
commands) writes nothing, even on a read-only mount. ``save(measurement)`` writes the
measurement row and its response bodies in one transaction: it is stored whole or not at all.
Several processes may write one database at once (a daemon and a manual ``probe run``): every
write transaction takes the write lock first (``BEGIN IMMEDIATE``) and waits and retries while
another holds it; WAL readers (export, Datasette) never block a writer. Flat verdict columns
serve analysts; the raw observations (JSON) serve ``reclassify``. Bodies are stored once per
SHA-256, compressed, with IP addresses scrubbed; nothing the probe writes holds the volunteer's
own address.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from probe._lazy import without_numpy

with without_numpy():
    from sqlite_utils import Database, Migrations

from probe.errors import InputError
from probe.events import ThroughputTest
from probe.failures import scrub
from probe.model import (
    HTTPTransaction,
    Measurement,
    Observations,
    Verdict,
    control_from_json,
    control_to_json,
    observations_from_json,
    observations_to_json,
)


class StoreError(InputError):
    """The database cannot be used; the message names the file."""


T = TypeVar("T")
BUSY_TIMEOUT = 10.0  # seconds SQLite itself waits for another connection's lock
WRITE_PATIENCE = 120.0  # seconds a writer keeps retrying while others hold the write lock


migrations = Migrations("probe")


@migrations()
def m001_initial(db: Database) -> None:
    db.table("meta").create({"key": str, "value": str}, pk="key")
    db.table("rounds").create(
        {
            "id": str,
            "device_id": str,
            "started_at": str,
            "finished_at": str,
            "targets": int,
            "network_ok": int,
            "bytes_used": int,
            "software": str,
        },
        pk="id",
    )
    db.table("measurements").create(
        {
            "id": str,
            "round_id": str,
            "device_id": str,
            "source": str,
            "target": str,
            "url": str,
            "category": str,
            "is_control": int,
            "started_at": str,
            "runtime": float,
            "resolver": str,
            "control_resolver": str,
            "probe_asn": str,
            "probe_cc": str,
            "software": str,
            "network_ok": int,
            "blocking": str,
            "accessible": int,
            "throttled": int,
            "dns_consistency": str,
            "failing_step": str,
            "failure": str,
            "blockpage": str,
            "evidence": str,
            "offline": int,
            "body_proportion": float,
            "body_length_match": int,
            "status_code_match": int,
            "headers_match": int,
            "title_match": int,
            "rule_id": str,
            "rules_version": str,
            "bytes_used": int,
            "observations": str,
            "control": str,
            "extra": str,
        },
        pk="id",
        not_null={"target", "url", "started_at"},
    )
    db.table("measurements").create_index(["started_at"])
    db.table("measurements").create_index(["target", "started_at"])
    db.table("dns_queries").create(
        {
            "measurement_id": str,
            "seq": int,
            "hostname": str,
            "query_type": str,
            "resolver": str,
            "resolver_address": str,
            "engine": str,
            "answers": str,
            "rcode": str,
            "failure": str,
            "raw_failure": str,
            "t0": float,
            "t": float,
            "depth": int,
            "bytes": int,
        },
        pk=("measurement_id", "seq"),
        foreign_keys=[("measurement_id", "measurements", "id")],
    )
    db.table("tcp_connects").create(
        {
            "measurement_id": str,
            "seq": int,
            "ip": str,
            "port": int,
            "sources": str,
            "failure": str,
            "raw_failure": str,
            "t0": float,
            "t": float,
            "depth": int,
        },
        pk=("measurement_id", "seq"),
        foreign_keys=[("measurement_id", "measurements", "id")],
    )
    db.table("tls_handshakes").create(
        {
            "measurement_id": str,
            "seq": int,
            "ip": str,
            "port": int,
            "server_name": str,
            "sources": str,
            "tls_version": str,
            "cipher_suite": str,
            "negotiated_protocol": str,
            "certificates": str,
            "failure": str,
            "raw_failure": str,
            "t0": float,
            "t": float,
            "depth": int,
            "bytes": int,
        },
        pk=("measurement_id", "seq"),
        foreign_keys=[("measurement_id", "measurements", "id")],
    )
    db.table("http_requests").create(
        {
            "measurement_id": str,
            "seq": int,
            "url": str,
            "role": str,
            "ip": str,
            "port": int,
            "depth": int,
            "status_code": int,
            "headers": str,
            "title": str,
            "body_length": int,
            "body_sha256": str,
            "body_truncated": int,
            "location": str,
            "failure": str,
            "raw_failure": str,
            "failed_operation": str,
            "t0": float,
            "t": float,
            "bytes": int,
        },
        pk=("measurement_id", "seq"),
        foreign_keys=[("measurement_id", "measurements", "id")],
    )
    db.table("bodies").create(
        {"sha256": str, "length": int, "stored": int, "data": bytes}, pk="sha256"
    )
    for table in ("dns_queries", "tcp_connects", "tls_handshakes", "http_requests"):
        db.table(table).create_index(["measurement_id"])
    db.create_view(
        "verdicts",
        """
        SELECT id, started_at, target, url, category, blocking, accessible, throttled,
               failing_step, failure, dns_consistency, blockpage, evidence, rule_id,
               rules_version, bytes_used
        FROM measurements WHERE is_control = 0 ORDER BY started_at""",
    )


@migrations()
def m002_throughput(db: Database) -> None:
    """Throughput tests: the flows, samples and analysis of each test, beside the verdict."""
    db.table("measurements").add_column("throughput", str)
    db.execute("DROP VIEW verdicts")
    db.create_view(
        "verdicts",
        """
        SELECT id, started_at, target, url, category, blocking, accessible, throttled,
               failing_step, failure, dns_consistency, blockpage, evidence, rule_id,
               rules_version, bytes_used,
               json_extract(throughput, '$.analysis.label') AS throttle_label,
               json_extract(throughput, '$.analysis.ratio') AS throughput_ratio
        FROM measurements WHERE is_control = 0 ORDER BY started_at""",
    )


_STEP_VIEWS = {
    "dns_queries": (
        "dns",
        "hostname query_type resolver resolver_address engine answers rcode failure "
        "raw_failure t0 t depth bytes",
    ),
    "tcp_connects": ("tcp", "ip port sources failure raw_failure t0 t depth"),
    "tls_handshakes": (
        "tls",
        "ip port server_name sources tls_version cipher_suite negotiated_protocol certificates "
        "failure raw_failure t0 t depth bytes",
    ),
    "http_requests": (
        "http",
        "url role ip port depth status_code headers title body_length body_sha256 "
        "body_truncated location failure raw_failure failed_operation t0 t bytes",
    ),
}


def _step_view_sql(section: str, columns: str) -> str:
    cols = ",\n".join(f"  json_extract(step.value, '$.{c}') AS {c}" for c in columns.split())
    return (
        "SELECT m.id AS measurement_id, CAST(step.key AS INTEGER) AS seq,\n"
        f"{cols}\nFROM measurements AS m, json_each(m.observations, '$.{section}') AS step"
    )


@migrations()
def m003_one_record_of_observations(db: Database) -> None:
    """One representation of the observations: the ``observations`` JSON column. The step
    tables become views over it (same names and columns), so the two can never disagree. Header
    values of older rows are scrubbed of addresses here, as their step rows were (Location
    kept: it is evidence); new rows are scrubbed of the volunteer's own addresses before they
    are classified and stored (``probe.privacy``)."""
    for row in list(db.query("SELECT id, observations FROM measurements")):
        try:
            obs = json.loads(row["observations"] or "{}")
        except ValueError:
            continue
        changed = False
        for h in obs.get("http", []) if isinstance(obs, dict) else []:
            headers = h.get("headers") or []
            new = [[k, v if str(k).lower() == "location" else scrub(str(v))] for k, v in headers]
            if new != headers:
                h["headers"], changed = new, True
        if changed:
            db.execute(
                "UPDATE measurements SET observations = ? WHERE id = ?",
                [json.dumps(obs, ensure_ascii=False), row["id"]],
            )
    for view, (section, columns) in _STEP_VIEWS.items():
        db.execute(f"DROP TABLE IF EXISTS {view}")
        db.create_view(view, _step_view_sql(section, columns))


def _b(v: bool | None) -> int | None:
    return None if v is None else int(v)


def blocking_to_db(v: Any) -> str | None:
    if v is None:
        return None
    if v is False:
        return "false"
    return str(v)


def blocking_from_db(v: str | None) -> Any:
    return False if v == "false" else v


class Store:
    def __init__(self, db: Database, path: str) -> None:
        self.db = db
        self.path = path

    @classmethod
    def open(cls, path: str | Path, *, create: bool = True, readonly: bool = False) -> Store:
        """The store at ``path``, created and migrated as needed. ``readonly`` (export, events,
        status) opens it without writing anything, even on a read-only mount; such a
        database must already be migrated, unless it can be written after all."""
        p = Path(path)
        if (readonly or not create) and not p.exists():
            raise StoreError(f"{p}: no such database")
        if readonly:
            store = cls._open_readonly(p)
            if store is not None:
                return store
        if create:
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"{p}: cannot create its folder ({exc.strerror})") from None
        try:
            db = Database(sqlite3.connect(str(p), timeout=BUSY_TIMEOUT))
            store = cls(db, str(p))
            db.execute("PRAGMA foreign_keys = ON")
            store._check_is_probe_db()
            if db.journal_mode != "wal":
                store._retry(db.enable_wal)
            if migrations.pending(db) or not _has_meta(db):
                store._write(store._migrate)
        except sqlite3.DatabaseError as exc:
            raise StoreError(_db_problem(p, exc)) from None
        except OSError as exc:
            raise StoreError(f"{p}: {exc.strerror or exc}") from None
        return store

    @classmethod
    def _open_readonly(cls, p: Path) -> Store | None:
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
                conn = sqlite3.connect(uri + "&immutable=1", uri=True)
            db = Database(conn)
            store = cls(db, str(p))
            store._check_is_probe_db()
            if migrations.pending(db) or not _has_meta(db):
                db.close()
                if _readonly_fs(p) or not os.access(p, os.W_OK):
                    raise StoreError(
                        f"{p}: written by an older probe and read-only here, so it cannot be "
                        "migrated; open it once where it can be written"
                    )
                return None
        except sqlite3.DatabaseError as exc:
            raise StoreError(_db_problem(p, exc)) from None
        return store

    def _check_is_probe_db(self) -> None:
        names = set(self.db.table_names())
        if names and "_sqlite_migrations" not in names and "measurements" not in names:
            raise StoreError(
                f"{self.path}: not a probe database (tables: {', '.join(sorted(names))})"
            )

    def _migrate(self) -> None:
        """Inside the write transaction: another process may have migrated meanwhile, and
        sqlite-utils' own transactions become savepoints within ours."""
        migrations.apply(self.db)
        if not _has_meta(self.db):
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
                raise StoreError(_db_problem(Path(self.path), exc)) from None
            raise

    def _retry(self, fn: Callable[[], T]) -> T:
        """``fn()``, again while SQLite says busy (each try already waits BUSY_TIMEOUT), for
        up to WRITE_PATIENCE seconds in all."""
        deadline = time.monotonic() + WRITE_PATIENCE
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

    # -- writing ----------------------------------------------------------------------------
    def save_round(self, row: dict[str, Any]) -> None:
        self._write(lambda: self.db.table("rounds").upsert(row, pk="id"))

    def save(self, m: Measurement) -> None:
        """Store one measurement whole (one transaction), or raise and store nothing."""
        row = self._row(m)

        def write() -> None:
            self.db.table("measurements").insert(row)
            self._bodies(m)

        self._write(write)

    def exists(self, measurement_id: str) -> bool:
        return bool(
            list(self.db.query("SELECT 1 FROM measurements WHERE id = ?", [measurement_id]))
        )

    def _row(self, m: Measurement) -> dict[str, Any]:
        v = m.verdict
        return {
            "id": m.id,
            "round_id": m.round_id,
            "device_id": m.device_id,
            "source": m.source,
            "target": m.target,
            "url": m.url,
            "category": m.category,
            "is_control": int(m.is_control),
            "started_at": m.started_at,
            "runtime": m.runtime,
            "resolver": m.resolver,
            "control_resolver": m.control_resolver,
            "probe_asn": m.probe_asn,
            "probe_cc": m.probe_cc,
            "software": m.software,
            "network_ok": _b(m.network_ok),
            "throughput": None if m.throughput is None else json.dumps(m.throughput),
            "bytes_used": m.bytes_used,
            "observations": json.dumps(_scrub_headers(observations_to_json(m.observations))),
            "control": json.dumps(control_to_json(m.control)),
            "extra": json.dumps(m.extra),
            **self._verdict_columns(v),
        }

    @staticmethod
    def _verdict_columns(v: Verdict) -> dict[str, Any]:
        return {
            "blocking": blocking_to_db(v.blocking),
            "accessible": _b(v.accessible),
            "dns_consistency": v.dns_consistency,
            "failing_step": v.failing_step,
            "failure": v.failure,
            "blockpage": v.blockpage,
            "evidence": v.evidence,
            "offline": int(v.offline),
            "throttled": _b(v.throttled),
            "body_proportion": v.body_proportion,
            "body_length_match": _b(v.body_length_match),
            "status_code_match": _b(v.status_code_match),
            "headers_match": _b(v.headers_match),
            "title_match": _b(v.title_match),
            "rule_id": v.rule_id,
            "rules_version": v.rules_version,
        }

    def _bodies(self, m: Measurement) -> None:
        for h in m.observations.http:
            if h.body_sha256 and h.body is not None:
                self._body(h)

    def _body(self, h: HTTPTransaction) -> None:
        assert h.body_sha256 is not None and h.body is not None
        text = scrub(h.body).encode("utf-8")
        self.db.execute(
            "INSERT OR IGNORE INTO bodies (sha256, length, stored, data) VALUES (?, ?, ?, ?)",
            [h.body_sha256, h.body_length, len(text), zlib.compress(text, 6)],
        )

    # -- reading ----------------------------------------------------------------------------
    def body(self, sha256: str) -> str | None:
        rows = list(self.db.query("SELECT data FROM bodies WHERE sha256 = ?", [sha256]))
        if not rows:
            return None
        return zlib.decompress(rows[0]["data"]).decode("utf-8", "replace")

    def observations(self, row: dict[str, Any]) -> Observations:
        """The stored observations of a measurement row, with bodies re-attached."""
        obs = observations_from_json(json.loads(row["observations"]))
        http = tuple(
            replace(h, body=self.body(h.body_sha256)) if h.body_sha256 else h for h in obs.http
        )
        return replace(obs, http=http)

    def control(self, row: dict[str, Any]) -> Any:
        return control_from_json(json.loads(row["control"]) if row["control"] else None)

    def rows(
        self, where: str = "1", params: list[Any] | None = None, order: str = "started_at, id"
    ) -> Iterator[dict[str, Any]]:
        yield from self.db.query(
            f"SELECT * FROM measurements WHERE {where} ORDER BY {order}", params or []
        )

    def children(self, table: str, measurement_id: str) -> list[dict[str, Any]]:
        return list(
            self.db.query(
                f"SELECT * FROM {table} WHERE measurement_id = ? ORDER BY seq", [measurement_id]
            )
        )

    def bytes_used_since(self, started_at: str) -> int:
        """Bytes the probe moved in measurements started at or after ``started_at``."""
        rows = list(
            self.db.query(
                "SELECT coalesce(sum(bytes_used), 0) AS n FROM measurements "
                "WHERE source = 'probe' AND started_at >= ?",
                [started_at],
            )
        )
        return int(rows[0]["n"])

    def throughput_tests(self, targets: Iterable[str] = ()) -> list[ThroughputTest]:
        """Every analysed throughput test, per target and network, for ``probe events``."""
        names = list(targets)
        where = f"AND target IN ({', '.join('?' for _ in names)})" if names else ""
        rows = self.db.query(
            "SELECT target, coalesce(probe_asn, resolver, '?') AS network, started_at, "
            "throttled, json_extract(throughput, '$.analysis.ratio') AS ratio, "
            "json_extract(throughput, '$.analysis.label') AS label FROM measurements "
            f"WHERE ratio IS NOT NULL {where} ORDER BY started_at",
            names,
        )
        return [
            ThroughputTest(
                r["target"],
                r["network"],
                r["started_at"],
                float(r["ratio"]),
                None if r["throttled"] is None else bool(r["throttled"]),
                r["label"],
            )
            for r in rows
        ]

    def update_throughput(self, measurement_id: str, doc: dict[str, Any]) -> None:
        values = {"throughput": json.dumps(doc)}
        self._write(lambda: self.db.table("measurements").update(measurement_id, values))

    def update_verdict(self, measurement_id: str, v: Verdict) -> None:
        values = self._verdict_columns(v)
        self._write(lambda: self.db.table("measurements").update(measurement_id, values))


def _scrub_headers(obs: Any) -> Any:
    """Header values can echo the client's address; only Location is kept verbatim (it names
    where a blockpage sends the user, evidence we need)."""
    for h in obs.get("http", []):
        h["headers"] = [[k, v if k.lower() == "location" else scrub(v)] for k, v in h["headers"]]
    return obs


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


def _db_problem(p: Path, exc: sqlite3.DatabaseError) -> str:
    """One line naming the database and what SQLite said, in words a volunteer can act on."""
    code = _code(exc)
    # A full disk is SQLITE_FULL, or an I/O error when the WAL index cannot grow.
    if code == sqlite3.SQLITE_FULL or (code == sqlite3.SQLITE_IOERR and _disk_full(p)):
        return f"{p}: the disk is full ({exc}); what was stored before is kept"
    if code == sqlite3.SQLITE_READONLY or (code == sqlite3.SQLITE_CANTOPEN and _readonly_fs(p)):
        where = "on a read-only file system" if _readonly_fs(p) else "read-only"
        return f"{p}: cannot write, the database is {where} ({exc})"
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return f"{p}: still locked by another process after {WRITE_PATIENCE:.0f} s ({exc})"
    if code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
        return f"{p}: not a usable SQLite database ({exc})"
    if code in (sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM):
        return f"{p}: cannot use the database file ({exc})"
    return f"{p}: not a usable SQLite database ({exc})"


def _has_meta(db: Database) -> bool:
    with suppress(Exception):
        return bool(list(db.query("SELECT 1 FROM meta WHERE key = 'device_id'")))
    return False
