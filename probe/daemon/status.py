"""``probe status``: is the daemon measuring, and what has it seen lately?

Contract: ``status(store, now)`` reads the database (and the daemon's lock beside it) and
returns one plain dict (the ``--json`` form): running or not (PID, since when), the daemon's
state and next rounds, the last round (when, how many targets, anomalies), measurements today
and in total, data used today and this month against the caps, open throttling events, targets
with an anomaly in the last 24 hours, and a health verdict with its exit status: 0 healthy,
3 not running, 4 running but its last round is older than twice its (current) interval and
the round it planned is overdue (gaps are random and may exceed twice the interval: a daemon
waiting for a round it planned is not late).
``render(doc)`` turns it into the lines a person reads.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from probe import words as verdicts
from probe.classify.events import find_events
from probe.daemon.lock import holder
from probe.privacy import UNKNOWN_ADDRESS_NOTE
from probe.store import ANOMALY, Store
from probe.timeutil import day_start, from_stored, iso, month_start

HEALTHY, NOT_RUNNING, LATE = 0, 3, 4
GRACE = 60.0  # seconds a planned round may start late (a busy machine, a slow database)


def status(store: Store, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    pid = holder(store.path)
    d = store.daemon() or {}
    last = store.last_round(["pages", "throughput", "run"])
    last_pages = store.last_round(["pages", "run"])
    if last is not None:
        last = {
            k: last[k]
            for k in ("started_at", "finished_at", "kind", "status", "targets", "bytes_used")
        } | {
            "anomalies": _anomalies(store, last["id"]),
            "note": last.get("note"),
            "public_address": last.get("public_address"),
        }
    since_day = day_start(now)
    events = [e.as_dict() for e in find_events(store.throughput_tests()) if e.open]
    anomalous = [
        {
            "target": r["target"],
            "verdict": verdicts.words(
                r["blocking"],
                r["accessible"],
                r["evidence"],
                r["offline"],
                r["throttled"],
                blockpage=r["blockpage"],
                throttle_label=r["throttle_label"],
            ),
            "at": r["at"],
            "measurements": r["n"],
        }
        for r in store.anomalous_targets(iso(now - timedelta(hours=24)))
    ]
    running = pid is not None
    interval = (d.get("interval") or 0) * (d.get("backoff") or 1)
    health, code = "healthy", HEALTHY
    if not running:
        health, code = "not running", NOT_RUNNING
    elif interval > 0:
        ref = last_pages["started_at"] if last_pages else d.get("started_at")
        planned = d.get("next_pages_at")
        overdue = planned is None or (now - from_stored(planned)).total_seconds() > GRACE
        if ref and (now - from_stored(ref)).total_seconds() > 2 * interval and overdue:
            health, code = "late: no round for over twice the interval", LATE
    return {
        "db": store.path,
        "running": running,
        "pid": pid if running else None,
        "since": d.get("started_at") if running else None,
        "stopped_at": None if running else d.get("stopped_at"),
        "state": d.get("state") if running else "not running",
        "interval": d.get("interval"),
        "backoff": d.get("backoff"),
        "next_round": d.get("next_pages_at") if running else None,
        "next_throughput": d.get("next_throughput_at") if running else None,
        "last_error": d.get("last_error") if running else None,
        "last_round": last,
        "measurements": {
            "today": store.count_measurements(since_day),
            "total": store.count_measurements(),
        },
        "data": {
            "today": store.bytes_used_since(since_day),
            "month": store.bytes_used_since(month_start(now)),
            "max_per_day": d.get("max_bytes_per_day"),
            "max_per_month": d.get("max_bytes_per_month"),
        },
        "throttling_events": events,
        "anomalous_24h": anomalous,
        "health": health,
        "exit": code,
    }


def _anomalies(store: Store, round_id: str) -> int:
    rows = store.db.query(
        f"SELECT count(*) AS n FROM measurements WHERE round_id = ? AND is_control = 0 "
        f"AND {ANOMALY}",
        [round_id],
    )
    return int(next(iter(rows))["n"])


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.1f} MB"


def render(doc: dict[str, Any]) -> list[str]:
    lines = []
    if doc["running"]:
        lines.append(f"daemon     running (PID {doc['pid']}) since {doc['since']}: {doc['state']}")
        lines.append(
            f"next round {doc['next_round'] or '-'}"
            + (f" (throughput {doc['next_throughput']})" if doc["next_throughput"] else "")
            + (f", gaps x{doc['backoff']:g} (backing off)" if (doc["backoff"] or 1) > 1 else "")
        )
    else:
        stopped = f" (stopped {doc['stopped_at']})" if doc["stopped_at"] else ""
        lines.append(f"daemon     not running{stopped}")
    if doc["last_error"]:
        lines.append(f"error      {doc['last_error']}")
    r = doc["last_round"]
    if r is None:
        lines.append("last round none yet")
    else:
        lines.append(
            f"last round {r['started_at']} ({r['kind']}, {r['status'] or 'unfinished'}): "
            f"{r['targets']} measurements, {r['anomalies']} anomalies, {_mb(r['bytes_used'])}"
            + (f" - {r['note']}" if r["note"] else "")
        )
        if r.get("public_address") == "unknown":
            lines.append(f"privacy    {UNKNOWN_ADDRESS_NOTE}")
    m, data = doc["measurements"], doc["data"]
    lines.append(f"measured   {m['today']} today, {m['total']} in total")
    lines.append(
        f"data       {_mb(data['today'])} today (cap {_mb(data['max_per_day'])}), "
        f"{_mb(data['month'])} this month (cap {_mb(data['max_per_month'])})"
    )
    events = doc["throttling_events"]
    lines.append(f"throttling {len(events)} open events")
    for e in events:
        lines.append(f"  {e['target']} since {e['opened_at']} ({e['label'] or 'unlabelled'})")
    lines.append(f"anomalies  {len(doc['anomalous_24h'])} targets in the last 24 h")
    for a in doc["anomalous_24h"]:
        lines.append(f"  {a['target']}: {a['verdict']} (last {a['at']})")
    lines.append(f"health     {doc['health']}")
    return lines
