"""Throughput sequencing: after a round's pages, one throughput test per target, one at a time.

Contract: :func:`control_object` picks the round's control object (the first control, in the
list's order, with a pinned or discovered one); :func:`run_tests` then runs each held target's
test in turn, least recently tested first (so a cap that stops a round rotates through the list
over the days). Before each test the budget decides (:meth:`ThroughputOptions.over_budget`,
which is :func:`probe.round.budget.check`): a test that would not fit is recorded
``skipped="data_cap"`` and the budget's reason logged. A test runs on the target's object
against the control's, with the SNI A/B when the helper offers bulk transfers (the A/B alone
when the site offers no object). Each finished
page measurement comes back through ``on_result`` with its test added, so the store keeps one
measurement whole. Objects are found (:func:`find_object`) through the measuring layer and the
choices are scrubbed before they are cached, as everything else is. A test that raises in the
probe's own code is recorded ``skipped="internal_error"``; the other tests go on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from urllib.parse import urlsplit

from probe.classify.throughput import analyse, looks_slow
from probe.config.targets import Target
from probe.measure.discover import MemoryCache, ObjectCache, ObjectResult, object_for
from probe.measure.net import ByteCounter, Shared
from probe.measure.objects import Found, from_page
from probe.measure.throughput import Download, HelperBulk, run_test
from probe.model import (
    Measurement,
    ObjectChoice,
    Plan,
    ThroughputObject,
    ThroughputRecord,
)
from probe.privacy import Scrubber
from probe.round.budget import Allowance, Usage
from probe.round.target import log_internal_error

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ThroughputOptions:
    """Throughput tests: the plan per test; the ``allowance`` (caps and the pages' reserve),
    ``usage`` (the bytes used today and this month, read again before each test) and ``clock``
    that the budget decides by; the helper's bulk endpoint; where discovered objects are kept
    (``objects``); when each target was last tested (the least recently tested go first, so a
    daily cap that stops a round rotates through the list over the days); and ``on_result``,
    which gets each page measurement again with its test (the page itself was handed to
    ``on_measurement`` as soon as it was measured)."""

    plan: Plan
    allowance: Allowance = field(default_factory=Allowance)
    usage: Callable[[], Usage] = lambda: Usage(0, 0)
    bulk: HelperBulk | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    objects: ObjectCache = field(default_factory=lambda: MemoryCache({}))
    last_tested: Callable[[], dict[str, str]] = dict
    on_result: Callable[[Measurement], None] = lambda m: None

    def over_budget(self) -> str | None:
        """Why the next test must not start (the budget's one line), or None: its worst case
        fits under the caps with the pages' reserve left."""
        return self.allowance.check(self.usage(), self.plan.worst_case_bytes, self.clock())


@dataclass(frozen=True, slots=True)
class Pending:
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
    """Every pending target's test, least recently tested (never tested first), one at a time:
    each measurement with its test goes to ``opts.on_result`` and to ``on_tested(before,
    after)``. The number of tests that failed in the probe's own code."""
    last = opts.last_tested()
    errors = 0
    for p in sorted(pending, key=lambda p: last.get(p.target.name, "")):
        why = opts.over_budget()
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
