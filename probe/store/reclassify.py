"""Replay the current rules over stored observations, so old data benefits from new rules.

Contract: every stored measurement is classified again from its stored observations, control
evidence and ``network_ok``; a changed verdict is written in its own transaction. Returns
(measurements seen, verdicts changed).
"""

from __future__ import annotations

from dataclasses import replace

from probe.classify import classify, quic
from probe.classify.fingerprints import FingerprintSet
from probe.classify.throughput import analyse
from probe.store import Store


def reclassify(store: Store, fingerprints: FingerprintSet) -> tuple[int, int]:
    total = changed = 0
    for row in list(store.rows()):
        total += 1
        obs = store.observations(row)
        network_ok = None if row["network_ok"] is None else bool(row["network_ok"])
        v = classify(
            obs, control=store.control(row), fingerprints=fingerprints, network_ok=network_ok
        )
        tp = store.throughput(row)
        if tp is not None and tp.flows:
            analysis = analyse(
                tp.flows, tests_in_round=tp.tests_in_round or 1, helper_speed=tp.helper_speed
            )
            if analysis != tp.analysis:
                store.update_throughput(row["id"], replace(tp, analysis=analysis))
            tests = tp.tests_in_round or 1
            label, rule = quic.refine(v.quic, v.quic_rule, tp.flows, tests)
            v = replace(v, throttled=analysis.throttled, quic=label, quic_rule=rule)
        if store.verdict(row) != v:  # every field, not only blocking and accessible
            changed += 1
            store.update_verdict(row["id"], v)
    return total, changed
