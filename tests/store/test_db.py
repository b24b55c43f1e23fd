"""One write path: every write the store makes waits for another connection's write lock.

An analyst's tool (sqlite3, Datasette with writes, a second probe) may hold the write lock for a
few seconds. Each of the store's writes must then wait and succeed within its patience, never
fail with "database is locked". SQLite's own busy timeout is cut to 0.1 s here, so what passes
is the store's retry, not SQLite's wait.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from probe.model import Network, ObjectChoice, ThroughputRecord
from probe.store import RoundRecord, Store
from tests.dbs import measurement

HOLD = 0.6  # seconds the other connection keeps the write lock


@contextmanager
def write_lock_held(db: Path, seconds: float = HOLD) -> Iterator[None]:
    """Another connection takes the write lock (BEGIN IMMEDIATE) and keeps it ``seconds``."""
    taken, done = threading.Event(), threading.Event()

    def hold() -> None:
        con = sqlite3.connect(db, isolation_level=None)
        try:
            con.execute("BEGIN IMMEDIATE")
            taken.set()
            done.wait(seconds)
            con.execute("COMMIT")
        finally:
            con.close()

    t = threading.Thread(target=hold)
    t.start()
    assert taken.wait(5)
    try:
        yield
    finally:
        t.join()


def _round(store: Store) -> None:
    store.save_round(RoundRecord("r2", store.device_id, "2026-11-29T00:00:00.000Z", "run"))


def _merge(store: Store, tmp: Path) -> None:
    src = Store.open(tmp / "other.db")
    src.save(measurement("success_https", "from-other"))
    src.close()
    from probe.analyst.merge import merge_source, open_source

    source = open_source(str(tmp / "other.db"))
    try:
        assert merge_source(store, source).added == 1
    finally:
        source.close()


M = measurement("success_https", "m1")
TP = ThroughputRecord(skipped="data_cap")
NET = (Network("AS1", "VN"), Network("AS2", "VN"))

WRITES: dict[str, Callable[[Store, Path], object]] = {
    "save": lambda s, _: s.save(measurement("success_https", "m2")),
    "save_round": lambda s, _: _round(s),
    "save_throughput": lambda s, _: s.save_throughput(replace(M, throughput=TP)),
    "update_throughput": lambda s, _: s.update_throughput("m1", TP),
    "update_verdict": lambda s, _: s.update_verdict("m1", replace(M.verdict, throttled=True)),
    "save_object_choice": lambda s, _: s.save_object_choice(ObjectChoice("t", "https://t/", None)),
    "save_network_change": lambda s, _: s.save_network_change("r1", "2026", *NET),
    "save_daemon": lambda s, _: s.save_daemon({"pid": 1, "state": "running"}),
    "close_unfinished_rounds": lambda s, _: s.close_unfinished_rounds(lambda pid: False, "gone"),
    "prune": lambda s, _: list(s.prune("2099-01-01")),
    "merge_from": _merge,
}


@pytest.mark.parametrize("name", sorted(WRITES))
def test_every_write_waits_for_another_connections_write_lock(tmp_path: Path, name: str) -> None:
    db = tmp_path / "p.db"
    store = Store.open(db)
    store.save(M)
    store.save_round(RoundRecord("r1", "d", "2026", "run", pid=1))
    store.db.execute("PRAGMA busy_timeout = 100")
    with write_lock_held(db):
        WRITES[name](store, tmp_path)
    assert not store.db.conn.in_transaction
    store.close()
