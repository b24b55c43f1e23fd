"""One round: measure the controls, then every target, classify each, hand each on whole.

Contract: :func:`run_round` measures the control sites first (they decide whether the
volunteer's own link works: when none loads, the round is offline and no target gets a
blocking verdict), then the targets with bounded concurrency, then (with ``throughput``) each
target's throughput test, one at a time (:mod:`probe.round.throughput`). Each measurement is
classified and handed to ``on_measurement`` as soon as it completes, so a killed round keeps
everything finished before the kill. Network failures never raise; an exception from the
probe's own code while measuring one target becomes that target's recorded ``unknown_failure``
(:func:`probe.round.target.internal_error`), never the round's end. Targets are taken from
their list by a fixed pool of ``concurrency`` workers and the :class:`RoundResult` keeps counts
and a bounded set of rows, so a round's memory does not grow with its targets. Nothing here
writes to a store: :mod:`probe.round.record` does.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from probe import words as verdict_words
from probe.classify import classify
from probe.classify.fingerprints import FingerprintSet
from probe.config.targets import Target
from probe.measure import quic, whoami
from probe.measure.config import MeasureConfig
from probe.measure.helper_client import HelperClient
from probe.measure.net import Shared
from probe.measure.objects import from_page
from probe.measure.whoami import PublicAddress, whoami_query
from probe.model import Measurement, Network, Observations
from probe.network import resolver_kind
from probe.privacy import Recogniser, Scrubber
from probe.round.target import internal_error, is_internal_error, measure_target
from probe.round.throughput import Pending, ThroughputOptions, control_object, run_tests
from probe.timeutil import utc_now
from probe.words import translator

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
    anomalies: int = 0  # targets with an anomaly (is_anomaly)
    verdicts: Counter[tuple[Any, Any]] = field(default_factory=Counter)  # (blocking, accessible)
    rows: list[Measurement] = field(default_factory=list)  # controls and blocked ones kept first
    internal_errors: int = 0  # targets whose measuring failed in the probe's own code
    bytes_used: int = 0
    # How the volunteer's public address was known ("stun", "dns", "helper"); () when no method
    # answered and address literals were masked conservatively (probe.privacy). Never the address.
    address_known_by: tuple[str, ...] = ()

    def add(self, m: Measurement) -> None:
        self.count += 1
        self.anomalies += is_anomaly(m)
        self.bytes_used += m.bytes_used
        self.verdicts[(m.verdict.blocking, m.verdict.accessible)] += 1
        row = _light(m)
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
        row = _light(after)
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
    """A target (not a control) with an anomaly (:func:`probe.words.is_anomalous`, the store's
    ANOMALY)."""
    return not m.is_control and verdict_words.is_anomalous(m.verdict)


async def learn_public_address(shared: Shared) -> PublicAddress:
    """The volunteer's public address from the STUN servers and, where its operator offers
    one, the control resolver's "what is my address" (probe.measure.whoami), within the step
    timeout (at most 5 s)."""
    cfg = shared.cfg
    spec = cfg.control_resolver
    query = whoami_query(resolver_kind(spec.host)[1]) if spec is not None else None
    return await whoami.learn(
        cfg.stun_servers,
        resolver=spec,
        query=query,
        client=shared.doh,
        tls=shared.dot,
        timeout=min(cfg.timeout, 5.0),
    )


def _notable(m: Measurement) -> bool:
    return m.is_control or m.verdict.accessible is not True or m.verdict.throttled is True


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
    workers = max(1, concurrency)
    tp_targets = {t.name for t in targets} if throughput is not None else set()
    held: list[Pending] = []
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
            m = internal_error(t, exc, shared, round_id=result.id, device_id=device_id)
            result.internal_errors += 1
        m = stamp(m)
        if t.is_control:
            measured_controls[t.name] = m  # stored once the round knows whether the link works
            return
        finish(m)
        if t.name in tp_targets and network_ok is not False and not is_internal_error(m):
            found = None if t.throughput_url else from_page(m.observations, t.url)
            held.append(Pending(t, _light(m), found, quic.working_endpoint(m.observations)))

    try:
        public = await learn_public_address(shared)
        result.address_known_by = public.methods + (("helper",) if recognisers else ())
        scrubber = Scrubber(
            shared.local_addresses, recognisers, conservative=not result.address_known_by
        )
        for address in public.addresses:  # memory only: the scrubber's, for this round
            scrubber.learn(address)
        await _pool(controls, workers, lambda c: one(c, None))
        done = [measured_controls[c.name] for c in controls if c.name in measured_controls]
        if done:
            # Any control that loaded a page proves the link works.
            result.network_ok = any(_system_ok(m) for m in done)
            if not result.network_ok:
                result.offline_reason = offline_reason(done)
        tp_control = None
        if throughput is not None and result.network_ok is not False and targets:
            tp_control, done = await control_object(shared, controls, done, throughput, scrubber)
        for m in done:
            # Judged again now that the round's state is known: an offline round's controls
            # are offline too (the classifier is pure, so this costs nothing).
            verdict = m.verdict
            if not is_internal_error(m):
                verdict = classify(
                    m.observations,
                    control=m.control,
                    fingerprints=fingerprints,
                    network_ok=result.network_ok,
                )
            finish(replace(m, verdict=verdict, network_ok=result.network_ok))
        await _pool(targets, workers, lambda t: one(t, result.network_ok))
        if throughput is not None:
            result.internal_errors += await run_tests(
                shared, held, tp_control, throughput, scrubber, on_tested=result.update
            )
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


def offline_reason(controls: Sequence[Measurement], *, lang: str = "en") -> str:
    """One line, in ``lang``: why the round is offline, and what the volunteer can check."""
    tr = translator(lang)
    no_page = tr.gettext("no page")
    how = ", ".join(
        f"{m.target}: {m.verdict.failure or no_page}" for m in sorted(controls, key=_name)
    )
    n = len(controls)
    return tr.ngettext(
        "offline: the control did not load ({how}); no target was judged. Check that this "
        "machine is online and that its resolver answers.",
        "offline: none of the {n} controls loaded ({how}); no target was judged. Check that "
        "this machine is online and that its resolver answers.",
        n,
    ).format(n=n, how=how)


def _name(m: Measurement) -> str:
    return m.target


def _system_ok(m: Measurement) -> bool:
    system = [h for h in m.observations.http if h.role == "system"]
    return bool(system) and system[-1].failure is None
