"""Throttling events: when a target's throughput falls well below its own history, and recovers.

Contract: ``find_events(tests)`` is pure. Per target and network it keeps a rolling baseline of
the log target/control ratio (median and MAD of the last ``window`` tests outside any event),
opens an event when ``open_after`` consecutive tests fall well below it (or, before there is
enough history, are each judged throttled), and closes it at the first test that is back.
An event is named as :func:`probe.words.words` names a significant test with its most common
label (``throttled``, or ``anomaly (slow)`` for ``target_slow_unattributed``), so ``probe
events``, ``probe status`` and the report say what the verdicts say.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from probe import words as verdicts


@dataclass(frozen=True, slots=True)
class ThroughputTest:
    target: str
    network: str
    at: str  # UTC ISO-8601
    ratio: float
    throttled: bool | None = None
    label: str | None = None


@dataclass(slots=True)
class Event:
    target: str
    network: str
    opened_at: str
    closed_at: str | None = None
    baseline_ratio: float | None = None
    ratios: list[float] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    # A slowdown's attribution (probe.classify.attribution): its cause, the rule and rules
    # version that gave it, the rule's stated basis (an English message id) and the evidence.
    cause: str | None = None
    rule_id: str | None = None
    rules_version: str | None = None
    basis: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def open(self) -> bool:
        return self.closed_at is None

    @property
    def label(self) -> str | None:
        return max(set(self.labels), key=self.labels.count) if self.labels else None

    @property
    def verdict(self) -> str:
        """The event in the verdicts' words (English). An attributed slowdown is ``throttled``
        only when its cause is targeting: any other is ``anomaly (slow)``."""
        label = self.label
        if self.cause is not None and self.cause != "targeted":
            label = "target_slow_unattributed"
        return verdicts.words(False, True, throttled=True, throttle_label=label)

    def as_dict(self) -> dict[str, Any]:
        attributed = {
            "cause": self.cause,
            "rule_id": self.rule_id,
            "rules_version": self.rules_version,
            "basis": self.basis,
            "evidence": self.evidence,
        }
        return {
            "target": self.target,
            "network": self.network,
            "opened_at": self.opened_at,
            "closed_at": self.closed_at,
            "tests": len(self.ratios),
            "baseline_ratio": self.baseline_ratio,
            "median_ratio": statistics.median(self.ratios) if self.ratios else None,
            "label": self.label,
            "verdict": self.verdict,
        } | (attributed if self.cause is not None else {})


def _below(t: ThroughputTest, history: Sequence[float], k: float, min_history: int) -> bool:
    if t.ratio <= 0:
        return True
    if len(history) < min_history:
        return bool(t.throttled)
    med = statistics.median(history)
    mad = 1.4826 * statistics.median(abs(x - med) for x in history)
    # "Well below": k robust deviations, and at least half the usual ratio.
    return math.log(t.ratio) < med - max(k * mad, math.log(2))


def find_events(
    tests: Iterable[ThroughputTest],
    *,
    window: int = 20,
    min_history: int = 5,
    open_after: int = 2,
    k: float = 3.0,
) -> list[Event]:
    series: dict[tuple[str, str], list[ThroughputTest]] = {}
    for t in tests:
        series.setdefault((t.target, t.network), []).append(t)
    events: list[Event] = []
    for (target, network), ts in sorted(series.items()):
        history: list[float] = []
        pending: list[ThroughputTest] = []
        current: Event | None = None
        for t in sorted(ts, key=lambda x: x.at):
            below = _below(t, history[-window:], k, min_history)
            if current is not None:
                if below:
                    current.ratios.append(t.ratio)
                    if t.label:
                        current.labels.append(t.label)
                    continue
                current.closed_at = t.at
                current = None
            if below:
                pending.append(t)
                if len(pending) >= open_after:
                    base = history[-window:]
                    current = Event(
                        target,
                        network,
                        pending[0].at,
                        baseline_ratio=math.exp(statistics.median(base)) if base else None,
                        ratios=[p.ratio for p in pending],
                        labels=[p.label for p in pending if p.label],
                    )
                    events.append(current)
                    pending = []
                continue
            history.extend(math.log(p.ratio) for p in pending if p.ratio > 0)
            pending = []
            history.append(math.log(t.ratio))
    return events
