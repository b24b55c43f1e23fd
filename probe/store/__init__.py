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

import functools
import json
import os
import queue
import sqlite3
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from probe.store._lazy import without_numpy

with without_numpy():
    from sqlite_utils import Database, Migrations

from probe.classify.events import ThroughputTest
from probe.errors import InputError
from probe.failures import scrub
from probe.model import (
    HTTPTransaction,
    Measurement,
    Network,
    ObjectChoice,
    Observations,
    ThroughputRecord,
    Verdict,
    control_from_json,
    control_to_json,
    observations_from_json,
    observations_to_json,
    throughput_from_json,
    throughput_to_json,
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


@migrations()
def m004_daemon_state(db: Database) -> None:
    """The daemon (issue 11): each round's ``kind`` (run, pages, throughput), ``status`` (ok,
    offline, interrupted: cut short by a crash or a stop, closed on the next start; budget:
    skipped past a data cap) and the writer's ``pid``; the ``daemon`` table holds one row, the
    running daemon's heartbeat and schedule, for ``probe status``; an index for rounds."""
    rounds = db.table("rounds")
    for column in ("kind", "status", "note"):
        rounds.add_column(column, str)
    rounds.add_column("pid", int)
    db.table("daemon").create(
        {
            "id": str,
            "pid": int,
            "started_at": str,
            "heartbeat_at": str,
            "stopped_at": str,
            "interval": float,
            "throughput_interval": float,
            "backoff": float,
            "next_pages_at": str,
            "next_throughput_at": str,
            "state": str,
            "last_error": str,
            "max_bytes_per_day": int,
            "max_bytes_per_month": int,
        },
        pk="id",
    )
    db.table("measurements").create_index(["round_id"])
    # Covers the data budget's sums (bytes used today, this month) without reading the rows.
    db.table("measurements").create_index(["started_at", "source", "bytes_used"])
    rounds.create_index(["started_at"])


# What "network" means in analysts' views and filters: the ASN when known, else the resolver
# under test (as ``probe events`` groups them).
NETWORK_SQL = "coalesce(probe_asn, resolver, '?')"


@migrations()
def m005_analyst_views(db: Database) -> None:
    """Views for analysts (Datasette, sqlite3): one row per analysed throughput test (what
    ``probe events`` reads), and the blocking rate per target, day and network."""
    db.create_view(
        "throughput_tests",
        f"""
        SELECT id AS measurement_id, started_at, target, category, {NETWORK_SQL} AS network,
               probe_asn, probe_cc, throttled,
               json_extract(throughput, '$.analysis.ratio') AS ratio,
               json_extract(throughput, '$.analysis.bps') AS bps,
               json_extract(throughput, '$.analysis.control_bps') AS control_bps,
               json_extract(throughput, '$.analysis.p_value') AS p_value,
               json_extract(throughput, '$.analysis.label') AS label,
               json_extract(throughput, '$.analysis.mechanism') AS mechanism,
               json_extract(throughput, '$.bytes_used') AS bytes_used
        FROM measurements
        WHERE json_extract(throughput, '$.analysis.ratio') IS NOT NULL
        ORDER BY started_at""",
        replace=True,
    )
    db.create_view(
        "daily_blocking",
        f"""
        SELECT substr(started_at, 1, 10) AS day, target, {NETWORK_SQL} AS network,
               count(*) AS measurements,
               sum(blocking IS NOT NULL AND blocking != 'false') AS blocked,
               sum(blocking = 'false' AND accessible = 1) AS accessible,
               sum(blocking IS NULL) AS cant_tell,
               round(1.0 * sum(blocking IS NOT NULL AND blocking != 'false')
                     / nullif(sum(blocking IS NOT NULL), 0), 4) AS blocking_rate
        FROM measurements WHERE is_control = 0
        GROUP BY day, target, network ORDER BY day, target, network""",
        replace=True,
    )


@migrations()
def m006_throughput_objects(db: Database) -> None:
    """Each target's throughput object, as discovery chose it from the target's page (issue 12):
    reused while it answers 200 with the same size, found again otherwise. ``url`` NULL: none
    found (looked for again a day later)."""
    db.table("throughput_objects").create(
        {
            "target": str,
            "site_url": str,
            "url": str,
            "size": int,
            "content_type": str,
            "found_at": str,
            "why": str,
        },
        pk="target",
    )


@migrations()
def m007_networks(db: Database) -> None:
    """Which network each measurement and round came from (the ASN, country and the AS's name,
    from the test helper or the settings; never the address), what kind of resolver was under
    test ("isp", "public", "local", "other"), and every change of network between rounds."""
    for column in ("network_name", "resolver_kind"):
        db.table("measurements").add_column(column, str)
    for column in ("probe_asn", "probe_cc", "network_name", "resolver_kind", "network_source"):
        db.table("rounds").add_column(column, str)
    db.table("network_changes").create(
        {
            "round_id": str,
            "at": str,
            "old_asn": str,
            "old_cc": str,
            "old_name": str,
            "new_asn": str,
            "new_cc": str,
            "new_name": str,
        },
        pk="round_id",
    )


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


@dataclass(frozen=True, slots=True)
class RowFilter:
    """Which measurements an export or report reads. Empty tuples and None mean "any";
    ``blocked`` and ``throttled`` together mean either."""

    since: str | None = None  # stored form, inclusive
    until: str | None = None  # stored form, exclusive
    targets: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()  # probe_asn, else the resolver under test (NETWORK_SQL)
    blocked: bool = False
    throttled: bool = False

    def where(self) -> tuple[str, list[Any]]:
        where, params = ["1"], list[Any]()
        if self.since:
            where.append("started_at >= ?")
            params.append(self.since)
        if self.until:
            where.append("started_at < ?")
            params.append(self.until)
        for column, values in (
            ("target", self.targets),
            ("category", self.categories),
            (NETWORK_SQL, self.networks),
        ):
            if values:
                where.append(f"{column} IN ({', '.join('?' for _ in values)})")
                params.extend(values)
        verdicts = []
        if self.blocked:
            verdicts.append("(blocking IS NOT NULL AND blocking != 'false')")
        if self.throttled:
            verdicts.append("throttled = 1")
        if verdicts:
            where.append(f"({' OR '.join(verdicts)})")
        return " AND ".join(where), params


# Derived columns that exports ask for by name (Store.stream), beside the stored ones.
EXPORT_COLUMNS = {
    "network": NETWORK_SQL,
    "ooni_verdict": "json_extract(extra, '$.ooni_verdict')",
    "observations_utf8": "CAST(observations AS BLOB)",  # bytes: no decoding to str and back
    "throttle_label": "json_extract(throughput, '$.analysis.label')",
}


class Store:
    def __init__(self, db: Database, path: str) -> None:
        self.db = db
        self.path = path
        # Seconds a write keeps retrying while another process holds the write lock (the
        # daemon's PatientStore keeps waiting measurements itself and asks for none).
        self.write_patience = WRITE_PATIENCE
        # How a second, reading connection opens this database (the export's read-ahead).
        self.read_uri = f"file:{quote(str(Path(path).resolve()))}?mode=ro"

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
                uri += "&immutable=1"
                conn = sqlite3.connect(uri, uri=True)
            db = Database(conn)
            store = cls(db, str(p))
            store.read_uri = uri
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
                raise StoreError(_db_problem(Path(self.path), exc, self.write_patience)) from None
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
            "throughput": _json(throughput_to_json(m.throughput)),
            "bytes_used": m.bytes_used,
            "observations": json.dumps(observations_to_json(m.observations), ensure_ascii=False),
            "control": json.dumps(control_to_json(m.control)),
            "extra": json.dumps(m.extra),
            **self._verdict_columns(v),
            # m007's columns, only when known: a row shaped for an older schema still inserts
            **{
                k: val
                for k, val in (("network_name", m.network_name), ("resolver_kind", m.resolver_kind))
                if val is not None
            },
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
        text = h.body.encode("utf-8")
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

    @staticmethod
    def verdict(row: dict[str, Any]) -> Verdict:
        """The stored verdict of a measurement row, every field."""

        def b(key: str) -> bool | None:
            return None if row[key] is None else bool(row[key])

        return Verdict(
            blocking=blocking_from_db(row["blocking"]),
            accessible=b("accessible"),
            rule_id=row["rule_id"],
            rules_version=row["rules_version"],
            evidence=row["evidence"],
            dns_consistency=row["dns_consistency"],
            failing_step=row["failing_step"],
            failure=row["failure"],
            blockpage=row["blockpage"],
            body_proportion=row["body_proportion"],
            body_length_match=b("body_length_match"),
            status_code_match=b("status_code_match"),
            headers_match=b("headers_match"),
            title_match=b("title_match"),
            offline=bool(row["offline"]),
            throttled=b("throttled"),
        )

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

    def update_throughput(self, measurement_id: str, test: ThroughputRecord) -> None:
        values = {"throughput": _json(throughput_to_json(test))}
        self._write(lambda: self.db.table("measurements").update(measurement_id, values))

    @staticmethod
    def throughput(row: dict[str, Any]) -> ThroughputRecord | None:
        """The stored throughput test of a measurement row."""
        raw = row.get("throughput")
        return throughput_from_json(json.loads(raw)) if raw else None

    def update_verdict(self, measurement_id: str, v: Verdict) -> None:
        values = self._verdict_columns(v)
        self._write(lambda: self.db.table("measurements").update(measurement_id, values))

    # -- analysts: streaming reads and merges (issue 13) -------------------------------------
    def stream(
        self, f: RowFilter, columns: Sequence[str] = (), *, batch: int = 2000
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Batches of matching measurements, oldest first (``started_at``, ``id``), as tuples
        of ``columns`` (names from :data:`EXPORT_COLUMNS`; every stored column when empty).
        One cursor streams them, so memory holds one batch whatever the database's size."""
        names = list(columns) or self.columns()
        unknown = [c for c in names if c not in EXPORT_COLUMNS and c not in self.columns()]
        if unknown:
            raise ValueError(f"unknown export column {unknown[0]!r}")
        select = ", ".join(f"{EXPORT_COLUMNS.get(c, c)} AS {c}" for c in names)
        where, params = f.where()
        sql = f"SELECT {select} FROM measurements WHERE {where} ORDER BY started_at, id"
        if self.path == ":memory:" or not Path(self.path).is_file():
            cursor = self.db.conn.execute(sql, params)
            try:
                while rows := cursor.fetchmany(batch):
                    yield rows
            finally:
                cursor.close()
            return
        yield from _prefetched(self.read_uri, sql, params, batch)

    # -- the daemon, status and prune (issue 11) ------------------------------------------------
    def close_unfinished_rounds(self, is_alive: Callable[[int], bool], note: str) -> int:
        """Close rounds left open by a writer that is gone (a crash, a kill, a stop mid-round):
        ``finished_at`` becomes the last stored measurement's start (or the round's), the
        counts are what was stored, ``status`` interrupted. Returns how many were closed."""
        open_rounds = list(
            self.db.query("SELECT id, pid, started_at FROM rounds WHERE finished_at IS NULL")
        )
        closed = 0
        for r in open_rounds:
            if r["pid"] is not None and is_alive(int(r["pid"])):
                continue
            self._write(
                functools.partial(
                    self.db.execute,
                    "UPDATE rounds SET status = 'interrupted', note = ?, "
                    "finished_at = coalesce((SELECT max(started_at) FROM measurements "
                    "WHERE round_id = rounds.id), started_at), "
                    "targets = (SELECT count(*) FROM measurements WHERE round_id = rounds.id), "
                    "bytes_used = (SELECT coalesce(sum(bytes_used), 0) FROM measurements "
                    "WHERE round_id = rounds.id) WHERE id = ? AND finished_at IS NULL",
                    [note, r["id"]],
                )
            )
            closed += 1
        return closed

    def last_measured(self, targets: Iterable[str]) -> dict[str, str]:
        """target -> when it was last measured (one index lookup per name: a round asks for
        a few names, and the table grows for months)."""
        out = {}
        for name in targets:
            rows = self.db.query(
                "SELECT max(started_at) AS at FROM measurements WHERE target = ?", [name]
            )
            at = next(iter(rows))["at"]
            if at is not None:
                out[name] = at
        return out

    def round_bytes(self, kind: str, last: int = 5) -> float | None:
        """Bytes per measurement in the last ``last`` finished, online ``kind`` rounds: the
        largest of their averages, so a budget planned with it errs on the safe side."""
        rows = list(
            self.db.query(
                "SELECT bytes_used, targets FROM rounds WHERE kind = ? AND status = 'ok' "
                "AND targets > 0 ORDER BY started_at DESC LIMIT ?",
                [kind, last],
            )
        )
        return max(((r["bytes_used"] or 0) / r["targets"] for r in rows), default=None)

    def save_daemon(self, row: dict[str, Any]) -> None:
        self._write(lambda: self.db.table("daemon").upsert({"id": "daemon", **row}, pk="id"))

    def daemon(self) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT * FROM daemon WHERE id = 'daemon'"))
        return rows[0] if rows else None

    def last_round(self, kinds: Iterable[str] = ()) -> dict[str, Any] | None:
        names = list(kinds)
        where = f"WHERE kind IN ({', '.join('?' for _ in names)})" if names else ""
        rows = list(
            self.db.query(f"SELECT * FROM rounds {where} ORDER BY started_at DESC LIMIT 1", names)
        )
        return rows[0] if rows else None

    def count_measurements(self, since: str | None = None) -> int:
        rows = self.db.query(
            "SELECT count(*) AS n FROM measurements WHERE started_at >= ?", [since or ""]
        )
        return int(next(iter(rows))["n"])

    def anomalous_targets(self, since: str) -> list[dict[str, Any]]:
        """Targets with an anomaly (blocking, or throttled) since ``since``: the latest one."""
        return list(
            self.db.query(
                "SELECT target, blocking, accessible, evidence, offline, throttled, blockpage, "
                "json_extract(throughput, '$.analysis.label') AS throttle_label, "
                "max(started_at) AS at, count(*) AS n "
                f"FROM measurements WHERE is_control = 0 AND started_at >= ? AND {ANOMALY} "
                "GROUP BY target ORDER BY target",
                [since],
            )
        )

    def prune(
        self, before: str, *, keep_anomalies: bool = False, batch: int = 500
    ) -> Iterator[tuple[str, int]]:
        """Delete measurements started before ``before`` (and rounds, and bodies no measurement
        refers to any more), ``batch`` rows per transaction, so a daemon writing beside it
        waits at most one short transaction. Yields ("measurements"|"rounds"|"bodies", n) per
        batch."""
        keep = f"AND NOT ({ANOMALY})" if keep_anomalies else ""
        while True:
            n = self._write(
                lambda: (
                    self.db.execute(
                        "DELETE FROM measurements WHERE id IN (SELECT id FROM measurements "
                        f"WHERE started_at < ? {keep} LIMIT ?)",
                        [before, batch],
                    ).rowcount
                )
            )
            if n <= 0:
                break
            yield "measurements", n
        while True:
            n = self._write(
                lambda: (
                    self.db.execute(
                        "DELETE FROM rounds WHERE id IN (SELECT id FROM rounds AS r "
                        "WHERE started_at < ? AND finished_at IS NOT NULL AND NOT EXISTS "
                        "(SELECT 1 FROM measurements AS m WHERE m.round_id = r.id) LIMIT ?)",
                        [before, batch],
                    ).rowcount
                )
            )
            if n <= 0:
                break
            yield "rounds", n
        # Bodies are shared by SHA-256: an orphan is one that no stored observation names.
        orphans = [
            r["sha256"]
            for r in self.db.query(
                "SELECT sha256 FROM bodies WHERE sha256 NOT IN (SELECT body_sha256 FROM "
                "http_requests WHERE body_sha256 IS NOT NULL)"
            )
        ]
        for i in range(0, len(orphans), batch):
            chunk = orphans[i : i + batch]
            sql = f"DELETE FROM bodies WHERE sha256 IN ({', '.join('?' for _ in chunk)})"
            self._write(functools.partial(self.db.execute, sql, chunk))
            yield "bodies", len(chunk)

    def vacuum(self) -> None:
        self.db.execute("VACUUM")

    def stream_dicts(self, f: RowFilter, columns: Sequence[str] = ()) -> Iterator[dict[str, Any]]:
        names = list(columns) or self.columns()
        for rows in self.stream(f, names):
            for row in rows:
                yield dict(zip(names, row, strict=True))

    def columns(self) -> list[str]:
        """The ``measurements`` table's columns, in order."""
        return [c.name for c in self.db.table("measurements").columns]

    def span(self, f: RowFilter) -> tuple[str | None, str | None, int]:
        """(first started_at, last started_at, count) of the matching measurements."""
        where, params = f.where()
        row = self.db.conn.execute(
            f"SELECT min(started_at), max(started_at), count(*) FROM measurements WHERE {where}",
            params,
        ).fetchone()
        return row[0], row[1], int(row[2])

    def merge_from(self, source: Store) -> tuple[int, int]:
        """Copy every measurement, round and body of ``source`` (a probe database at this
        schema) that this one lacks, in one transaction: (measurements added, already here).
        Ids are globally unique, so merging twice adds nothing. Only these three tables are
        read; measurements the source's own probe made keep its device id."""
        cols = self.columns()
        missing = set(cols) - set(source.columns())
        if missing:
            raise StoreError(f"{source.path}: no column {sorted(missing)[0]!r} in measurements")
        device = source.device_id if _has_meta(source.db) else None
        select = ", ".join(
            "coalesce(device_id, CASE WHEN source = 'probe' THEN :device END)"
            if c == "device_id"
            else c
            for c in cols
        )
        placeholders = ", ".join("?" for _ in cols)

        def copy() -> tuple[int, int]:
            added = seen = 0
            cursor = source.db.conn.execute(
                f"SELECT {select} FROM measurements ORDER BY rowid", {"device": device}
            )
            while rows := cursor.fetchmany(500):
                before = self.db.conn.total_changes
                self.db.conn.executemany(
                    f"INSERT OR IGNORE INTO measurements ({', '.join(cols)}) "
                    f"VALUES ({placeholders})",
                    rows,
                )
                n = self.db.conn.total_changes - before
                added, seen = added + n, seen + len(rows) - n
            for table in ("rounds", "bodies"):
                tcols = [c.name for c in self.db.table(table).columns]
                theirs = {c.name for c in source.db.table(table).columns}
                shared = [c for c in tcols if c in theirs]
                cursor = source.db.conn.execute(f"SELECT {', '.join(shared)} FROM {table}")
                while rows := cursor.fetchmany(500):
                    self.db.conn.executemany(
                        f"INSERT OR IGNORE INTO {table} ({', '.join(shared)}) "
                        f"VALUES ({', '.join('?' for _ in shared)})",
                        rows,
                    )
            return added, seen

        return self._write(copy)

    def counts(self) -> tuple[int, int]:
        """(measurements, distinct device ids)."""
        row = self.db.conn.execute(
            "SELECT count(*), count(DISTINCT device_id) FROM measurements"
        ).fetchone()
        return int(row[0]), int(row[1])

    @classmethod
    def open_source(cls, path: str | Path) -> Store:
        """A probe database to read from without writing to it (read-only, never created):
        for merging. Raises :class:`StoreError` for anything that is not a probe database."""
        p = Path(path)
        if not p.is_file():
            raise StoreError(f"{p}: no such database")
        try:
            conn = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True)
            db = Database(conn)
            names = set(db.table_names())
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{p}: not a usable SQLite database ({exc})") from None
        if "measurements" not in names:
            shown = ", ".join(sorted(names)) or "none"
            raise StoreError(f"{p}: not a probe database (tables: {shown})")
        return cls(db, str(p))

    def pending_migrations(self) -> list[str]:
        """Migrations this database lacks; raises :class:`StoreError` when it has some this
        version of probe does not know (it was made by a newer probe)."""
        known = {m.name for m in migrations.pending(Database(memory=True))}
        applied = {m.name for m in migrations.applied(self.db)}
        newer = sorted(applied - known)
        if newer:
            raise StoreError(f"{self.path}: made by a newer probe (migration {newer[0]})")
        return [m.name for m in migrations.pending(self.db)]

    def copy_to(self, path: str | Path) -> None:
        """A consistent copy of the whole database (SQLite's backup API), for migrating a
        source without touching it."""
        dest = sqlite3.connect(str(path))
        try:
            self.db.conn.backup(dest)
        finally:
            dest.close()

    # -- throughput objects and networks (issue 12) ----------------------------------------
    def object_choice(self, target: str) -> ObjectChoice | None:
        """The stored throughput object of a target (or its "none found"), if any."""
        rows = list(self.db.query("SELECT * FROM throughput_objects WHERE target = ?", [target]))
        if not rows:
            return None
        r = rows[0]
        return ObjectChoice(
            r["target"],
            r["site_url"],
            r["url"],
            r["size"],
            r["content_type"],
            r["found_at"],
            r["why"] or "",
        )

    def save_object_choice(self, c: ObjectChoice) -> None:
        self._write(
            lambda: self.db.table("throughput_objects").upsert(
                {
                    "target": c.target,
                    "site_url": c.site_url,
                    "url": c.url,
                    "size": c.size,
                    "content_type": c.content_type,
                    "found_at": c.found_at,
                    "why": c.why,
                },
                pk="target",
            )
        )

    def save_throughput(self, m: Measurement) -> None:
        """A stored measurement's throughput test, added once it ran: the test, the throttled
        verdict and the bytes it used, in one transaction."""
        self._write(
            lambda: self.db.table("measurements").update(
                m.id,
                {
                    "throughput": _json(throughput_to_json(m.throughput)),
                    "throttled": _b(m.verdict.throttled),
                    "bytes_used": m.bytes_used,
                },
            )
        )

    def last_throughput(self) -> dict[str, str]:
        """When each target last had a throughput test that ran (its measurement's start)."""
        rows = self.db.query(
            "SELECT target, max(started_at) AS at FROM measurements "
            "WHERE throughput IS NOT NULL AND json_extract(throughput, '$.skipped') IS NULL "
            "GROUP BY target"
        )
        return {r["target"]: r["at"] for r in rows}

    def last_network(self, before_round: str | None = None) -> Network | None:
        """The network of the latest round that knew it (other than ``before_round``)."""
        rows = list(
            self.db.query(
                "SELECT probe_asn, probe_cc, network_name, network_source FROM rounds "
                "WHERE probe_asn IS NOT NULL AND id != ? ORDER BY started_at DESC LIMIT 1",
                [before_round or ""],
            )
        )
        if not rows:
            return None
        r = rows[0]
        return Network(r["probe_asn"], r["probe_cc"], r["network_name"], r["network_source"])

    def save_network_change(self, round_id: str, at: str, old: Network, new: Network) -> None:
        self._write(
            lambda: self.db.table("network_changes").insert(
                {
                    "round_id": round_id,
                    "at": at,
                    "old_asn": old.asn,
                    "old_cc": old.cc,
                    "old_name": old.name,
                    "new_asn": new.asn,
                    "new_cc": new.cc,
                    "new_name": new.name,
                },
                replace=True,
            )
        )

    def network_changes(self) -> list[dict[str, Any]]:
        return list(self.db.query("SELECT * FROM network_changes ORDER BY at"))


def _prefetched(
    uri: str, sql: str, params: list[Any], batch: int
) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of ``sql``, read by a thread of their own on a read-only connection, at most
    two batches ahead: SQLite works (without the GIL) while the caller formats the previous
    batch, and memory stays bounded."""
    done = object()
    ahead: queue.Queue[Any] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            con = sqlite3.connect(uri, uri=True)
            try:
                cursor = con.execute(sql, params)
                while rows := cursor.fetchmany(batch):
                    if not put(rows):
                        return
                put(done)
            finally:
                con.close()
        except BaseException as exc:  # handed to the reader, raised there
            put(exc)

    reader = threading.Thread(target=read, name="probe-stream", daemon=True)
    reader.start()
    try:
        while (item := ahead.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


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


def _db_problem(p: Path, exc: sqlite3.DatabaseError, patience: float = WRITE_PATIENCE) -> str:
    """One line naming the database and what SQLite said, in words a volunteer can act on."""
    code = _code(exc)
    # A full disk is SQLITE_FULL, or an I/O error when the WAL index cannot grow.
    if code == sqlite3.SQLITE_FULL or (code == sqlite3.SQLITE_IOERR and _disk_full(p)):
        return f"{p}: the disk is full ({exc}); what was stored before is kept"
    if code == sqlite3.SQLITE_READONLY or (code == sqlite3.SQLITE_CANTOPEN and _readonly_fs(p)):
        where = "on a read-only file system" if _readonly_fs(p) else "read-only"
        return f"{p}: cannot write, the database is {where} ({exc})"
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        waited = BUSY_TIMEOUT + patience
        return f"{p}: still locked by another process after {waited:.0f} s ({exc})"
    if code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
        return f"{p}: not a usable SQLite database ({exc})"
    if code in (sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM):
        return f"{p}: cannot use the database file ({exc})"
    return f"{p}: not a usable SQLite database ({exc})"


def _has_meta(db: Database) -> bool:
    with suppress(Exception):
        return bool(list(db.query("SELECT 1 FROM meta WHERE key = 'device_id'")))
    return False


# A measurement with an anomaly: a blocking verdict, or a throttled throughput test.
ANOMALY = "((blocking IS NOT NULL AND blocking != 'false') OR coalesce(throttled, 0) = 1)"
