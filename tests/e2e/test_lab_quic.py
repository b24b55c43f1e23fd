"""HTTP/3 end to end through the censorship lab (issue 24): ``probe run`` against QUIC sites
whose UDP/443 the ISP drops, rejects or shapes, one behind a censor that reads the server name
in QUIC Initial packets, and one left alone (tests/lab/quic.py); each gets its HTTP/3 verdict,
without the test helper and with it. Without the helper the round also runs throughput tests,
so the UDP-shaped site's "slower" comes from its object over HTTP/3 beside TCP
(``quic.slower.throughput``); with the helper (no throughput tests) from its page's GETs
(``quic.slower.page``). Needs root and network namespaces, like every lab test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.lab import Lab, lab_for_tests
from tests.lab import quic as quic_lab
from tests.lab.scenarios import CONTROLS

pytestmark = pytest.mark.lab

# target -> (Verdict.quic, Verdict.quic_rule); the TCP side of every one of them loads
EXPECTED = {
    "h3ok": ("ok", "quic.ok"),
    "h3drop": ("blocked", "quic.blocked"),
    "h3reject": ("blocked", "quic.blocked"),
    "h3sni": ("sni_blocked", "quic.sni_blocked"),
    "h3slow": ("slower", "quic.slower.throughput"),
    "h3snidrop": ("blocked", "quic.blocked"),  # alone, the probe cannot tell the name matters
}
# what the SNI A/B against the helper's QUIC listener changes
WITH_HELPER = {
    **EXPECTED,
    "h3snidrop": ("sni_blocked", "quic.sni_blocked.helper"),
    "h3slow": ("slower", "quic.slower.page"),  # no throughput test: the page's GETs compared
}
TP_CONTROLS = {
    "control-site": {"url": "https://control.lab/", "throughput_url": "https://control.lab/tp"}
}


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from lab_for_tests()


def _run(lab: Lab, name: str, *extra: str, throughput: bool = False) -> dict[str, dict[str, Any]]:
    targets = quic_lab.throughput_targets() if throughput else quic_lab.targets()
    controls = TP_CONTROLS if throughput else CONTROLS
    with quic_lab.udp_throttled(lab):
        recs = lab.run_targets(targets, controls, name, *extra)
    return {r["target"]: r for r in recs}


@pytest.fixture(scope="module")
def alone(lab: Lab) -> dict[str, dict[str, Any]]:
    return _run(lab, "quic", *quic_lab.THROUGHPUT_ARGS, throughput=True)


@pytest.fixture(scope="module")
def with_helper(lab: Lab) -> dict[str, dict[str, Any]]:
    return _run(lab, "quic-helper", "--helper", lab.helper)


@pytest.mark.parametrize("target", EXPECTED)
def test_quic_verdict_without_the_helper(alone: dict[str, dict[str, Any]], target: str) -> None:
    r = alone[target]
    assert (r["quic"], r["quic_rule"]) == EXPECTED[target], r["http3"]
    assert (r["blocking"], r["accessible"]) == (False, True)  # TCP and TLS load the page


@pytest.mark.parametrize("target", EXPECTED)
def test_quic_verdict_with_the_helper(with_helper: dict[str, dict[str, Any]], target: str) -> None:
    r = with_helper[target]
    assert (r["quic"], r["quic_rule"]) == WITH_HELPER[target], r["http3"]
    helper_quic = r["control"]["quic_handshake"]
    # the helper, uncensored, did QUIC with every one of them
    assert helper_quic and all(e["ok"] for e in helper_quic.values()), helper_quic


def test_the_steps_show_how(alone: dict[str, dict[str, Any]]) -> None:
    drop = alone["h3drop"]["http3"]["handshakes"]
    reject = alone["h3reject"]["http3"]["handshakes"]
    sni = alone["h3sni"]["http3"]["handshakes"]
    assert [h["failure"] for h in drop] == ["generic_timeout_error"] * 2  # the neutral name too
    assert [h["failure"] for h in reject] == ["connection_refused"] * 2
    assert [(h["role"], h["failure"]) for h in sni] == [
        ("system", "generic_timeout_error"),
        ("neutral_sni", None),
    ]
    ok = alone["h3ok"]["http3"]
    assert ok["handshakes"][0]["negotiated_protocol"] == "h3"
    assert ok["http"][0]["status_code"] == 200 and ok["discovery"][0]["source"] == "alt-svc"


def test_slower_comes_from_http3_beside_tcp_in_the_throughput_test(
    alone: dict[str, dict[str, Any]],
) -> None:
    tp = alone["h3slow"]["throughput"]
    flows = tp["samples"]
    h3 = [f for f in flows if f["role"] == "h3"]
    tcp = {f["trial"]: f for f in flows if f["role"] == "target"}
    assert [f["trial"] for f in h3] == [0, 1, 2] and all(f["failure"] is None for f in h3)
    for f in h3:  # the same object, at the same moment, through the same address
        t = tcp[f["trial"]]
        assert (f["url"], f["ip"]) == (t["url"], t["ip"]) and abs(f["start"] - t["start"]) < 0.5
        assert f["wire_bytes"] > f["bytes"] > 0  # counted in the data budget, both ways
    assert tp["h3_slower"] is True and tp["h3_ratio"] < 0.5 and tp["h3_p_value"] < 0.05, tp
    assert tp["label"] is None  # TCP itself is not throttled: only UDP is shaped
    # the sites whose HTTP/3 did not work, or that offer no object, got no HTTP/3 flow
    for name in ("h3drop", "h3ok"):
        flows_of = (alone[name]["throughput"] or {}).get("samples") or []
        assert not [f for f in flows_of if f["role"] == "h3"], name


def test_http3_off_measures_none(lab: Lab) -> None:
    recs = lab.run_targets(
        {"h3drop": quic_lab.targets()["h3drop"]}, CONTROLS, "noquic", "--no-http3"
    )
    (r,) = [r for r in recs if r["target"] == "h3drop"]
    assert (r["quic"], r["http3"]) == (None, None)
