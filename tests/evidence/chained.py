"""Chained databases for the evidence tests, built once here: real rounds against the loopback
world stored by ``probe run`` (each its own device, key beside it), and the sqlite3 helpers
the tests tamper and read with. Used by the tests of verify, bundles, merge and prune."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from probe.analyst import bundle_verifier
from probe.evidence import canonical, heads
from probe.evidence.keys import DeviceKey
from tests.runs import run_args
from tests.world import World


def rounds_db(world: World, folder: Path, name: str = "p.db", rounds: int = 2) -> Path:
    """``folder/name``: ``rounds`` real rounds of two targets and a control (three
    measurements each, bodies among them), every head signed, the WAL checkpointed into the
    file so that a copy of it (with its key, ``name.key``) is whole."""
    from probe.cli import main

    targets = folder / "t.yaml"
    targets.write_text(
        "targets:\n"
        f"  - {{name: news, url: '{world.http('news.test')}'}}\n"
        f"  - {{name: blocked, url: '{world.http('blocked.test')}'}}\n"
        "controls:\n"
        f"  - {{name: ctl, url: '{world.https('news.test')}'}}\n",
        encoding="utf-8",
    )
    db = folder / name
    for _ in range(rounds):
        assert main(run_args(world, targets, db)) == 0
    checkpoint(db)
    return db


OLD, NEW = "2026-01-0{}T10:00:00.000Z", "2026-12-0{}T10:00:00.000Z"  # day templates


def dated_db(db: Path, plan: list[tuple[str, str]]) -> Path:
    """A chained database made through the store, one round a day: ``plan`` holds (golden
    scenario, day template such as :data:`OLD`) per measurement, in order (ids m1, m2, ...);
    each round's end signs its head."""
    from probe.store import RoundRecord, Store
    from tests.dbs import measurement

    store = Store.open(db)
    for i, (name, when) in enumerate(plan, 1):
        at = when.format(i % 10)
        r = RoundRecord(id=f"r{i}", device_id=store.device_id, started_at=at, kind="run")
        store.save(measurement(name, f"m{i}", started_at=at))
        store.save_round(replace(r, finished_at=at.replace("10:00", "10:05"), status="ok"))
    store.close()
    return db


def older_store(path: Path, stop_before: str = "m010_chain", device_id: str = "dev-old") -> Any:
    """A Store on a database of an older schema (every migration before ``stop_before``), as an
    older probe made it, with its device id: close it with ``store.db.close()``."""
    from probe.store import Store
    from probe.store._lazy import without_numpy

    with without_numpy():
        from sqlite_utils import Database

    from probe.store import migrations

    db = Database(str(path))
    migrations.apply(db, stop_before=stop_before)
    db.table("meta").insert({"key": "device_id", "value": device_id})
    return Store(db, str(path))


def checkpoint(db: Path) -> None:
    con = sqlite3.connect(db)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()


def sql(db: Path, *statements: str | tuple[str, list[object]]) -> None:
    """Statements run on ``db`` through sqlite3, as anyone holding the file could."""
    con = sqlite3.connect(db)
    try:
        for s in statements:
            text, params = (s, []) if isinstance(s, str) else s
            con.execute(text, params)
        con.commit()
    finally:
        con.close()


def rows(db: Path, table: str = "measurements", order: str = "seq") -> list[dict[str, Any]]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(f"SELECT * FROM {table} ORDER BY {order}")]
    finally:
        con.close()


def rechain(db: Path, key: DeviceKey | None = None) -> DeviceKey:
    """``db``'s chain made again, as a probe with ``key`` (a new one by default) would have
    made it for the rows the file holds now: every record hashed and linked in ``seq`` order,
    every head signed again at the same place, time and kind. Another device's database is a
    copy of one, its ids renamed, then rechained."""
    key = key or DeviceKey.generate()
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        prev, prev_id, at_seq = canonical.GENESIS, None, {}
        for r in list(con.execute("SELECT * FROM measurements WHERE seq IS NOT NULL ORDER BY seq")):
            row = {**dict(r), "device_key": key.public}
            record_hash = canonical.record_hash(row)
            prev = canonical.link(prev, record_hash)
            con.execute(
                "UPDATE measurements SET device_key = ?, chain_prev = ?, record_hash = ?, "
                "chain_hash = ? WHERE rowid = (SELECT rowid FROM measurements WHERE id = ?)",
                [key.public, prev_id, record_hash, prev, row["id"]],
            )
            prev_id, at_seq[int(row["seq"])] = row["id"], prev
        for h in list(con.execute("SELECT * FROM chain_heads")):
            statement, signature = heads.sign(key, h["seq"], at_seq[h["seq"]], h["at"], h["kind"])
            con.execute(
                "UPDATE chain_heads SET device_key = ?, chain_hash = ?, statement = ?, "
                "signature = ? WHERE device_key = ? AND kind = ? AND label = ?",
                [key.public, at_seq[h["seq"]], statement.decode(), signature,
                 h["device_key"], h["kind"], h["label"]],
            )  # fmt: skip
        con.execute("UPDATE rounds SET device_key = ?", [key.public])
        con.commit()
    finally:
        con.close()
    return key


def standalone(bundle: Path, where: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The bundle's own verifier, unzipped alone into ``where`` (no database, no checkout),
    run in a separate, isolated interpreter (``-I``: no PYTHONPATH, no user site) in which
    ``import probe`` fails, as on a machine without the probe."""
    if where.exists():
        shutil.rmtree(where)
    with zipfile.ZipFile(bundle) as z:
        z.extractall(where)
    folder = where / bundle_verifier.TOP
    blocker = (
        "import sys, runpy\n"
        "class NoProbe:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'probe' or name.startswith('probe.'):\n"
        "            raise ImportError('probe is not installed here')\n"
        "sys.meta_path.insert(0, NoProbe())\n"
        "sys.argv = ['verify_bundle.py', *sys.argv[1:]]\n"
        "runpy.run_path('verify_bundle.py', run_name='__main__')\n"
    )
    assert not list(where.rglob("*.db"))
    return subprocess.run(
        [sys.executable, "-I", "-c", blocker, *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    )
