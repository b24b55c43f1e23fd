"""Maintenance: pruning old measurements, vacuuming, merging other probes' databases, copying.

Contract: ``prune`` deletes in short batches (a daemon writing beside it waits at most one);
``prune_counts`` says what the same prune would delete, deleting nothing; ``merge_from``
copies what another probe database holds and this one lacks, in one transaction, twice adding
nothing; ``copy_to`` is a consistent copy (SQLite's backup API). Every write goes through the
one write path.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from probe.errors import StoreError
from probe.store.db import has_device_id
from probe.store.reads import Reads
from probe.store.sql import ANOMALY
from probe.words import N_


class Maintenance(Reads):
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

    def prune_counts(self, before: str, *, keep_anomalies: bool = False) -> dict[str, int]:
        """What :meth:`prune` with these arguments would delete now, counted in one read and
        deleting nothing (``probe prune --dry-run`` and the question before a prune): the
        same measurements, the rounds they would leave empty, and the bodies that no
        remaining measurement would name."""
        keep = f"AND NOT ({ANOMALY})" if keep_anomalies else ""
        doomed = f"SELECT id FROM measurements WHERE started_at < :before {keep}"
        sql = f"""
            SELECT
              (SELECT count(*) FROM ({doomed})) AS measurements,
              (SELECT count(*) FROM rounds AS r
                WHERE started_at < :before AND finished_at IS NOT NULL AND NOT EXISTS
                  (SELECT 1 FROM measurements AS m
                    WHERE m.round_id = r.id AND m.id NOT IN ({doomed}))) AS rounds,
              (SELECT count(*) FROM bodies WHERE sha256 NOT IN
                (SELECT body_sha256 FROM http_requests
                  WHERE body_sha256 IS NOT NULL AND measurement_id NOT IN ({doomed})))
                AS bodies
        """
        row = next(iter(self.db.query(sql, {"before": before})))
        return {k: int(row[k]) for k in ("measurements", "rounds", "bodies")}

    def vacuum(self) -> None:
        self.db.execute("VACUUM")

    def merge_from(self, source: Reads) -> tuple[int, int]:
        """Copy every measurement, round and body of ``source`` (a probe database at this
        schema) that this one lacks, in one transaction: (measurements added, already here).
        Ids are globally unique, so merging twice adds nothing. Only these three tables are
        read; measurements the source's own probe made keep its device id."""
        cols = self.columns()
        missing = set(cols) - set(source.columns())
        if missing:
            raise StoreError(
                N_("{path}: no column {column} in measurements"),
                path=source.path,
                column=repr(sorted(missing)[0]),
            )
        device = source.device_id if has_device_id(source.db) else None
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

    def copy_to(self, path: str | Path) -> None:
        """A consistent copy of the whole database (SQLite's backup API), for migrating a
        source without touching it."""
        dest = sqlite3.connect(str(path))
        try:
            self.db.conn.backup(dest)
        finally:
            dest.close()
