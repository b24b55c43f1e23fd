"""The fleet's dataset: validated measurements in a Hive-partitioned Parquet folder.

Contract: :meth:`Dataset.open` opens (or makes) a dataset folder::

    DATASET/measurements/day=YYYY-MM-DD/country=CC/network=NET/part-*.parquet
    DATASET/bodies/part-*.parquet            (sha256, length, stored, data: zlib, as the store)
    DATASET/heads/part-*.parquet             (the devices' signed chain heads)
    DATASET/_fleet.sqlite                    (the manifest: batches, ids, quarantine, journal)

``network`` is the network every view of the store means (``coalesce(probe_asn, resolver,
'?')``, :data:`probe.store.sql.NETWORK_SQL`), ``country`` the ``probe_cc`` (``unknown`` when
none), ``day`` the UTC day of ``started_at``; each value percent-encoded (DuckDB, ClickHouse,
Spark and pyarrow decode it). Partition values are not repeated inside the files (Spark refuses
a column that is both): the files hold every column of :data:`SCHEMA`, an explicit Arrow schema
made from the merge's row type (:class:`probe.analyst.merge.MeasurementRow`) plus the chain
columns and three derived ones (the verdict in words, the throughput ratio and label, which the
SQLite views compute with ``json_extract``); a column the row type gains, loses or renames
changes the schema or stops the import (:func:`_arrow_type`), never a silent blank.

:meth:`Dataset.add` appends one batch's measurement rows: each is validated as ``probe merge``
validates it (:func:`probe.analyst.merge.check_measurement`: the msgspec types, the JSON
records, every number in range) and its record hash recomputed (:mod:`probe.evidence.canonical`);
a bad row goes to the manifest's ``quarantine`` with its reason and the rest is added.
De-duplicated by measurement id and by (device key, seq): the same record again is "seen"; an
id or a (device, seq) already held with another record hash is quarantined (``disputed`` or
``fork``) and the held one stays. Idempotent and resumable: a batch digest is added once (the
manifest's ``batches``); files are written under a temporary name and renamed, and listed in the
manifest's ``journal`` before they are written, so a batch cut short (a kill, a full disk) is
undone at the next open and read again whole. :meth:`Dataset.compact` joins a partition's small
files into one, journalled the same way. Memory holds one batch (or one input file of a
compaction), whatever the dataset's size.
"""

from __future__ import annotations

import hashlib
import operator
import os
import sqlite3
import urllib.parse
import uuid
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from probe import words
from probe.analyst.fleet import MANIFEST
from probe.analyst.merge import M_COLUMNS, Bad, Caps, MeasurementRow, check_measurement, inflate
from probe.errors import InputError
from probe.evidence import canonical
from probe.evidence import heads as signed_heads
from probe.store.rows import verdict_from_row
from probe.timeutil import utc_now
from probe.words import N_


class FleetError(InputError):
    """A dataset or a batch source that cannot be used (one line naming it)."""


PARTITIONS = ("day", "country", "network")
CHAIN_COLUMNS = {
    "device_key": pa.string(),
    "seq": pa.int64(),
    "chain_prev": pa.string(),
    "record_hash": pa.string(),
    "chain_hash": pa.string(),
    "body_digests": pa.string(),
}
DERIVED_COLUMNS = {
    "verdict": pa.string(),  # probe.words, as the store's views say it
    "throughput_ratio": pa.float64(),  # $.analysis.ratio of the throughput record
    "throughput_label": pa.string(),  # $.analysis.label
    "batch": pa.string(),  # the digest of the batch the row came in
}


def _arrow_type(name: str, t: msgspec.inspect.Type) -> pa.DataType:
    """The Arrow type of one field of the merge's row type; a type this table does not know
    stops the import (so a change of the row type is a change of the schema, seen in review)."""
    if isinstance(t, msgspec.inspect.UnionType):
        kinds = [k for k in t.types if not isinstance(k, msgspec.inspect.NoneType)]
        if len(kinds) != 1:
            raise TypeError(f"MeasurementRow.{name}: no Arrow type for {t}")
        t = kinds[0]
    if isinstance(t, msgspec.inspect.StrType):
        return pa.string()
    if isinstance(t, msgspec.inspect.FloatType):
        return pa.float64()
    if isinstance(t, msgspec.inspect.IntType):
        return pa.int64()
    if isinstance(t, msgspec.inspect.LiteralType) and all(isinstance(v, int) for v in t.values):
        return pa.int8()
    raise TypeError(f"MeasurementRow.{name}: no Arrow type for {t}")


_INFO = msgspec.inspect.type_info(MeasurementRow)
assert isinstance(_INFO, msgspec.inspect.StructType)
MEASUREMENT_TYPES = {f.name: _arrow_type(f.name, f.type) for f in _INFO.fields}
SCHEMA = pa.schema(
    [pa.field(n, t) for n, t in MEASUREMENT_TYPES.items()]
    # The chain's columns the merge's row type does not type itself (yet: once it does, its
    # types rule, and each column stays once).
    + [pa.field(n, t) for n, t in CHAIN_COLUMNS.items() if n not in MEASUREMENT_TYPES]
    + [pa.field(n, t) for n, t in DERIVED_COLUMNS.items()]
)
BODY_SCHEMA = pa.schema(
    [("sha256", pa.string()), ("length", pa.int64()), ("stored", pa.int64()), ("data", pa.binary())]
)
HEAD_FIELDS = ("device_key", "kind", "label", "seq", "chain_hash", "at", "statement", "signature")
HEAD_SCHEMA = pa.schema(
    [(n, pa.int64() if n == "seq" else pa.string()) for n in HEAD_FIELDS] + [("batch", pa.string())]
)
MANIFEST_VERSION = 1  # the manifest's PRAGMA user_version: a newer dataset is refused
MERGE_CAPS = Caps()  # the merge's caps, for the bodies a batch carries

_MANIFEST_SQL = """
CREATE TABLE IF NOT EXISTS batches (
    digest TEXT PRIMARY KEY, device_key TEXT, prev TEXT, name TEXT, records INTEGER,
    added INTEGER, seen INTEGER, quarantined INTEGER, at TEXT);
CREATE TABLE IF NOT EXISTS rejected (
    name TEXT NOT NULL, digest TEXT, reason TEXT NOT NULL, at TEXT, UNIQUE (name, reason));
CREATE TABLE IF NOT EXISTS ids (
    id TEXT PRIMARY KEY, device_key TEXT, seq INTEGER, record_hash TEXT, chain_hash TEXT
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS ids_seq ON ids (device_key, seq) WHERE seq IS NOT NULL;
CREATE TABLE IF NOT EXISTS bodies (sha256 TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS heads (
    device_key TEXT, kind TEXT, label TEXT, PRIMARY KEY (device_key, kind, label)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS quarantine (
    batch TEXT NOT NULL, device_key TEXT, row_id TEXT NOT NULL, kind TEXT NOT NULL,
    reason TEXT NOT NULL, UNIQUE (batch, row_id, kind));
CREATE TABLE IF NOT EXISTS journal (file TEXT PRIMARY KEY, op TEXT NOT NULL, grp TEXT NOT NULL);
"""


def encode_value(value: str) -> str:
    """A partition value as a path segment (percent-encoded; never empty, ``.`` or ``..``)."""
    return urllib.parse.quote(value, safe="") if value not in ("", ".", "..") else "%2E" * 2


def partition_of(row: Mapping[str, Any]) -> tuple[str, str, str]:
    network = row.get("probe_asn") or row.get("resolver") or "?"
    return str(row["started_at"])[:10], str(row.get("probe_cc") or "unknown"), str(network)


@dataclass
class Added:
    """What :meth:`Dataset.add` did with one batch."""

    added: int = 0
    seen: int = 0
    quarantined: int = 0
    files: int = 0
    reasons: list[str] = field(default_factory=list)


@dataclass
class _Pending:
    rows: dict[tuple[str, str, str], list[dict[str, Any]]] = field(default_factory=dict)
    ids: list[tuple[str, str | None, int | None, str, str | None]] = field(default_factory=list)
    quarantine: list[tuple[str, str | None, str, str, str]] = field(default_factory=list)


class Dataset:
    """One dataset folder and its manifest (see the module's contract)."""

    def __init__(self, root: Path, con: sqlite3.Connection) -> None:
        self.root, self.con = root, con

    @classmethod
    def open(cls, path: str | Path) -> Dataset:
        root = Path(path)
        if root.exists() and not root.is_dir():
            raise FleetError(N_("{path}: not a folder (a dataset is one)"), path=path)
        if root.is_dir() and any(root.iterdir()) and not (root / MANIFEST).is_file():
            raise FleetError(
                N_("{path}: not a fleet dataset (no {manifest}) and not empty"),
                path=path,
                manifest=MANIFEST,
            )
        try:
            root.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(root / MANIFEST, isolation_level=None)
            version = int(con.execute("PRAGMA user_version").fetchone()[0])
            if version > MANIFEST_VERSION:
                con.close()
                raise FleetError(
                    N_("{path}: made by a newer probe (dataset version {version})"),
                    path=path,
                    version=version,
                )
            con.executescript(_MANIFEST_SQL)
            con.execute(f"PRAGMA user_version = {MANIFEST_VERSION}")
        except (OSError, sqlite3.Error) as exc:
            raise FleetError(
                N_("{path}: cannot open ({problem})"), path=path, problem=exc
            ) from None
        con.execute("PRAGMA journal_mode = WAL")
        ds = cls(root, con)
        ds.recover()
        return ds

    def close(self) -> None:
        self.con.close()

    # -- the journal ---------------------------------------------------------------------------
    def recover(self) -> None:
        """Undo what a cut-short batch or compaction left: a batch's new files are removed (the
        batch is read again whole); a compaction whose joined file is in place drops its inputs,
        else its joined file is removed."""
        groups: dict[str, list[tuple[str, str]]] = {}
        for file, op, grp in self.con.execute("SELECT file, op, grp FROM journal"):
            groups.setdefault(grp, []).append((file, op))
        for grp, entries in groups.items():
            new = [f for f, op in entries if op == "new"]
            drop = [f for f, op in entries if op == "drop"]
            done = grp.startswith("compact:") and all((self.root / f).is_file() for f in new)
            for f in drop if done else new:
                (self.root / f).unlink(missing_ok=True)
            for f in new:
                (self.root / f).with_suffix(".tmp").unlink(missing_ok=True)
            self.con.execute("DELETE FROM journal WHERE grp = ?", [grp])

    def _write(self, rel: str, table: pa.Table) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        pq.write_table(table, tmp, compression="zstd", write_statistics=_statistics(table.schema))
        os.replace(tmp, path)

    # -- batches ---------------------------------------------------------------------------------
    def has_batch(self, digest: str) -> bool:
        return (
            self.con.execute("SELECT 1 FROM batches WHERE digest = ?", [digest]).fetchone()
            is not None
        )

    def reject(self, name: str, digest: str | None, reason: str) -> None:
        self.con.execute(
            "INSERT OR IGNORE INTO rejected (name, digest, reason, at) VALUES (?, ?, ?, ?)",
            [name[:500], digest, reason[:300], utc_now()],
        )

    def add(
        self,
        digest: str,
        measurements: Iterable[Mapping[str, Any]],
        *,
        device_key: str | None = None,
        prev: str | None = None,
        name: str = "",
        bodies: Iterable[Mapping[str, Any]] = (),
        heads: Iterable[Mapping[str, Any]] = (),
    ) -> Added:
        """Append one batch (see the contract); a batch already added adds nothing."""
        result = Added()
        if self.has_batch(digest):
            result.reasons.append("already ingested")
            return result
        pending = _Pending()
        records = 0
        fresh: dict[str, tuple[str | None, int | None, str]] = {}  # this batch's ids
        seqs: dict[tuple[str, int], tuple[str, str | None]] = {}  # -> (id, chain hash)
        named: set[str] = set()  # the body content hashes the added rows bind
        ordered = sorted(measurements, key=_seq_of)
        held_ids, held_seqs = self._prefetch(ordered)
        for values in ordered:
            records += 1
            rid = _printable(values.get("id"))
            try:
                row = self._check(values, device_key)
            except Bad as bad:
                pending.quarantine.append((digest, device_key, rid, bad.kind, bad.reason))
                continue
            key, seq, rh = row["device_key"], row["seq"], row["record_hash"]
            held = fresh.get(row["id"]) or held_ids.get(row["id"])
            if held is not None:
                if held[2] == rh:
                    result.seen += 1
                else:
                    why = "measurement id already held with another record"
                    pending.quarantine.append((digest, key, rid, "disputed", why))
                continue
            if key is not None and seq is not None:
                other = seqs.get((key, seq)) or held_seqs.get((key, seq))
                if other is not None:
                    why = f"fork: seq {seq} of this device already held by measurement {other[0]}"
                    pending.quarantine.append((digest, key, rid, "fork", why[:300]))
                    continue
                before = (
                    (None, canonical.GENESIS)
                    if seq == 1
                    else seqs.get((key, seq - 1)) or held_seqs.get((key, seq - 1))
                )
                if before is not None and not _links(before[1], rh, row["chain_hash"]):
                    why = f"chain_hash: does not follow seq {seq - 1} of this device"
                    pending.quarantine.append((digest, key, rid, "chain", why))
                    continue
                seqs[(key, seq)] = (row["id"], row["chain_hash"])
            named |= _content_hashes(row["body_digests"])
            fresh[row["id"]] = (key, seq, rh)
            row["batch"] = digest
            pending.rows.setdefault(partition_of(row), []).append(row)
            pending.ids.append((row["id"], key, seq, rh, row["chain_hash"]))
            result.added += 1
        for (key, seq), (_, chain_hash) in seqs.items():  # a batch that fills a gap
            if (key, seq + 1) not in seqs:
                after = self.con.execute(
                    "SELECT id, record_hash, chain_hash FROM ids WHERE device_key = ? AND seq = ?",
                    [key, seq + 1],
                ).fetchone()
                if after is not None and not _links(chain_hash, after[1], after[2]):
                    why = f"chain_hash: does not follow seq {seq}, which arrived after it"
                    pending.quarantine.append((digest, key, str(after[0]), "chain", why))
        result.quarantined = len(pending.quarantine)
        body_rows, body_problems = self._bodies(bodies, named)
        for key, why in body_problems:
            pending.quarantine.append((digest, device_key, key, "body", why))
        head_rows, bad_heads = [], 0
        for h in heads:
            sound = self._sound_head(h, device_key)
            if sound is not None and not self._held_head(sound):
                head_rows.append(sound | {"batch": digest})
            elif sound is None:
                bad_heads += 1
        if bad_heads:
            why = f"{bad_heads} signed heads refused: their signature or columns do not hold"
            pending.quarantine.append((digest, device_key, "", "head", why))
        batch_row = [digest, device_key, prev, name, records, result.added, result.seen,
                     result.quarantined, utc_now()]  # fmt: skip
        self._commit(digest, pending, body_rows, head_rows, batch_row, result)
        return result

    def _check(self, values: Mapping[str, Any], device_key: str | None) -> dict[str, Any]:
        given: Mapping[str, Any] = (
            values  # a probe's record: every column, no other (no copy needed)
            if type(values) is dict and values.keys() == _M_KEYS
            else {k: values.get(k) for k in M_COLUMNS}
        )
        try:
            checked = check_measurement(given, False)  # type: ignore[arg-type]
        except Exception:  # the scan's reason comes first (a lone surrogate stops a decoder)
            _scan(values)
            raise
        if not _fits(checked.row, given):
            _scan(values)
        row: dict[str, Any] = msgspec.structs.asdict(checked.row)
        for c, t in CHAIN_COLUMNS.items():
            v = values.get(c)
            wrong = isinstance(v, bool) or not isinstance(v, int if t == pa.int64() else str)
            if v is not None and wrong:
                raise Bad(f"{c}: {type(v).__name__}, not {t}")
            row[c] = v
        if row["seq"] is not None and row["seq"] < 1:
            raise Bad("seq: not a place in a chain (they start at 1)")
        if device_key is not None and row["device_key"] != device_key:
            raise Bad("device_key: not the key that signed the batch")
        if row["record_hash"] is not None:
            try:
                ours = canonical.record_hash(values)
            except (ValueError, TypeError) as exc:  # rfc8785's errors are ValueErrors
                raise Bad(f"record_hash: the record has no canonical form ({exc})") from None
            if ours != row["record_hash"]:
                raise Bad("record_hash: not the hash of the record (altered on the way)")
        tp = checked.throughput
        analysis = tp.analysis if tp is not None else None
        row["throughput_label"] = analysis.label if analysis is not None else None
        row["throughput_ratio"] = analysis.ratio if analysis is not None else None
        row["verdict"] = _verdict_words(row)
        return row

    def _prefetch(
        self, rows: list[Mapping[str, Any]]
    ) -> tuple[
        dict[str, tuple[str | None, int | None, str]], dict[tuple[str, int], tuple[str, str | None]]
    ]:
        """What the manifest already holds of a batch's ids, and of its devices' seq numbers
        from one before its first to one after its last (a few queries, not a few a row)."""
        ids = [i for v in rows if isinstance(i := v.get("id"), str) and _utf8(i)]
        held_ids: dict[str, tuple[str | None, int | None, str]] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            for rid, key, seq, rh in self.con.execute(
                "SELECT id, device_key, seq, record_hash FROM ids "
                f"WHERE id IN ({', '.join('?' for _ in chunk)})",
                chunk,
            ):
                held_ids[rid] = (key, seq, rh)
        spans: dict[str, tuple[int, int]] = {}
        for v in rows:
            key, seq = v.get("device_key"), v.get("seq")
            if isinstance(key, str) and _utf8(key) and isinstance(seq, int) and 0 < seq < 2**63 - 1:
                lo, hi = spans.get(key, (seq, seq))
                spans[key] = (min(lo, seq), max(hi, seq))
        held_seqs: dict[tuple[str, int], tuple[str, str | None]] = {}
        for key, (lo, hi) in spans.items():
            for rid, seq, chain_hash in self.con.execute(
                "SELECT id, seq, chain_hash FROM ids WHERE device_key = ? AND seq BETWEEN ? AND ?",
                [key, lo - 1, hi + 1],
            ):
                held_seqs[(key, seq)] = (rid, chain_hash)
        return held_ids, held_seqs

    def _bodies(
        self, bodies: Iterable[Mapping[str, Any]], named: set[str]
    ) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        """A batch's bodies (``text`` the stored content, as :mod:`probe.fleet.batch` carries
        them) checked as the merge checks a source's, each bound by a record added: its
        content's SHA-256 is in that record's ``body_digests``."""
        rows, problems, seen = [], [], set()
        for b in bodies:
            key = _printable(b.get("sha256"))
            text = b.get("text")
            if not isinstance(text, str):
                problems.append((key, "text: not the body's text"))
                continue
            raw = text.encode("utf-8", "surrogatepass")
            if canonical.content_hash(raw) not in named:
                problems.append((key, "its content is bound by no measurement of the batch"))
                continue
            if (
                key in seen
                or self.con.execute("SELECT 1 FROM bodies WHERE sha256 = ?", [key]).fetchone()
            ):
                continue
            row = {"sha256": key, "length": b.get("length"), "stored": b.get("stored")}
            row["data"] = zlib.compress(raw, 6)
            body = inflate(key, row, MERGE_CAPS)
            if body.problem is not None:
                problems.append((key, body.problem))
                continue
            seen.add(key)
            rows.append(row)
        return rows, problems

    def _sound_head(self, h: Mapping[str, Any], device_key: str | None) -> dict[str, Any] | None:
        """A batch's signed head as its statement says it (signed by the key it names, the
        batch's; its columns what it states), or None when it is not sound."""
        statement, signature, label = h.get("statement"), h.get("signature"), h.get("label")
        if not all(isinstance(v, str) and _utf8(v) for v in (statement, signature, label)):
            return None
        assert isinstance(statement, str) and isinstance(signature, str)
        head = signed_heads.check(statement.encode("utf-8"), signature)
        if head is None or head.device_key != device_key:
            return None
        stated = (head.device_key, head.seq, head.chain_hash, head.at, head.kind)
        given = tuple(h.get(k) for k in ("device_key", "seq", "chain_hash", "at", "kind"))
        if given != stated or isinstance(h.get("seq"), bool) or not -(2**63) <= head.seq < 2**63:
            return None
        return dict(zip(("device_key", "seq", "chain_hash", "at", "kind"), stated, strict=True)) | {
            "label": label, "statement": statement, "signature": signature
        }  # fmt: skip

    def _held_head(self, h: Mapping[str, Any]) -> bool:
        return (
            self.con.execute(
                "SELECT 1 FROM heads WHERE device_key = ? AND kind = ? AND label = ?",
                [h.get("device_key"), h.get("kind"), h.get("label")],
            ).fetchone()
            is not None
        )

    def _commit(
        self,
        digest: str,
        pending: _Pending,
        body_rows: list[dict[str, Any]],
        head_rows: list[dict[str, Any]],
        batch_row: list[Any],
        result: Added,
    ) -> None:
        tag = hashlib.sha256(digest.encode()).hexdigest()[:40]
        files: list[tuple[str, pa.Table]] = []
        for part, rows in sorted(pending.rows.items()):
            folder = "/".join(
                f"{k}={encode_value(v)}" for k, v in zip(PARTITIONS, part, strict=True)
            )
            files.append((f"measurements/{folder}/part-{tag}.parquet", _table(rows, SCHEMA)))
        if body_rows:
            files.append((f"bodies/part-{tag}.parquet", _table(body_rows, BODY_SCHEMA)))
        if head_rows:
            files.append((f"heads/part-{tag}.parquet", _table(head_rows, HEAD_SCHEMA)))
        grp = f"batch:{digest}"
        self.con.executemany(
            "INSERT OR REPLACE INTO journal VALUES (?, 'new', ?)", [(f, grp) for f, _ in files]
        )
        for rel, table in files:
            self._write(rel, table)
        self.con.execute("BEGIN")
        try:
            self.con.executemany("INSERT INTO ids VALUES (?, ?, ?, ?, ?)", pending.ids)
            self.con.executemany(
                "INSERT OR IGNORE INTO quarantine VALUES (?, ?, ?, ?, ?)", pending.quarantine
            )
            self.con.executemany(
                "INSERT OR IGNORE INTO bodies VALUES (?)", [(b["sha256"],) for b in body_rows]
            )
            self.con.executemany(
                "INSERT OR IGNORE INTO heads VALUES (?, ?, ?)",
                [(h["device_key"], h["kind"], h["label"]) for h in head_rows],
            )
            self.con.execute("INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", batch_row)
            self.con.execute("DELETE FROM journal WHERE grp = ?", [grp])
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        result.files = len(files)

    # -- compaction ------------------------------------------------------------------------------
    def partitions(self) -> Iterator[Path]:
        base = self.root / "measurements"
        yield from sorted(p for p in base.glob("day=*/country=*/network=*") if p.is_dir())

    def compact(self, *, min_files: int = 8, small_bytes: int = 32 * 1024 * 1024) -> int:
        """Join each partition's small files (under ``small_bytes``) into one when it has at
        least ``min_files`` of them; returns how many files were joined."""
        joined = 0
        for folder in [*self.partitions(), self.root / "bodies", self.root / "heads"]:
            small = sorted(p for p in folder.glob("*.parquet") if p.stat().st_size < small_bytes)
            if len(small) < min_files:
                continue
            name = hashlib.sha256("\n".join(p.name for p in small).encode()).hexdigest()[:32]
            out = folder / f"c-{name}-{uuid.uuid4().hex[:8]}.parquet"
            rel = str(out.relative_to(self.root))
            grp = f"compact:{rel}"
            self.con.executemany(
                "INSERT OR REPLACE INTO journal VALUES (?, ?, ?)",
                [(rel, "new", grp)] + [(str(p.relative_to(self.root)), "drop", grp) for p in small],
            )
            schema = pq.read_schema(small[0])
            tmp = out.with_suffix(".tmp")
            with pq.ParquetWriter(
                tmp, schema, compression="zstd", write_statistics=_statistics(schema)
            ) as writer:
                for p in small:  # one file in memory at a time
                    writer.write_table(pq.read_table(p, schema=schema))
            os.replace(tmp, out)
            for p in small:
                p.unlink()
            self.con.execute("DELETE FROM journal WHERE grp = ?", [grp])
            joined += len(small)
        return joined

    # -- what the manifest says ------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        q = self.con.execute
        return {
            "measurements": int(q("SELECT count(*) FROM ids").fetchone()[0]),
            "batches": int(q("SELECT count(*) FROM batches").fetchone()[0]),
            "rejected": int(q("SELECT count(*) FROM rejected").fetchone()[0]),
            "quarantined": int(q("SELECT count(*) FROM quarantine").fetchone()[0]),
            "devices": int(
                q(
                    "SELECT count(DISTINCT device_key) FROM ids WHERE device_key IS NOT NULL"
                ).fetchone()[0]
            ),
        }

    def gaps(self) -> list[tuple[str, int, int]]:
        """(device key, first missing seq, last missing seq) for each hole in a device's chain
        as the dataset holds it (a batch not arrived yet, or lost)."""
        rows = self.con.execute(
            """SELECT device_key, seq, lag(seq, 1, 0) OVER (PARTITION BY device_key ORDER BY seq)
               FROM ids WHERE device_key IS NOT NULL AND seq IS NOT NULL"""
        )
        return [(k, p + 1, s - 1) for k, s, p in rows if s > p + 1]

    def forks(self) -> list[tuple[str, str, str]]:
        """(device key, measurement id, reason) of each record refused as a fork of a chain."""
        return [
            (str(k), str(r), str(w))
            for k, r, w in self.con.execute(
                "SELECT device_key, row_id, reason FROM quarantine WHERE kind = 'fork' "
                "ORDER BY device_key, row_id"
            )
        ]

    def broken_links(self) -> list[tuple[str, str, str]]:
        """(device key, measurement id, reason) of each record whose chain link does not hold."""
        return [
            (str(k), str(r), str(w))
            for k, r, w in self.con.execute(
                "SELECT device_key, row_id, reason FROM quarantine WHERE kind = 'chain' "
                "ORDER BY device_key, row_id"
            )
        ]

    def batch_forks(self) -> list[tuple[str, str, int]]:
        """(device key, prev, how many) where more than one batch names the same previous one."""
        return [
            (str(k), str(p), int(n))
            for k, p, n in self.con.execute(
                "SELECT device_key, prev, count(*) FROM batches WHERE prev IS NOT NULL "
                "GROUP BY device_key, prev HAVING count(*) > 1"
            )
        ]

    def batch_gaps(self) -> list[tuple[str, str]]:
        """(device key, missing batch digest): batches named as ``prev`` but never ingested."""
        return [
            (str(k), str(p))
            for k, p in self.con.execute(
                "SELECT device_key, prev FROM batches b WHERE prev IS NOT NULL AND NOT EXISTS "
                "(SELECT 1 FROM batches o WHERE o.digest = b.prev)"
            )
        ]

    def glob(self, table: str = "measurements") -> str:
        """The files of one table, as a glob DuckDB and ClickHouse read."""
        tail = "**/*.parquet" if table == "measurements" else "*.parquet"
        return str(self.root / table / tail)


# Columns whose min and max the files do not keep: kilobytes of JSON text (or a body) in every
# page and row group make a file a tenth larger and let no reader skip anything.
NO_STATISTICS = frozenset(
    {"observations", "control", "extra", "throughput", "body_digests", "data", "statement"}
)


def _statistics(schema: pa.Schema) -> list[str]:
    return [n for n in schema.names if n not in NO_STATISTICS]


def _scan(values: Mapping[str, Any]) -> None:
    """:class:`Bad` for the first column (in :data:`_SCANNED` order) whose text is not UTF-8
    or whose integer is past 64 bits: what every row is checked for before its types."""
    for c in _SCANNED:
        v = values.get(c)
        if isinstance(v, str) and not _utf8(v):
            raise Bad(f"{c}: not UTF-8 text (a lone surrogate)")
        if isinstance(v, int) and not -(2**63) <= v < 2**63:
            raise Bad(f"{c}: a number out of range (64 bits)")


_SCANNED = (*M_COLUMNS, *CHAIN_COLUMNS)
_M_KEYS = frozenset(M_COLUMNS)


def _unbounded(t: msgspec.inspect.Type) -> bool:
    """Whether a field of this type may hold an integer past 64 bits (an int without both
    bounds within them, or a float, which takes an integer)."""
    if isinstance(t, msgspec.inspect.UnionType):
        return any(_unbounded(k) for k in t.types)
    if isinstance(t, msgspec.inspect.FloatType):
        return True
    if isinstance(t, msgspec.inspect.IntType):
        lo = t.ge if t.ge is not None else (t.gt + 1 if t.gt is not None else None)
        hi = t.le if t.le is not None else (t.lt - 1 if t.lt is not None else None)
        return lo is None or hi is None or lo < -(2**63) or hi >= 2**63
    return False


# The row type's fields that may hold an integer past 64 bits once converted (the others are
# strings, bounded integers and literals).
_UNBOUNDED = tuple(f.name for f in _INFO.fields if _unbounded(f.type))


def _fits(row: MeasurementRow, given: Mapping[str, Any]) -> bool:
    """Whether a converted row would pass :func:`_scan`: every string UTF-8 (msgspec writes
    the row, in C, and refuses a lone surrogate) and every integer within 64 bits (only the
    :data:`_UNBOUNDED` fields may hold one past them)."""
    for c in _UNBOUNDED:
        v = given[c]
        if isinstance(v, int) and not -(2**63) <= v < 2**63:
            return False
    try:
        msgspec.json.encode(row)
    except UnicodeEncodeError:
        return False
    return True


_WORDS: dict[tuple[Any, ...], str] = {}  # the verdict in words of the verdict columns' values


def _verdict_words(row: Mapping[str, Any]) -> str:
    """``words.of`` the row's verdict: the same few verdicts over and over, so remembered (at
    most 4096 of them, short ones)."""
    key = tuple(row[c] for c in _WORDS_KEY)
    said = _WORDS.get(key)
    if said is None:
        said = words.of(verdict_from_row(row), throttle_label=row["throughput_label"])
        if len(_WORDS) >= 4096:
            _WORDS.clear()
        if len(str(row["blockpage"])) <= 200:
            _WORDS[key] = said
    return said


# What words.of reads of a row (through verdict_from_row): its key in _WORDS.
_WORDS_KEY = ("blocking", "accessible", "evidence", "offline", "throttled", "blockpage",
              "throughput_label")  # fmt: skip


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(value: Any) -> str:
    """A value named in the quarantine (a hostile id): text SQLite stores, at most 200."""
    return str(value)[:200].encode("utf-8", "backslashreplace").decode("utf-8")


def _seq_of(values: Mapping[str, Any]) -> int:
    seq = values.get("seq")
    return seq if isinstance(seq, int) else 0


def _links(prev_chain_hash: str | None, record_hash: str, chain_hash: str | None) -> bool:
    try:
        return (
            prev_chain_hash is not None
            and canonical.link(prev_chain_hash, record_hash) == chain_hash
        )
    except ValueError:  # not hex
        return False


def _content_hashes(body_digests: str | None) -> set[str]:
    if not body_digests:
        return set()
    try:
        pairs = msgspec.json.decode(body_digests)
        return {str(p[1]) for p in pairs if isinstance(p, list) and len(p) == 2}
    except (msgspec.DecodeError, TypeError):
        return set()


def _table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """The rows as a table of ``schema``, column by column (a column a row lacks is null)."""
    names = [f.name for f in schema]
    try:
        columns: list[Any] = list(zip(*map(operator.itemgetter(*names), rows), strict=True))
    except KeyError:
        columns = [[r.get(n) for r in rows] for n in names]
    if not columns:
        columns = [[] for _ in names]
    return pa.table(
        [pa.array(c, type=f.type) for c, f in zip(columns, schema, strict=True)], schema=schema
    )
