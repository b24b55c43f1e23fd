"""SQLite storage through sqlite-utils: schema by migrations, WAL, one transaction per measurement.

Contract: ``Store.open(path)`` creates or migrates the database (raising :class:`StoreError`
with a one-line message naming the file and the cause: not a probe database, not SQLite, a full
disk, a read-only mount) and enables WAL; ``Store.open(path, readonly=True)`` (reading
commands) writes nothing, even on a read-only mount. ``save(measurement)`` writes the
measurement row and its response bodies in one transaction: it is stored whole or not at all.
Several processes may write one database at once (a daemon and a manual ``probe run``): every
write transaction takes the write lock first (``BEGIN IMMEDIATE``) and waits and retries while
another holds it; WAL readers (export, Datasette) never block a writer. Flat verdict columns
serve analysts; the raw observations (JSON) serve ``reclassify``. Bodies are stored once per
SHA-256, compressed, with IP addresses scrubbed; nothing the probe writes holds the volunteer's
own address.

The rooms: ``schema`` (migrations), ``db`` (opening; the one write path), ``rows`` (the row
codec), ``reads``, ``writes``, ``maintenance`` (prune, merge, copy), ``readahead`` (the export's
reading thread), ``sql`` (derived facts written once in SQL). This module is the public face.
"""

from __future__ import annotations

from probe.errors import StoreError
from probe.store.db import BUSY_TIMEOUT, WRITE_PATIENCE
from probe.store.maintenance import Maintenance
from probe.store.reads import EXPORT_COLUMNS, STORED_COLUMNS, RowFilter, Stored
from probe.store.rows import RoundRecord, blocking_from_db, blocking_to_db
from probe.store.schema import migrations
from probe.store.sql import ANOMALY, NETWORK_SQL
from probe.store.writes import Writes

__all__ = [
    "ANOMALY",
    "BUSY_TIMEOUT",
    "EXPORT_COLUMNS",
    "NETWORK_SQL",
    "STORED_COLUMNS",
    "WRITE_PATIENCE",
    "RoundRecord",
    "RowFilter",
    "Store",
    "StoreError",
    "Stored",
    "blocking_from_db",
    "blocking_to_db",
    "migrations",
]


class Store(Writes, Maintenance):
    """A probe database: its reads, its writes (each one transaction through the one write
    path) and its maintenance. Open it with :meth:`Store.open`."""
