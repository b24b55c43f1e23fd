"""Writing: measurements whole, their later throughput tests and verdicts, rounds, the daemon's
heartbeat, throughput objects and changes of network.

Contract: each method is one transaction through the one write path (``Connection._write``):
stored whole or not at all, waiting while another connection holds the write lock; a database
that cannot be written raises :class:`~probe.errors.StoreError` and stores nothing. A measurement
is saved with its link in its device's chain, in the same transaction (``probe.store.chain``);
a round's end signs the chain's head for the round and its UTC day. The device key lives beside
the database (``probe.evidence.keys.key_path``), made on first use when there is none; an
in-memory database has a key of its own for its life.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from probe.config.files import key_path
from probe.evidence.keys import DeviceKey, ensure_key
from probe.model import (
    Measurement,
    Network,
    ObjectChoice,
    ThroughputRecord,
    Verdict,
    throughput_to_json,
)
from probe.store import chain
from probe.store.db import Connection
from probe.store.rows import (
    RoundRecord,
    bool_to_db,
    json_to_db,
    measurement_row,
    round_row,
    stored_bodies,
    verdict_columns,
)


class Writes(Connection):
    _device_key: DeviceKey | None = None
    _chained: bool | None = None

    def has_chain(self) -> bool:
        """Has this database the chain's columns (m010)? A store handed a database of an
        older schema without migrating it (as tests make one) writes as that schema did."""
        if self._chained is None:
            self._chained = "seq" in self.db.table("measurements").columns_dict
        return self._chained

    def device_key(self) -> DeviceKey:
        """This database's device key, loaded (or made, on first use) once."""
        if self._device_key is None:
            if self.path == ":memory:":
                self._device_key = DeviceKey.generate()
            else:
                self._device_key = ensure_key(key_path(self.path))
        return self._device_key

    def save_round(self, r: RoundRecord) -> None:
        """A round's row; once it has finished, the chain's head signed for it and its day."""
        key = self.device_key() if self.has_chain() else None
        row = round_row(r) if key is None else {**round_row(r), "device_key": key.public}

        def write() -> None:
            self.db.table("rounds").upsert(row, pk="id")
            if r.finished_at is not None and key is not None:
                chain.sign_heads(self.db.conn, key, r.finished_at, r.id)

        self._write(write)

    def save(self, m: Measurement) -> None:
        """Store one measurement whole with its link in the chain (one transaction), or raise
        and store nothing."""
        row, bodies = measurement_row(m), stored_bodies(m)
        key = self.device_key() if self.has_chain() else None

        def write() -> None:
            digests = chain.store_bodies(self.db.conn, bodies)
            if key is None:
                self.db.table("measurements").insert(row)
                return
            self.db.table("measurements").insert(
                {**row, "device_key": key.public, "body_digests": digests}
            )
            chain.link(self.db.conn, m.id, key.public)

        self._write(write)

    def update_throughput(self, measurement_id: str, test: ThroughputRecord) -> None:
        values = {"throughput": json_to_db(throughput_to_json(test))}
        self._write(lambda: self.db.table("measurements").update(measurement_id, values))

    def update_verdict(self, measurement_id: str, v: Verdict) -> None:
        values = verdict_columns(v)
        self._write(lambda: self.db.table("measurements").update(measurement_id, values))

    def save_daemon(self, row: dict[str, Any]) -> None:
        self._write(lambda: self.db.table("daemon").upsert({"id": "daemon", **row}, pk="id"))

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
        verdict, the QUIC verdict its HTTP/3 flows refined (probe.classify.quic.refine) and the
        bytes it used, in one transaction."""
        quic = {"quic": m.verdict.quic, "quic_rule": m.verdict.quic_rule}
        self._write(
            lambda: self.db.table("measurements").update(
                m.id,
                {
                    "throughput": json_to_db(throughput_to_json(m.throughput)),
                    "throttled": bool_to_db(m.verdict.throttled),
                    "bytes_used": m.bytes_used,
                    **(quic if m.verdict.quic_rule is not None else {}),
                },
            )
        )

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
