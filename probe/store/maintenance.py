"""Maintenance: pruning old measurements, vacuuming, merging other probes' databases, copying.

Contract: ``prune`` deletes in short batches (a daemon writing beside it waits at most one), and
records the places of chained measurements it deleted in the same transaction, signed
(``probe.store.chain.record_prune``, m011), so ``probe verify`` reports them as pruned;
``prune_counts`` says what the same prune would delete, deleting nothing; ``merge_from``
runs one source's merge (probe.analyst.merge, which validates every row) in one write
transaction; ``copy_to`` is a consistent copy (SQLite's backup API). Every write goes through the
one write path.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from probe.evidence.keys import DeviceKey
from probe.store import chain
from probe.store.db import T
from probe.store.reads import Reads
from probe.store.sql import ANOMALY
from probe.timeutil import utc_now


class Maintenance(Reads):
    # The store's writes (probe.store.writes.Writes, before this in Store's bases) say these.
    def has_chain(self) -> bool:
        raise NotImplementedError

    def device_key(self) -> DeviceKey:
        raise NotImplementedError

    def prune(
        self, before: str, *, keep_anomalies: bool = False, batch: int = 500
    ) -> Iterator[tuple[str, int]]:
        """Delete measurements started before ``before`` (and rounds, and bodies no measurement
        refers to any more), ``batch`` rows per transaction, so a daemon writing beside it
        waits at most one short transaction. Yields ("measurements"|"rounds"|"bodies", n) per
        batch."""
        keep = f"AND NOT ({ANOMALY})" if keep_anomalies else ""
        chained = self.has_chain()
        key = self.device_key() if chained else None

        def delete() -> int:
            return self.delete_measurements(
                f"SELECT id{', device_key, seq, chain_hash' if chained else ''} "
                f"FROM measurements WHERE started_at < ? {keep} LIMIT ?",
                [before, batch],
                key,
            )

        while True:
            n = self._write(delete)
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

    def delete_measurements(self, select: str, params: list[Any], key: DeviceKey | None) -> int:
        """Inside a write: delete the measurements ``select`` names (``id``, then with ``key``
        ``device_key, seq, chain_hash``), and with ``key`` say so in the same transaction: a
        prune recorded and signed (m011), so probe verify reports these places as pruned, not
        removed. The number deleted."""
        doomed = [tuple(r) for r in self.db.conn.execute(select, params)]
        ids = [str(r[0]) for r in doomed]
        if not ids:
            return 0
        marks = ", ".join("?" for _ in ids)
        n = self.db.execute(f"DELETE FROM measurements WHERE id IN ({marks})", ids).rowcount
        if key is not None:
            places = [(str(r[1]), int(r[2]), str(r[3])) for r in doomed if r[2] is not None]
            if places:
                chain.record_prune(self.db.conn, key, places, utc_now())
            self.db.execute(f"DELETE FROM unchained_measurements WHERE id IN ({marks})", ids)
        return int(n)

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

    def merge_from(self, copy: Callable[[], T]) -> T:
        """One source of ``probe merge`` written into this database: ``copy`` (which reads the
        source and writes the rows it accepts through this connection) runs inside one write
        transaction, so a source is merged whole or not at all. What to accept is the
        analyst's merge's business (probe.analyst.merge), which trusts no source."""
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
