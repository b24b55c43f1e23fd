"""Why is it slow: each slowdown attributed to a cause, with its stated basis (issue 25). Pure.

Contract: :func:`attribute` takes every throughput test as :class:`EdgeTest` (a target's
download rate, its class, and the edge its object came from: network, inside the volunteer's
network or not, smoothed RTT) and returns one :class:`probe.classify.events.Event` per
*slowdown*: where a target's own download rate fell well below its own history (the events'
rule, :func:`probe.classify.events.find_events`, run on the rate rather than on the
target/control ratio, so a link that slows everything shows too: its ``ratios`` and
``baseline_ratio`` are therefore rates, in bit/s). Each event carries its
``cause``, the ``rule_id`` and :data:`RULES_VERSION`, the ``basis`` (an English message id, said
in the reader's language by :func:`probe.words.cause_sentence`) and the ``evidence``: before and
after (edge network, on-net, RTT, rate) and, per class of the other targets on the same
network, how many slowed at the same time.

The rules are ordered data (:data:`RULES`), the first that holds decides:

1. ``targeted``: the tests themselves showed IP or SNI throttling (the throughput classifier's
   ``sni_targeted`` / ``ip_targeted`` labels).
2. ``local_cache_removed``: a foreign site served from inside the volunteer's network moved out
   of it (its edge left the probe's AS or the cache prefixes), its RTT rose with it, and the
   other foreign sites kept their speed.
3. ``congestion``: domestic and foreign sites slowed together: the volunteer's own link.
4. ``international_degraded``: foreign origins slowed together while domestic sites kept theirs.
5. ``unknown``: none of these holds.

A target's class is the one it had before the slowdown (``class:`` in targets.yaml, else from
where it was served): a removed cache changes where the site is served from, not what it is.
"""

from __future__ import annotations

import bisect
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace

from probe.classify.events import Event, ThroughputTest, find_events
from probe.words import N_

RULES_VERSION = "attribution-1"
SLOW = 0.5  # a rate at most half its own baseline is slow
RTT_ROSE = 1.5  # and the RTT at least this much higher (and by RTT_ROSE_MS) for a move
RTT_ROSE_MS = 5.0
MIN_BASELINE = 3  # tests before the slowdown to judge another target by
TARGETED_LABELS = frozenset({"sni_targeted", "ip_targeted"})
FOREIGN = ("foreign_on_net", "foreign_origin")
CAUSES = ("targeted", "local_cache_removed", "congestion", "international_degraded", "unknown")


@dataclass(frozen=True, slots=True)
class EdgeTest:
    """One throughput test of a target, as attribution sees it."""

    target: str
    network: str  # the probe's network ("AS7552"), as the events' series
    at: str  # UTC ISO-8601
    bps: float | None  # the target's steady rate; None: no rate (the test did not finish)
    target_class: str | None = None
    edge_asn: str | None = None
    on_net: bool | None = None
    rtt_ms: float | None = None
    label: str | None = None  # the throughput classifier's label


@dataclass(frozen=True, slots=True)
class Side:
    """The target before or during a slowdown: medians and most common values."""

    tests: int
    bps: float | None
    rtt_ms: float | None
    edge_asn: str | None
    on_net: bool | None


@dataclass(frozen=True, slots=True)
class Tally:
    """Other targets of a class on the same network during the slowdown: how many slowed."""

    slow: int = 0
    judged: int = 0
    names: tuple[str, ...] = ()  # those that slowed

    @property
    def most_slow(self) -> bool:
        return self.judged > 0 and 2 * self.slow > self.judged

    @property
    def most_fine(self) -> bool:
        return self.judged > 0 and 2 * self.slow < self.judged


@dataclass(frozen=True, slots=True)
class Facts:
    target_class: str | None
    labels: tuple[str, ...]
    before: Side
    after: Side
    domestic: Tally  # the domestic targets, this one included when it is domestic
    foreign_others: Tally  # the other foreign targets (either foreign class)
    origins: Tally  # the foreign origins, this one included when it is one


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    cause: str
    why: str  # an English message id
    when: Callable[[Facts], bool]


def _targeted(f: Facts) -> bool:
    return bool(f.labels) and 2 * sum(x in TARGETED_LABELS for x in f.labels) > len(f.labels)


def _moved_out(f: Facts) -> bool:
    b, a = f.before, f.after
    rtt_rose = (
        b.rtt_ms is not None
        and a.rtt_ms is not None
        and a.rtt_ms >= RTT_ROSE * b.rtt_ms
        and a.rtt_ms - b.rtt_ms >= RTT_ROSE_MS
    )
    return (
        f.target_class == "foreign_on_net"
        and b.on_net is True
        and a.on_net is False
        and rtt_rose
        and f.foreign_others.most_fine
    )


RULES: tuple[Rule, ...] = (
    Rule(
        "targeted.ip_sni",
        "targeted",
        N_("the tests themselves showed the site's address or name throttled"),
        _targeted,
    ),
    Rule(
        "cache.removed",
        "local_cache_removed",
        N_(
            "its edge moved from inside the volunteer's network to another, round trips rose "
            "with it, and the other foreign sites kept their speed"
        ),
        _moved_out,
    ),
    Rule(
        "link.congestion",
        "congestion",
        N_("domestic and foreign sites slowed together: the volunteer's own link"),
        lambda f: f.domestic.most_slow and (f.foreign_others.most_slow or f.origins.most_slow),
    ),
    Rule(
        "international.degraded",
        "international_degraded",
        N_("foreign sites slowed together while domestic sites kept their speed"),
        lambda f: (
            f.target_class == "foreign_origin"
            and f.origins.slow >= 2
            and f.origins.most_slow
            and f.domestic.most_fine
        ),
    ),
    Rule("unknown", "unknown", N_("no rule explains the slowdown"), lambda f: True),
)


def _mode(values: Iterable[object]) -> object | None:
    got = Counter(v for v in values if v is not None)
    return got.most_common(1)[0][0] if got else None


def _median(values: Iterable[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return statistics.median(got) if got else None


def _side(tests: Sequence[EdgeTest]) -> Side:
    asn = _mode(t.edge_asn for t in tests)
    inside = _mode(t.on_net for t in tests)
    return Side(
        len(tests),
        _median(t.bps for t in tests),
        _median(t.rtt_ms for t in tests),
        asn if isinstance(asn, str) else None,
        inside if isinstance(inside, bool) else None,
    )


def _class(tests: Sequence[EdgeTest]) -> str | None:
    c = _mode(t.target_class for t in tests)
    return c if isinstance(c, str) else None


@dataclass(slots=True)
class _Series:
    """One target's tests on a network, oldest first, with their times for bisection (an
    event's window is found in log time: a year of hourly tests stays fast)."""

    tests: list[EdgeTest]
    ats: list[str]
    overall_class: str | None

    @classmethod
    def of(cls, tests: list[EdgeTest]) -> _Series:
        tests.sort(key=lambda t: t.at)
        return cls(tests, [t.at for t in tests], _class(tests))

    def before(self, start: str, window: int) -> list[EdgeTest]:
        i = bisect.bisect_left(self.ats, start)
        return self.tests[max(0, i - window) : i]

    def during(self, start: str, end: str | None) -> list[EdgeTest]:
        i = bisect.bisect_left(self.ats, start)
        j = len(self.ats) if end is None else bisect.bisect_left(self.ats, end)
        return self.tests[i:j]

    def class_before(self, start: str, window: int) -> str | None:
        """The target's class before ``start`` (most common; else over all its tests)."""
        return _class(self.before(start, window)) or self.overall_class


def _slowed(series: _Series, start: str, end: str | None, window: int) -> bool | None:
    """Did this target's rate fall to at most half its own baseline between start and end?
    None: too few tests before, or none during, to say."""
    before = [t.bps for t in series.before(start, window) if t.bps is not None]
    during = series.during(start, end)
    if len(before) < MIN_BASELINE or not during:
        return None
    rate = _median(t.bps for t in during)
    return rate is None or rate <= SLOW * statistics.median(before)


def _tally(series: dict[str, _Series], names: Iterable[str], e: Event, window: int) -> Tally:
    slow, judged, who = 0, 0, []
    for name in sorted(names):
        s = _slowed(series[name], e.opened_at, e.closed_at, window)
        if s is None:
            continue
        judged += 1
        if s:
            slow += 1
            who.append(name)
    return Tally(slow, judged, tuple(who))


def _facts(e: Event, series: dict[str, _Series], window: int) -> Facts:
    own = series[e.target]
    before = own.before(e.opened_at, window)
    after = own.during(e.opened_at, e.closed_at)
    klass = own.class_before(e.opened_at, window)
    others = [n for n in series if n != e.target]
    classes = {n: series[n].class_before(e.opened_at, window) for n in others}

    def of(cls: Iterable[str], *, me: bool) -> list[str]:
        wanted = set(cls)
        names = [n for n in others if classes[n] in wanted]
        return [e.target, *names] if me and klass in wanted else names

    return Facts(
        klass,
        tuple(t.label for t in after if t.label),
        _side(before),
        _side(after),
        _tally(series, of(["domestic"], me=True), e, window),
        _tally(series, of(FOREIGN, me=False), e, window),
        _tally(series, of(["foreign_origin"], me=True), e, window),
    )


def judge(f: Facts) -> Rule:
    return next(r for r in RULES if r.when(f))


def evidence(f: Facts) -> dict[str, object]:
    return {
        "target_class": f.target_class,
        "before": asdict(f.before),
        "after": asdict(f.after),
        "domestic": asdict(f.domestic),
        "foreign_others": asdict(f.foreign_others),
        "foreign_origins": asdict(f.origins),
    }


def attribute(
    tests: Iterable[EdgeTest],
    *,
    window: int = 20,
    min_history: int = 5,
    open_after: int = 2,
    k: float = 3.0,
) -> list[Event]:
    """Every slowdown of a target's own rate, with its cause (see the module's contract)."""
    by_network: dict[str, dict[str, list[EdgeTest]]] = {}
    for t in tests:
        by_network.setdefault(t.network, {}).setdefault(t.target, []).append(t)
    out: list[Event] = []
    for network, grouped in sorted(by_network.items()):
        series = {name: _Series.of(tests) for name, tests in grouped.items()}
        rates = [
            ThroughputTest(t.target, network, t.at, t.bps or 0.0, None, t.label)
            for s in series.values()
            for t in s.tests
        ]
        for e in find_events(
            rates, window=window, min_history=min_history, open_after=open_after, k=k
        ):
            f = _facts(e, series, window)
            rule = judge(f)
            out.append(
                replace(
                    e,
                    cause=rule.cause,
                    rule_id=rule.id,
                    rules_version=RULES_VERSION,
                    basis=rule.why,
                    evidence=evidence(f),
                )
            )
    return sorted(out, key=lambda e: (e.opened_at, e.target))
