"""Verdicts in words: every combination of stored fields, both languages, and no overclaiming."""

from __future__ import annotations

import itertools

import pytest

from probe import words as V
from probe.classify import classify
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
        if b is None or b == "":
            assert w in ("can't tell", "offline")


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
