"""Each exported measurement's slowdown cause (issue 25), read once before an export streams.

Contract: :func:`cause_index` runs the attribution of slowdowns
(:func:`probe.classify.attribution.attribute`) over every test with a rate in the store (each
target is a control for the others, whatever the export selects) and answers, for a target's
measurement on a network at a time, the cause of the slowdown it falls in (from its first test
to the first test that is back), or None. Memory: the edge tests' few columns, not the rows.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from probe.classify.attribution import attribute
from probe.store import Store


@dataclass(slots=True)
class CauseIndex:
    spans: dict[tuple[str, str], list[tuple[str, str | None, str]]] = field(default_factory=dict)

    def cause(self, target: str, network: str | None, at: str) -> str | None:
        spans = self.spans.get((target, network or "?"))
        if not spans:
            return None
        i = bisect.bisect_right([s[0] for s in spans], at) - 1
        if i < 0:
            return None
        _, closed, cause = spans[i]
        return cause if closed is None or at < closed else None


def cause_index(store: Store) -> CauseIndex:
    index = CauseIndex()
    for e in attribute(store.edge_tests()):
        if e.cause is not None:
            index.spans.setdefault((e.target, e.network), []).append(
                (e.opened_at, e.closed_at, e.cause)
            )
    for spans in index.spans.values():
        spans.sort()
    return index
