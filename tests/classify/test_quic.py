"""The HTTP/3 verdict (probe.classify.quic): the QUIC goldens replayed (recorded in the
loopback HTTP/3 world by tests/classify/quic_golden.py), every rule reached, and the edges of
the rules checked on hand-made records.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from probe import failures
from probe.classify import classify
from probe.classify.quic import QUIC_RULES, SLOWER_MIN_BYTES, derive, judge, refine
from probe.model import (
    ControlEndpoint,
    ControlEvidence,
    HTTPTransaction,
    Observations,
    QUICHandshake,
    QUICObservations,
    TCPConnect,
    TLSHandshake,
    control_from_json,
    observations_from_json,
    observations_to_json,
    throughput_from_json,
)
from probe.words import N_

GOLDEN = Path(__file__).parent / "quic_golden"
SCENARIOS = sorted(GOLDEN.glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_quic_golden(path: Path) -> None:
    doc = _load(path)
    obs = observations_from_json(doc["observations"])
    control = control_from_json(doc["control"])
    v = classify(obs, control=control, network_ok=doc["network_ok"])
    tp = throughput_from_json(doc.get("throughput"))
    if tp is not None:
        # The round's way (the page's verdict, then its test's flows) and judge's, agreeing.
        quic_label, quic_rule = refine(v.quic, v.quic_rule, tp.flows, tp.tests_in_round)
        assert judge(obs, control, doc["network_ok"], tp.flows) == (quic_label, quic_rule)
        v = replace(v, quic=quic_label, quic_rule=quic_rule)
    for key, want in doc["expected"].items():
        assert getattr(v, key) == want, f"{path.stem}: {key} = {getattr(v, key)!r}, want {want!r}"


def test_every_quic_rule_but_the_catch_alls_has_a_golden() -> None:
    reached = {_load(p)["expected"]["quic_rule"] for p in SCENARIOS}
    untested = {"quic.offline", "quic.http3_failure", "quic.undetermined"}  # below, by hand
    assert {r.id for r in QUIC_RULES} - untested <= reached


def test_quic_rules_have_unique_ids_and_reasons() -> None:
    ids = [r.id for r in QUIC_RULES]
    assert len(ids) == len(set(ids)) and all(r.why for r in QUIC_RULES)
    assert QUIC_RULES[-1].id == "quic.undetermined"


def test_the_goldens_round_trip_through_json() -> None:
    for path in SCENARIOS:
        doc = _load(path)
        obs = observations_from_json(doc["observations"])
        assert observations_from_json(observations_to_json(obs)) == obs


# -- hand-made edges ---------------------------------------------------------------------------
IP = "192.0.2.10"


def _obs(
    *handshakes: QUICHandshake,
    get: HTTPTransaction | None = None,
    tls_ok: bool | None = True,
    tcp_get: HTTPTransaction | None = None,
) -> Observations:
    tls = (
        ()
        if tls_ok is None
        else (TLSHandshake(IP, 443, "s.test", failure=None if tls_ok else "connection_reset"),)
    )
    return Observations(
        "https://s.test/",
        tcp=(TCPConnect(IP, 443),),
        tls=tls,
        http=(tcp_get,) if tcp_get else (),
        quic=QUICObservations(host="s.test", handshakes=handshakes, http=(get,) if get else ()),
    )


def _hs(
    failure: str | None = None, *, answered: bool = False, role: str = "system"
) -> QUICHandshake:
    return QUICHandshake(IP, 443, "s.test", role=role, failure=failure, answered=answered)


TIMEOUT = failures.GENERIC_TIMEOUT


def test_not_measured_has_no_quic_verdict() -> None:
    assert judge(Observations("https://s.test/")) == (None, None)
    off = Observations("https://s.test/", quic=QUICObservations(skipped="off"))
    assert judge(off) == (None, None)
    assert (classify(off).quic, classify(off).quic_rule) == (None, None)


def test_offline_says_nothing_about_quic() -> None:
    assert judge(_obs(_hs(TIMEOUT)), network_ok=False) == (None, "quic.offline")


def test_a_failed_http3_get_after_a_handshake_is_a_failure() -> None:
    get = HTTPTransaction("https://s.test/", role="h3", failure=TIMEOUT)
    assert judge(_obs(_hs(), get=get)) == ("failure", "quic.http3_failure")


def test_a_neutral_name_that_got_no_answer_either_is_endpoint_blocking() -> None:
    obs = _obs(_hs(TIMEOUT), _hs(TIMEOUT, role="neutral_sni"))
    assert judge(obs) == ("blocked", "quic.blocked")


def test_a_neutral_name_that_was_answered_with_an_alert_is_sni_blocking() -> None:
    obs = _obs(_hs(TIMEOUT), _hs(failures.SSL_FAILED_HANDSHAKE, answered=True, role="neutral_sni"))
    assert judge(obs) == ("sni_blocked", "quic.sni_blocked")


def test_an_answered_failure_is_not_blocking() -> None:
    assert judge(_obs(_hs(failures.SSL_INVALID_HOSTNAME, answered=True))) == (
        "failure",
        "quic.handshake_failure",
    )


def test_no_tls_record_leaves_quic_undetermined() -> None:
    assert judge(_obs(_hs(TIMEOUT), tls_ok=None)) == (None, "quic.undetermined")


def test_a_helper_that_did_quic_keeps_blocking() -> None:
    control = ControlEvidence(quic_handshake={f"{IP}:443": ControlEndpoint(True)})
    assert judge(_obs(_hs(TIMEOUT)), control) == ("blocked", "quic.blocked")
    failed = replace(control, failure="generic_timeout_error")  # an unusable answer: ignored
    assert derive(_obs(_hs(TIMEOUT)), failed).helper_quic is None


def _get(role: str, length: int, seconds: float, sha: str = "x") -> HTTPTransaction:
    return HTTPTransaction(
        "https://s.test/",
        role=role,
        status_code=200,
        body_length=length,
        body_sha256=sha,
        t=seconds,
    )


@pytest.mark.parametrize(
    ("h3_seconds", "length", "sha", "label"),
    [
        (3.1, SLOWER_MIN_BYTES, "x", "slower"),  # over 3x slower
        (2.9, SLOWER_MIN_BYTES, "x", "ok"),
        (10.0, SLOWER_MIN_BYTES - 1, "x", "ok"),  # too small to compare rates
        (10.0, SLOWER_MIN_BYTES, "y", "ok"),  # not the same body
    ],
)
def test_slower_needs_the_same_large_body_at_a_third_of_the_rate(
    h3_seconds: float, length: int, sha: str, label: str
) -> None:
    obs = _obs(_hs(), get=_get("h3", length, h3_seconds, sha), tcp_get=_get("system", length, 1.0))
    assert judge(obs)[0] == label


def test_every_quic_rule_reason_is_a_message_id() -> None:
    assert all(N_(r.why) == r.why for r in QUIC_RULES)
