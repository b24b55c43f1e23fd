"""The outbox (m012): the batches made for the collective, what the store acknowledged, and
the pruning of what the collective holds.

Contract: :meth:`Outbox.make` reads the device's chained measurements after its last batch
(every column, as SQLite gives them back, oldest first), up to the first whose round is still
being written (open, its writer alive: a throughput round adds its tests to rows it stored
earlier, so none from there on is final yet), the bodies they name (decompressed
text) and the signed chain heads up to its last measurement that no batch carried yet (a head
signed after its measurements left, at a round's end, goes with the next batch), hands them
to ``seal`` (the fleet's, so this module knows no format) and records the sealed batch, bytes
and all, in the same write transaction: two uploaders of one database (a daemon and a manual
``probe upload``) never make overlapping batches, and a batch, once made, is the same bytes on
every retry. :meth:`Outbox.attempt` records one try (its bytes in ``upload_log``, for the data
budget) and, when the store acknowledged the batch, its time, emptying ``data``.
:meth:`Outbox.prune_uploaded` deletes measurements started before a time whose batch was
acknowledged, a short batch per transaction, never the device's last one (the chain goes on
from it), and the bodies no remaining measurement names.
"""

from __future__ import annotations

import functools
import json
import os
import zlib
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from probe.store.maintenance import Maintenance


class SealedLike(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def data(self) -> bytes: ...
    @property
    def digest(self) -> str: ...
    @property
    def count(self) -> int: ...


Seal = Callable[
    [list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], str | None], SealedLike
]


class Outbox:
    """The outbox of one database."""

    def __init__(self, store: Maintenance) -> None:
        self.store = store
        self.db = store.db

    def ready(self) -> bool:
        """Has this database the outbox (m012)?"""
        return "outbox" in self.db.table_names()

    def last(self, device_key: str) -> tuple[str, int] | None:
        """(digest, last seq) of the device's last batch made, or None."""
        row = self.db.execute(
            "SELECT digest, last_seq FROM outbox WHERE device_key = ? ORDER BY last_seq DESC "
            "LIMIT 1",
            [device_key],
        ).fetchone()
        return None if row is None else (str(row[0]), int(row[1]))

    def make(
        self, device_key: str, seal: Seal, *, limit: int, bodies: bool, at: str
    ) -> SealedLike | None:
        """Seal the device's next measurements (up to ``limit``) as a batch and record it;
        None when there is nothing new."""

        def write() -> SealedLike | None:
            last = self.last(device_key)
            prev, after = (None, 0) if last is None else last
            until = self._held_from(device_key, after)
            cursor = self.db.execute(
                "SELECT * FROM measurements WHERE device_key = ? AND seq > ? AND seq < ? "
                "ORDER BY seq LIMIT ?",
                [device_key, after, until if until is not None else 2**63 - 1, limit],
            )
            names = [d[0] for d in cursor.description]
            records = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
            if not records:
                return None
            first, final = int(records[0]["seq"]), int(records[-1]["seq"])
            held = self._bodies(records) if bodies else []
            heads = self._heads(device_key, final)
            sealed = seal(records, held, heads, prev)
            self.db.conn.executemany(
                "INSERT OR IGNORE INTO outbox_heads (device_key, kind, label, seq, digest) "
                "VALUES (?, ?, ?, ?, ?)",
                [(h["device_key"], h["kind"], h["label"], h["seq"], sealed.digest) for h in heads],
            )
            self.db.execute(
                "INSERT INTO outbox (digest, object_key, device_key, prev, first_seq, last_seq, "
                "count, bytes, made_at, attempts, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
                [
                    sealed.digest,
                    sealed.key,
                    device_key,
                    prev,
                    first,
                    final,
                    sealed.count,
                    len(sealed.data),
                    at,
                    sealed.data,
                ],
            )
            return sealed

        return self.store._write(write)

    def _held_from(self, device_key: str, after: int) -> int | None:
        """The seq of the device's first measurement after ``after`` in a round still being
        written (see the contract), or None."""
        rows = self.db.execute(
            "SELECT min(m.seq), r.pid FROM measurements m JOIN rounds r ON r.id = m.round_id "
            "WHERE m.device_key = ? AND m.seq > ? AND r.finished_at IS NULL "
            "AND r.pid IS NOT NULL GROUP BY r.id",
            [device_key, after],
        ).fetchall()
        live = [int(seq) for seq, pid in rows if int(pid) > 0 and _alive(int(pid))]
        return min(live) if live else None

    def _bodies(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        keys: dict[str, None] = {}
        for r in records:
            try:
                digests = json.loads(r.get("body_digests") or "[]")
            except ValueError:
                continue
            for pair in digests if isinstance(digests, list) else []:
                if isinstance(pair, list) and pair and isinstance(pair[0], str):
                    keys.setdefault(pair[0])
        out = []
        for key in keys:
            row = self.db.execute(
                "SELECT sha256, length, stored, data FROM bodies WHERE sha256 = ?", [key]
            ).fetchone()
            if row is None or not isinstance(row[3], bytes):
                continue
            try:
                text = zlib.decompress(row[3]).decode("utf-8")
            except (zlib.error, UnicodeDecodeError):
                continue  # not what the store writes: nothing the collective could check
            out.append({"sha256": row[0], "length": row[1], "stored": row[2], "text": text})
        return out

    def _heads(self, device_key: str, last: int) -> list[dict[str, Any]]:
        """The device's signed heads up to ``last`` that no batch carried yet (as signed now:
        a day's head re-signed later is another head)."""
        cursor = self.db.execute(
            "SELECT h.device_key, h.kind, h.label, h.seq, h.chain_hash, h.at, h.statement, "
            "h.signature FROM chain_heads AS h WHERE h.device_key = ? AND h.seq <= ? "
            "AND NOT EXISTS (SELECT 1 FROM outbox_heads AS o WHERE o.device_key = h.device_key "
            "AND o.kind = h.kind AND o.label = h.label AND o.seq = h.seq) "
            "ORDER BY h.seq, h.kind, h.label",
            [device_key, last],
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]

    def unsent(self) -> list[dict[str, Any]]:
        """The batches not yet acknowledged (without their bytes), oldest first per device."""
        cursor = self.db.execute(
            "SELECT digest, object_key, device_key, first_seq, last_seq, count, bytes, "
            "attempts, last_error FROM outbox WHERE acked_at IS NULL "
            "ORDER BY device_key, first_seq"
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]

    def data(self, digest: str) -> bytes | None:
        row = self.db.execute("SELECT data FROM outbox WHERE digest = ?", [digest]).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    def attempt(self, digest: str, at: str, sent: int, failure: str | None) -> None:
        """One try at sending a batch: ``sent`` bytes at ``at``; acknowledged when
        ``failure`` is None."""

        def write() -> None:
            self.db.execute("INSERT INTO upload_log (at, bytes) VALUES (?, ?)", [at, sent])
            if failure is None:
                self.db.execute(
                    "UPDATE outbox SET attempts = attempts + 1, acked_at = ?, last_error = NULL, "
                    "data = NULL WHERE digest = ?",
                    [at, digest],
                )
            else:
                self.db.execute(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE digest = ?",
                    [failure, digest],
                )

        self.store._write(write)

    def counts(self) -> dict[str, int]:
        """Batches made, acknowledged and waiting, and the measurements each holds."""
        row = self.db.execute(
            "SELECT count(*), coalesce(sum(count), 0), "
            "coalesce(sum(acked_at IS NOT NULL), 0), "
            "coalesce(sum(CASE WHEN acked_at IS NOT NULL THEN count END), 0) FROM outbox"
        ).fetchone()
        made, made_n, acked, acked_n = (int(v) for v in row)
        return {
            "batches": made,
            "measurements": made_n,
            "acked_batches": acked,
            "acked_measurements": acked_n,
            "waiting_batches": made - acked,
        }

    def summary(self) -> dict[str, Any] | None:
        """For ``probe status``: :meth:`counts`, the last acknowledgement's time and the last
        failure of a waiting batch; None when nothing was ever made."""
        if not self.ready():
            return None
        out: dict[str, Any] = self.counts()
        if not out["batches"]:
            return None
        row = self.db.execute("SELECT max(acked_at) FROM outbox").fetchone()
        out["last_acked_at"] = row[0]
        row = self.db.execute(
            "SELECT last_error FROM outbox WHERE acked_at IS NULL AND last_error IS NOT NULL "
            "ORDER BY first_seq DESC LIMIT 1"
        ).fetchone()
        out["last_error"] = row[0] if row else None
        return out

    def bytes_since(self, at: str) -> int:
        row = self.db.execute(
            "SELECT coalesce(sum(bytes), 0) FROM upload_log WHERE at >= ?", [at]
        ).fetchone()
        return int(row[0])

    def prune_uploaded(self, before: str, *, batch: int = 500) -> Iterator[tuple[str, int]]:
        """Delete acknowledged measurements started before ``before`` (see the contract);
        yields ("measurements"|"bodies", n) per transaction."""
        doomed = (
            "SELECT m.id, m.device_key, m.seq, m.chain_hash FROM measurements AS m "
            "WHERE m.started_at < ? AND m.seq IS NOT NULL "
            "AND EXISTS (SELECT 1 FROM outbox AS o WHERE o.device_key = m.device_key "
            "AND o.acked_at IS NOT NULL AND m.seq BETWEEN o.first_seq AND o.last_seq) "
            "AND m.seq < (SELECT max(t.seq) FROM measurements AS t "
            "WHERE t.device_key = m.device_key) LIMIT ?"
        )
        key = self.store.device_key()  # only chained measurements are ever uploaded
        while True:
            n = self.store._write(
                lambda: self.store.delete_measurements(doomed, [before, batch], key)
            )
            if n <= 0:
                break
            yield "measurements", n
        orphans = [
            r[0]
            for r in self.db.execute(
                "SELECT sha256 FROM bodies WHERE sha256 NOT IN (SELECT body_sha256 FROM "
                "http_requests WHERE body_sha256 IS NOT NULL)"
            )
        ]
        for i in range(0, len(orphans), batch):
            chunk = orphans[i : i + batch]
            sql = f"DELETE FROM bodies WHERE sha256 IN ({', '.join('?' for _ in chunk)})"
            self.store._write(functools.partial(self.db.execute, sql, chunk))
            yield "bodies", len(chunk)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a round's writer; probe.daemon.lock's test, below it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
