"""The daemon's patience: a database locked longer than the store waits loses no write.

A real throughput round runs against loopback servers while another connection holds the
database's write lock the whole time (an analyst's long transaction). The daemon's store
(``PatientStore``) must keep every write of the round (the round's row, the measurements, their
throughput tests) in memory and write them, in order, once the lock goes.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from probe.config.settings import resolve
from probe.daemon.daemon import PatientStore
from probe.round import prepare, run_once
from probe.store import Store
from tests.runs import world_settings
from tests.world import World


def _setup(world: World, tmp_path: Path) -> object:
    targets = tmp_path / "t.yaml"
    tp = world.http("news.test", "/large")
    targets.write_text(
        f"targets:\n  - name: news\n    url: {world.http('news.test')}\n"
        f"    throughput_url: {tp}\n"
        f"controls:\n  - name: ctl\n    url: {world.http('news.test')}\n"
        f"    throughput_url: {tp}\n",
        encoding="utf-8",
    )
    flags = world_settings(
        world,
        targets,
        tmp_path / "p.db",
        control="udp://" + world.control_dns.address,
        throughput_bytes="256K",
        throughput_seconds="1",
        throughput_trials="1",
    )
    settings = resolve(flags, env={})
    return prepare(settings)


def test_a_throughput_round_under_a_held_write_lock_loses_nothing(
    world: World, tmp_path: Path
) -> None:
    setup = _setup(world, tmp_path)
    db = tmp_path / "p.db"
    store = PatientStore(Store.open(db))
    store.db.execute("PRAGMA busy_timeout = 50")  # each try gives up fast; the queue waits
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        con = sqlite3.connect(db, isolation_level=None)
        try:
            con.execute("BEGIN IMMEDIATE")
            taken.set()
            release.wait(60)
            con.execute("ROLLBACK")
        finally:
            con.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert taken.wait(5)
        result = asyncio.run(run_once(setup, store, kind="throughput"))  # type: ignore[arg-type]
        assert store.pending and "locked" in (store.last_error or "")
    finally:
        release.set()
        holder.join()
    store.flush()
    assert not store.pending and store.last_error is None
    (row,) = store.db.query("SELECT * FROM rounds")
    assert row["id"] == result.id and row["finished_at"] == result.finished_at
    assert row["kind"] == "throughput" and row["status"] == "ok"
    stored = {r["target"]: r for r in store.rows()}
    assert set(stored) == {"news", "ctl"}
    tp = store.throughput(stored["news"])
    assert tp is not None and tp.skipped is None and tp.flows
    assert stored["news"]["bytes_used"] > 100_000
