"""Throughput sequencing: after a round's pages, one throughput test per target, one at a time.

Contract: :func:`control_object` picks the round's control object (the first control, in the
list's order, with a pinned or discovered one); :func:`run_tests` then runs each held target's
test in turn, in the rotation's order (:func:`rotation_key`: least recently attempted first, a
skipped test being an attempt; so a cap that stops a round rotates through the list over the
days). The budget decides (:meth:`ThroughputOptions.over_budget`, which is
:func:`probe.round.budget.check`) before discovery's size checks, and again, for a test's worst
case, before a test that would move bytes: a step that would not fit is recorded
``skipped="data_cap"`` and the budget's reason logged. A target with nothing to test (no
object, or none for the control, and no helper: :data:`NOTHING_TO_TEST`) is recorded skipped
for that reason whatever the budget holds: it takes none of it. A test runs on the target's
object against the control's, with the SNI A/B when the helper offers bulk transfers (the A/B
alone when the site offers no object). Each finished
page measurement comes back through ``on_result`` with its test added, so the store keeps one
measurement whole. Objects are found (:func:`find_object`) through the measuring layer and the
choices are scrubbed before they are cached, as everything else is. A test that raises in the
probe's own code is recorded ``skipped="internal_error"``; the other tests go on.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from urllib.parse import urlsplit

from probe.classify import quic as quic_rules
from probe.classify.throughput import analyse, looks_slow
from probe.config.targets import Target
from probe.measure.discover import MemoryCache, ObjectCache, ObjectResult, object_for
from probe.measure.edge import (
    IPNetwork,
    Lookup,
    Where,
    edge_facts,
    no_lookup,
    served_class,
    target_edge,
)
from probe.measure.net import ByteCounter, Shared
from probe.measure.objects import Found, from_page
from probe.measure.throughput import Download, HelperBulk, run_test
from probe.model import (
    DISCOVERY_BYTES,
    Measurement,
    ObjectChoice,
    Plan,
    ThroughputObject,
    ThroughputRecord,
)
from probe.privacy import Scrubber
from probe.round.budget import Allowance, Usage
from probe.round.target import log_internal_error
from probe.store.reads import ThroughputAttempt

log = logging.getLogger(__name__)

# Skips for want of anything to test (run_test's): such a test moved no bytes beyond
# discovery's size checks, and will not while nothing changes (:mod:`probe.daemon.schedule`).
NOTHING_TO_TEST = frozenset({"no_object", "no_control_object", "no_address"})
_NEVER = ThroughputAttempt("", count=0)


def rotation_key(attempts: Mapping[str, ThroughputAttempt]) -> Callable[[str], tuple[str, int]]:
    """The rotation's order, as a sort key on a target's name: least recently attempted first
    (never first; a skipped test is an attempt, :meth:`probe.store.Store.throughput_attempts`),
    and among those last tried together the one with fewer attempts, so that no place in the
    list wins every tie. A stable sort keeps the list's order among equals."""

    def key(name: str) -> tuple[str, int]:
        a = attempts.get(name, _NEVER)
        return a.at, a.count

    return key


@dataclass(frozen=True, slots=True)
class ThroughputOptions:
    """Throughput tests: the plan per test; the ``allowance`` (caps and the pages' reserve),
    ``usage`` (the bytes used today and this month, read again before each test) and ``clock``
    that the budget decides by; the helper's bulk endpoint; where discovered objects are kept
    (``objects``); when each target was last attempted (the least recently attempted go first,
    so a daily cap that stops a round rotates through the list over the days); and ``on_result``,
    which gets each page measurement again with its test (the page itself was handed to
    ``on_measurement`` as soon as it was measured)."""

    plan: Plan
    allowance: Allowance = field(default_factory=Allowance)
    usage: Callable[[], Usage] = lambda: Usage(0, 0)
    bulk: HelperBulk | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    objects: ObjectCache = field(default_factory=lambda: MemoryCache({}))
    attempts: Callable[[], Mapping[str, ThroughputAttempt]] = dict
    on_result: Callable[[Measurement], None] = lambda m: None
    # Where each dialled address is served from (issue 25): its network, and the caches
    # known to be inside the volunteer's network.
    edge_lookup: Lookup = no_lookup
    cache_prefixes: tuple[IPNetwork, ...] = ()
    # The helper's table, asked about the addresses a test dialled that the local one does
    # not know (None: no helper).
    edge_networks: Callable[[Sequence[str]], Awaitable[Mapping[str, Where]]] | None = None

    def over_budget(self, need: float | None = None) -> str | None:
        """Why the next step must not start (the budget's one line), or None: ``need`` bytes
        (a test's worst case when not given) fit under the caps with the pages' reserve left."""
        need = self.plan.worst_case_bytes if need is None else need
        return self.allowance.check(self.usage(), need, self.clock())


# What an HTTP/3 flow may add to a trial beyond its body: the QUIC handshake (certificates),
# the HTTP/3 headers and the acknowledgements it sends.
H3_OVERHEAD = 64 * 1024


def h3_worst_case(plan: Plan) -> int:
    """The most the HTTP/3 flows of one test may add to :attr:`Plan.worst_case_bytes`."""
    return plan.trials * (plan.max_bytes + H3_OVERHEAD)


@dataclass(frozen=True, slots=True)
class Pending:
    """A target waiting for its throughput test: its stored page (observations dropped) and
    what the page offers (the candidates only: the round stays small)."""

    target: Target
    measurement: Measurement
    found: Found | None
    h3: tuple[str, int] | None = None  # (host, UDP port) where the page's HTTP/3 worked


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


async def find_object(
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


async def _lookup(opts: ThroughputOptions, addresses: Sequence[str]) -> Lookup:
    """The local table first (the volunteer's own choice), then the helper's for the rest."""
    local = opts.edge_lookup
    unknown = [a for a in dict.fromkeys(addresses) if local(a) is None]
    if not unknown or opts.edge_networks is None:
        return local
    remote = await opts.edge_networks(unknown)
    return lambda a: local(a) or remote.get(a)


async def _test(
    shared: Shared,
    p: Pending,
    control: tuple[Target, ThroughputObject] | None,
    opts: ThroughputOptions,
    tests_in_round: int,
    scrubber: Scrubber,
) -> Measurement:
    """Add a throughput test to a stored page measurement (tests run one at a time): on the
    target's object against the control's, and the SNI A/B with a helper; the A/B alone when
    the site offers no object."""
    m, target = p.measurement, p.target
    counter = ByteCounter()
    found = await find_object(shared, target, p.found, opts, counter, scrubber)
    obj = found.object
    t_dl = Download(obj.url, obj.repeat) if obj is not None else None
    c_dl = Download(control[1].url, control[1].repeat) if control is not None else None
    # The object over HTTP/3 too, beside TCP, when the page's HTTP/3 worked on its host.
    h3_port = (
        p.h3[1]
        if p.h3 is not None
        and shared.cfg.quic
        and t_dl is not None
        and c_dl is not None
        and urlsplit(t_dl.url).hostname == p.h3[0]
        and urlsplit(t_dl.url).scheme == "https"
        else None
    )
    # Nothing to test (no object, or none for the control, and no helper's A/B) moves no
    # bytes: it is recorded for what it is and takes no part of the budget.
    if (t_dl is not None and c_dl is not None) or opts.bulk is not None:
        extra = h3_worst_case(opts.plan) if h3_port is not None else 0
        why = opts.over_budget(opts.plan.worst_case_bytes + extra)
        if why is not None:
            log.info("%s: throughput test skipped (%s)", target.name, why)
            test = ThroughputRecord(
                skipped="data_cap", bytes_used=counter.total, object=obj, discovery=found.why
            )
            return replace(
                m, throughput=scrubber.struct(test), bytes_used=m.bytes_used + test.bytes_used
            )
    res = await run_test(
        shared,
        t_dl,
        c_dl,
        opts.plan,
        helper=opts.bulk,
        site_host=urlsplit(target.url).hostname,
        suspicious=looks_slow,
        h3_port=h3_port,
    )
    analysis = (
        None
        if res.skipped
        else analyse(res.flows, tests_in_round=tests_in_round, helper_speed=res.helper_speed)
    )
    trials = t_dl is not None and c_dl is not None
    used = res.bytes_used + counter.total
    edges = edge_facts(
        res.flows,
        lookup=await _lookup(opts, [f.ip for f in res.flows if f.ip]),
        own_asn=m.probe_asn,
        prefixes=opts.cache_prefixes,
    )
    served = served_class(target_edge(edges), m.probe_cc)
    target_class = target.target_class or served
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
        edges=edges,
        target_class=target_class,
        class_basis=("declared" if target.target_class else "served") if target_class else None,
    )
    quic_label, quic_rule = quic_rules.refine(
        m.verdict.quic, m.verdict.quic_rule, res.flows, tests_in_round
    )
    return replace(
        m,
        throughput=scrubber.struct(test),
        bytes_used=m.bytes_used + used,
        verdict=replace(
            m.verdict,
            throttled=None if analysis is None else analysis.throttled,
            quic=quic_label,
            quic_rule=quic_rule,
        ),
    )


async def control_object(
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
        r = await find_object(shared, c, found, opts, counter, scrubber)
        out[i] = replace(m, bytes_used=m.bytes_used + counter.total)
        if r.object is not None:
            return (c, r.object), out
    return None, out


async def run_tests(
    shared: Shared,
    pending: Sequence[Pending],
    control: tuple[Target, ThroughputObject] | None,
    opts: ThroughputOptions,
    scrubber: Scrubber,
    *,
    on_tested: Callable[[Measurement, Measurement], None],
) -> int:
    """Every pending target's test, least recently attempted (never first), one at a time:
    each measurement with its test goes to ``opts.on_result`` and to ``on_tested(before,
    after)``. The number of tests that failed in the probe's own code."""
    key = rotation_key(opts.attempts())
    errors = 0
    for p in sorted(pending, key=lambda p: key(p.target.name)):
        why = opts.over_budget(DISCOVERY_BYTES)  # discovery's size checks, first
        if why is not None:
            log.info("%s: throughput test skipped (%s)", p.target.name, why)
            m = replace(p.measurement, throughput=ThroughputRecord(skipped="data_cap"))
        else:
            try:
                m = await _test(shared, p, control, opts, len(pending), scrubber)
            except Exception as exc:  # the probe's own fault: this test's record, not the round's
                log_internal_error(p.target, exc)
                errors += 1
                m = replace(p.measurement, throughput=ThroughputRecord(skipped="internal_error"))
        opts.on_result(m)
        on_tested(p.measurement, m)
    return errors
