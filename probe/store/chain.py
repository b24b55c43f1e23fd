"""The chain in the database: each measurement linked as it is saved, heads signed, and the
reads ``probe verify`` checks them by.

Contract: the write side runs inside the caller's write transaction (``Connection._write``),
so a measurement is stored with its link or not at all, and two writers of one database (a
daemon and a manual ``probe run``) never take one place in the chain: the transaction holds the
write lock from its start. :func:`store_bodies` stores a measurement's bodies (one row per
key, ``INSERT OR IGNORE``) and gives the ``body_digests`` that bind the content each key holds
in the database; :func:`link` reads the measurement back as SQLite stores it, hashes its record
(``probe.evidence.canonical``) and writes ``seq``, ``chain_prev``, ``record_hash`` and
``chain_hash`` after its device's tip; :func:`sign_heads` signs the tip as a round's head and
as its UTC day's head (re-signed at each round's end during the day).

The read side opens nothing and writes nothing: given a connection (``probe verify`` opens the
file read-only), it streams chained measurements by device and sequence, a batch at a time, so
memory stays flat whatever the database's size; it reads the known columns by name.
"""

from __future__ import annotations

import json
import sqlite3
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

from probe.evidence import canonical, heads, pruned
from probe.evidence.keys import DeviceKey

BodyRow = tuple[str, int | None, int, bytes]

# What verification reads of a chained measurement, beside its record's fields.
CHAIN_COLUMNS = ("seq", "chain_prev", "record_hash", "chain_hash")


def _dict(cursor: sqlite3.Cursor, row: Sequence[Any]) -> dict[str, Any]:
    return {d[0]: v for d, v in zip(cursor.description, row, strict=True)}


def store_bodies(conn: sqlite3.Connection, bodies: list[tuple[BodyRow, str]]) -> str | None:
    """Store each ``(body row, content hash)``; the ``body_digests`` JSON text of what each key
    holds in the database now (a key stored before keeps its first content), or None."""
    digests: dict[str, str] = {}
    for body, content in bodies:
        cursor = conn.execute(
            "INSERT OR IGNORE INTO bodies (sha256, length, stored, data) VALUES (?, ?, ?, ?)",
            body,
        )
        key = body[0]
        if cursor.rowcount == 0:
            held = conn.execute("SELECT data FROM bodies WHERE sha256 = ?", [key]).fetchone()
            content = body_content_hash(held[0]) or content
        digests.setdefault(key, content)
    return json.dumps([[k, v] for k, v in digests.items()]) if digests else None


def body_content_hash(data: bytes | None) -> str | None:
    """The content hash of a ``bodies.data`` value (compressed UTF-8 text), None when it is
    not one."""
    if not isinstance(data, bytes):
        return None
    try:
        return canonical.content_hash(zlib.decompress(data))
    except zlib.error:
        return None


def tip(conn: sqlite3.Connection, device_key: str) -> tuple[int, str, str] | None:
    """(seq, chain_hash, id) of the device's last chained measurement, or None."""
    row = conn.execute(
        "SELECT seq, chain_hash, id FROM measurements WHERE device_key = ? AND seq IS NOT NULL "
        "ORDER BY seq DESC LIMIT 1",
        [device_key],
    ).fetchone()
    return None if row is None else (int(row[0]), str(row[1]), str(row[2]))


def link(conn: sqlite3.Connection, measurement_id: str, device_key: str) -> int:
    """Hash the stored measurement and link it after its device's tip; its ``seq``."""
    cursor = conn.execute("SELECT * FROM measurements WHERE id = ?", [measurement_id])
    row = _dict(cursor, cursor.fetchone())
    record_hash = canonical.record_hash(row)
    last = tip(conn, device_key)
    seq, prev, prev_id = (1, canonical.GENESIS, None) if last is None else (last[0] + 1, *last[1:])
    conn.execute(
        "UPDATE measurements SET seq = ?, chain_prev = ?, record_hash = ?, chain_hash = ? "
        "WHERE id = ?",
        [seq, prev_id, record_hash, canonical.link(prev, record_hash), measurement_id],
    )
    return seq


def sign_heads(conn: sqlite3.Connection, key: DeviceKey, at: str, round_id: str) -> None:
    """Sign the device's tip as round ``round_id``'s head and as the head of ``at``'s UTC day
    (nothing when the device has no chained measurement yet)."""
    last = tip(conn, key.public)
    if last is None:
        return
    seq, chain_hash, _ = last
    for kind, label in ((heads.ROUND, round_id), (heads.DAY, at[:10])):
        statement, signature = heads.sign(key, seq, chain_hash, at, kind)
        conn.execute(
            "INSERT OR REPLACE INTO chain_heads (device_key, kind, label, seq, chain_hash, at, "
            "statement, signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [key.public, kind, label, seq, chain_hash, at, statement.decode(), signature],
        )


def record_prune(
    conn: sqlite3.Connection, key: DeviceKey, deleted: list[tuple[str, int, str]], at: str
) -> None:
    """Record, in the prune's transaction, the places of the chained measurements it deleted
    (``(device_key, seq, chain_hash)`` each): one signed range per run of consecutive seqs,
    joined with a recorded range it touches (and signed again), so a chain pruned batch by
    batch, or around kept anomalies and then without them, ends with one record a range."""
    by_device: dict[str, dict[int, str]] = {}
    for device, seq, chain_hash in deleted:
        by_device.setdefault(device, {})[seq] = chain_hash
    for device, places in by_device.items():
        for first, last in _runs(sorted(places)):
            last_hash = places[last]
            before = conn.execute(
                "SELECT first_seq FROM chain_pruned WHERE device_key = ? AND last_seq = ? "
                "AND by_key = ?",
                [device, first - 1, key.public],
            ).fetchone()
            after = conn.execute(
                "SELECT last_seq, last_chain_hash FROM chain_pruned WHERE device_key = ? "
                "AND first_seq = ? AND by_key = ?",
                [device, last + 1, key.public],
            ).fetchone()
            if before is not None:
                first = int(before[0])
            if after is not None:
                last, last_hash = int(after[0]), str(after[1])
            conn.execute(
                "DELETE FROM chain_pruned WHERE device_key = ? AND first_seq BETWEEN ? AND ? "
                "AND by_key = ?",
                [device, first, last, key.public],
            )
            statement, signature = pruned.sign(key, device, first, last, last_hash, at)
            conn.execute(
                "INSERT OR REPLACE INTO chain_pruned (device_key, first_seq, last_seq, "
                "last_chain_hash, at, by_key, statement, signature) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [device, first, last, last_hash, at, key.public, statement.decode(), signature],
            )


def _runs(seqs: list[int]) -> Iterator[tuple[int, int]]:
    """The runs of consecutive numbers of a sorted list, as (first, last)."""
    start = prev = seqs[0]
    for n in seqs[1:]:
        if n != prev + 1:
            yield start, prev
            start = n
        prev = n
    yield start, prev


# -- reads for verification ---------------------------------------------------------------------
def prunes(conn: sqlite3.Connection) -> Iterator[tuple[dict[str, Any], pruned.Pruned | None]]:
    """Every prune record (its columns) and what its statement says when it is signed by the
    key it names (None when not), by device and first seq."""
    if "chain_pruned" not in tables(conn):
        return
    cursor = conn.execute(
        "SELECT device_key, first_seq, last_seq, last_chain_hash, by_key, statement, signature "
        "FROM chain_pruned ORDER BY device_key, first_seq"
    )
    for r in cursor:
        row = _dict(cursor, r)
        statement, signature = row["statement"], row["signature"]
        record = (
            pruned.check(statement.encode(), signature)
            if isinstance(statement, str) and isinstance(signature, str)
            else None
        )
        yield row, record


def columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in conn.execute("SELECT * FROM pragma_table_info(?)", [table])}


def chained(conn: sqlite3.Connection, batch: int = 2000) -> Iterator[dict[str, Any]]:
    """Every chained measurement (its record's fields and chain columns, and ``rowid``), by
    device key and sequence, streamed."""
    have = columns(conn, "measurements")
    wanted = [c for c in (*canonical.RECORD_FIELDS, *CHAIN_COLUMNS) if c in have]
    select = ", ".join(f'"{c}"' for c in wanted)
    cursor = conn.execute(
        f"SELECT {select} FROM measurements WHERE seq IS NOT NULL ORDER BY device_key, seq, rowid"
    )
    while rows := cursor.fetchmany(batch):
        for r in rows:
            yield dict(zip(wanted, r, strict=True))


def unchained(conn: sqlite3.Connection) -> Iterator[tuple[str, bool]]:
    """(id, listed by the migration) of every measurement without a place in a chain."""
    listed = "unchained_measurements" in tables(conn)
    sql = (
        "SELECT m.id, u.id IS NOT NULL FROM measurements AS m "
        "LEFT JOIN unchained_measurements AS u ON u.id = m.id WHERE m.seq IS NULL ORDER BY m.id"
        if listed
        else "SELECT id, 0 FROM measurements WHERE seq IS NULL ORDER BY id"
    )
    for r in conn.execute(sql):
        yield str(r[0]), bool(r[1])


def unchained_missing(conn: sqlite3.Connection) -> Iterator[str]:
    """Ids the migration listed as unchained that are no longer stored."""
    if "unchained_measurements" not in tables(conn):
        return
    for r in conn.execute(
        "SELECT id FROM unchained_measurements WHERE id NOT IN (SELECT id FROM measurements)"
    ):
        yield str(r[0])


def at_id(conn: sqlite3.Connection, measurement_id: str) -> dict[str, Any] | None:
    cursor = conn.execute(
        "SELECT id, device_key, seq, record_hash, chain_hash FROM measurements WHERE id = ?",
        [measurement_id],
    )
    row = cursor.fetchone()
    return None if row is None else _dict(cursor, row)


def at_seq(conn: sqlite3.Connection, device_key: str, seq: int) -> list[dict[str, Any]]:
    cursor = conn.execute(
        "SELECT id, device_key, seq, record_hash, chain_hash FROM measurements "
        "WHERE device_key = ? AND seq = ?",
        [device_key, seq],
    )
    return [_dict(cursor, r) for r in cursor.fetchall()]


def chain_heads(conn: sqlite3.Connection) -> Iterator[dict[str, Any]]:
    if "chain_heads" not in tables(conn):
        return
    cursor = conn.execute(
        "SELECT device_key, kind, label, seq, chain_hash, at, statement, signature "
        "FROM chain_heads ORDER BY device_key, seq, kind"
    )
    for r in cursor:
        yield _dict(cursor, r)


def timestamps(conn: sqlite3.Connection) -> Iterator[tuple[dict[str, Any], bytes, bytes]]:
    """(head, token, stamped digest) of every timestamp of a head (``probe merge
    --timestamp``'s ``timestamps`` table), by device and head."""
    cursor = conn.execute(
        "SELECT h.device_key, h.kind, h.label, h.seq, h.chain_hash, h.signature, t.token, "
        "t.digest FROM timestamps AS t JOIN chain_heads AS h ON h.rowid = t.head_id "
        "ORDER BY h.device_key, h.seq, h.kind, t.tsa_url"
    )
    for r in cursor:
        head = {d[0]: v for d, v in zip(cursor.description[:6], r[:6], strict=True)}
        token, digest = (v if isinstance(v, bytes) else b"" for v in r[6:8])
        yield head, token, digest


def body_data(conn: sqlite3.Connection, key: str) -> bytes | None:
    row = conn.execute("SELECT data FROM bodies WHERE sha256 = ?", [key]).fetchone()
    return None if row is None else row[0]


def tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def meta(conn: sqlite3.Connection, key: str) -> str | None:
    if "meta" not in tables(conn):
        return None
    row = conn.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return None if row is None else str(row[0])
