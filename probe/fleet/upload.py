"""One upload run: new measurements made into batches, the waiting batches sent, what the
collective holds pruned. ``probe upload`` runs it once; the daemon on its own schedule.

Contract: :func:`upload` first makes every new stretch of the device's chain into sealed
batches of up to ``limit`` measurements (``probe.store.outbox``: recorded, bytes and all, in the
transaction that reads them), then sends the waiting batches oldest first, each through
``Destination.put`` to its content address, and records each attempt: a batch is acknowledged
only on the store's 2xx answer, so a kill at any moment loses nothing (a batch made and not yet
acknowledged is sent on the next run) and duplicates nothing (a batch sent again is the same
bytes under the same key). The first failure ends the sending (the store is away or refuses:
the rest waits for the next run) and is the run's ``failure`` (a df-007 string). Each attempt's
bytes (the object and :data:`probe.fleet.s3.OVERHEAD`) count against the data budget, and a
batch that would pass a cap waits (``budget`` says which). Measurements are never changed.
With ``keep_uploaded`` (seconds) the measurements the collective acknowledged and that started
longer ago than that are deleted here (never the device's last, from which its chain goes on).
Batches are sealed to ``collective_key`` (``probe.fleet.batch``) and signed by the database's
device key; only the device's own chained measurements are sent (not those merged or imported).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from probe.errors import SettingsError
from probe.fleet import batch, s3
from probe.round import budget as budget_mod
from probe.store import Store
from probe.store.outbox import Outbox
from probe.timeutil import day_start, iso, month_start
from probe.words import N_

LIMIT = 1000  # measurements per batch: about 1 MB of object with bodies, 1-2 KB each without


@dataclass(frozen=True, slots=True)
class Plan:
    """What an upload run needs besides the database."""

    destination: s3.Destination
    collective_key: str
    limit: int = LIMIT
    bodies: bool = True
    keep_uploaded: float | None = None
    caps: budget_mod.Budget = field(default_factory=budget_mod.Budget)


@dataclass(frozen=True, slots=True)
class Report:
    made: int  # batches made in this run
    sent: int  # batches acknowledged in this run
    measurements: int  # measurements in the batches acknowledged in this run
    waiting: int  # batches still waiting
    bytes: int  # bytes put on the wire in this run
    failure: str | None = None  # why the sending stopped (df-007), if it did
    budget: str | None = None  # why a batch waits for the budget, if one does
    pruned: int = 0  # measurements deleted under keep_uploaded


def plan(settings: Any, caps: budget_mod.Budget | None = None) -> Plan | None:
    """The plan the settings describe, or None when uploads are not set up (no
    ``upload_url``); :class:`SettingsError` for a half-made setup."""
    if not getattr(settings, "upload_url", None):
        return None
    if not settings.collective_key:
        raise SettingsError(N_("upload_url: needs collective_key (the collective's public key)"))
    try:
        batch.check_public_key(settings.collective_key)
    except ValueError:
        raise SettingsError(
            N_("collective_key: not an X25519 public key (32 bytes in base64url)")
        ) from None
    dest = s3.destination(
        settings.upload_url,
        credentials_file=settings.upload_credentials,
        presigned_file=settings.upload_presigned,
        region=settings.upload_region,
        proxy=settings.upload_proxy,
        ca_bundle=settings.ca_bundle,
    )
    return Plan(
        dest,
        settings.collective_key,
        bodies=settings.upload_bodies,
        keep_uploaded=settings.keep_uploaded,
        caps=caps
        if caps is not None
        else budget_mod.Budget(settings.max_bytes_per_day, settings.max_bytes_per_month),
    )


def upload(
    store: Store,
    p: Plan,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    stop: threading.Event | None = None,
) -> Report:
    """One run (see the contract)."""
    outbox = Outbox(store)
    key = store.device_key()

    def seal(
        records: list[dict[str, Any]],
        bodies: list[dict[str, Any]],
        heads: list[dict[str, Any]],
        prev: str | None,
    ) -> batch.Sealed:
        return batch.seal(
            records,
            signing_key=key,
            collective_public_key=p.collective_key,
            prev=prev,
            bodies=bodies,
            heads=heads,
            made_at=iso(now()),
        )

    made = sent = measurements = spent = 0
    while not (stop and stop.is_set()):
        if outbox.make(key.public, seal, limit=p.limit, bodies=p.bodies, at=iso(now())) is None:
            break
        made += 1
    failure = why = None
    for b in outbox.unsent():
        if stop and stop.is_set():
            break
        cost = int(b["bytes"]) + s3.OVERHEAD
        t = now()
        why = budget_mod.check(p.caps, _usage(store, p.caps, t), cost, t)
        if why is not None:
            break
        data = outbox.data(b["digest"])
        if data is None:  # acknowledged by another uploader meanwhile
            continue
        failure = p.destination.put(b["object_key"], data)
        outbox.attempt(b["digest"], iso(now()), cost, failure)
        spent += cost
        if failure is not None:
            break
        sent += 1
        measurements += int(b["count"])
    pruned = 0
    if p.keep_uploaded is not None and not (stop and stop.is_set()):
        before = iso(now() - timedelta(seconds=p.keep_uploaded))
        pruned = sum(n for what, n in outbox.prune_uploaded(before) if what == "measurements")
    return Report(made, sent, measurements, len(outbox.unsent()), spent, failure, why, pruned)


def _usage(store: Store, caps: budget_mod.Budget, t: datetime) -> budget_mod.Usage:
    if caps == budget_mod.Budget():
        return budget_mod.Usage(0, 0)
    return budget_mod.Usage(
        store.bytes_used_since(day_start(t)), store.bytes_used_since(month_start(t))
    )


def run(
    settings: Any,
    *,
    caps: budget_mod.Budget | None = None,
    stop: threading.Event | None = None,
) -> Report | None:
    """An upload run over the settings' database, on a connection of its own (the daemon
    runs it in a thread, with its caps); None when uploads are not set up."""
    p = plan(settings, caps)
    if p is None:
        return None
    store = Store.open(settings.db)
    try:
        return upload(store, p, stop=stop)
    finally:
        store.close()
