"""The report's data model: what :func:`collect` keeps of the selected measurements.

Contract: :func:`collect` reads the selected measurements once, oldest first, as the store's
typed records (:class:`probe.store.Stored`: no schema of its own to drift), and keeps only
aggregates (memory bounded by targets x time bins, answer changes and kinds of anomaly, not by
measurements): the verdict timeline per target, verdict counts per category and per network,
the first and last measurement, the throughput ratios and throttling events
(:func:`probe.classify.events.find_events`), each target's DNS answers when they changed, and
every anomaly grouped by target, network, verdict, failing step, failure, rule and rules
version, with its count, first and last time and measurement ids, and its evidence in plain
words (:mod:`probe.analyst.report.evidence`). Nothing here draws or writes: the HTML
(:mod:`probe.analyst.report.html`) and the plots (:mod:`probe.analyst.report.plots`) read a
:class:`ReportData`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from probe import words as V
from probe.analyst.export.records import stored_words
from probe.analyst.report.evidence import explain
from probe.classify.attribution import attribute
from probe.classify.events import Event, find_events
from probe.store import RowFilter, Store, Stored
from probe.timeutil import parse_iso

BINS = 150  # the timeline's resolution: at most this many columns
_STEPS_S = [3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400, 30 * 86400]


@dataclass(slots=True)
class Anomaly:
    target: str
    network: str
    verdict: str
    count: int
    first_at: str
    last_at: str
    first_id: str
    last_id: str
    evidence: list[str]


@dataclass(slots=True)
class ReportData:
    lang: str = "en"
    first: str | None = None
    last: str | None = None
    measurements: int = 0
    controls: int = 0
    t0: datetime = field(default_factory=lambda: parse_iso("2000-01-01"))
    bin_seconds: int = 3600
    timeline: dict[str, dict[int, Counter[str]]] = field(default_factory=dict)
    by_category: dict[str, Counter[str]] = field(default_factory=dict)
    by_network: dict[str, Counter[str]] = field(default_factory=dict)
    throughput: dict[str, list[tuple[datetime, str, float]]] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    causes: list[Event] = field(default_factory=list)  # attributed slowdowns (issue 25)
    dns: dict[str, list[tuple[datetime, str, bool | None]]] = field(default_factory=dict)
    anomalies: dict[tuple[Any, ...], Anomaly] = field(default_factory=dict)


def _bin_seconds(first: str, last: str) -> int:
    span = (parse_iso(last) - parse_iso(first)).total_seconds()
    return next((s for s in _STEPS_S if span / s <= BINS), _STEPS_S[-1])


def collect(store: Store, f: RowFilter, lang: str = "en") -> ReportData:
    first, last, count = store.span(f)
    data = ReportData(lang=lang, first=first, last=last)
    if not count or first is None or last is None:
        return data
    data.bin_seconds = _bin_seconds(first, last)
    start = parse_iso(first)
    data.t0 = start.replace(minute=0, second=0, microsecond=0)
    if data.bin_seconds >= 86400:
        data.t0 = data.t0.replace(hour=0)
    last_answer: dict[str, str] = {}
    for m in store.stored(f):
        if m.is_control:
            data.controls += 1
            continue
        data.measurements += 1
        v, target, at = m.verdict, m.target, parse_iso(m.started_at)
        word = stored_words(m)
        b = int((at - data.t0).total_seconds() // data.bin_seconds)
        data.timeline.setdefault(target, {}).setdefault(b, Counter())[word] += 1
        data.by_category.setdefault(m.category or "-", Counter())[word] += 1
        data.by_network.setdefault(m.network, Counter())[word] += 1
        _dns(data, last_answer, f"{target} ({m.network})", at, m)
        analysis = m.throughput.analysis if m.throughput is not None else None
        if analysis is not None and analysis.ratio is not None:  # None: the test was skipped
            data.throughput.setdefault(target, []).append((at, m.network, analysis.ratio))
        if V.is_anomaly(word):
            key = (
                target,
                m.network,
                word,
                v.failing_step,
                v.failure,
                v.rule_id,
                v.rules_version,
                v.blockpage,
            )
            group = data.anomalies.get(key)
            if group is None:
                data.anomalies[key] = Anomaly(
                    target,
                    m.network,
                    word,
                    1,
                    m.started_at,
                    m.started_at,
                    m.id,
                    m.id,
                    explain(m, lang),
                )
            else:
                group.count += 1
                group.last_at, group.last_id = m.started_at, m.id
    targets = [t for t in data.throughput]
    if targets:
        lo, hi = f.since or "", f.until or "\uffff"
        tests = [t for t in store.throughput_tests(targets) if lo <= t.at < hi]
        data.events = find_events(tests)
    # Every target of the period is a control for the others; only the selected are told.
    lo, hi = f.since or "", f.until or "\uffff"
    edge_tests = [t for t in store.edge_tests() if lo <= t.at < hi]
    data.causes = [e for e in attribute(edge_tests) if e.target in data.timeline]
    return data


def _dns(
    data: ReportData, last_answer: dict[str, str], target: str, at: datetime, m: Stored
) -> None:
    """Record the resolver's answer for ``target`` (a target on one network) when it differs
    from the last one."""
    system = [q for q in m.observations.dns if q.resolver == "system" and q.depth == 0]
    if not system:
        return
    addrs = sorted({a.value for q in system for a in q.answers if a.type in ("A", "AAAA")})
    failure = next((q.failure for q in system if q.failure), None)
    answer = ", ".join(addrs) if addrs else (failure or "no answer")
    if last_answer.get(target) == answer:
        return
    last_answer[target] = answer
    consistent = {"consistent": True, "inconsistent": False}.get(m.verdict.dns_consistency or "")
    data.dns.setdefault(target, []).append((at, answer, consistent))
