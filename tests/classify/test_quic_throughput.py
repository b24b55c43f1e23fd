"""QUIC "slower" from the throughput test (probe.classify.throughput.compare_h3 and
probe.classify.quic's rules): the object over HTTP/3 beside TCP in each trial, judged with the
TCP throttling verdict's care (a median ratio of at most 0.5 *and* a significant one-sided
Mann-Whitney U, Bonferroni-corrected); hand-made flows at the edges. The recorded scenario is
tests/classify/quic_golden/quic_slower_by_throughput.json (replayed by test_quic.py).
"""

from __future__ import annotations

import itertools

import pytest

from probe.classify.quic import judge, refine
from probe.classify.throughput import H3_CEILING_BPS, RATIO_MAX, analyse, compare_h3
from probe.model import (
    Flow,
    HTTPTransaction,
    Observations,
    QUICHandshake,
    QUICObservations,
    TCPConnect,
    TLSHandshake,
)
from probe.model import Sample as S

IP = "192.0.2.10"
URL = "https://s.test/tp"


def _flow(role: str, trial: int, bytes_per_s: float, seconds: float = 4.0) -> Flow:
    """A flow at ``bytes_per_s``, each 250 ms tick a little off it (real rates never tie)."""
    got, samples = 0, []
    for i in range(1, int(seconds / 0.25) + 1):
        got += int(bytes_per_s * 0.25 * (1 + 0.02 * ((i * 7 + trial) % 5 - 2)))
        samples.append(S(0.25 * i, got, 20_000, None, 10_000))
    return Flow(role, URL, IP, trial, 0.0, 0.01, seconds, got, got + 20_000, tuple(samples))


def _trials(ratio: float, n: int = 3, tcp: float = 1_250_000.0) -> list[Flow]:
    out = []
    for t in range(n):
        out += [_flow("target", t, tcp), _flow("h3", t, tcp * ratio), _flow("control", t, tcp)]
    return out


def _obs(
    *, page_ratio: float = 1.0, h3_get_fails: bool = False, quic_ok: bool = True
) -> Observations:
    hs = QUICHandshake(IP, 443, "s.test", failure=None if quic_ok else "generic_timeout_error")
    n = 64 * 1024
    tcp_get = HTTPTransaction(
        "https://s.test/", role="system", status_code=200, body_length=n, body_sha256="x", t=1.0
    )
    h3_get = HTTPTransaction(
        "https://s.test/",
        role="h3",
        status_code=None if h3_get_fails else 200,
        body_length=n,
        body_sha256="x",
        t=page_ratio,
        failure="generic_timeout_error" if h3_get_fails else None,
    )
    return Observations(
        "https://s.test/",
        tcp=(TCPConnect(IP, 443),),
        tls=(TLSHandshake(IP, 443, "s.test"),),
        http=(tcp_get,),
        quic=QUICObservations(host="s.test", handshakes=(hs,), http=(h3_get,) if quic_ok else ()),
    )  # fmt: skip


def test_http3_at_a_fraction_of_tcp_in_every_trial_is_slower() -> None:
    flows = _trials(0.2)
    c = compare_h3(flows)
    assert c is not None and c.trials == 3 and c.slower is True
    assert c.ratio == pytest.approx(0.2) and c.p_value is not None and c.p_value < 0.05
    assert judge(_obs(), flows=flows) == ("slower", "quic.slower.throughput")
    a = analyse(flows)  # the figures stored with the test
    assert (a.h3_slower, a.throttled) == (True, False) and a.h3_ratio == pytest.approx(0.2)
    assert a.h3_bps == pytest.approx(0.2 * 1_250_000 * 8, rel=0.01)


@pytest.mark.parametrize(("ratio", "slower"), [(RATIO_MAX - 0.01, True), (RATIO_MAX + 0.01, False)])
def test_the_ratio_threshold_is_the_throttling_verdicts(ratio: float, slower: bool) -> None:
    c = compare_h3(_trials(ratio))
    assert c is not None and c.slower is slower


@pytest.mark.parametrize(("h3_mbit", "slower"), [(19.0, True), (21.0, False)])
def test_a_fast_http3_is_not_read_as_slower(h3_mbit: float, slower: bool) -> None:
    """Above H3_CEILING_BPS the probe's own QUIC stack may be what limits HTTP/3: beside a
    much faster TCP, it is not called slower."""
    assert H3_CEILING_BPS == 20e6
    tcp = 500e6 / 8
    c = compare_h3(_trials(h3_mbit * 1e6 / 8 / tcp, tcp=tcp))
    assert c is not None and (c.ratio or 1) < 0.1 and c.slower is slower


def test_the_throughput_comparison_overrides_the_page_gets() -> None:
    page_slower = _obs(page_ratio=5.0)
    assert judge(page_slower) == ("slower", "quic.slower.page")  # no test: the page's GETs
    assert judge(page_slower, flows=_trials(0.9)) == ("ok", "quic.ok")  # as fast: not slower
    assert judge(_obs(), flows=_trials(0.9)) == ("ok", "quic.ok")


def test_one_trial_is_not_enough_evidence() -> None:
    c = compare_h3(_trials(0.1, n=1))
    assert c is not None and c.ratio == pytest.approx(0.1)
    assert c.p_value is not None and c.p_value >= 0.05 and c.slower is False


def test_the_rounds_tests_correct_the_p_value() -> None:
    flows = _trials(0.2, n=2)
    alone, among = compare_h3(flows), compare_h3(flows, tests_in_round=100)
    assert alone is not None and among is not None
    assert alone.slower is True and among.slower is False
    assert among.p_value == pytest.approx(min(1.0, 100 * (alone.p_raw or 0)))


def test_failed_http3_flows_leave_the_page_comparison() -> None:
    failed = [
        f if f.role != "h3" else Flow("h3", URL, IP, f.trial, failure="generic_timeout_error")
        for f in _trials(0.2)
    ]
    c = compare_h3(failed)
    assert c is not None and (c.trials, c.slower) == (0, None)
    assert judge(_obs(page_ratio=5.0), flows=failed) == ("slower", "quic.slower.page")
    assert compare_h3([f for f in failed if f.role != "h3"]) is None  # no HTTP/3 flow at all


OBS = {
    "ok": _obs(),
    "page_slower": _obs(page_ratio=5.0),
    "h3_get_failed": _obs(h3_get_fails=True),
    "blocked": _obs(quic_ok=False),
}
FLOWS = {
    "none": [],
    "tcp_only": [f for f in _trials(0.2) if f.role != "h3"],
    "slower": _trials(0.2),
    "as_fast": _trials(0.9),
    "one_trial": _trials(0.1, n=1),
}


@pytest.mark.parametrize(("obs", "flows"), list(itertools.product(OBS, FLOWS)))
def test_refining_the_pages_verdict_is_judging_with_the_flows(obs: str, flows: str) -> None:
    """The round refines a stored page's verdict (it no longer holds the observations):
    that must be what judge says given the flows, whatever the page showed."""
    label, rule = judge(OBS[obs])
    assert refine(label, rule, FLOWS[flows]) == judge(OBS[obs], flows=FLOWS[flows])


def test_a_blocked_verdict_is_not_refined() -> None:
    assert refine("blocked", "quic.blocked", _trials(0.2)) == ("blocked", "quic.blocked")
    assert refine(None, None, _trials(0.2)) == (None, None)
