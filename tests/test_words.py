"""Verdicts in words: every combination of stored fields, both languages, and no overclaiming;
and the one anomaly predicate: the SQL the store filters with (``probe.store.ANOMALY``:
``probe status``, ``probe prune --keep-anomalies``), the Python form over a verdict's stored
fields, the words a reader sees (``is_anomaly(words(...))``) and a round's count agree on every
combination of verdict fields, row for row, in a real SQLite database."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe import words as V
from probe.classify import classify
from probe.model import NO_CONTROL, Measurement, Observations, Verdict
from probe.round import is_anomaly as round_is_anomaly
from probe.store import ANOMALY, Store
from tests.dbs import SCENARIOS, helper_saw_it_work, measurement

BLOCKING = [None, False, "false", "dns", "tcp_ip", "http-failure", "http-diff", "a-new-kind"]
GRID = list(
    itertools.product(
        BLOCKING,
        [None, True, False, 0, 1],  # accessible
        ["helper", "local", "no control", "none", None],  # evidence
        [False, True],  # offline
        [None, False, True],  # throttled
        [None, "probe.vn_http_blocked_vi"],  # blockpage
        [None, "sni_targeted", "target_slow_unattributed"],  # throttle label
    )
)


@pytest.mark.parametrize(
    ("fields", "want"),
    [
        (("dns", False, "local", False, None), "blocked (dns)"),
        (("tcp_ip", False, "helper", False, None), "blocked (tcp_ip)"),
        (("tcp_ip", False, "local", False, None), "anomaly (tcp_ip)"),
        (("http-failure", False, "helper", False, None), "blocked (tls/http failure)"),
        (("http-failure", False, "none", False, None), "anomaly (tls/http failure)"),
        (("http-diff", False, "helper", False, None), "anomaly (http-diff)"),
        ((False, True, "helper", False, None), "accessible"),
        ((False, True, "local", False, None), "accessible"),  # verified TLS, the control's page
        ((False, True, "no control", False, None), "accessible (no control)"),
        ((False, False, "helper", False, None), "down"),
        ((None, None, "none", False, None), "can't tell"),
        ((None, None, "local", True, None), "offline"),
        ((False, True, "helper", False, True), "throttled"),
        (("false", 1, "helper", 0, 1), "throttled"),  # as stored in SQLite
    ],
)
def test_words(fields: tuple[object, ...], want: str) -> None:
    assert V.words(*fields) == want


def test_a_fingerprint_makes_it_a_blockpage_and_a_slow_server_an_anomaly() -> None:
    assert V.words("http-diff", False, "helper", blockpage="isp.x") == "blockpage"
    assert V.words("dns", False, "none", blockpage="isp.x") == "blockpage"
    slow = V.words(False, True, "helper", False, True, throttle_label="target_slow_unattributed")
    assert slow == "anomaly (slow)"


def test_every_combination_is_one_of_the_words_in_both_languages() -> None:
    seen = set()
    for b, a, e, off, thr, bp, label in GRID:
        en = V.words(b, a, e, off, thr, blockpage=bp, throttle_label=label)
        vi = V.words(b, a, e, off, thr, blockpage=bp, throttle_label=label, lang="vi")
        assert en in V.VERDICTS and vi == V.translate(en, "vi") != en
        seen.add(en)
    assert seen == set(V.VERDICTS), f"never produced: {set(V.VERDICTS) - seen}"
    vi_words = {V.translate(w, "vi") for w in V.VERDICTS}
    assert len(vi_words) == len(V.VERDICTS)  # one Vietnamese phrase per verdict


def test_words_never_overclaim() -> None:
    for b, a, e, off, thr, bp, label in GRID:
        w = V.words(b, a, e, off, thr, blockpage=bp, throttle_label=label)
        if w.startswith("blocked") and b in ("tcp_ip", "http-failure"):
            assert e == "helper", "blocked without a helper's view of the same step"
        if w == "blockpage":
            assert bp is not None, "blockpage without a matching fingerprint"
        if w == "throttled":
            assert thr and label != "target_slow_unattributed"
        if w == "accessible":
            assert e != "no control", "accessible where the page was compared with nothing"
        if off:
            assert w == "offline"
        if b is None or b == "":  # the page cannot tell; a significant throughput test can
            assert w in ("can't tell", "offline") or (thr and w in ("throttled", "anomaly (slow)"))


def test_of_a_classified_verdict() -> None:
    for name in SCENARIOS:
        m = measurement(name, "x", control=helper_saw_it_work(name))
        assert V.of(m.verdict) in V.VERDICTS
    v = classify(measurement("dns_nxdomain", "x").observations)
    assert V.of(v) == "blocked (dns)" and V.of(v, lang="vi") == "bị chặn (DNS)"
    with pytest.raises(ValueError, match="lang"):
        V.words(False, True, lang="fr")


def test_the_vocabulary_imports_no_layer_package() -> None:
    """probe.words sits at the bottom: the model and failures, never a layer above them."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(V.__file__).read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    ours = {m for m in imported if m == "probe" or m.startswith("probe.")}
    assert ours <= {"probe.model", "probe.failures"}, ours


STORED_BLOCKING = st.sampled_from(
    [None, False, "dns", "tcp_ip", "http-failure", "http-diff", "other"]
)
MAYBE = st.sampled_from([None, False, True])

VERDICTS = st.builds(
    Verdict,
    blocking=STORED_BLOCKING,
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
