"""Reading: what exports, reports, ``probe events``, ``probe status`` and the daemon ask of the
store.

Contract: nothing here writes. :class:`RowFilter` selects measurements (by time, target,
category, network, verdict); ``stream`` yields them oldest first, one batch at a time, so memory
stays flat whatever the database's size; ``stored`` streams the same as typed :class:`Stored`
records (the row's columns as typed fields, the JSON columns decoded by the row codec), the one
way exports and reports read a measurement; the row decoders give back the stored records
(verdict, observations with their bodies, control evidence, throughput test).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import msgspec
from sqlite_utils import Database

from probe.classify.attribution import EdgeTest
from probe.classify.events import ThroughputTest
from probe.model import (
    ControlEvidence,
    Network,
    ObjectChoice,
    Observations,
    ThroughputRecord,
    Verdict,
)
from probe.store.db import Connection
from probe.store.readahead import prefetched
from probe.store.rows import (
    body_text,
    control_from_row,
    observations_from_row,
    throughput_from_row,
    verdict_from_row,
)
from probe.store.sql import ANOMALY, NETWORK_SQL, THROTTLE_LABEL_SQL


@dataclass(frozen=True, slots=True)
class ThroughputAttempt:
    """A target's latest throughput attempt: when (its measurement's start) and why it was
    skipped (None: the test ran); and how many attempts it has had in all."""

    at: str
    skipped: str | None = None
    count: int = 1


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
    "throttle_label": THROTTLE_LABEL_SQL,
}


class Stored(msgspec.Struct, frozen=True, kw_only=True):
    """One stored measurement as exports and reports read it: its columns as typed fields
    (booleans as bools, ``network`` as :data:`NETWORK_SQL` says), its verdict, its
    observations (without response bodies: :meth:`Reads.body` fetches one by SHA-256), its
    control evidence and throughput test, and ``extra`` (``ooni_verdict`` for imported rows)."""

    id: str
    target: str
    url: str
    started_at: str
    category: str | None
    is_control: bool
    round_id: str | None
    device_id: str | None
    source: str | None
    runtime: float | None
    resolver: str | None
    control_resolver: str | None
    probe_asn: str | None
    probe_cc: str | None
    network: str
    network_name: str | None
    resolver_kind: str | None
    software: str | None
    network_ok: bool | None
    bytes_used: int | None
    verdict: Verdict
    observations: Observations
    control: ControlEvidence | None
    throughput: ThroughputRecord | None
    extra: dict[str, Any]

    @property
    def throttle_label(self) -> str | None:
        """The throughput test's label (:data:`THROTTLE_LABEL_SQL`), if it was analysed."""
        tp = self.throughput
        return tp.analysis.label if tp is not None and tp.analysis is not None else None


# The columns a Stored is read from, in order: every stored one but the verdict's (which
# verdict_from_row reads by name from STORED_VERDICT), and the derived network.
_PLAIN = [f for f in Stored.__struct_fields__ if f not in ("verdict", "network")]
STORED_VERDICT = [
    "blocking",
    "accessible",
    "rule_id",
    "rules_version",
    "evidence",
    "dns_consistency",
    "failing_step",
    "failure",
    "blockpage",
    "body_proportion",
    "body_length_match",
    "status_code_match",
    "headers_match",
    "title_match",
    "offline",
    "throttled",
    "quic",  # m014
    "quic_rule",
]
STORED_COLUMNS = [*_PLAIN, "network", *STORED_VERDICT]
_JSON_DECODE = msgspec.json.Decoder(dict[str, Any])
# The JSON columns a Stored decodes, and the flat ones: what exporters that read columns in
# bulk (CSV, Parquet) select by name, so that their lists are this one, not a copy that drifts.
STORED_JSON = ("observations", "control", "throughput", "extra")
STORED_FLAT = [c for c in STORED_COLUMNS if c not in STORED_JSON]


def throughput_from_text(raw: str | bytes | None) -> ThroughputRecord | None:
    """A stored ``throughput`` column's text as the typed record (the row codec decodes)."""
    return throughput_from_row({"throughput": raw})


def stored_from_row(row: Mapping[str, Any]) -> Stored:
    """A :class:`Stored` from a row holding :data:`STORED_COLUMNS` (the row codec decodes)."""

    def b(key: str) -> bool | None:
        return None if row[key] is None else bool(row[key])

    extra = row["extra"]
    return Stored(
        id=row["id"],
        target=row["target"],
        url=row["url"],
        started_at=row["started_at"],
        category=row["category"],
        is_control=bool(row["is_control"]),
        round_id=row["round_id"],
        device_id=row["device_id"],
        source=row["source"],
        runtime=row["runtime"],
        resolver=row["resolver"],
        control_resolver=row["control_resolver"],
        probe_asn=row["probe_asn"],
        probe_cc=row["probe_cc"],
        network=row["network"],
        network_name=row["network_name"],
        resolver_kind=row["resolver_kind"],
        software=row["software"],
        network_ok=b("network_ok"),
        bytes_used=row["bytes_used"],
        verdict=verdict_from_row(row),
        observations=observations_from_row(row),
        control=control_from_row(row),
        throughput=throughput_from_row(row),
        extra=_JSON_DECODE.decode(extra) if extra else {},
    )


class Reads(Connection):
    def exists(self, measurement_id: str) -> bool:
        return bool(
            list(self.db.query("SELECT 1 FROM measurements WHERE id = ?", [measurement_id]))
        )

    def body(self, sha256: str) -> str | None:
        rows = list(self.db.query("SELECT data FROM bodies WHERE sha256 = ?", [sha256]))
        return body_text(rows[0]["data"]) if rows else None

    def observations(self, row: Mapping[str, Any]) -> Observations:
        """The stored observations of a measurement row, with bodies re-attached."""
        obs = observations_from_row(row)
        http = tuple(
            replace(h, body=self.body(h.body_sha256)) if h.body_sha256 else h for h in obs.http
        )
        return replace(obs, http=http)

    @staticmethod
    def verdict(row: Mapping[str, Any]) -> Verdict:
        """The stored verdict of a measurement row, every field."""
        return verdict_from_row(row)

    @staticmethod
    def control(row: Mapping[str, Any]) -> ControlEvidence | None:
        return control_from_row(row)

    @staticmethod
    def throughput(row: Mapping[str, Any]) -> ThroughputRecord | None:
        """The stored throughput test of a measurement row."""
        return throughput_from_row(row)

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

    def columns(self) -> list[str]:
        """The ``measurements`` table's columns, in order."""
        return [c.name for c in self.db.table("measurements").columns]

    def bytes_used_since(self, started_at: str) -> int:
        """Bytes the probe moved in measurements started at or after ``started_at``, and in
        uploads to the collective since then (m012's ``upload_log``)."""
        rows = list(
            self.db.query(
                "SELECT coalesce(sum(bytes_used), 0) AS n FROM measurements "
                "WHERE source = 'probe' AND started_at >= ?",
                [started_at],
            )
        )
        uploaded = 0
        if self.db.table("upload_log").exists():
            uploaded = self.db.execute(
                "SELECT coalesce(sum(bytes), 0) FROM upload_log WHERE at >= ?", [started_at]
            ).fetchone()[0]
        return int(rows[0]["n"]) + int(uploaded)

    def throughput_tests(self, targets: Iterable[str] = ()) -> list[ThroughputTest]:
        """Every analysed throughput test, per target and network, for ``probe events``."""
        names = list(targets)
        where = f"WHERE target IN ({', '.join('?' for _ in names)})" if names else ""
        # The view (schema m005) is the one definition of a test's network, ratio and label.
        rows = self.db.query(
            "SELECT target, network, started_at, throttled, ratio, label FROM throughput_tests "
            f"{where} ORDER BY started_at",
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

    def edge_tests(self, targets: Iterable[str] = ()) -> list[EdgeTest]:
        """Every test with a rate, and the edge its target's object came from (schema m013's
        ``edge_tests``), for the attribution of slowdowns."""
        return edge_tests_of(self.db, targets)

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
        yield from prefetched(self.read_uri, sql, params, batch)

    def stored(self, f: RowFilter) -> Iterator[Stored]:
        """The matching measurements as :class:`Stored` records, oldest first, streamed as
        :meth:`stream` streams them (one batch in memory)."""
        for rows in self.stream(f, STORED_COLUMNS):
            for row in rows:
                yield stored_from_row(dict(zip(STORED_COLUMNS, row, strict=True)))

    def stream_dicts(self, f: RowFilter, columns: Sequence[str] = ()) -> Iterator[dict[str, Any]]:
        names = list(columns) or self.columns()
        for rows in self.stream(f, names):
            for row in rows:
                yield dict(zip(names, row, strict=True))

    def span(self, f: RowFilter) -> tuple[str | None, str | None, int]:
        """(first started_at, last started_at, count) of the matching measurements."""
        where, params = f.where()
        row = self.db.conn.execute(
            f"SELECT min(started_at), max(started_at), count(*) FROM measurements WHERE {where}",
            params,
        ).fetchone()
        return row[0], row[1], int(row[2])

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
        """Targets with an anomaly (:data:`ANOMALY`) since ``since``: the latest one."""
        return list(
            self.db.query(
                "SELECT target, blocking, accessible, evidence, offline, throttled, blockpage, "
                f"{THROTTLE_LABEL_SQL} AS throttle_label, "
                "max(started_at) AS at, count(*) AS n "
                f"FROM measurements WHERE is_control = 0 AND started_at >= ? AND {ANOMALY} "
                "GROUP BY target ORDER BY target",
                [since],
            )
        )

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

    def throughput_attempts(self) -> dict[str, ThroughputAttempt]:
        """Each target's latest throughput attempt: a test that ran, or one skipped for the
        target's own reason (no object, no address, an error in the probe's code). A test the
        budget stopped (``skipped = 'data_cap'``) never started: it is not an attempt, so the
        target keeps its place at the front of the rotation."""
        rows = self.db.query(
            # SQLite gives a bare column beside max() from the row holding the max.
            "SELECT target, max(started_at) AS at, "
            "json_extract(throughput, '$.skipped') AS skipped, count(*) AS n FROM measurements "
            "WHERE throughput IS NOT NULL "
            "AND coalesce(json_extract(throughput, '$.skipped'), '') != 'data_cap' "
            "GROUP BY target"
        )
        return {r["target"]: ThroughputAttempt(r["at"], r["skipped"], r["n"]) for r in rows}

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

    def network_changes(self) -> list[dict[str, Any]]:
        return list(self.db.query("SELECT * FROM network_changes ORDER BY at"))


def edge_tests_of(db: Database, targets: Iterable[str] = ()) -> list[EdgeTest]:
    """The rows of ``db``'s ``edge_tests`` view (m013) as :class:`EdgeTest`: a store's, or a
    fleet dataset's tests copied into a database that has the view."""
    names = list(targets)
    where = f"WHERE target IN ({', '.join('?' for _ in names)})" if names else ""
    rows = db.query(f"SELECT * FROM edge_tests {where} ORDER BY started_at", names)
    return [
        EdgeTest(
            r["target"],
            r["network"],
            r["started_at"],
            float(r["bps"]),
            r["target_class"],
            r["edge_asn"],
            None if r["on_net"] is None else bool(r["on_net"]),
            r["rtt_ms"],
            r["label"],
        )
        for r in rows
    ]
