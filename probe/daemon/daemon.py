"""``probe daemon``: process life around the rounds, for months, unattended.

Contract: :func:`run` resolves the settings and loads everything the rounds need (bad input:
an :class:`~probe.errors.InputError`, exit 2, before anything is written), takes the database's
lock (a second daemon on the same database gets :class:`DaemonRunning`, naming the first's
PID), closes rounds a crash left open, then runs APScheduler 3.x's AsyncIOScheduler until
SIGTERM or SIGINT:

- page rounds at random gaps around ``interval`` (:mod:`probe.daemon.schedule`), measuring the
  targets that are due; throughput rounds on their own, slower schedule. Rounds never overlap
  (one lock); each job is paused while it runs and resumed at its end, so a gap runs from the
  end of one round to the start of the next. ``coalesce`` and no misfire limit: a laptop
  waking from sleep runs one round, not a burst; a heartbeat every few seconds re-reads the
  wall clock (asyncio's timers do not count suspended time).
- the data budget (:mod:`probe.round.budget`): throughput rounds give way first, then page rounds;
  a round skipped for the budget is recorded (status ``budget``). The daemon decides each
  round's :class:`~probe.round.budget.Allowance` (the caps, and for throughput rounds the
  pages' reserve) and hands it to the round, whose tests each ask it again; the settings are
  never rewritten to carry it.
- offline rounds (no control loads) and database errors (locked, full, read-only) lengthen the
  gaps (:func:`probe.daemon.schedule.backoff`); the first good round restores them. A database error
  never ends the daemon: it is logged, measurements that could not be written are kept in
  memory (bounded) and written when the database takes them again.
- SIGTERM/SIGINT: the round in flight is cancelled (a measurement is stored whole or not at
  all: each is one transaction), its row closed as ``interrupted``, exit 0 within seconds.
  SIGHUP: settings and targets are loaded again; a bad file is logged in one line and the old
  ones kept.
- a heartbeat: the ``daemon`` row for ``probe status``, and systemd's READY, STATUS and
  WATCHDOG notifications over ``$NOTIFY_SOCKET`` (:mod:`probe.daemon.systemd`).

Logs go to stderr, one line per round (targets, anomalies, bytes, duration), as text with
syslog priority prefixes under journald, or JSON (``--log-format json``). They hold counts,
names and reasons, never the helper's token or an address of the volunteer.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import logging
import os
import random
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from probe.classify.quic import QUIC_BLOCKED
from probe.config.settings import Settings, resolve
from probe.config.targets import TargetList
from probe.daemon import schedule
from probe.daemon.lock import DaemonLock, pid_alive
from probe.daemon.systemd import sd_notify, watchdog_period
from probe.errors import InputError, ProbeError, StoreError
from probe.model import DISCOVERY_BYTES, Measurement, Network, ObjectChoice, ThroughputRecord
from probe.privacy import UNKNOWN_ADDRESS_NOTE
from probe.round import RoundResult, RoundSetup, offline_reason, prepare, run_once
from probe.round import budget as budget_mod
from probe.store import RoundRecord, Store
from probe.timeutil import day_start, from_stored, iso, month_start, utc_now
from probe.words import translator

log = logging.getLogger("probe.daemon")

# The language of the log's messages (the JSON fields stay as they are): run()'s ``lang``.
_lang = "en"
_tr = translator(_lang)


def _(message: str) -> str:
    return _tr.gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _tr.ngettext(singular, plural, n)


def _said(exc: BaseException) -> str:
    """An error as the log says it: in the daemon's language where it is one of probe's."""
    return exc.translated(_tr.gettext) if isinstance(exc, ProbeError) else str(exc)


HEARTBEAT = 5.0  # seconds between heartbeats (shorter when systemd's watchdog asks)
ROW_EVERY = 60.0  # seconds between writes of the daemon row when nothing changed
PENDING_MAX = 500  # measurements kept in memory while the database refuses writes (~40 MB)
PAGE_BYTES_GUESS = 120_000  # per measurement, until this database has a round to go by

RoundRunner = Callable[..., Coroutine[Any, Any, RoundResult]]  # run_once's shape


# -- logs ----------------------------------------------------------------------------------
class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": iso(datetime.fromtimestamp(record.created, UTC)),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
        }
        doc.update(getattr(record, "fields", {}))
        return json.dumps(doc, ensure_ascii=False)


class JournalFormatter(logging.Formatter):
    """``<N>message``: journald reads the syslog priority and stamps the time itself."""

    PRIORITY: ClassVar[dict[str, int]] = {
        "DEBUG": 7,
        "INFO": 6,
        "WARNING": 4,
        "ERROR": 3,
        "CRITICAL": 2,
    }

    def format(self, record: logging.LogRecord) -> str:
        return f"<{self.PRIORITY.get(record.levelname, 6)}>{record.getMessage()}"


def setup_logging(fmt: str, stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    elif os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("probe")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if os.environ.get("PROBE_DEBUG") else logging.INFO)
    root.propagate = False
    # APScheduler's own lines ("Running job ...") would double ours; keep its warnings.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").handlers[:] = [handler]


# -- writes that wait for the database -----------------------------------------------------
class PatientStore(Store):
    """A Store whose writes never raise on a database error: each write the daemon makes (a
    measurement, its throughput test, a round's row, a throughput object, a change of network)
    waits in memory, in order (at most PENDING_MAX; the oldest go first), and is written with
    the next one that gets through; the heartbeat keeps only its latest row. A locked, full or
    read-only database loses nothing it can later take."""

    def __init__(self, store: Store) -> None:
        super().__init__(store.db, store.path)
        self.write_patience = 0.0  # one try (SQLite's busy timeout), then the queue waits
        self.pending: collections.deque[tuple[str, Callable[[], object]]] = collections.deque(
            maxlen=PENDING_MAX
        )
        self.daemon_row: dict[str, Any] = {}  # the heartbeat's fields not yet written
        self.last_error: str | None = None

    def _later(self, what: str, write: Callable[[], object]) -> None:
        self.pending.append((what, write))
        self.flush()

    def save(self, m: Measurement) -> None:
        def write() -> None:
            if not self.exists(m.id):  # written already, by a try that then raised
                Store.save(self, m)

        self._later(f"measurement {m.id} of {m.target}", write)

    def save_round(self, r: RoundRecord) -> None:
        self._later(f"round {r.id}", functools.partial(Store.save_round, self, r))

    def save_throughput(self, m: Measurement) -> None:
        what = f"throughput test {m.id} of {m.target}"
        self._later(what, functools.partial(Store.save_throughput, self, m))

    def update_throughput(self, measurement_id: str, test: ThroughputRecord) -> None:
        write = functools.partial(Store.update_throughput, self, measurement_id, test)
        self._later(f"throughput test {measurement_id}", write)

    def save_object_choice(self, c: ObjectChoice) -> None:
        what = f"throughput object of {c.target}"
        self._later(what, functools.partial(Store.save_object_choice, self, c))

    def save_network_change(self, round_id: str, at: str, old: Network, new: Network) -> None:
        write = functools.partial(Store.save_network_change, self, round_id, at, old, new)
        self._later(f"network change of round {round_id}", write)

    def save_daemon(self, row: dict[str, Any]) -> None:
        self.daemon_row.update(row)  # an upsert: the latest value of each field is the one
        self.flush()

    def flush(self) -> None:
        while self.pending:
            what, write = self.pending[0]
            try:
                write()
            except sqlite3.IntegrityError as exc:
                # This row, not the database: never let it hold up the others.
                log.error(_("%s not stored (%s)"), what, exc)
                self.pending.popleft()
                continue
            except (sqlite3.DatabaseError, StoreError) as exc:
                self._cannot_write(exc)
                return
            self.pending.popleft()
        if self.daemon_row:
            try:
                Store.save_daemon(self, self.daemon_row)
            except (sqlite3.DatabaseError, StoreError) as exc:
                self._cannot_write(exc)
                return
            self.daemon_row = {}
        if self.last_error is not None:
            log.info(_("%s: writing again"), self.path)
            self.last_error = None

    def _cannot_write(self, exc: Exception) -> None:
        if self.last_error != str(exc):
            waiting = len(self.pending)
            log.error(
                ngettext(
                    "%s: cannot write (%s); %d write waits",
                    "%s: cannot write (%s); %d writes wait",
                    waiting,
                ),
                self.path,
                _said(exc),
                waiting,
            )
        self.last_error = str(exc)


# -- the daemon ----------------------------------------------------------------------------
class Daemon:
    def __init__(
        self,
        flags: Mapping[str, Any],
        config: str | None,
        settings: Settings,
        setup: RoundSetup,
        store: Store,
        *,
        rng: random.Random | None = None,
        run: RoundRunner = run_once,
    ) -> None:
        self.flags, self.config = dict(flags), config
        self.settings, self.setup = settings, setup
        self.store = PatientStore(store)
        self.rng = rng or random.SystemRandom()
        self.run = run  # run_once; a test notes what each round is handed
        self.started_at = utc_now()
        self.round_lock = asyncio.Lock()
        self.current: asyncio.Task[RoundResult] | None = None
        self.stopping = asyncio.Event()
        self.failed_rounds = 0  # offline or unwritable, in a row
        self.paused: dict[str, str] = {}  # kind -> why the budget stops it
        self.state = "starting"
        self.sched: Any = None
        self.last_beat_error = 0.0
        self.last_write = 0.0
        self.upload_stop = threading.Event()  # ends an upload run between two batches

    # -- schedule --------------------------------------------------------------------------
    def factor(self) -> float:
        return schedule.backoff(self.failed_rounds)

    def page_mean(self) -> float:
        return schedule.page_mean(self.setup.targets.targets, self.settings.interval) * (
            self.factor()
        )

    def throughput_mean(self) -> float:
        return self.settings.throughput_interval * self.factor()

    def wants_throughput(self) -> bool:
        tl = self.setup.targets
        # Every target has a throughput test: a pinned object, one found on its page, or
        # (with a helper) the SNI A/B alone.
        return self.setup.plan is not None and bool(tl.targets)

    def _first_run(self, saved: str | None, now: datetime) -> datetime:
        """Resume the schedule a previous daemon planned; a time already past runs now."""
        if saved:
            with contextlib.suppress(ValueError):
                t = from_stored(saved)
                if t > now:
                    return t
        return now

    def next_run(self, job_id: str) -> str | None:
        job = self.sched.get_job(job_id) if self.sched is not None else None
        t = job.next_run_time if job is not None else None
        return iso(t) if t is not None else None

    # -- rounds ----------------------------------------------------------------------------
    def usage(self) -> budget_mod.Usage:
        if self.caps() == budget_mod.Budget():
            return budget_mod.Usage(0, 0)  # no cap: nothing to count
        now = datetime.now(UTC)
        return budget_mod.Usage(
            self.store.bytes_used_since(day_start(now)),
            self.store.bytes_used_since(month_start(now)),
        )

    def caps(self) -> budget_mod.Budget:
        return self.setup.budget

    def page_estimate(self, n: int, guess: float = PAGE_BYTES_GUESS) -> float:
        """Bytes ``n`` page measurements will take, from this database's last rounds."""
        per = self.store.round_bytes("pages")
        return n * (per if per is not None else guess)

    def _budget(self, kind: str, why: str | None) -> bool:
        """Record and log a change of the budget's verdict on ``kind``; True if it may run."""
        if why is None:
            if self.paused.pop(kind, None) is not None:
                log.info(_("budget: %s rounds resume"), _(kind))
            return True
        if self.paused.get(kind) is None:
            log.warning(_("budget: %s rounds stop (%s)"), _(kind), why)
        self.paused[kind] = why
        now = utc_now()
        self.store.save_round(
            RoundRecord(
                id=f"budget-{kind}-{now}",
                device_id=self.store.device_id,
                started_at=now,
                finished_at=now,
                kind=kind,
                status="budget",
                note=why,
                pid=os.getpid(),
            )
        )
        return False

    async def _round(self, kind: str) -> None:
        setup = self.setup
        tl = setup.targets
        now = datetime.now(UTC)
        if kind == "pages":
            default = self.settings.interval
            last = self.store.last_measured(schedule.needs_history(tl.targets, default))
            targets = schedule.due(tl.targets, last, now, default)
            if not targets:
                log.debug("pages: no target due")
                return
            # Before any round to go by, one round may run while anything is left.
            need = self.page_estimate(len(targets) + len(tl.controls), guess=0)
            allowance = budget_mod.Allowance(self.caps())
            if not self._budget(kind, allowance.check(self.usage(), need, now)):
                return
        else:
            assert setup.plan is not None
            # As many tests as the budget holds, least recently attempted first, so a tight
            # cap rotates through the list; one with nothing to test takes no test's bytes.
            fixed = self.page_estimate(len(tl.controls))
            reserve = self.page_estimate(len(tl.targets) + len(tl.controls))
            usage = self.usage()
            picked = schedule.throughput_rotation(
                tl.targets,
                self.store.throughput_attempts(),
                helper=self.settings.helper is not None,
                room=budget_mod.room(self.caps(), usage, fixed=fixed, reserve=reserve),
                per=self.page_estimate(1) + setup.plan.worst_case_bytes,
                bare=self.page_estimate(1) + DISCOVERY_BYTES,
            )
            targets, need = picked.targets, fixed + picked.bytes
            # The round asks the same allowance again before each test, keeping the reserve.
            allowance = budget_mod.Allowance(self.caps(), reserve=reserve)
            if not self._budget(kind, allowance.check(usage, need, now)):
                return
        setup = replace(setup, targets=TargetList(tuple(targets), tl.controls))
        self.state = f"measuring ({kind})"
        sd_notify(f"STATUS=measuring {len(targets)} targets ({kind})")
        self.beat()
        t0 = time.monotonic()
        self.current = asyncio.create_task(
            self.run(
                setup, self.store, throughput=kind == "throughput", kind=kind, allowance=allowance
            )
        )
        try:
            result = await self.current
        finally:
            self.current = None
        self.store.flush()
        offline = result.network_ok is False
        self.failed_rounds = self.failed_rounds + 1 if offline else 0
        anomalies = result.anomalies
        fields = {
            "round": result.id,
            "kind": kind,
            "targets": len(targets),
            "controls": len(tl.controls),
            "measurements": result.count,
            "anomalies": anomalies,
            "bytes": result.bytes_used,
            "duration": round(time.monotonic() - t0, 2),
            "network": "offline" if offline else "ok",
            "public_address": ",".join(result.address_known_by) or "unknown",
            "next_gap_factor": self.factor(),
            # HTTP/3 (issue 24): targets whose QUIC was blocked while measured
            "quic_blocked": sum(m.verdict.quic in QUIC_BLOCKED for m in result.rows),
        }
        counts = ", ".join(
            (
                ngettext("{n} target", "{n} targets", len(targets)).format(n=len(targets)),
                ngettext("{n} anomaly", "{n} anomalies", anomalies).format(n=anomalies),
                ngettext("{n} byte", "{n} bytes", result.bytes_used).format(n=result.bytes_used),
            )
        )
        log.log(
            logging.WARNING if offline else logging.INFO,
            "round %s %s: %s, %.1f s%s",
            result.id[:8],
            _(kind),
            counts,
            fields["duration"],
            _(", OFFLINE (gaps x{factor})").format(factor=f"{self.factor():g}") if offline else "",
            extra={"fields": fields},
        )
        if offline:  # one line, as `probe run` says it: why, and what to check
            done = [m for m in result.rows if m.is_control]
            reason = offline_reason(done, lang=_lang) if done else result.offline_reason
            if reason:
                log.warning(_("round %s: %s"), result.id[:8], reason)
        if not result.address_known_by:
            log.warning(_("round %s: %s"), result.id[:8], _(UNKNOWN_ADDRESS_NOTE))

    async def job(self, kind: str) -> None:
        """One scheduled round of ``kind``, paused while it runs (so a gap starts at its end)."""
        from apscheduler.jobstores.base import JobLookupError

        with contextlib.suppress(JobLookupError):
            self.sched.pause_job(kind)
        try:
            async with self.round_lock:
                if self.stopping.is_set():
                    return
                try:
                    await self._round(kind)
                    self.state = "idle" if not self.failed_rounds else "offline"
                except sqlite3.DatabaseError as exc:
                    self.failed_rounds += 1
                    self.state = "database error"
                    log.error(
                        _("%s round: database error (%s); retrying in about %.0f s"),
                        _(kind),
                        exc,
                        self.page_mean(),
                    )
        except asyncio.CancelledError:  # the round, or the wait for the other kind's to end
            if not self.stopping.is_set():
                raise
        finally:
            if not self.stopping.is_set() and self.sched.get_job(kind) is not None:
                self.sched.resume_job(kind)
            self.beat()

    # -- heartbeat, reload, stop -----------------------------------------------------------
    def beat(self, *, write: bool = True) -> None:
        """systemd's watchdog, waiting writes, and the ``daemon`` row for ``probe status``
        (``write``: now; else at most once a minute, to spare an SD card's writes)."""
        sd_notify("WATCHDOG=1")
        self.store.flush()
        if not write and time.monotonic() - self.last_write < ROW_EVERY:
            return
        self.last_write = time.monotonic()
        row = {
            "pid": os.getpid(),
            "started_at": self.started_at,
            "heartbeat_at": utc_now(),
            "stopped_at": None,
            "interval": self.page_mean() / self.factor(),
            "throughput_interval": self.settings.throughput_interval,
            "backoff": self.factor(),
            "next_pages_at": self.next_run("pages"),
            "next_throughput_at": self.next_run("throughput"),
            "state": "paused (budget)" if "pages" in self.paused else self.state,
            "last_error": self.store.last_error,
            "max_bytes_per_day": self.settings.max_bytes_per_day,
            "max_bytes_per_month": self.settings.max_bytes_per_month,
        }
        try:
            self.store.save_daemon(row)
        except sqlite3.DatabaseError as exc:
            if time.monotonic() - self.last_beat_error > 60:
                log.error(_("%s: cannot write the heartbeat (%s)"), self.store.path, exc)
                self.last_beat_error = time.monotonic()

    async def heartbeat(self) -> None:
        # A coroutine, so APScheduler runs it on the loop's thread, where the database lives.
        self.beat(write=False)

    def reload(self) -> None:
        try:
            settings = resolve(self.flags, config=self.config)
            setup = prepare(settings)
        except InputError as exc:
            log.error(_("reload rejected, keeping the old settings: %s"), _said(exc))
            return
        if settings.db != self.settings.db:
            log.warning(
                _("reload: a new database needs a restart; still using %s"), self.store.path
            )
            settings = replace(settings, db=self.settings.db)
            setup = replace(setup, settings=settings)
        self.settings, self.setup = settings, setup
        self._sync_throughput_job()
        n, c = len(setup.targets.targets), len(setup.targets.controls)
        log.info(
            _("reloaded: %s, %s, rounds every %.0f s on average"),
            ngettext("{n} target", "{n} targets", n).format(n=n),
            ngettext("{n} control", "{n} controls", c).format(n=c),
            self.page_mean(),
        )
        self.beat()

    def _sync_throughput_job(self, first: datetime | None = None) -> None:
        has = self.sched.get_job("throughput") is not None
        if self.wants_throughput() and not has:
            now = datetime.now(UTC)
            self.sched.add_job(
                self.job,
                schedule.RandomGapTrigger(self.throughput_mean, self.rng),
                args=["throughput"],
                id="throughput",
                next_run_time=first or now + timedelta(seconds=self.page_mean() * schedule.FLOOR),
            )
        elif has and not self.wants_throughput():
            self.sched.remove_job("throughput")

    async def upload_job(self) -> None:
        """Uploads to the collective (issue 23), on their own schedule, in a thread with a
        connection of its own, so rounds go on meanwhile; a failure waits for the next run."""
        from probe.fleet import upload as fleet_upload

        try:
            r = await asyncio.to_thread(
                fleet_upload.run, self.settings, caps=self.caps(), stop=self.upload_stop
            )
        except asyncio.CancelledError:
            if not self.stopping.is_set():
                raise
            return  # the stop: the exit cancels the wait; a batch not acknowledged waits
        except (ProbeError, sqlite3.DatabaseError) as exc:
            log.error(_("upload: %s"), _said(exc))
            return
        if r is not None:
            log.info(
                _("upload: %d batches sent (%d measurements, %d bytes), %d waiting%s"),
                r.sent,
                r.measurements,
                r.bytes,
                r.waiting,
                f" ({r.failure or r.budget})" if r.failure or r.budget else "",
            )

    def stop(self, signame: str) -> None:
        self.upload_stop.set()
        if self.stopping.is_set():
            return
        log.info(_("%s: stopping"), signame)
        sd_notify("STOPPING=1")
        self.stopping.set()
        if self.current is not None:
            self.current.cancel()

    async def main(self) -> int:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop, sig.name)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        saved = self.store.daemon() or {}
        now = datetime.now(UTC)
        self.sched = AsyncIOScheduler(
            timezone=UTC,
            job_defaults=schedule.JOB_DEFAULTS,
        )
        self.sched.add_job(
            self.job,
            schedule.RandomGapTrigger(self.page_mean, self.rng),
            args=["pages"],
            id="pages",
            next_run_time=self._first_run(saved.get("next_pages_at"), now),
        )
        tp_first = self._first_run(saved.get("next_throughput_at"), now)
        self._sync_throughput_job(tp_first if saved.get("next_throughput_at") else None)
        if self.settings.upload_url:
            self.sched.add_job(
                self.upload_job,
                schedule.RandomGapTrigger(lambda: self.settings.upload_interval, self.rng),
                id="upload",
                next_run_time=now,
            )
        period = min(HEARTBEAT, watchdog_period() or HEARTBEAT)
        self.sched.add_job(self.heartbeat, "interval", seconds=period, id="heartbeat")
        self.sched.start()
        self.state = "idle"
        self.beat()
        sd_notify(f"READY=1\nSTATUS=measuring {len(self.setup.targets.targets)} targets")
        n, c = len(self.setup.targets.targets), len(self.setup.targets.controls)
        log.info(
            _("daemon started (PID %d): %s, %s, %s, rounds every %.0f s on average%s"),
            os.getpid(),
            self.store.path,
            ngettext("{n} target", "{n} targets", n).format(n=n),
            ngettext("{n} control", "{n} controls", c).format(n=c),
            self.page_mean(),
            _(", throughput tests") if self.wants_throughput() else "",
        )
        await self.stopping.wait()
        self.sched.shutdown(wait=False)
        # A cancelled round: its finished measurements are stored, the one in flight is not.
        async with self.round_lock:
            pass
        try:
            mine = os.getpid()
            self.store.close_unfinished_rounds(lambda pid: pid != mine, "stopped by a signal")
            self.store.flush()
            self.beat()
            self.store.save_daemon({"stopped_at": utc_now(), "state": "stopped"})
        except sqlite3.DatabaseError as exc:
            log.error(_("%s: cannot record the stop (%s)"), self.store.path, exc)
        if self.store.pending:
            lost = len(self.store.pending)
            log.error(
                ngettext(
                    "{n} measurement could not be written and is lost",
                    "{n} measurements could not be written and are lost",
                    lost,
                ).format(n=lost)
            )
        log.info(_("stopped"))
        return 0


def run(
    flags: Mapping[str, Any],
    config: str | None,
    *,
    rng: random.Random | None = None,
    lang: str = "en",
) -> int:
    """The daemon's whole life; the exit status. Its log speaks ``lang``."""
    global _tr, _lang
    _tr, _lang = translator(lang), lang
    settings = resolve(flags, config=config)
    setup_logging(settings.log_format)
    setup = prepare(settings)
    from probe.fleet.upload import plan as upload_plan

    upload_plan(settings)  # a half-made upload setup is bad input, before anything is written
    lock = DaemonLock(settings.db).acquire()
    try:
        store = Store.open(settings.db)
        closed = store.close_unfinished_rounds(pid_alive, "left open by a crash or a kill")
        if closed:
            log.warning(
                ngettext(
                    "{n} unfinished round closed and marked interrupted",
                    "{n} unfinished rounds closed and marked interrupted",
                    closed,
                ).format(n=closed)
            )
        return asyncio.run(Daemon(flags, config, settings, setup, store, rng=rng).main())
    finally:
        lock.release()
