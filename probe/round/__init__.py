"""One round: measure the controls, then every target, classify each, store each whole.

Contract: ``prepare(settings)`` turns the settings into everything a round needs (targets,
resolvers, fingerprints, helper, throughput plan and data cap), raising an
:class:`~probe.errors.InputError` for anything unusable before a byte is written; ``run_once``
runs one round from it and records it in the store's ``rounds`` table (a row at the start, so a
round cut short is visible, completed at the end). ``run_round`` measures the control sites
first (they decide whether the volunteer's own link works: when none loads, the round is offline
and no target gets a blocking verdict), then the targets with bounded concurrency. Each
measurement is classified and handed to ``on_measurement`` (the store writes it in one
transaction) as soon as it completes, so a killed round keeps everything finished before the
kill. Network failures never raise; an exception from the probe's own code while measuring one
target becomes that target's recorded ``unknown_failure`` (no blocking verdict, the traceback
logged), never the round's end, unless PROBE_STRICT=1 (the tests) asks for it to surface.
Targets are taken from their list by a fixed pool of ``concurrency`` workers and the result
keeps counts and a bounded set of rows, so a round's memory does not grow with its targets.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from probe import __version__, addr, failures
from probe.classify import classify
from probe.classify.fingerprints import FingerprintSet, builtin
from probe.classify.fingerprints import load as load_fingerprint_file
from probe.classify.throughput import analyse, looks_slow
from probe.config.settings import Settings
from probe.config.targets import Target, TargetList, read_targets
from probe.errors import InputError
from probe.measure.discover import MemoryCache, ObjectCache, ObjectResult, object_for
from probe.measure.dns import parse_resolver, system_resolver
from probe.measure.helper_client import HelperClient
from probe.measure.net import ByteCounter, MeasureConfig, Shared, make_ssl_context
from probe.measure.objects import Found, from_page
from probe.measure.runner import TargetMeasurer
from probe.measure.throughput import Download, HelperBulk, run_test
from probe.model import (
    ControlEvidence,
    Measurement,
    Network,
    ObjectChoice,
    Observations,
    Plan,
    ThroughputObject,
    ThroughputRecord,
)
from probe.network import resolver_kind
from probe.privacy import Recogniser, Scrubber
from probe.store.rows import RoundRecord
from probe.timeutil import day_start, iso, month_start, utc_now

if TYPE_CHECKING:
    from probe.store import Store

SOFTWARE = f"probe/{__version__}"
log = logging.getLogger(__name__)


def new_measurement_id(started: datetime | None = None) -> str:
    """Stable, globally unique, time-ordered: ``YYYYMMDDTHHMMSSZ_<uuid4 hex>``."""
    t = started or datetime.now(UTC)
    return f"{t.strftime('%Y%m%dT%H%M%SZ')}_{uuid.uuid4().hex}"


SUMMARY_ROWS = 100  # rows a round keeps for its summary, whatever its number of targets


@dataclass(slots=True)
class RoundResult:
    """What a round keeps for its summary: counts, and at most SUMMARY_ROWS verdict rows
    (measurements without observations), so a round's memory does not grow with its targets."""

    id: str
    started_at: str
    finished_at: str = ""
    network_ok: bool | None = None
    offline_reason: str | None = None  # one line, when no control loaded
    count: int = 0  # measurements finished (and handed to on_measurement)
    anomalies: int = 0  # targets blocked or throttled (is_anomaly)
    verdicts: Counter[tuple[Any, Any]] = field(default_factory=Counter)  # (blocking, accessible)
    rows: list[Measurement] = field(default_factory=list)  # controls and blocked ones kept first
    internal_errors: int = 0  # targets whose measuring failed in the probe's own code
    bytes_used: int = 0

    def add(self, m: Measurement) -> None:
        self.count += 1
        self.anomalies += is_anomaly(m)
        self.bytes_used += m.bytes_used
        self.verdicts[(m.verdict.blocking, m.verdict.accessible)] += 1
        row = replace(m, observations=Observations(m.url), control=None, throughput=None)
        if len(self.rows) < SUMMARY_ROWS:
            self.rows.append(row)
        elif _notable(m):  # make room: an accessible target's row goes
            for i, r in enumerate(self.rows):
                if not _notable(r):
                    self.rows[i] = row
                    break

    def update(self, before: Measurement, after: Measurement) -> None:
        """A finished measurement again, with its throughput test added: bytes, anomalies and
        its summary row follow (a throttled target becomes notable)."""
        self.bytes_used += after.bytes_used - before.bytes_used
        self.anomalies += is_anomaly(after) - is_anomaly(before)
        row = replace(after, observations=Observations(after.url), control=None, throughput=None)
        for i, r in enumerate(self.rows):
            if r.id == after.id:
                self.rows[i] = row
                return
        if _notable(after):
            for i, r in enumerate(self.rows):
                if not _notable(r):
                    self.rows[i] = row
                    return


def is_anomaly(m: Measurement) -> bool:
    """A target blocked or throttled (the store's ANOMALY, for one measurement)."""
    v = m.verdict
    return (not m.is_control) and (
        (v.blocking is not None and v.blocking is not False) or v.throttled is True
    )


def _notable(m: Measurement) -> bool:
    return m.is_control or m.verdict.accessible is not True or m.verdict.throttled is True


def _endpoints(url: str, addrs: list[str]) -> list[str]:
    """What the helper should also try: every address we were given, on the URL's port."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return [addr.endpoint(a, port) for a in addrs]


async def measure_target(
    shared: Shared,
    helper: HelperClient | None,
    target: Target,
    *,
    round_id: str,
    device_id: str | None,
    fingerprints: FingerprintSet,
    network_ok: bool | None,
    scrubber: Scrubber,
) -> Measurement:
    """One target, measured, scrubbed of the volunteer's addresses and classified: the
    measurement as it will be stored."""
    started = datetime.now(UTC)
    measurer = TargetMeasurer(shared, target.url)
    task = asyncio.create_task(measurer.run())
    control: ControlEvidence | None = None
    if helper is not None:
        # Ask the helper as soon as our own DNS answers are known, while we go on measuring.
        await measurer.first_hop_ready.wait()
        system, ctl = measurer.first_hop
        control = await helper.query(target.url, _endpoints(target.url, [*system, *ctl]))
    obs, used, runtime = await task
    # The one place the volunteer's addresses leave: before classifying, so the verdict read
    # back from the database (probe reclassify) is the verdict made now.
    obs = scrubber.observations(obs)
    if control is not None:
        control = scrubber.struct(control)
    verdict = classify(obs, control=control, fingerprints=fingerprints, network_ok=network_ok)
    return Measurement(
        id=new_measurement_id(started),
        target=target.name,
        url=target.url,
        started_at=iso(started),
        observations=obs,
        verdict=verdict,
        runtime=round(runtime, 4),
        round_id=round_id,
        device_id=device_id,
        category=target.category,
        is_control=target.is_control,
        resolver=scrubber.text(shared.cfg.resolver.address),
        control_resolver=(
            shared.cfg.control_resolver.address if shared.cfg.control_resolver else None
        ),
        network_ok=network_ok,
        control=control,
        bytes_used=used,
        software=SOFTWARE,
    )


@dataclass(frozen=True, slots=True)
class ThroughputOptions:
    """Throughput tests: the plan per test, the daily data cap, the helper's bulk endpoint,
    where discovered objects are kept (``objects``), when each target was last tested (the
    least recently tested go first, so a daily cap that stops a round rotates through the list
    over the days), and ``on_result``, which gets each page measurement again with its test
    (the page itself was handed to ``on_measurement`` as soon as it was measured)."""

    plan: Plan
    max_bytes_per_day: int | None = None
    bytes_used_today: Callable[[], int] = lambda: 0
    bulk: HelperBulk | None = None
    max_bytes_per_month: int | None = None
    bytes_used_month: Callable[[], int] = lambda: 0
    objects: ObjectCache = field(default_factory=lambda: MemoryCache({}))
    last_tested: Callable[[], dict[str, str]] = dict
    on_result: Callable[[Measurement], None] = lambda m: None


@dataclass(frozen=True, slots=True)
class _Pending:
    """A target waiting for its throughput test: its stored page (observations dropped) and
    what the page offers (the candidates only: the round stays small)."""

    target: Target
    measurement: Measurement
    found: Found | None


@dataclass(frozen=True, slots=True)
class _ScrubbedCache:
    """Choices scrubbed on their way into the store, as everything else is: a size check's
    Content-Type, like any header, is a server's text."""

    inner: ObjectCache
    scrubber: Scrubber

    def get(self, target: str) -> ObjectChoice | None:
        return self.inner.get(target)

    def put(self, choice: ObjectChoice) -> None:
        self.inner.put(self.scrubber.struct(choice))


async def _object(
    shared: Shared,
    t: Target,
    found: Found | None,
    opts: ThroughputOptions,
    counter: ByteCounter,
    scrubber: Scrubber,
) -> ObjectResult:
    return await object_for(
        shared,
        name=t.name,
        site_url=t.url,
        pinned=t.throughput_url,
        found=found,
        plan=opts.plan,
        cache=_ScrubbedCache(opts.objects, scrubber),
        counter=counter,
        now=datetime.now(UTC),
    )


async def _throughput(
    shared: Shared,
    p: _Pending,
    control: tuple[Target, ThroughputObject] | None,
    opts: ThroughputOptions,
    tests_in_round: int,
    scrubber: Scrubber,
) -> Measurement:
    """Add a throughput test to a stored page measurement (tests run one at a time): on the
    target's object against the control's, and the SNI A/B with a helper; the A/B alone when
    the site offers no object."""
    m, target = p.measurement, p.target
    cap, month_cap = opts.max_bytes_per_day, opts.max_bytes_per_month
    if (cap is not None and opts.bytes_used_today() + opts.plan.worst_case_bytes > cap) or (
        month_cap is not None and opts.bytes_used_month() + opts.plan.worst_case_bytes > month_cap
    ):
        return replace(m, throughput=ThroughputRecord(skipped="data_cap"))
    counter = ByteCounter()
    found = await _object(shared, target, p.found, opts, counter, scrubber)
    obj = found.object
    t_dl = Download(obj.url, obj.repeat) if obj is not None else None
    c_dl = Download(control[1].url, control[1].repeat) if control is not None else None
    res = await run_test(
        shared,
        t_dl,
        c_dl,
        opts.plan,
        helper=opts.bulk,
        site_host=urlsplit(target.url).hostname,
        suspicious=looks_slow,
    )
    analysis = (
        None
        if res.skipped
        else analyse(res.flows, tests_in_round=tests_in_round, helper_speed=res.helper_speed)
    )
    trials = t_dl is not None and c_dl is not None
    used = res.bytes_used + counter.total
    test = ThroughputRecord(
        skipped=res.skipped,
        url=t_dl.url if trials and t_dl else None,
        control_url=c_dl.url if trials and c_dl else None,
        control=control[0].name if trials and control else None,
        plan=opts.plan,
        tests_in_round=tests_in_round,
        helper_speed=res.helper_speed,
        flows=tuple(res.flows),
        bytes_used=used,
        analysis=analysis,
        object=obj,
        control_object=control[1] if trials and control else None,
        discovery=found.why,
    )
    return replace(
        m,
        throughput=scrubber.struct(test),
        bytes_used=m.bytes_used + used,
        verdict=replace(m.verdict, throttled=None if analysis is None else analysis.throttled),
    )


async def _control_object(
    shared: Shared,
    controls: Sequence[Target],
    pages: Sequence[Measurement],
    opts: ThroughputOptions,
    scrubber: Scrubber,
) -> tuple[tuple[Target, ThroughputObject] | None, list[Measurement]]:
    """The round's control object: the first control (in the list's order) with a pinned or
    discovered one. Bytes its size checks used count on that control's own measurement."""
    out = list(pages)
    for i, (c, m) in enumerate(zip(controls, pages, strict=True)):
        counter = ByteCounter()
        found = from_page(m.observations, c.url) if not c.throughput_url else None
        r = await _object(shared, c, found, opts, counter, scrubber)
        out[i] = replace(m, bytes_used=m.bytes_used + counter.total)
        if r.object is not None:
            return (c, r.object), out
    return None, out


async def run_round(
    targets: Sequence[Target],
    controls: Sequence[Target],
    cfg: MeasureConfig,
    *,
    fingerprints: FingerprintSet,
    concurrency: int = 16,
    device_id: str | None = None,
    on_measurement: Callable[[Measurement], None] = lambda m: None,
    helper: HelperClient | None = None,
    throughput: ThroughputOptions | None = None,
    round_id: str | None = None,
    recognisers: Sequence[Recogniser] = (),
    network: Network | None = None,
) -> RoundResult:
    """One round; ``helper`` (a test helper client) adds a control vantage to every target;
    ``throughput`` adds a throttling test to every target (its pinned or discovered object, and
    the SNI A/B with a helper), run one at a time after every page was measured and stored, so
    they do not compete with each other or the pages. ``network`` (which network this is) and
    the resolver's kind are written on every measurement."""
    result = RoundResult(id=round_id or str(uuid.uuid4()), started_at=utc_now())
    shared = Shared.create(cfg)
    scrubber = Scrubber(shared.local_addresses, recognisers)
    workers = max(1, concurrency)
    tp_targets = {t.name for t in targets} if throughput is not None else set()
    held: list[_Pending] = []
    measured_controls: dict[str, Measurement] = {}
    where = network or Network()
    resolver_kind_, _ = resolver_kind(cfg.resolver.host)

    def stamp(m: Measurement) -> Measurement:
        return replace(
            m,
            probe_asn=where.asn,
            probe_cc=where.cc,
            network_name=where.name,
            resolver_kind=resolver_kind_,
        )

    def finish(m: Measurement) -> None:
        on_measurement(m)
        result.add(m)  # the verdict for the summary, not the observations

    async def one(t: Target, network_ok: bool | None) -> None:
        try:
            m = await measure_target(
                shared,
                helper,
                t,
                round_id=result.id,
                device_id=device_id,
                fingerprints=fingerprints,
                network_ok=network_ok,
                scrubber=scrubber,
            )
        except Exception as exc:  # the probe's own fault: this target's failure, not the round's
            m = _internal_error(t, exc, shared, round_id=result.id, device_id=device_id)
            result.internal_errors += 1
        m = stamp(m)
        if t.is_control:
            measured_controls[t.name] = m  # stored once the round knows whether the link works
            return
        finish(m)
        if t.name in tp_targets and network_ok is not False and not _is_internal_error(m):
            found = None if t.throughput_url else from_page(m.observations, t.url)
            held.append(_Pending(t, _light(m), found))

    try:
        await _pool(controls, workers, lambda c: one(c, None))
        done = [measured_controls[c.name] for c in controls if c.name in measured_controls]
        if done:
            # Any control that loaded a page proves the link works.
            result.network_ok = any(_system_ok(m) for m in done)
            if not result.network_ok:
                result.offline_reason = offline_reason(done)
        tp_control = None
        if throughput is not None and result.network_ok is not False and targets:
            tp_control, done = await _control_object(shared, controls, done, throughput, scrubber)
        for m in done:
            # Judged again now that the round's state is known: an offline round's controls
            # are offline too (the classifier is pure, so this costs nothing).
            verdict = m.verdict
            if not _is_internal_error(m):
                verdict = classify(
                    m.observations,
                    control=m.control,
                    fingerprints=fingerprints,
                    network_ok=result.network_ok,
                )
            finish(replace(m, verdict=verdict, network_ok=result.network_ok))
        await _pool(targets, workers, lambda t: one(t, result.network_ok))
        if throughput is not None:
            last = throughput.last_tested()
            held.sort(key=lambda p: last.get(p.target.name, ""))  # never tested, then oldest
            for p in held:
                try:
                    m = await _throughput(shared, p, tp_control, throughput, len(held), scrubber)
                except Exception as exc:
                    _log_internal_error(p.target, exc)
                    result.internal_errors += 1
                    m = replace(
                        p.measurement, throughput=ThroughputRecord(skipped="internal_error")
                    )
                throughput.on_result(m)
                result.update(p.measurement, m)
    finally:
        await shared.aclose()
        if helper is not None:
            await helper.aclose()
    result.finished_at = utc_now()
    return result


def _light(m: Measurement) -> Measurement:
    """A stored measurement as a round keeps it: the verdict and counts, not the evidence."""
    return replace(m, observations=Observations(m.url), control=None, throughput=None)


async def _pool(
    items: Iterable[Target], workers: int, work: Callable[[Target], Awaitable[None]]
) -> None:
    """Run ``work`` over ``items`` with ``workers`` at a time: a fixed set of tasks pulling from
    one iterator, so a round of 100,000 targets holds ``workers`` tasks, not 100,000 coroutines.
    The first exception that escapes ``work`` (a full disk, say) cancels the rest."""
    it = iter(items)

    async def worker() -> None:
        for item in it:  # next() runs between awaits: no two workers take the same item
            await work(item)

    try:
        async with asyncio.TaskGroup() as tg:
            for _ in range(workers):
                tg.create_task(worker())
    except BaseExceptionGroup as group:  # callers expect the error itself (a StoreError, say)
        raise group.exceptions[0] from None


STRICT_ENV = "PROBE_STRICT"  # "1": the per-target boundary re-raises (the test suite sets it)


def _log_internal_error(t: Target, exc: Exception) -> None:
    if os.environ.get(STRICT_ENV) == "1":
        raise exc
    log.error(
        "%s: internal error while measuring (%s: %s)", t.name, type(exc).__name__, exc, exc_info=exc
    )


def _internal_error(
    t: Target, exc: Exception, shared: Shared, *, round_id: str, device_id: str | None
) -> Measurement:
    """The recorded failure of a target whose measuring raised: no observations, no blocking
    verdict (a bug is never evidence), the failure text kept as ``unknown_failure: ...``."""
    _log_internal_error(t, exc)
    text = failures.UNKNOWN_PREFIX + failures.scrub(f"{type(exc).__name__}: {exc}")[:300]
    obs = Observations(t.url)
    verdict = replace(classify(obs), failure=text)
    return Measurement(
        id=new_measurement_id(),
        target=t.name,
        url=t.url,
        started_at=utc_now(),
        observations=obs,
        verdict=verdict,
        round_id=round_id,
        device_id=device_id,
        category=t.category,
        is_control=t.is_control,
        resolver=shared.cfg.resolver.address,
        software=SOFTWARE,
        extra={"internal_error": text},
    )


def _is_internal_error(m: Measurement) -> bool:
    return "internal_error" in m.extra


def offline_reason(controls: Sequence[Measurement]) -> str:
    """One line: why the round is offline, and what the volunteer can check."""
    how = ", ".join(
        f"{m.target}: {m.verdict.failure or 'no page'}" for m in sorted(controls, key=_name)
    )
    return (
        f"offline: none of the {len(controls)} controls loaded ({how}); no target was judged. "
        "Check that this machine is online and that its resolver answers."
    )


def _name(m: Measurement) -> str:
    return m.target


def _system_ok(m: Measurement) -> bool:
    system = [h for h in m.observations.http if h.role == "system"]
    return bool(system) and system[-1].failure is None


# -- from settings to a stored round ------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RoundSetup:
    """Everything a round needs, resolved and checked from the settings."""

    settings: Settings
    targets: TargetList
    cfg: MeasureConfig
    fingerprints: FingerprintSet
    helper_token: str | None
    plan: Plan | None  # None: no throughput tests


def read_token(path: str) -> str:
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the token ({exc})") from None
    if not token or any(c.isspace() for c in token):
        raise InputError(f"{path}: the token must be one word")
    return token


def load_fingerprints(paths: Sequence[str]) -> FingerprintSet:
    fps = builtin()
    for p in paths:
        fps = fps + load_fingerprint_file(p)
    return fps


def throughput_plan(settings: Settings) -> Plan | None:
    """The profile's plan with the settings' overrides; None when throughput is off."""
    if not settings.throughput:
        return None
    plan = Plan.profile(settings.profile)
    if settings.throughput_bytes:
        n = settings.throughput_bytes
        plan = replace(plan, max_bytes=n, ab_bytes=n)
    if settings.throughput_seconds:
        plan = replace(
            plan,
            max_seconds=settings.throughput_seconds,
            ab_seconds=min(plan.ab_seconds, settings.throughput_seconds),
        )
    if settings.throughput_trials:
        plan = replace(plan, trials=settings.throughput_trials)
    return plan


def setting_source(settings: Settings, name: str) -> str:
    """Where a setting came from, as a user would name it: ``--ca-bundle``, ``PROBE_CA_BUNDLE``
    or ``FILE: ca_bundle``."""
    src = settings.sources.get(name, "")
    for prefix in ("flag ", "environment "):
        if src.startswith(prefix):
            return src.removeprefix(prefix)
    return f"{src.removeprefix('file ')}: {name}" if src.startswith("file ") else name


def check_ca_bundle(settings: Settings) -> None:
    """The extra trust anchors load as PEM certificates, or InputError naming the setting."""
    if not settings.ca_bundle:
        return
    where = f"{setting_source(settings, 'ca_bundle')} {settings.ca_bundle}"
    try:
        make_ssl_context(settings.ca_bundle)
    except (ssl.SSLError, ValueError) as exc:  # SSLError first: it is an OSError too
        reason = getattr(exc, "reason", None) or exc
        raise InputError(f"{where}: not a PEM file of certificates ({reason})") from None
    except OSError as exc:
        raise InputError(f"{where}: cannot read ({exc.strerror or exc})") from None


def prepare(settings: Settings) -> RoundSetup:
    """Check and load what the settings name; raises InputError, never half-way."""
    check_ca_bundle(settings)
    tl = read_targets(settings.targets)  # broken entries: tl.problems, for the caller to report
    if settings.only:
        tl = tl.select(settings.only)
    spec = parse_resolver(settings.resolver) if settings.resolver else system_resolver()
    control = parse_resolver(settings.control_resolver, what="control_resolver")
    cfg = MeasureConfig(
        resolver=spec,
        control_resolver=control,
        ca_bundle=settings.ca_bundle,
        timeout=settings.timeout,
        deadline=settings.deadline,
        allow_loopback=settings.allow_loopback,
    )
    if settings.max_body:
        cfg = replace(cfg, body_cap=settings.max_body)
    token = read_token(settings.helper_token_file) if settings.helper_token_file else None
    return RoundSetup(
        settings,
        tl,
        cfg,
        load_fingerprints(settings.fingerprints),
        token,
        throughput_plan(settings),
    )


async def run_once(
    setup: RoundSetup,
    store: Store,
    *,
    on_measurement: Callable[[Measurement], None] = lambda m: None,
    throughput: bool = True,
    kind: str = "run",
) -> RoundResult:
    """One round from ``setup``, every measurement stored whole as it completes, the round
    recorded in ``rounds`` (``kind``: run, pages or throughput; its ``status`` ok or offline;
    the writer's ``pid``, so a daemon closes only rounds whose writer died).
    ``throughput=False`` skips throughput tests this time."""
    s = setup.settings
    helper = (
        HelperClient(s.helper, token=setup.helper_token, ca_bundle=s.ca_bundle)
        if s.helper
        else None
    )
    tp = None
    if throughput and setup.plan is not None:
        now = datetime.now(UTC)
        today, month = day_start(now), month_start(now)
        bulk = helper.bulk(s.helper_bulk_addresses) if helper is not None else None
        tp = ThroughputOptions(
            setup.plan,
            s.max_bytes_per_day,
            lambda: store.bytes_used_since(today),
            bulk,
            s.max_bytes_per_month,
            lambda: store.bytes_used_since(month),
            objects=StoreObjects(store),
            last_tested=store.last_throughput,
            on_result=store.save_throughput,
        )
    network, recognisers = await learn_network(helper, s)
    round_id = str(uuid.uuid4())
    row = RoundRecord(
        id=round_id,
        device_id=store.device_id,
        started_at=utc_now(),
        targets=len(setup.targets.targets) + len(setup.targets.controls),
        software=SOFTWARE,
        kind=kind,
        pid=os.getpid(),
        probe_asn=network.asn,
        probe_cc=network.cc,
        network_name=network.name,
        network_source=network.source,
        resolver_kind=resolver_kind(setup.cfg.resolver.host)[0],
    )
    store.save_round(row)
    # A move (home Wi-Fi to mobile data, one ISP to another) starts a network's own history.
    before = store.last_network(before_round=round_id)
    known = before is not None and network.asn is not None
    if known and before is not None and (before.asn, before.cc) != (network.asn, network.cc):
        store.save_network_change(round_id, row.started_at, before, network)

    def save(m: Measurement) -> None:
        store.save(m)
        on_measurement(m)

    result = await run_round(
        setup.targets.targets,
        setup.targets.controls,
        setup.cfg,
        fingerprints=setup.fingerprints,
        concurrency=s.concurrency,
        device_id=store.device_id,
        on_measurement=save,
        helper=helper,
        throughput=tp,
        round_id=round_id,
        recognisers=recognisers,
        network=network,
    )
    result.started_at = row.started_at
    store.save_round(
        replace(
            row,
            finished_at=result.finished_at,
            targets=result.count,
            network_ok=result.network_ok,
            bytes_used=result.bytes_used,
            status="offline" if result.network_ok is False else "ok",
        )
    )
    return result


# -- throughput objects and networks (issue 12) -------------------------------------------------
@dataclass(frozen=True, slots=True)
class StoreObjects:
    """Discovered throughput objects kept in the store (``throughput_objects``)."""

    store: Store

    def get(self, target: str) -> ObjectChoice | None:
        return self.store.object_choice(target)

    def put(self, choice: ObjectChoice) -> None:
        self.store.save_object_choice(choice)


async def learn_network(
    helper: HelperClient | None, settings: Settings
) -> tuple[Network, list[Recogniser]]:
    """Which network this round is on: the helper's answer, else the ``asn``/``cc`` settings,
    else unknown; and the recogniser of our public address that the helper's answer gives (for
    the round's Scrubber), even when its table knows no network."""
    answer = await helper.network() if helper is not None else None
    recognisers = [answer.recognise] if answer is not None and answer.recognise else []
    if answer is not None and answer.network is not None:
        return answer.network, recognisers
    if settings.asn or settings.cc:
        return Network(settings.asn, settings.cc, None, "settings"), recognisers
    return Network(), recognisers


async def discover_objects(
    settings: Settings,
) -> list[tuple[str, ThroughputObject | None, str]]:
    """``probe targets discover``: each target's and control's page fetched as a round fetches
    it, and the object its throughput test would use (nothing stored): (name, object, why)."""
    setup = prepare(settings)
    plan = setup.plan or throughput_plan(replace(settings, throughput=True))
    assert plan is not None
    shared = Shared.create(setup.cfg)
    scrubber = Scrubber(shared.local_addresses)
    opts = ThroughputOptions(plan)
    sem = asyncio.Semaphore(max(1, settings.concurrency))

    async def one(t: Target) -> tuple[str, ThroughputObject | None, str]:
        async with sem:
            found = None
            if not t.throughput_url:
                obs, _, _ = await TargetMeasurer(shared, t.url).run()
                found = from_page(scrubber.observations(obs), t.url)
            r = await _object(shared, t, found, opts, ByteCounter(), scrubber)
            return t.name, r.object, r.why

    try:
        tl = setup.targets
        return list(await asyncio.gather(*(one(t) for t in (*tl.targets, *tl.controls))))
    finally:
        await shared.aclose()
