"""Boundary tables: every threshold the classifier uses, on both sides, as literal expectations.

Each row is an input built through the public functions and the value a reader can check by
hand against OONI's Web Connectivity (or the module's documented rule). No row is derived from
the code's own constants: a changed threshold must fail a row here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import replace

import pytest

from probe.classify import classify
from probe.classify.events import ThroughputTest, find_events
from probe.classify.facts import HTTPDiff, Reference, http_diff
from probe.classify.throughput import analyse, flow_stats, looks_slow
from probe.model import (
    Blocking,
    ControlEndpoint,
    ControlEvidence,
    DNSAnswer,
    DNSQuery,
    Flow,
    HelperSpeed,
    HTTPTransaction,
    Observations,
    Sample,
    TCPConnect,
    control_from_json,
    observations_from_json,
)
from tests import paths

PAGE_HEADERS = (("Date", "x"), ("Server", "nginx"), ("Content-Type", "text/html"))


def tx(
    *,
    status: int | None = 200,
    length: int | None = 1000,
    title: str | None = None,
    headers: tuple[tuple[str, str], ...] = PAGE_HEADERS,
    truncated: bool = False,
) -> HTTPTransaction:
    return HTTPTransaction(
        "http://site.test/",
        status_code=status,
        body_length=length,
        title=title,
        headers=headers,
        body_truncated=truncated,
    )


def ref(
    *,
    status: int | None = 200,
    length: int | None = 1000,
    title: str | None = None,
    headers: frozenset[str] = frozenset({"date", "server", "content-type"}),
) -> Reference:
    return Reference(status, length, title, headers)


# -- body proportion: OONI's body_length_match is "proportion > 0.7" ---------------------------
@pytest.mark.parametrize(
    ("ours", "theirs", "proportion", "match"),
    [
        (690, 1000, 0.69, False),
        (700, 1000, 0.70, False),  # exactly 0.7 is not "> 0.7"
        (710, 1000, 0.71, True),
        (1000, 1000, 1.0, True),
        (1000, 690, 0.69, False),  # symmetric: min / max
        (1000, 710, 0.71, True),
        (300, 1000, 0.30, False),
        (1, 1000, 0.001, False),
        (1, 1, 1.0, True),  # a one-byte body has a length too
    ],
)
def test_body_proportion(ours: int, theirs: int, proportion: float, match: bool) -> None:
    d = http_diff(tx(length=ours), ref(length=theirs))
    assert d.body_proportion == pytest.approx(proportion)
    assert d.body_length_match is match


@pytest.mark.parametrize(
    ("probe", "control"),
    [
        (tx(length=1000, truncated=True), ref(length=1000)),  # a truncated body: unknown length
        (tx(length=0), ref(length=1000)),
        (tx(length=None), ref(length=1000)),
        (tx(length=1000), ref(length=0)),
        (tx(length=1000), ref(length=None)),
    ],
)
def test_body_proportion_not_judged(probe: HTTPTransaction, control: Reference) -> None:
    d = http_diff(probe, control)
    assert (d.body_proportion, d.body_length_match) == (None, None)


# -- titles: words of 5+ characters (OONI counts UTF-8 bytes), every one must be in both --------
@pytest.mark.parametrize(
    ("ours", "theirs", "match"),
    [
        ("Independent News Today", "Independent News Today", True),
        ("Independent News Today", "independent news TODAY", True),  # case is ignored
        ("Independent News Today", "Today Independent", True),  # order is ignored
        ("Independent News Today", "Independent Daily", False),  # one shared word is not enough
        ("Independent News Today", "Independent", False),  # "today" only on our side
        ("Independent", "Independent Today", False),  # "today" only on theirs
        ("Independent\tToday", "Independent Today", False),  # OONI splits at spaces only
        ("Independent Today", "Independent\tToday", False),  # on their side too
        ("Independent  Today", "Independent Today", True),
        ("Hello World", "Hello Earth", False),  # 5-letter words count
        ("News abcd", "News wxyz", True),  # 4-letter words do not: nothing to compare
        ("Blocked", "Site", False),
        ("a b c", "d e f", True),
        # Vietnamese, where OONI counts bytes: "chặn" is 4 letters and 6 bytes, "tức" 3 and 5.
        ("Bị chặn", "Tin tức", False),
        ("Tin tức", "Tin tức", True),
        ("Bị chặn", "Bị chặn", True),
    ],
)
def test_title_words(ours: str, theirs: str, match: bool) -> None:
    assert http_diff(tx(title=ours), ref(title=theirs)).title_match is match


@pytest.mark.parametrize(
    ("probe", "control"),
    [
        (tx(title=None), ref(title="Independent News")),
        (tx(title="Independent News"), ref(title=None)),
        (tx(title="Independent News", truncated=True), ref(title="Independent News")),
        (tx(title="Independent News", status=None), ref(title="Independent News")),
        (tx(title="Independent News"), ref(title="Independent News", status=None)),
        (tx(title="Independent News"), ref(title="Independent News", status=0)),
    ],
)
def test_title_not_judged(probe: HTTPTransaction, control: Reference) -> None:
    assert http_diff(probe, control).title_match is None


# -- headers: equal name sets, or a shared *uncommon* name ---------------------------------------
@pytest.mark.parametrize(
    ("ours", "theirs", "match"),
    [
        (("Date", "Server", "X-News-Site"), {"date", "server", "x-news-site"}, True),
        (("date", "server"), {"date", "server"}, True),  # equal sets, all common
        (("Date", "Server", "Content-Type"), {"date", "server", "x-other"}, False),
        (("Date", "Set-Cookie", "Via", "Location"), {"date", "set-cookie", "via", "age"}, False),
        (("Date", "X-Cache"), {"date", "x-cache", "x-extra"}, True),  # one uncommon shared
        (("X-NEWS-SITE",), {"x-news-site", "date"}, True),  # names compared lower-case
        (("X-A",), {"x-b"}, False),
    ],
)
def test_uncommon_headers(ours: tuple[str, ...], theirs: set[str], match: bool) -> None:
    d = http_diff(tx(headers=tuple((k, "v") for k in ours)), ref(headers=frozenset(theirs)))
    assert d.headers_match is match


def test_odd_statuses_are_still_compared() -> None:
    d = http_diff(tx(status=1, title="Independent News"), ref(status=1, title="Independent News"))
    assert (d.status_code_match, d.headers_match, d.title_match) == (True, True, True)


def test_headers_not_judged_without_control_headers_or_status() -> None:
    assert http_diff(tx(), ref(headers=frozenset())).headers_match is None
    assert http_diff(tx(status=None), ref()).headers_match is None


# -- status codes: equal, or judged only against a 2xx control ----------------------------------
@pytest.mark.parametrize(
    ("ours", "theirs", "match"),
    [
        (200, 200, True),
        (404, 404, True),
        (403, 200, False),
        (200, 204, False),
        (302, 200, False),
        (200, 299, False),
        (404, 500, None),  # the control failed too, differently: OONI does not judge
        (200, 301, None),
        (200, 199, None),
        (200, 300, None),
        (0, 200, None),
        (None, 200, None),
        (200, None, None),
        (1, 1, True),  # any positive status is judged (a helper's answer is only JSON)
        (1, 200, False),
    ],
)
def test_status_code_classes(ours: int | None, theirs: int | None, match: bool | None) -> None:
    assert http_diff(tx(status=ours), ref(status=theirs)).status_code_match is match


@pytest.mark.parametrize(
    ("diff", "same"),
    [
        (HTTPDiff(None, True, True, False, False), True),
        (HTTPDiff(None, False, True, False, True), True),
        (HTTPDiff(None, False, True, False, False), False),
        # OONI's headers_match alone is not enough: a shared header that is neither common
        # nor framing (site_headers_match) is
        (HTTPDiff(None, False, True, True, False), False),
        (HTTPDiff(None, False, True, True, False, site_headers_match=True), True),
        (HTTPDiff(None, False, True, False, False, site_headers_match=True), True),
        # two redirects to the same Location
        (HTTPDiff(None, None, True, True, None, location_match=True), True),
        (HTTPDiff(None, None, True, True, None, location_match=False), False),
        (HTTPDiff(None, True, False, True, True, site_headers_match=True), False),  # status first
        (HTTPDiff(None, True, None, True, True, site_headers_match=True), False),
    ],
)
def test_same_page_needs_status_then_one_more(diff: HTTPDiff, same: bool) -> None:
    assert diff.same_page is same


# -- the classifier's helper-evidence rules ------------------------------------------------------
SITE, PORT = "198.51.100.7", 80
URL = "http://site.test/"


def _dns(resolver: str, addrs: list[str]) -> tuple[DNSQuery, DNSQuery]:
    a = DNSQuery(
        "site.test",
        "A",
        resolver,
        "udp://192.0.2.53:53",
        "udp",
        answers=tuple(DNSAnswer("A", ip) for ip in addrs),
        rcode="NOERROR",
    )
    aaaa = DNSQuery(
        "site.test", "AAAA", resolver, "udp://192.0.2.53:53", "udp", failure="dns_no_answer"
    )
    return a, aaaa


def _obs(final: HTTPTransaction, tcp_ok: bool = True) -> Observations:
    tcp = TCPConnect(SITE, PORT, failure=None if tcp_ok else "connection_refused")
    return Observations(URL, _dns("system", [SITE]), (tcp,), (), (final,))


def _helper(*, tcp_ok: bool, http_failure: str | None) -> ControlEvidence:
    return ControlEvidence(
        dns_addrs=(SITE,),
        tcp_connect={
            f"{SITE}:{PORT}": ControlEndpoint(tcp_ok, None if tcp_ok else "connection_refused")
        },
        http_failure=http_failure,
        http_status_code=None if http_failure else 200,
        http_body_length=None if http_failure else 1000,
        http_title=None if http_failure else "Independent News Today",
        http_headers={} if http_failure else {"Date": "x", "X-News-Site": "1"},
    )


REFUSED = HTTPTransaction(
    URL, ip=None, failure="connection_refused", failed_operation="connect", raw_failure="x"
)
RESET = HTTPTransaction(
    URL, ip=SITE, port=PORT, failure="connection_reset", failed_operation="http_round_trip"
)
READ_CUT = HTTPTransaction(
    URL, ip=SITE, port=PORT, status_code=200, failure="connection_reset", failed_operation="read"
)


@pytest.mark.parametrize(
    ("final", "tcp_ok", "helper", "want"),
    [
        # The helper connected where we could not: IP blocking.
        (REFUSED, False, _helper(tcp_ok=True, http_failure=None), ("tcp_ip", False, "tcp.blocked")),
        # The helper could not connect to our addresses either, yet loaded the page: no
        # proof of IP blocking (the verdict that remains is the generic failure rule).
        (
            REFUSED,
            False,
            _helper(tcp_ok=False, http_failure=None),
            ("http-failure", False, "http.failure"),
        ),
        # The helper failed too: down for everyone.
        (
            REFUSED,
            False,
            _helper(tcp_ok=False, http_failure="connection_refused_error"),
            (False, False, "down.helper_failed_too"),
        ),
        # Reset here, loaded there: blocking, never "down".
        (
            RESET,
            True,
            _helper(tcp_ok=True, http_failure=None),
            ("http-failure", False, "http.failure"),
        ),
        (
            RESET,
            True,
            _helper(tcp_ok=True, http_failure="unknown_error"),
            (False, False, "down.helper_failed_too"),
        ),
    ],
)
def test_helper_evidence_decides_tcp_ip_and_down(
    final: HTTPTransaction,
    tcp_ok: bool,
    helper: ControlEvidence,
    want: tuple[object, object, str],
) -> None:
    v = classify(_obs(final, tcp_ok), control=helper, network_ok=True)
    assert (v.blocking, v.accessible, v.rule_id) == want


@pytest.mark.parametrize(
    ("operation", "step"),
    [
        ("resolve", "dns"),
        ("connect", "tcp"),
        ("tls_handshake", "tls"),
        ("http_round_trip", "http"),
        ("read", "http"),  # the body was cut after the headers: HTTP, not TLS
        ("deadline", "http"),
        (None, "http"),
    ],
)
def test_failing_step_of_each_operation(operation: str | None, step: str) -> None:
    final = HTTPTransaction(URL, ip=SITE, port=PORT, failure="connection_reset")
    final = HTTPTransaction(
        final.url, ip=SITE, port=PORT, failure="connection_reset", failed_operation=operation
    )
    assert classify(_obs(final), network_ok=True).failing_step == step


def test_read_failure_is_http_failure() -> None:
    v = classify(_obs(READ_CUT), network_ok=True)
    assert (v.blocking, v.accessible, v.failing_step, v.failure) == (
        "http-failure",
        False,
        "http",
        "connection_reset",
    )


# -- throughput: ratio <= 0.5 and p < 0.05 (Bonferroni over the round's tests) ------------------
def steady(
    role: str,
    bytes_per_tick: int,
    *,
    trial: int = 0,
    ticks: int = 24,
    rcv_rtt: int = 20_000,
    min_rtt: int = 20_000,
    ooo: int = 0,
) -> Flow:
    """A flow at an exact constant rate: ``bytes_per_tick`` every 250 ms, no noise."""
    samples = tuple(
        Sample(0.25 * i, bytes_per_tick * i, rcv_rtt, rcv_rtt, min_rtt, ooo, 0)
        for i in range(1, ticks + 1)
    )
    total = bytes_per_tick * ticks
    return Flow(
        role,
        f"https://{role}.test/",
        "192.0.2.1",
        trial,
        0.0,
        0.01,
        0.25 * ticks,
        total,
        total,
        samples,
    )


def test_steady_flow_rate_is_exact() -> None:
    st = flow_stats(steady("target", 31_250))  # 31,250 bytes per 250 ms = 1 Mbit/s
    assert st is not None and st.bps == pytest.approx(1e6) and st.stalled is False


def _trials(target_tick: int, control_tick: int, n: int = 3, **kw: int) -> list[Flow]:
    out = []
    for i in range(n):
        out += [
            steady("target", target_tick, trial=i, **kw),
            steady("control", control_tick, trial=i),
        ]
    return out


@pytest.mark.parametrize(
    ("target_tick", "ratio", "throttled"),
    [
        (31_250, 0.5, True),  # exactly half: "at most 0.5"
        (31_875, 0.51, False),
        (30_625, 0.49, True),
        (62_500, 1.0, False),
    ],
)
def test_ratio_cut_off(target_tick: int, ratio: float, throttled: bool) -> None:
    a = analyse(_trials(target_tick, 62_500))
    assert a.ratio == pytest.approx(ratio)
    assert a.throttled is throttled


def test_p_value_cut_off_with_bonferroni() -> None:
    flows = _trials(15_625, 62_500, n=1, ticks=12)  # a quarter of the control's rate
    one = analyse(flows, tests_in_round=1)
    p_raw = one.p_raw
    assert 0 < p_raw < 0.05 and one.p_value == p_raw and one.throttled is True
    last_ok = math.ceil(0.05 / p_raw) - 1  # the most tests for which p_raw * n < 0.05
    assert analyse(flows, tests_in_round=last_ok).throttled is True
    too_many = analyse(flows, tests_in_round=last_ok + 1)
    assert too_many.p_value == pytest.approx(p_raw * (last_ok + 1))
    assert too_many.throttled is False and too_many.p_raw == p_raw
    assert analyse(flows, tests_in_round=10**9).p_value == 1.0  # capped at 1


# -- looks slow (worth the A/B and the helper's download): the target's median at most half ----
@pytest.mark.parametrize(
    ("target_tick", "slow"),
    [(31_250, True), (31_875, False), (30_625, True), (62_500, False)],  # 0.5, 0.51, 0.49, 1.0
)
def test_looks_slow_cut_off(target_tick: int, slow: bool) -> None:
    assert looks_slow(_trials(target_tick, 62_500)) is slow


def test_looks_slow_takes_medians_not_means() -> None:
    # target trials at 0.4, 0.4 and 2.0 of the control: median 0.4 (slow), mean 0.93 (not)
    t = [steady("target", tick, trial=i) for i, tick in enumerate((25_000, 25_000, 125_000))]
    c = [steady("control", 62_500, trial=i) for i in range(3)]
    assert looks_slow(t + c) is True
    # control trials at 1.0, 1.0 and 0.1: median 1.0; the target at 0.45 is slow against it
    t = [steady("target", 28_125, trial=i) for i in range(3)]
    c = [steady("control", tick, trial=i) for i, tick in enumerate((62_500, 62_500, 6_250))]
    assert looks_slow(t + c) is True


def test_looks_slow_needs_both_sides() -> None:
    assert looks_slow([steady("target", 100)]) is False
    assert looks_slow([steady("control", 100)]) is False
    assert looks_slow([]) is False


# -- the SNI A/B alone: named legs at most half the neutral ones, every one of them ------------
def _ab(named: list[int], neutral: list[int], **kw: int) -> list[Flow]:
    """Named legs between neutral ones, alternating the helper's two addresses."""
    out = []
    for k, tick in enumerate(neutral):
        role = "ab_neutral" if k % 2 == 0 else "ab_neutral2"
        out.append(steady(role, tick, trial=k))
        if k < len(named):
            out.append(steady("ab_target", named[k], trial=k, **kw))
    return out


@pytest.mark.parametrize(
    ("named", "throttled"),
    [
        (31_250, True),  # exactly half: "at most"
        (31_875, False),  # 0.51
        (30_625, True),  # 0.49
    ],
)
def test_ab_alone_ratio_cut_off(named: int, throttled: bool) -> None:
    a = analyse(_ab([named] * 4, [62_500] * 5))
    assert a.basis == "sni_ab" and a.ab_ratio == pytest.approx(named / 62_500)
    assert a.throttled is throttled and a.label == ("sni_targeted" if throttled else None)
    assert a.ratio is None and a.p_value is not None and a.p_value < 0.05


@pytest.mark.parametrize(
    ("slowest_neutral", "throttled"),
    [
        (50_000, True),  # the named legs (25,000) are exactly half the slowest neutral one
        (49_000, False),  # the median says 0.4, but one neutral leg is under twice them
    ],
)
def test_ab_alone_every_named_leg_below_every_neutral(
    slowest_neutral: int, throttled: bool
) -> None:
    a = analyse(_ab([25_000] * 4, [62_500, 62_500, slowest_neutral, 62_500, 62_500]))
    assert a.ab_ratio == pytest.approx(0.4) and a.throttled is throttled
    # and the slowest named leg counts, not the median of them
    b = analyse(_ab([25_000, 25_000, 25_000, 31_875], [62_500] * 5))
    assert b.ab_ratio == pytest.approx(0.4) and b.throttled is False


def test_ab_alone_p_value_is_corrected_and_capped() -> None:
    flows = _ab([25_000] * 4, [62_500] * 5)
    one = analyse(flows)
    assert one.p_value == one.p_raw and one.p_raw is not None and one.p_raw < 0.05
    n = 7
    assert analyse(flows, tests_in_round=n).p_value == pytest.approx(one.p_raw * n)
    huge = analyse(flows, tests_in_round=10**15)
    assert (huge.p_value, huge.throttled, huge.p_raw) == (1.0, False, one.p_raw)


def test_ab_alone_mechanism_from_the_named_legs_only() -> None:
    shaped = analyse(_ab([25_000] * 4, [62_500] * 5, rcv_rtt=60_000))
    assert (shaped.throttled, shaped.mechanism) == (True, "shaper")
    # a queue on the neutral legs alone says nothing about the named ones
    flows = [
        steady(f.role, f.bytes // 24, trial=f.trial, rcv_rtt=200_000)
        if f.role != "ab_target"
        else f
        for f in _ab([25_000] * 4, [62_500] * 5)
    ]
    assert analyse(flows).mechanism is None


@pytest.mark.parametrize(
    ("named", "neutral"),
    [([25_000] * 4, [62_500]), ([], [62_500] * 5)],  # one neutral leg; no named leg
)
def test_ab_alone_needs_two_neutral_legs_and_a_named_one(
    named: list[int], neutral: list[int]
) -> None:
    a = analyse(_ab(named, neutral))
    assert a.throttled is None and a.reason == "SNI A/B incomplete (a download failed)"


def test_ab_alone_a_failed_neutral_leg_leaves_it_undecided() -> None:
    """Four named legs at 0.4 of the neutral ones, five neutral legs of which one was reset:
    the A/B is incomplete, though four neutral legs are left (as many as the named ones)."""
    flows = _ab([25_000] * 4, [62_500] * 5)
    assert analyse(flows).throttled is True
    i = next(i for i, f in enumerate(flows) if f.role == "ab_neutral2")
    flows[i] = Flow("ab_neutral2", "u", "192.0.2.1", 1, failure="connection_reset")
    a = analyse(flows)
    assert a.throttled is None and a.reason == "SNI A/B incomplete (a download failed)"


def test_ab_alone_ratio_is_over_both_neutral_names_together() -> None:
    """The helper's two neutral names at 2 and 1 Mbit/s, two legs each: the named legs (400
    kbit/s) are compared with the median of all four (1.5 Mbit/s), not with the first name's."""
    a = analyse(_ab([12_500] * 4, [62_500, 31_250, 62_500, 31_250]))
    assert a.basis == "sni_ab" and a.ab_ratio == pytest.approx(12_500 / 46_875)
    assert a.throttled is True


def test_ab_alone_neutral_legs_that_got_nothing() -> None:
    """Nothing at all on the neutral name (five time-capped legs, no byte), 800 kbit/s on the
    site's: no throttling, and the ratio is one of a rate over nothing (far above any real
    ratio), not the named legs' rate in bit/s."""
    neutral = [
        Flow(r, "u", "192.0.2.1", k, 0.0, None, 6.0, 0, 0, (), "generic_timeout_error")
        for k, r in enumerate(("ab_neutral", "ab_neutral2") * 2 + ("ab_neutral",))
    ]
    named = [steady("ab_target", 25_000, trial=k) for k in range(4)]
    a = analyse([*neutral, *named])
    assert a.basis == "sni_ab" and a.throttled is False
    assert a.ab_ratio is not None and a.ab_ratio > 1e12


def test_a_p_value_equal_to_alpha_is_not_significant() -> None:
    """Significant means p below alpha: at p == alpha, no throttling (trials and A/B alike)."""
    for flows in (_trials(15_625, 62_500, n=1, ticks=12), _ab([25_000] * 4, [62_500] * 5)):
        p = analyse(flows).p_value
        assert p is not None and 0 < p < 0.05
        assert analyse(flows, alpha=p).throttled is False
        assert analyse(flows, alpha=math.nextafter(p, 1)).throttled is True


# -- a burst, then a throttle: the rate after at most half the burst's, the burst > 2 s of it --
def _shaped(ticks: list[int]) -> Flow:
    """A target flow that moves ``ticks[i]`` bytes in the i-th 250 ms, exactly."""
    samples, got = [], 0
    for i, n in enumerate(ticks, 1):
        got += n
        samples.append(Sample(0.25 * i, got, 20_000, 20_000, 20_000, 0, 0))
    return Flow(
        "target", "https://t.test/", "192.0.2.1", 0, 0.0, 0.01, 0.25 * len(ticks), got, got,
        tuple(samples),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("ticks", "burst", "bps"),
    [
        # 1 s at 2 Mbit/s, then exactly half: a shift; 2 Mbit of burst = 2 s of 1 Mbit/s
        ([62_500] * 4 + [31_250] * 20, 250_000, 1e6),
        ([62_500] * 4 + [31_875] * 20, None, None),  # 0.51 of the burst's rate: no shift
        # one 250 ms tick of burst (500 kbit) against exactly 2 s of what follows
        ([62_500] + [7_812] * 20, 62_500, 249_984.0),
        ([62_500] + [7_813] * 20, None, None),  # a little under 2 s of it: slow start
        ([62_500] * 4 + [15_625] * 20, 250_000, 5e5),
        # a burst as long as the flow's first half allows: found at its end, not its start
        ([62_500] * 3 + [15_625] * 4, 187_500, 5e5),
        # the same single tick, then 2 s at a quarter of it, but a catch-up of 31,250 bytes at
        # the end: the rate that follows (to the last byte) is over 250 kbit/s, no burst
        ([62_500] + [7_812] * 20 + [31_250], None, None),
        # on a short flow (under a second after the shift) too: 1 Mbit against 570 kbit/s
        ([62_500, 62_500, 20_000, 15_625], None, None),
        # fast for three quarters of the flow, then two slower ticks: a shift is looked for
        # in the first half (at least as long a steady part after it), so no burst here
        ([62_500] * 6 + [15_625] * 2, None, None),
        # three intervals are too few to tell a burst from slow start: no shift looked for
        ([62_500, 7_812, 7_812], None, None),
    ],
)
def test_burst_boundaries(ticks: list[int], burst: int | None, bps: float | None) -> None:
    st = flow_stats(_shaped(ticks))
    assert st is not None and st.burst_bytes == burst
    if bps is not None:  # the steady rate is the one after the burst
        assert st.bps == pytest.approx(bps)


def test_burst_ending_inside_an_interval_is_read_back_from_the_line_that_follows() -> None:
    """Two ticks at 8 Mbit/s, then 25,000 bytes in the third (the burst ended 4% into it: 10,000
    bytes of burst, 15,000 at the steady 500 kbit/s), then one tick of 15,625. The steady line
    through the last two samples, read back at the last fast one (0.5 s), puts the burst at
    509,375 bytes: within 625 (the steady rate over that 4%) of the true 510,000, where the
    bytes at 0.5 s alone would say 500,000."""
    st = flow_stats(_shaped([250_000, 250_000, 25_000, 15_625]))
    assert st is not None and st.burst_bytes == 509_375


def test_burst_is_no_more_than_the_bytes_where_its_interval_ends() -> None:
    """The burst stops at 0.5 s (nothing in the next 250 ms: the policer dropped what
    followed), then the queued 31,250 bytes at once and 250 kbit/s. The line fitted to that
    concave tail, read back at 0.5 s, overshoots; the burst ended inside the interval after
    0.5 s, so it is at most the bytes at that interval's end: exactly 125,000. The steady rate
    is of everything after the burst, the pause included: 78,122 bytes in 2 s."""
    st = flow_stats(_shaped([62_500, 62_500, 0, 31_250] + [7_812] * 6))
    assert st is not None and st.burst_bytes == 125_000
    assert st.bps == pytest.approx(78_122 * 8 / 2.0)


# -- whose doing a throttle is: the label's cut-offs -----------------------------------------
def _throttled(*extra: Flow, t_ttfb: float = 0.01, c_ttfb: float = 0.01) -> list[Flow]:
    """Trials with the target at a quarter of the control (throttled), plus ``extra`` legs."""
    flows = [
        replace(f, ttfb=t_ttfb if f.role == "target" else c_ttfb) for f in _trials(15_625, 62_500)
    ]
    return [*flows, *extra]


@pytest.mark.parametrize(
    ("named", "site", "label"),
    [
        (31_250, None, "sni_targeted"),  # the object's host name at exactly half the neutral
        (31_875, None, "target_slow_unattributed"),  # at 0.51
        (62_500, 31_250, "sni_targeted"),  # the site's own name at half, its CDN's not
        (62_500, 31_875, "target_slow_unattributed"),
    ],
)
def test_label_sni_cut_off(named: int, site: int | None, label: str) -> None:
    legs = [steady("ab_neutral", 62_500), steady("ab_target", named)]
    if site is not None:
        legs.append(steady("ab_site", site))
    a = analyse(_throttled(*legs))
    assert a.throttled is True and a.label == label


@pytest.mark.parametrize(
    ("helper_bps", "label"),
    [
        (1e6, "ip_targeted"),  # exactly twice the target's 500 kbit/s, from elsewhere
        (0.99e6, "target_slow_unattributed"),
        (None, "target_slow_unattributed"),  # no helper download: nothing shows whose doing
    ],
)
def test_label_fast_elsewhere_cut_off(helper_bps: float | None, label: str) -> None:
    legs = [steady("ab_neutral", 62_500), steady("ab_target", 62_500)]  # the name is no trigger
    speed = HelperSpeed(bps=helper_bps) if helper_bps is not None else None
    a = analyse(_throttled(*legs), helper_speed=speed)
    assert a.bps == pytest.approx(5e5) and a.label == label


def test_label_fast_elsewhere_needs_the_ab() -> None:
    """Without the A/B's named leg the name cannot be ruled out: not ip_targeted."""
    a = analyse(_throttled(steady("ab_neutral", 62_500)), helper_speed=HelperSpeed(bps=10e6))
    assert a.label == "target_slow_unattributed"


@pytest.mark.parametrize(
    ("t_ttfb", "c_ttfb", "label"),
    [
        (1.0, 0.01, "handshake_throttled"),  # at least 1 s, and 4x the control's
        (0.99, 0.01, "target_slow_unattributed"),
        (2.0, 0.5, "handshake_throttled"),  # exactly 4x
        (1.99, 0.5, "target_slow_unattributed"),
    ],
)
def test_label_handshake_cut_off(t_ttfb: float, c_ttfb: float, label: str) -> None:
    a = analyse(_throttled(t_ttfb=t_ttfb, c_ttfb=c_ttfb))
    assert a.throttled is True and a.label == label


# -- the mechanism: RTT inflation >= 3x is a shaper; drops with < 2x a policer --------------------
@pytest.mark.parametrize(
    ("rcv_rtt", "ooo", "mechanism"),
    [
        (60_000, 0, "shaper"),  # exactly 3x
        (59_800, 0, None),  # 2.99x
        (100_000, 5, "shaper"),  # 5x, drops or not
        (200_000, 0, "shaper"),
        (39_800, 5, "policer"),  # 1.99x with drops
        (40_000, 5, None),  # exactly 2x: neither
        (20_000, 5, "policer"),
        (20_000, 0, None),  # no drops, no queue
    ],
)
def test_shaper_and_policer_inflation(rcv_rtt: int, ooo: int, mechanism: str | None) -> None:
    a = analyse(_trials(15_625, 62_500, rcv_rtt=rcv_rtt, min_rtt=20_000, ooo=ooo))
    assert a.throttled is True and a.mechanism == mechanism


# -- a stall: two seconds or more without a byte, mid-flow -------------------------------------
@pytest.mark.parametrize(
    ("pause", "stalled"), [(1.75, False), (1.99, False), (2.0, True), (3.0, True)]
)
def test_stall_length(pause: float, stalled: bool) -> None:
    pts = [(0.25, 1000), (0.5, 2000)]
    pts += [(0.5 + pause, 2000), (0.75 + pause, 3000), (1.0 + pause, 4000)]
    samples = tuple(Sample(t, b) for t, b in pts)
    f = Flow(
        "target", "https://t.test/", "192.0.2.1", 0, 0.0, 0.01, 1.0 + pause, 4000, 4000, samples
    )
    st = flow_stats(f)
    assert st is not None and st.stalled is stalled


def test_a_stall_right_after_the_first_byte() -> None:
    """One byte, then 2.5 s without another, then the rest: a stall (after the first byte,
    however few came before the pause)."""
    pts = [(0.25, 1), (2.75, 1), (3.0, 1001), (3.25, 2001)]
    f = Flow(
        "target", "u", "192.0.2.1", 0, 0.0, 0.01, 3.25, 2001, 2001,
        tuple(Sample(t, b) for t, b in pts),
    )  # fmt: skip
    st = flow_stats(f)
    assert st is not None and st.stalled is True


# -- events: k = 3 robust deviations, at least log 2 below, five tests of history ---------------
def _series(ratios: list[float], throttled: bool | None = None) -> list[ThroughputTest]:
    return [
        ThroughputTest("site", "AS1", f"2026-11-{i + 1:02d}T00:00:00.000Z", r, throttled)
        for i, r in enumerate(ratios)
    ]


@pytest.mark.parametrize(
    ("dip", "event"),
    [
        (0.5, False),  # exactly half the usual ratio: not "well below"
        (0.49, True),
        (0.25, True),
        (0.6, False),
    ],
)
def test_events_at_least_half_below_a_flat_history(dip: float, event: bool) -> None:
    events = find_events(_series([1.0] * 5 + [dip, dip]))
    assert len(events) == (1 if event else 0)


@pytest.mark.parametrize(("log_dip", "event"), [(-1.33, False), (-1.34, True)])
def test_events_three_robust_deviations(log_dip: float, event: bool) -> None:
    # History logs -0.3, -0.3, 0, 0.3, 0.3: median 0, MAD 0.3 * 1.4826 = 0.445, so "well
    # below" is 3 x 0.445 = 1.334 below (more than log 2 = 0.693).
    history = [math.exp(x) for x in (-0.3, -0.3, 0.0, 0.3, 0.3)]
    dip = math.exp(log_dip)
    events = find_events(_series([*history, dip, dip]))
    assert len(events) == (1 if event else 0)


@pytest.mark.parametrize(
    ("history", "throttled", "event"),
    [
        (4, None, False),  # too little history: only the throttled verdicts count
        (4, True, True),
        (5, None, True),  # five tests are enough history
        (0, None, False),
        (0, True, True),
    ],
)
def test_events_minimum_history(history: int, throttled: bool | None, event: bool) -> None:
    tests = _series([1.0] * history + [0.1, 0.1])
    tests = [
        *tests[:history],
        *(ThroughputTest(t.target, t.network, t.at, t.ratio, throttled) for t in tests[history:]),
    ]
    assert len(find_events(tests)) == (1 if event else 0)


def test_events_need_two_in_a_row() -> None:
    assert find_events(_series([1.0] * 5 + [0.1, 1.0, 0.1, 1.0])) == []
    (e,) = find_events(_series([1.0] * 5 + [0.1, 0.1, 1.0]))
    assert (e.opened_at, e.closed_at) == ("2026-11-06T00:00:00.000Z", "2026-11-08T00:00:00.000Z")
    assert e.baseline_ratio == pytest.approx(1.0) and e.ratios == [0.1, 0.1]


def test_a_zero_ratio_is_always_below() -> None:
    (e,) = find_events(_series([0.0, 0.0]))
    assert e.open and e.baseline_ratio is None


@pytest.mark.parametrize(
    ("helper_says", "ours"),
    [
        (None, "dns_no_answer"),
        ("", "dns_no_answer"),
        ("dns_no_answer", "dns_no_answer"),
        ("dns_name_error", "dns_nxdomain_error"),  # OONI's helper's legacy name
        ("dns_nxdomain_error", "dns_nxdomain_error"),
        ("dns_server_failure", "dns_server_failure"),
        ("generic_timeout_error", "generic_timeout_error"),
    ],
)
def test_helper_dns_failure_names(helper_says: str | None, ours: str) -> None:
    from probe.classify.facts import _normalise_helper_dns_failure

    assert _normalise_helper_dns_failure(helper_says) == ours


def test_mechanism_reads_only_measured_rtts_and_the_final_ooo_count() -> None:
    """Samples without a receiver RTT (0: the kernel had none yet) are left out, not read as
    no queue; out-of-order packets are the kernel's running count, read at the last sample,
    and one is enough."""
    from probe.classify.throughput import _mechanism

    def target(rtts: list[int], last_ooo: int) -> Flow:
        samples = tuple(
            Sample(0.25 * i, 15_625 * i, r, r, 20_000, last_ooo if i == len(rtts) else 0, 0)
            for i, r in enumerate(rtts, 1)
        )
        n = 15_625 * len(rtts)
        return Flow("target", "https://t.test/", "192.0.2.1", 0, 0.0, 0.01, 6.0, n, n, samples)

    assert _mechanism([target([0] * 14 + [60_000] * 10, 0)]) == "shaper"
    assert _mechanism([target([20_000] * 24, 1)]) == "policer"
    assert _mechanism([target([20_000] * 24, 0)]) is None
    assert _mechanism([target([0] * 24, 5)]) is None  # no RTT at all: cannot tell


# -- the throughput analysis' own arithmetic, as literals ----------------------------------------
def test_steady_flow_blocks_and_peak_are_exact() -> None:
    st = flow_stats(steady("target", 31_250))  # 1 Mbit/s for 6 s
    assert st is not None
    assert st.peak_bps == pytest.approx(1e6)
    assert len(st.blocks) == 5 and all(b == pytest.approx(1e6) for b in st.blocks)


def test_analysis_fields_are_the_medians_and_the_defaults() -> None:
    a = analyse(_trials(15_625, 62_500))
    assert a.bps == pytest.approx(5e5) and a.control_bps == pytest.approx(2e6)
    assert a.tests_in_round == 1 and a.ratio == pytest.approx(0.25) and a.basis == "trials"


def test_ratio_is_the_median_of_per_trial_ratios() -> None:
    # trial ratios 0.2, 0.3 and 0.9: the median is 0.3 (the last trial alone would say 0.9)
    flows = []
    for i, (t, c) in enumerate(((12_500, 62_500), (18_750, 62_500), (28_125, 31_250))):
        flows += [steady("target", t, trial=i), steady("control", c, trial=i)]
    assert analyse(flows).ratio == pytest.approx(0.3)


def test_p_value_is_one_sided() -> None:
    """A target faster than its control is no evidence of throttling: p near 1, not near 0."""
    fast = analyse(_trials(125_000, 62_500))
    assert fast.p_raw is not None and fast.p_raw > 0.9 and fast.throttled is False
    ab = analyse(_ab([125_000] * 4, [62_500] * 5))
    assert ab.p_raw is not None and ab.p_raw > 0.9 and ab.throttled is False


def test_a_named_leg_that_never_started_is_a_rate_of_zero() -> None:
    """Nothing within the time cap (no failure, or a timeout) is a rate of zero for the A/B;
    a reset is a failed download and leaves the A/B undecided."""
    neutral = [steady(r, 62_500, trial=k) for k, r in enumerate(("ab_neutral", "ab_neutral2") * 3)]

    def dead(failure: str | None) -> list[Flow]:
        return [
            Flow("ab_target", "u", "192.0.2.1", k, 0.0, None, 6.0, 0, 0, (), failure)
            for k in range(4)
        ]

    for failure in (None, "generic_timeout_error"):
        a = analyse([*neutral, *dead(failure)])
        assert (a.throttled, a.label, a.ab_ratio) == (True, "sni_targeted", 0.0), failure
        assert a.ab is not None and a.ab["ab_target"] == 0.0
    assert analyse([*neutral, *dead("connection_reset")]).throttled is None


def test_a_failed_flow_with_bytes_has_no_stats() -> None:
    f = replace(steady("target", 31_250), failure="connection_reset")
    assert flow_stats(f) is None


def test_pauses_before_the_first_byte_and_after_the_last_are_no_stall() -> None:
    # 3 s before the first byte (a slow first response), then steady
    late = [Sample(0.25 * i, 0) for i in range(1, 13)]
    late += [Sample(3.0 + 0.25 * i, 31_250 * i) for i in range(1, 13)]
    n = 31_250 * 12
    f = Flow("target", "u", "192.0.2.1", 0, 0.0, 0.01, 6.0, n, n, tuple(late))
    st = flow_stats(f)
    assert st is not None and st.stalled is False and st.bps == pytest.approx(1e6)
    # everything in 3 s, then the sampler ticks on for 3 s more
    done = [Sample(0.25 * i, 31_250 * min(i, 12)) for i in range(1, 25)]
    g = Flow("target", "u", "192.0.2.1", 0, 0.0, 0.01, 6.0, n, n, tuple(done))
    st = flow_stats(g)
    assert st is not None and st.stalled is False and st.bps == pytest.approx(1e6)


def test_samples_at_one_instant_are_no_division_by_zero() -> None:
    samples = [Sample(0.25 * i, 31_250 * i) for i in range(1, 13)]
    samples.insert(6, Sample(samples[5].t, samples[5].bytes))  # the sampler read twice
    n = 31_250 * 12
    f = Flow("target", "u", "192.0.2.1", 0, 0.0, 0.01, 3.0, n, n, tuple(samples))
    st = flow_stats(f)
    assert st is not None and st.bps == pytest.approx(1e6)


def test_congestion_needs_both_sides_slowed() -> None:
    """Congestion (not throttled, both well below their own peaks) needs the control slowed
    too: a target alone below its peak is no congestion."""

    def slowed(role: str, trial: int, after: int) -> Flow:
        return replace(_shaped([62_500] * 4 + [after] * 20), role=role, trial=trial)

    both = [slowed(r, i, 15_625) for i in range(3) for r in ("target", "control")]
    assert analyse(both).label == "congestion"
    one = [
        slowed("target", i, 15_625) if r == "target" else steady("control", 25_000, trial=i)
        for i in range(3)
        for r in ("target", "control")
    ]
    a = analyse(one)
    assert a.throttled is False and a.label is None


A, B = "https://site.test/a", "https://site.test/b"


@pytest.mark.parametrize(
    ("ours", "theirs", "match"),
    [
        ((302, A), (302, A), True),
        ((302, A), (301, A), True),  # any two redirect statuses
        ((302, A), (302, B), False),
        ((302, A), (200, None), None),  # only ours redirects
        ((200, None), (302, A), None),
        ((302, A), (302, None), None),  # a redirect without a Location: nothing to compare
        ((302, None), (302, A), None),
        ((200, A), (200, A), None),  # a Location on a 200 is no redirect
    ],
)
def test_location_match(
    ours: tuple[int, str | None], theirs: tuple[int, str | None], match: bool | None
) -> None:
    probe = replace(tx(status=ours[0]), location=ours[1])
    reference = replace(ref(status=theirs[0]), location=theirs[1])
    assert http_diff(probe, reference).location_match is match


def test_no_reference_headers_is_no_header_verdict() -> None:
    d = http_diff(tx(), ref(headers=frozenset()))
    assert (d.headers_match, d.site_headers_match) == (None, None)


@pytest.mark.parametrize(
    ("named", "site", "ab_ratio"),
    [
        (31_250, None, 0.5),
        (125_000, None, 2.0),  # faster under its own name: the ratio says so
        (62_500, 15_625, 0.25),  # the slower of the object's host and the site's name
        (15_625, 62_500, 0.25),
    ],
)
def test_ab_ratio_beside_trials(named: int, site: int | None, ab_ratio: float) -> None:
    legs = [steady("ab_neutral", 62_500), steady("ab_target", named)]
    if site is not None:
        legs.append(steady("ab_site", site))
    a = analyse(_throttled(*legs))
    assert a.ab_ratio == pytest.approx(ab_ratio)
    assert a.ab is not None and ("ab_site" in a.ab) is (site is not None)


def test_mechanism_with_a_one_microsecond_minimum() -> None:
    from probe.classify.throughput import _mechanism

    f = steady("target", 15_625, rcv_rtt=3, min_rtt=1)
    assert _mechanism([f]) == "shaper"


@pytest.mark.parametrize(("ttfb", "bps"), [(0.2, 1e6), (None, 8e5)])
def test_a_flow_done_within_slow_start_is_its_bytes_over_its_time(
    ttfb: float | None, bps: float
) -> None:
    """100 kB, the last byte at 0.75 s (within the transient after the first at 0.25 s): the
    whole body over the whole time after the first response byte."""
    samples = (Sample(0.25, 50_000), Sample(0.75, 100_000))
    f = Flow("target", "u", "192.0.2.1", 0, 0.0, ttfb, 1.0, 100_000, 100_000, samples)
    st = flow_stats(f)
    assert st is not None
    assert st.bps == pytest.approx(bps) and st.blocks == (pytest.approx(bps),)
    assert st.peak_bps == pytest.approx(1.6e6)  # the first 250 ms


def test_a_control_that_crawled_still_completes_its_trial() -> None:
    """A control with one byte in 10 s (0.8 bit/s; no TCP_INFO, so the samples count body
    bytes) beside a 500 kbit/s target: a complete trial, the target far faster than it."""
    crawl = (*(Sample(0.25 * i, 0) for i in range(1, 40)), Sample(10.0, 1))
    control = Flow("control", "u", "192.0.2.1", 0, 0.0, 0.01, 10.0, 1, 1, crawl)
    st = flow_stats(control)
    assert st is not None and st.bps == pytest.approx(0.8)
    a = analyse([steady("target", 15_625), control])
    assert a.reason is None and a.ratio == pytest.approx(5e5 / 0.8)
    assert a.control_bps == pytest.approx(0.8) and a.throttled is False


def test_a_flow_with_headers_but_no_body_byte_has_no_stats() -> None:
    """The samples count the connection's bytes (TLS and headers, a few KB); the body never
    came: no rate is measured from the headers. For the A/B such a named leg is a rate of
    zero, as one that got nothing at all."""
    headers_only = tuple(Sample(0.25 * i, 4_000) for i in range(1, 25))
    dead = Flow("ab_target", "u", "192.0.2.1", 0, 0.0, 0.3, 6.0, 0, 4_000, headers_only)
    assert flow_stats(dead) is None
    neutral = [steady(r, 62_500, trial=k) for k, r in enumerate(("ab_neutral", "ab_neutral2") * 3)]
    a = analyse([*neutral, *(replace(dead, trial=k) for k in range(4))])
    assert a.ab is not None and a.ab["ab_target"] == 0.0 and a.throttled is True


def test_a_flow_with_bytes_but_no_samples_has_no_stats() -> None:
    """Nothing to measure a rate on (a record without samples): no stats, no exception."""
    f = Flow("target", "u", "192.0.2.1", 0, 0.0, 0.01, 1.0, 50_000, 50_000, ())
    assert flow_stats(f) is None
    a = analyse([f, steady("control", 62_500)])
    assert a.throttled is None and a.reason == "no complete trial (a download failed)"


def test_a_named_leg_that_got_nothing_is_one_block_at_zero() -> None:
    """In the U test a named leg with no byte is one 1-second rate of 0 bit/s: it ties with a
    neutral second without a byte (a pause in a neutral leg), it does not rank above it."""
    from scipy.stats import mannwhitneyu

    paused = [Sample(0.25 * i, 62_500 * min(i, 8)) for i in range(1, 17)]  # none in 2-4 s
    paused += [Sample(4.0 + 0.25 * i, 62_500 * (8 + i)) for i in range(1, 9)]
    n = 62_500 * 16
    neutral = [steady(r, 62_500, trial=k) for k, r in enumerate(("ab_neutral", "ab_neutral2") * 2)]
    neutral.append(Flow("ab_neutral", "u", "192.0.2.1", 4, 0.0, 0.01, 6.0, n, n, tuple(paused)))
    blocks = [b for f in neutral for b in flow_stats(f).blocks]  # type: ignore[union-attr]
    assert 0.0 in blocks
    dead = [
        Flow("ab_target", "u", "192.0.2.1", k, 0.0, None, 6.0, 0, 0, (), "generic_timeout_error")
        for k in range(4)
    ]
    a = analyse([*neutral, *dead])
    expected = mannwhitneyu([0.0] * 4, blocks, alternative="less").pvalue
    assert a.p_raw == pytest.approx(float(expected), rel=1e-12)


def test_congestion_needs_both_under_half_their_peaks() -> None:
    """Target and control each at exactly half their peak (2 Mbit/s for 1 s, then 1 Mbit/s):
    not "well below" it, so no congestion."""
    flows = [
        replace(_shaped([62_500] * 4 + [31_250] * 20), role=r, trial=i)
        for i in range(3)
        for r in ("target", "control")
    ]
    st = flow_stats(flows[0])
    assert st is not None and st.bps == pytest.approx(st.peak_bps / 2)
    a = analyse(flows)
    assert a.throttled is False and a.label is None


def test_trials_without_a_control_or_a_target_are_still_trials() -> None:
    """A test with trials is judged on them, never on its SNI A/B alone: with no control flow
    (or no target flow) there is no complete trial."""
    ab = _ab([25_000] * 4, [62_500] * 5)
    for role in ("target", "control"):
        a = analyse([steady(role, 15_625, trial=i) for i in range(3)] + ab)
        assert (a.basis, a.throttled) == ("trials", None), role
        assert a.reason == "no complete trial (a download failed)"


def _sampled(points: list[tuple[float, int]], duration: float, ttfb: float | None = 0.01) -> Flow:
    n = points[-1][1]
    samples = tuple(Sample(t, b) for t, b in points)
    return Flow("target", "u", "192.0.2.1", 0, 0.0, ttfb, duration, n, n, samples)


def test_two_samples_after_slow_start_give_the_steady_rate() -> None:
    """A one-second flow: after the first byte (0.25 s) and the half second of slow start, two
    samples are left (0.75 s and 1 s); their rate, 1 Mbit/s, is the steady one (not the whole
    body over the whole time, 1.67 Mbit/s)."""
    pts = [(0.25, 100_000), (0.5, 150_000), (0.75, 175_000), (1.0, 206_250)]
    st = flow_stats(_sampled(pts, 1.0))
    assert st is not None and st.burst_bytes is None and st.bps == pytest.approx(1e6)


def test_a_clock_that_did_not_move_is_no_division_by_zero() -> None:
    """Every sample at the request's own instant (a coarse clock): no interval to take a rate
    over, so the rate is the body over the flow's time after the first response byte, and the
    peak is that rate too."""
    st = flow_stats(_sampled([(0.0, 50_000), (0.0, 100_000)], 0.5, ttfb=None))
    assert st is not None and st.bps == pytest.approx(1.6e6)
    assert st.peak_bps == pytest.approx(1.6e6) and st.blocks == (pytest.approx(1.6e6),)


def test_a_sample_read_twice_as_slow_start_ends() -> None:
    """The sampler read twice at 0.75 s, where the steady part begins: still 1 Mbit/s from
    the samples (not the body over the whole time)."""
    pts = [(0.25 * i, 31_250 * i) for i in range(1, 13)]
    pts.insert(3, pts[2])
    st = flow_stats(_sampled(pts, 3.0))
    assert st is not None and st.bps == pytest.approx(1e6)


def test_a_download_done_in_its_first_tick() -> None:
    """All 100 kB by the first sample (0.25 s), then two sampler ticks with nothing new: the
    rate is over the time to the last byte, 3.2 Mbit/s."""
    st = flow_stats(_sampled([(0.25, 100_000), (0.5, 100_000), (0.75, 100_000)], 0.75))
    assert st is not None and st.bps == pytest.approx(3.2e6)


def test_blocks_with_a_late_sample() -> None:
    """A busy device: after 0.75 s the next sample came at 2 s. The steady part's 1-second
    blocks each end at the first sample at least a second after the block began, and are
    rates over their own length: 1 Mbit/s over 0.75-2 s, then 2 Mbit/s over 2-3 s and 3-4 s."""
    pts = [(0.25, 31_250), (0.5, 62_500), (0.75, 93_750), (2.0, 250_000)]
    pts += [(2.0 + 0.25 * i, 250_000 + 62_500 * i) for i in range(1, 9)]
    st = flow_stats(_sampled(pts, 4.0))
    assert st is not None and st.burst_bytes is None
    assert st.blocks == (pytest.approx(1e6), pytest.approx(2e6), pytest.approx(2e6))


def test_one_failed_flow_leaves_the_other_trials_counted() -> None:
    failed = Flow("target", "u", "192.0.2.1", 0, failure="connection_reset")
    flows = [failed, *_trials(15_625, 62_500)[2:]]  # trial 0's target failed; trials 1 and 2
    a = analyse(flows)
    assert a.ratio == pytest.approx(0.25) and a.bps == pytest.approx(5e5)
    assert a.control_bps == pytest.approx(2e6)


# -- Rule conditions the loopback world cannot reach, built from recorded goldens --------------
# Each row takes a recording from tests/golden/scenarios and changes the one thing the world
# cannot produce (a measurement cut before its fetch, an OONI import's control, a helper that
# loaded what we could not); the verdict is the one the rule order gives, written by hand.

GOLDEN = paths.GOLDEN


def _recorded(name: str) -> tuple[Observations, ControlEvidence | None]:
    doc = json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))
    return observations_from_json(doc["observations"]), control_from_json(doc["control"])


def _no_fetch(obs: Observations) -> Observations:
    """Resolved (and perhaps connected), then cut before any system fetch was recorded: the
    deadline, or an OONI measurement with queries and no requests."""
    return replace(obs, http=tuple(h for h in obs.http if h.role != "system"))


def _cut(name: str) -> tuple[Observations, ControlEvidence | None]:
    obs, control = _recorded(name)
    return _no_fetch(obs), control


def _page_loaded_helper_reset() -> tuple[Observations, ControlEvidence | None]:
    obs, _ = _recorded("success_http")
    return obs, _recorded("helper_site_resets_everyone")[1]


def _ooni_control_failure_beside_http_failure() -> tuple[Observations, ControlEvidence | None]:
    # OONI's importer keeps control_failure beside the control's own http_request failure.
    obs, control = _recorded("helper_site_resets_everyone")
    assert control is not None and control.http_failure is not None
    return obs, replace(control, failure="generic_timeout_error")


def _loop_helper_loaded() -> tuple[Observations, ControlEvidence | None]:
    return _recorded("redirect_loop")[0], _recorded("helper_success_http")[1]


def _hop_control_failed_fetch_reset() -> tuple[Observations, ControlEvidence | None]:
    # The redirect's name failed on the control resolver but not on ours; the fetch was reset.
    obs, control = _recorded("redirect_into_reset_host")
    dns = tuple(
        replace(q, answers=(), rcode="NXDOMAIN", failure="dns_nxdomain_error")
        if q.resolver == "control" and q.depth == 1
        else q
        for q in obs.dns
    )
    assert any(q.depth == 1 and q.resolver == "control" for q in dns)
    return replace(obs, dns=dns), control


def _one_address_answered_fetch_refused() -> tuple[Observations, ControlEvidence | None]:
    obs, control = _recorded("tcp_refused")
    failed = next(t for t in obs.tcp if t.depth == 0 and not t.ok)
    return replace(obs, tcp=(*obs.tcp, replace(failed, ip="127.0.0.10", failure=None))), control


@pytest.mark.parametrize(
    ("build", "rule", "blocking", "accessible"),
    [
        (lambda: _cut("success_http"), "undetermined", None, None),
        (lambda: _cut("helper_success_http"), "undetermined", None, None),
        (lambda: _cut("dns_unknown_blockpage"), "undetermined", None, None),
        (lambda: _cut("tcp_refused"), "undetermined", None, None),
        (_page_loaded_helper_reset, "http.no_control", None, None),
        (_ooni_control_failure_beside_http_failure, "http.failure", "http-failure", False),
        (_loop_helper_loaded, "http.failure", "http-failure", False),
        (_hop_control_failed_fetch_reset, "http.failure", "http-failure", False),
        (_one_address_answered_fetch_refused, "http.failure", "http-failure", False),
    ],
    ids=[
        "consistent-dns-no-fetch",
        "helper-page-no-fetch",
        "inconsistent-dns-no-fetch",
        "every-connect-failed-no-fetch",
        "page-loaded-helper-fetch-reset",
        "ooni-control-failure-and-http-failure",
        "redirect-loop-helper-loaded-page",
        "hop-name-failed-on-control-only-then-reset",
        "one-address-answered-fetch-refused",
    ],
)
def test_rule_conditions_from_recorded_facts(
    build: Callable[[], tuple[Observations, ControlEvidence | None]],
    rule: str,
    blocking: Blocking,
    accessible: bool | None,
) -> None:
    obs, control = build()
    v = classify(obs, control=control, network_ok=True)
    assert (v.rule_id, v.blocking, v.accessible) == (rule, blocking, accessible)


def test_bogon_answer_without_control_is_not_an_http_failure() -> None:
    """A local answer refused before any connection, with no control answer to compare: the
    failing step is DNS and nothing tells the resolver's lie from the site's own setting."""
    obs, _ = _recorded("dns_loopback")
    obs = replace(obs, dns=tuple(q for q in obs.dns if q.resolver != "control"))
    obs = replace(obs, http=tuple(h for h in obs.http if h.role == "system"))
    obs = replace(obs, tcp=())  # without a control answer there was nothing to dial
    v = classify(obs, network_ok=True)
    assert v.failing_step == "dns" and v.failure == "dns_bogon_error"
    assert (v.rule_id, v.blocking, v.accessible) == ("dns.bogon.unknown", None, None)


def test_the_control_giving_the_same_local_answer_is_down_not_blocked() -> None:
    """Both resolvers answer the same loopback address: the name itself points into a local
    network (the site's own setting), so it is down for everyone, not blocked."""
    obs, _ = _recorded("dns_loopback")
    local = [a for q in obs.dns if q.resolver == "system" for a in q.answers]
    obs = replace(
        obs,
        dns=tuple(
            replace(q, answers=tuple(local)) if q.resolver == "control" else q for q in obs.dns
        ),
        http=tuple(h for h in obs.http if h.role == "system"),
        tcp=(),
    )
    v = classify(obs, network_ok=True)
    assert v.failing_step == "dns" and v.dns_consistency == "consistent"
    assert (v.rule_id, v.blocking, v.accessible) == ("down.local_address", False, False)
