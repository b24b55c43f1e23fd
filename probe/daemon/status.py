"""``probe status``: is the daemon measuring, and what has it seen lately?

Contract: ``status(store, now)`` reads the database (and the daemon's lock beside it) and
returns one plain dict (the ``--json`` form): running or not (PID, since when), the daemon's
state and next rounds, the last round (when, how many targets, anomalies), measurements today
and in total, data used today and this month against the caps, open throttling events, targets
with an anomaly in the last 24 hours, and a health verdict with its exit status: 0 healthy,
3 not running, 4 running but its last round is older than twice its (current) interval and
the round it planned is overdue (gaps are random and may exceed twice the interval: a daemon
waiting for a round it planned is not late), 5 running but offline: its last round of pages
found this machine offline (no control loaded), so nothing it measures now can be judged.
``render(doc, lang=, tz=)`` turns it into the lines a person reads, in ``lang``, with each time
in the local time zone ``tz`` (default: this machine's) beside UTC and missing caps in words.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from probe import words as verdicts
from probe.classify.events import find_events
from probe.daemon.lock import holder
from probe.privacy import UNKNOWN_ADDRESS_NOTE
from probe.store import ANOMALY, Store
from probe.store.outbox import Outbox
from probe.timeutil import day_start, from_stored, iso, month_start
from probe.words import N_, translator

HEALTHY, NOT_RUNNING, LATE, OFFLINE = 0, 3, 4, 5
HEALTH_HEALTHY = N_("healthy")
HEALTH_NOT_RUNNING = N_("not running")
HEALTH_LATE = N_("late: no round for over twice the interval")
HEALTH_OFFLINE = N_("offline: the last round found no network (no control site loaded)")
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
    health, code = HEALTH_HEALTHY, HEALTHY
    if not running:
        health, code = HEALTH_NOT_RUNNING, NOT_RUNNING
    elif last_pages is not None and (
        last_pages.get("status") == "offline" or last_pages.get("network_ok") == 0
    ):
        health, code = HEALTH_OFFLINE, OFFLINE
    elif interval > 0:
        ref = last_pages["started_at"] if last_pages else d.get("started_at")
        planned = d.get("next_pages_at")
        overdue = planned is None or (now - from_stored(planned)).total_seconds() > GRACE
        if ref and (now - from_stored(ref)).total_seconds() > 2 * interval and overdue:
            health, code = HEALTH_LATE, LATE
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
        "uploads": Outbox(store).summary(),
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


def _local(stamp: str | None, tz: tzinfo | None) -> str:
    """A stored UTC time as the volunteer reads it: local time, then UTC."""
    if not stamp:
        return "-"
    try:
        t = from_stored(stamp)
    except ValueError:
        return stamp
    return f"{t.astimezone(tz):%Y-%m-%d %H:%M} ({t.astimezone(UTC):%H:%M} UTC)"


def render(doc: dict[str, Any], *, lang: str = "en", tz: tzinfo | None = None) -> list[str]:
    """The lines a person reads, in ``lang``; times in ``tz`` (None: this machine's zone)."""
    tr = translator(lang)
    _, ngettext = tr.gettext, tr.ngettext

    def at(stamp: str | None) -> str:
        return _local(stamp, tz)

    def mb(n: int | None) -> str:
        return "-" if n is None else f"{n / 1e6:.1f} MB"

    def cap(n: int | None, none: str) -> str:
        return none if n is None else _("cap {size}").format(size=mb(n))

    lines = []
    if doc["running"]:
        lines.append(
            _("daemon     running (PID {pid}) since {since}: {state}").format(
                pid=doc["pid"],
                since=at(doc["since"]),
                state=_(doc["state"]) if doc["state"] else "-",
            )
        )
        line = _("next round {at}").format(at=at(doc["next_round"]))
        if doc["next_throughput"]:
            line += _(" (throughput {at})").format(at=at(doc["next_throughput"]))
        if (doc["backoff"] or 1) > 1:
            line += _(", gaps x{factor} (backing off)").format(factor=f"{doc['backoff']:g}")
        lines.append(line)
    elif doc["stopped_at"]:
        lines.append(_("daemon     not running (stopped {at})").format(at=at(doc["stopped_at"])))
    else:
        lines.append(_("daemon     not running"))
    if doc["last_error"]:
        lines.append(_("error      {error}").format(error=doc["last_error"]))
    r = doc["last_round"]
    if r is None:
        lines.append(_("last round none yet"))
    else:
        counts = ", ".join(
            (
                ngettext("{n} measurement", "{n} measurements", r["targets"]).format(
                    n=r["targets"]
                ),
                ngettext("{n} anomaly", "{n} anomalies", r["anomalies"]).format(n=r["anomalies"]),
                mb(r["bytes_used"]),
            )
        )
        lines.append(
            _("last round {at} ({kind}, {status}): {counts}").format(
                at=at(r["started_at"]),
                kind=_(r["kind"]),
                status=_(r["status"] or "unfinished"),
                counts=counts,
            )
            + (f" - {r['note']}" if r["note"] else "")
        )
        if r.get("public_address") == "unknown":
            lines.append(_("privacy    {note}").format(note=_(UNKNOWN_ADDRESS_NOTE)))
    m, data = doc["measurements"], doc["data"]
    lines.append(_("measured   {today} today, {total} in total").format(**m))
    lines.append(
        _("data       {today} today ({day_cap}), {month} this month ({month_cap})").format(
            today=mb(data["today"]),
            day_cap=cap(data["max_per_day"], _("no daily cap")),
            month=mb(data["month"]),
            month_cap=cap(data["max_per_month"], _("no monthly cap")),
        )
    )
    events = doc["throttling_events"]
    lines.append(
        ngettext("throttling {n} open event", "throttling {n} open events", len(events)).format(
            n=len(events)
        )
    )
    for e in events:
        lines.append(
            _("  {target} since {at} ({label})").format(
                target=e["target"], at=at(e["opened_at"]), label=e["label"] or _("unlabelled")
            )
        )
    n = len(doc["anomalous_24h"])
    lines.append(
        ngettext(
            "anomalies  {n} target in the last 24 h", "anomalies  {n} targets in the last 24 h", n
        ).format(n=n)
    )
    for a in doc["anomalous_24h"]:
        lines.append(
            _("  {target}: {verdict} (last {at})").format(
                target=a["target"], verdict=_(a["verdict"]), at=at(a["at"])
            )
        )
    up = doc.get("uploads")
    if up:
        line = _("uploaded   {n} measurements in {acked} batches, {waiting} waiting").format(
            n=up["acked_measurements"], acked=up["acked_batches"], waiting=up["waiting_batches"]
        )
        if up["last_acked_at"]:
            line += _(" (last {at})").format(at=at(up["last_acked_at"]))
        if up["waiting_batches"] and up["last_error"]:
            line += _("; the store did not take a batch: {failure}").format(
                failure=up["last_error"]
            )
        lines.append(line)
    lines.append(_("health     {health}").format(health=_(doc["health"])))
    return lines


# Words the status shows from stored values (the daemon's state, a round's kind and status).
STORED_WORDS = (
    N_("idle"),
    N_("offline"),
    N_("database error"),
    N_("paused (budget)"),
    N_("stopped"),
    N_("measuring (pages)"),
    N_("measuring (throughput)"),
    N_("pages"),
    N_("throughput"),
    N_("run"),
    N_("ok"),
    N_("budget"),
    N_("interrupted"),
    N_("unfinished"),
)
