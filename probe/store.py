"""SQLite storage through sqlite-utils: schema by migrations, WAL, one transaction per measurement.

Contract: ``Store.open(path)`` creates or migrates the database (raising :class:`StoreError`
with a one-line message for a file that is not a usable probe database) and enables WAL.
``save(measurement)`` writes the measurement row, its step rows and its response bodies in one
transaction: it is stored whole or not at all. Flat verdict columns serve analysts; the raw
observations (JSON) serve ``reclassify``. Bodies are stored once per SHA-256, compressed, with
IP addresses scrubbed; nothing the probe writes holds the volunteer's own address.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

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
    def open(cls, path: str | Path, *, create: bool = True) -> Store:
        p = Path(path)
        if not create and not p.exists():
            raise StoreError(f"{p}: no such database")
        if create:
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"{p}: cannot create its folder ({exc.strerror})") from None
        try:
            db = Database(str(p))
            db.execute("PRAGMA foreign_keys = ON")
            names = set(db.table_names())
            if names and "_sqlite_migrations" not in names and "measurements" not in names:
                raise StoreError(f"{p}: not a probe database (tables: {', '.join(sorted(names))})")
            if db.journal_mode != "wal":
                db.enable_wal()
            migrations.apply(db)
            if not _has_meta(db):
                with db.atomic():
                    db.table("meta").insert(
                        {"key": "device_id", "value": str(uuid.uuid4())}, replace=True
                    )
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{p}: not a usable SQLite database ({exc})") from None
        except OSError as exc:
            raise StoreError(f"{p}: {exc.strerror or exc}") from None
        return cls(db, str(p))

    @property
    def device_id(self) -> str:
        return str(self.db.table("meta").get("device_id")["value"])

    def close(self) -> None:
        self.db.close()

    # -- writing ----------------------------------------------------------------------------
    def save_round(self, row: dict[str, Any]) -> None:
        with self.db.atomic():
            self.db.table("rounds").upsert(row, pk="id")

    def save(self, m: Measurement) -> None:
        """Store one measurement whole (one transaction), or raise and store nothing."""
        with self.db.atomic():
            self.db.table("measurements").insert(self._row(m))
            self._bodies(m)

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
        with self.db.atomic():
            self.db.table("measurements").update(measurement_id, {"throughput": json.dumps(doc)})

    def update_verdict(self, measurement_id: str, v: Verdict) -> None:
        with self.db.atomic():
            self.db.table("measurements").update(measurement_id, self._verdict_columns(v))

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
            with self.db.atomic():
                self.db.execute(
                    "UPDATE rounds SET status = 'interrupted', note = ?, "
                    "finished_at = coalesce((SELECT max(started_at) FROM measurements "
                    "WHERE round_id = rounds.id), started_at), "
                    "targets = (SELECT count(*) FROM measurements WHERE round_id = rounds.id), "
                    "bytes_used = (SELECT coalesce(sum(bytes_used), 0) FROM measurements "
                    "WHERE round_id = rounds.id) WHERE id = ? AND finished_at IS NULL",
                    [note, r["id"]],
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
        """Bytes per measurement in the last ``last`` finished, online ``kind`` rounds."""
        rows = list(
            self.db.query(
                "SELECT bytes_used, targets FROM rounds WHERE kind = ? AND status = 'ok' "
                "AND targets > 0 ORDER BY started_at DESC LIMIT ?",
                [kind, last],
            )
        )
        n = sum(r["targets"] for r in rows)
        return sum(r["bytes_used"] or 0 for r in rows) / n if n else None

    def save_daemon(self, row: dict[str, Any]) -> None:
        with self.db.atomic():
            self.db.table("daemon").upsert({"id": "daemon", **row}, pk="id")

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
                "SELECT target, blocking, throttled, max(started_at) AS at, count(*) AS n "
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
            with self.db.atomic():
                n = self.db.execute(
                    "DELETE FROM measurements WHERE id IN (SELECT id FROM measurements "
                    f"WHERE started_at < ? {keep} LIMIT ?)",
                    [before, batch],
                ).rowcount
            if n <= 0:
                break
            yield "measurements", n
        while True:
            with self.db.atomic():
                n = self.db.execute(
                    "DELETE FROM rounds WHERE id IN (SELECT id FROM rounds AS r "
                    "WHERE started_at < ? AND finished_at IS NOT NULL AND NOT EXISTS "
                    "(SELECT 1 FROM measurements AS m WHERE m.round_id = r.id) LIMIT ?)",
                    [before, batch],
                ).rowcount
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
            with self.db.atomic():
                self.db.execute(
                    f"DELETE FROM bodies WHERE sha256 IN ({', '.join('?' for _ in chunk)})", chunk
                )
            yield "bodies", len(chunk)

    def vacuum(self) -> None:
        self.db.execute("VACUUM")


# A measurement with an anomaly: a blocking verdict, or a throttled throughput test.
ANOMALY = "((blocking IS NOT NULL AND blocking != 'false') OR coalesce(throttled, 0) = 1)"


def _scrub_headers(obs: Any) -> Any:
    """Header values can echo the client's address; only Location is kept verbatim (it names
    where a blockpage sends the user, evidence we need)."""
    for h in obs.get("http", []):
        h["headers"] = [[k, v if k.lower() == "location" else scrub(v)] for k, v in h["headers"]]
    return obs


def _has_meta(db: Database) -> bool:
    with suppress(Exception):
        return bool(list(db.query("SELECT 1 FROM meta WHERE key = 'device_id'")))
    return False
