"""Batches made from real probe databases (the golden scenarios stored by the store), sealed
as a probe seals them, for the ingester's tests."""

from __future__ import annotations

import sqlite3
import zlib
from pathlib import Path
from typing import Any

from probe.evidence.keys import DeviceKey
from probe.fleet import batch
from probe.store import Store

PRIVATE, PUBLIC = batch.collective_keypair()


def rows_of(
    db: Path,
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """A database's measurements (oldest seq first), bodies by key (as a batch carries them:
    ``text``) and signed heads, as SQLite gives them back."""
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        rows = [dict(r) for r in con.execute("SELECT * FROM measurements ORDER BY seq")]
        bodies = {
            r["sha256"]: {
                "sha256": r["sha256"],
                "length": r["length"],
                "stored": r["stored"],
                "text": zlib.decompress(r["data"]).decode("utf-8"),
            }
            for r in con.execute("SELECT * FROM bodies")
        }
        heads = [dict(r) for r in con.execute("SELECT * FROM chain_heads")]
    finally:
        con.close()
    return rows, bodies, heads


def device_of(db: Path) -> DeviceKey:
    store = Store.open(db)
    try:
        return store.device_key()
    finally:
        store.close()


def seal_db(db: Path, *, per: int = 20, public: str = PUBLIC) -> list[batch.Sealed]:
    """The database's measurements as a chain of batches of ``per`` records each."""
    rows, bodies, heads = rows_of(db)
    key = device_of(db)
    out: list[batch.Sealed] = []
    prev = None
    for i in range(0, len(rows), per):
        part = rows[i : i + per]
        named = {k for r in part for k in _keys(r)}
        top = max(r["seq"] for r in part)
        sealed = batch.seal(
            part,
            signing_key=key,
            collective_public_key=public,
            prev=prev,
            bodies=[bodies[k] for k in sorted(named) if k in bodies],
            heads=[h for h in heads if h["seq"] <= top and h["seq"] > top - per],
        )
        out.append(sealed)
        prev = sealed.digest
    return out


def _keys(row: dict[str, Any]) -> list[str]:
    import json

    return [k for k, _ in json.loads(row["body_digests"] or "[]")]


def write(folder: Path, sealed: list[batch.Sealed]) -> Path:
    for s in sealed:
        path = folder / s.key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(s.data)
    return folder
