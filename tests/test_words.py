"""One anomaly predicate (probe.words): the SQL the store filters with (``probe.store.ANOMALY``:
``probe status``, ``probe prune --keep-anomalies``), the Python form over a verdict's stored
fields, the words a reader sees (``is_anomaly(words(...))``) and a round's count agree on every
combination of verdict fields, row for row, in a real SQLite database."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from probe import words as V
from probe.model import NO_CONTROL, Measurement, Observations, Verdict
from probe.round import is_anomaly as round_is_anomaly
from probe.store import ANOMALY, Store

BLOCKING = st.sampled_from([None, False, "dns", "tcp_ip", "http-failure", "http-diff", "other"])
MAYBE = st.sampled_from([None, False, True])

VERDICTS = st.builds(
    Verdict,
    blocking=BLOCKING,
    accessible=MAYBE,
    rule_id=st.just("r"),
    rules_version=st.just("1"),
    evidence=st.sampled_from(["helper", "local", "none", NO_CONTROL]),
    blockpage=st.sampled_from([None, "bp.one"]),
    offline=st.booleans(),
    throttled=MAYBE,
)


def _measurement(i: int, v: Verdict, is_control: bool) -> Measurement:
    return Measurement(
        id=f"m{i:04d}",
        target=f"t{i}",
        url=f"https://t{i}.example/",
        started_at=f"2026-11-01T00:00:{i % 60:02d}.000Z",
        observations=Observations(url=f"https://t{i}.example/"),
        verdict=v,
        is_control=is_control,
    )


def _words(r: Any) -> str:
    return V.words(
        r["blocking"],
        r["accessible"],
        r["evidence"],
        r["offline"],
        r["throttled"],
        blockpage=r["blockpage"],
    )


def test_sql_python_and_words_agree_row_for_row(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "p.db")

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.tuples(VERDICTS, st.booleans()), min_size=1, max_size=30))
    def check(cases: list[tuple[Verdict, bool]]) -> None:
        store.db.execute("DELETE FROM measurements")
        ms = [_measurement(i, v, c) for i, (v, c) in enumerate(cases)]
        for m in ms:
            store.save(m)
        rows = {
            r["id"]: r
            for r in store.db.query(f"SELECT *, ({ANOMALY}) AS anomaly_sql FROM measurements")
        }
        for m in ms:
            r = rows[m.id]
            reader = V.is_anomaly(_words(r))  # the reader-facing definition
            assert bool(r["anomaly_sql"]) is reader, (m.verdict, dict(r))
            assert V.anomalous(r["blocking"], r["offline"], r["throttled"]) is reader
            assert V.is_anomalous(m.verdict) is reader
            assert round_is_anomaly(m) is (reader and not m.is_control)

    check()
    store.close()


@given(VERDICTS)
def test_the_python_form_reads_stored_and_exported_blocking_alike(v: Verdict) -> None:
    stored = "false" if v.blocking is False else v.blocking
    assert V.anomalous(stored, int(v.offline), v.throttled) is V.anomalous(
        v.blocking, v.offline, v.throttled
    )
    assert V.is_anomalous(replace(v)) is V.is_anomaly(V.of(v))
