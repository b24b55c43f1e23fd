"""The export's read-ahead: a query's rows read by a thread of its own, a bounded queue ahead.

Contract: :func:`prefetched` yields batches of rows of one query on its own read-only connection
(WAL: it never blocks a writer), at most two batches ahead of the consumer, so memory stays
bounded; an error in the reader is raised in the consumer; leaving early stops the reader.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any


def prefetched(
    uri: str, sql: str, params: list[Any], batch: int
) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of ``sql``, read by a thread of their own on a read-only connection, at most
    two batches ahead: SQLite works (without the GIL) while the caller formats the previous
    batch, and memory stays bounded."""
    done = object()
    ahead: queue.Queue[Any] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            con = sqlite3.connect(uri, uri=True)
            try:
                cursor = con.execute(sql, params)
                while rows := cursor.fetchmany(batch):
                    if not put(rows):
                        return
                put(done)
            finally:
                con.close()
        except BaseException as exc:  # handed to the reader, raised there
            put(exc)

    reader = threading.Thread(target=read, name="probe-stream", daemon=True)
    reader.start()
    try:
        while (item := ahead.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()
