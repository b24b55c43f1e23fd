"""The OONI importer reading ``quic_handshakes`` and HTTP/3 requests (issue 24): recorded lines
(tests/fixtures/ooni-quic/README.md) come back with their QUIC steps and their HTTP/3 verdict;
the entries' parser under Hypothesis (any JSON: a result or OONIFormatError, nothing else).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe import failures
from probe.classify import classify
from probe.classify.quic import judge
from probe.errors import OONIFormatError
from probe.model import observations_from_json
from probe.ooni.translate import from_ooni
from tests.paths import FIXTURES, TESTS

ROOT = FIXTURES / "ooni-quic"
LINES = [json.loads(x) for x in (ROOT / "probe_export.jsonl").read_text().splitlines()]
GOLDEN = TESTS / "classify" / "quic_golden"
STEP = (
    "ip",
    "port",
    "server_name",
    "role",
    "failure",
    "answered",
    "negotiated_protocol",
    "quic_version",
    "tls_version",
    "cipher_suite",
)


def _name(doc: dict[str, Any]) -> str:
    host = doc["input"].split("//")[1].split(":")[0]
    return {
        "sni.test": "quic_sni_blocked",
        "h3.test": "h3_ok",
        "refused.test": "udp_rejected_tcp_works",
        "badcert.test": "quic_bad_certificate",
    }[host]


@pytest.mark.parametrize("doc", LINES, ids=_name)
def test_probes_own_export_comes_back_with_its_quic_verdict(doc: dict[str, Any]) -> None:
    imported = from_ooni(doc)
    v = classify(imported.observations, control=imported.control, network_ok=imported.network_ok)
    notes = doc["annotations"]
    assert (v.quic or "", v.quic_rule) == (notes["probe_quic"], notes["probe_quic_rule"])
    # the steps as they were measured (certificates, bytes and sources are not in the format)
    golden = json.loads((GOLDEN / f"{_name(doc)}.json").read_text(encoding="utf-8"))
    want = observations_from_json(golden["observations"]).quic
    got = imported.observations.quic
    assert want is not None and got is not None and got.host == want.host
    assert [[getattr(h, k) for k in STEP] for h in got.handshakes] == [
        [getattr(h, k) for k in STEP] for h in want.handshakes
    ]
    assert [(h.role, h.status_code, h.failure) for h in got.http] == [
        (h.role, h.status_code, h.failure) for h in want.http
    ]


def test_an_http3_request_is_not_taken_for_a_tcp_one() -> None:
    (ok,) = [d for d in LINES if _name(d) == "h3_ok"]
    obs = from_ooni(ok).observations
    assert obs.quic is not None and [(h.role, h.status_code) for h in obs.quic.http] == [
        ("h3", 200)
    ]
    assert all(h.role != "h3" for h in obs.http) and [h.role for h in obs.http] == ["system"]


def test_ooni_probe_clis_handshake_record_is_read() -> None:
    doc = json.loads((ROOT / "probe_cli_handshake.json").read_text(encoding="utf-8"))
    obs = from_ooni(doc).observations
    assert obs.quic is not None and obs.quic.host == "dns.google"
    (h,) = obs.quic.handshakes
    assert (h.ip, h.port, h.role, h.ok, h.answered) == ("8.8.4.4", 443, "system", True, True)
    assert (h.negotiated_protocol, h.tls_version, h.cipher_suite) == (
        "h3",
        "TLSv1.3",
        "TLS_CHACHA20_POLY1305_SHA256",
    )
    assert (h.t0, h.t) == (0.025061583, 0.073469208)  # "started", in probe-cli's trace
    # a handshake and no HTTP/3 request (OONI did not send one): QUIC works, nothing failed
    assert judge(obs, network_ok=True) == ("ok", "quic.ok")


def _wc(entries: Any) -> dict[str, Any]:
    return {
        "test_name": "web_connectivity",
        "input": "https://s.test/",
        "test_keys": {
            "tcp_connect": [{"ip": "192.0.2.1", "port": 443, "status": {"success": True}}],
            "tls_handshakes": [{"address": "192.0.2.1:443", "server_name": "s.test"}],
            "quic_handshakes": entries,
        },
    }


def test_a_silent_udp_handshake_in_oonis_own_data_is_endpoint_blocking() -> None:
    """OONI's entries do not say whether anything answered: a timeout or a refusal did not."""
    timeout = {
        "address": "192.0.2.1:443",
        "server_name": "s.test",
        "failure": "generic_timeout_error",
    }
    obs = from_ooni(_wc([timeout])).observations
    assert obs.quic is not None and obs.quic.handshakes[0].answered is False
    assert judge(obs, network_ok=True) == ("blocked", "quic.blocked")
    neutral = {**timeout, "server_name": "example.org", "failure": None, "no_tls_verify": True}
    obs = from_ooni(_wc([timeout, neutral])).observations
    assert judge(obs, network_ok=True) == ("sni_blocked", "quic.sni_blocked")
    alert = {**timeout, "failure": "ssl_invalid_hostname"}
    obs = from_ooni(_wc([alert])).observations
    assert obs.quic is not None and obs.quic.handshakes[0].answered is True


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)
_field = st.sampled_from(
    [
        "address",
        "server_name",
        "failure",
        "negotiated_protocol",
        "negotiated_proto",
        "no_tls_verify",
        "tags",
        "t0",
        "t",
        "started",
        "x_answered",
        "x_quic_version",
        "tls_version",
    ]
)
_entry = st.dictionaries(_field, _json, max_size=6) | _json


@settings(max_examples=300, deadline=None)
@given(st.lists(_entry, max_size=4) | _json)
def test_any_quic_handshakes_is_read_or_refused_as_not_ooni(entries: Any) -> None:
    try:
        imported = from_ooni(_wc(entries))
    except OONIFormatError:
        return
    classify(imported.observations, network_ok=True)  # and the classifier can judge it
    q = imported.observations.quic
    if q is not None:
        assert all(isinstance(h.port, int) and 0 <= h.port < 65536 for h in q.handshakes)


_failures = st.sampled_from(sorted(failures.VOCABULARY)) | st.none()


@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "address": st.sampled_from(["192.0.2.1:443", "[2001:db8::1]:8443"]),
                "server_name": st.from_regex(r"[a-z]{1,10}\.test", fullmatch=True),
                "failure": _failures,
                "no_tls_verify": st.booleans(),
                "t0": st.floats(0, 100),
                "t": st.floats(0, 100),
            }
        ),
        min_size=1,
        max_size=4,
    )
)
def test_well_formed_entries_keep_their_fields(entries: list[dict[str, Any]]) -> None:
    q = from_ooni(_wc(entries)).observations.quic
    assert q is not None and len(q.handshakes) == len(entries)
    for h, e in zip(q.handshakes, entries, strict=True):
        assert f"{h.ip}:{h.port}" in (e["address"], e["address"].replace("[", "").replace("]", ""))
        assert (h.server_name, h.failure, h.t0, h.t) == (
            e["server_name"],
            e["failure"],
            e["t0"],
            e["t"],
        )
        assert h.role == ("neutral_sni" if e["no_tls_verify"] else "system")
