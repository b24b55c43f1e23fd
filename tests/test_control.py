"""Control evidence from a test helper's answer (OONI's shape): every field, as a literal."""

from __future__ import annotations

from typing import Any

import pytest

from probe.control import to_evidence
from probe.model import ControlEndpoint, ControlEvidence

ANSWER = {
    "tcp_connect": {
        "198.51.100.7:443": {"status": True, "failure": None},
        "198.51.100.8:443": {"status": False, "failure": "connection_refused_error"},
    },
    "tls_handshake": {
        "198.51.100.7:443": {"server_name": "site.test", "status": True, "failure": None},
        "198.51.100.8:443": {
            "server_name": "site.test",
            "status": False,
            "failure": "ssl_invalid_hostname",
        },
    },
    "quic_handshake": {},
    "http_request": {
        "body_length": 2431,
        "failure": None,
        "title": "Independent News Today",
        "headers": {"Date": "Sun, 29 Nov 2026 02:00:00 GMT", "X-News-Site": "1"},
        "status_code": 200,
    },
    "http3_request": None,
    "dns": {"failure": None, "addrs": ["198.51.100.7", "198.51.100.8"]},
    "ip_info": {},
}


def test_a_full_answer() -> None:
    assert to_evidence(ANSWER) == ControlEvidence(
        source="helper",
        failure=None,
        dns_failure=None,
        dns_addrs=("198.51.100.7", "198.51.100.8"),
        tcp_connect={
            "198.51.100.7:443": ControlEndpoint(True, None, None),
            "198.51.100.8:443": ControlEndpoint(False, "connection_refused_error", None),
        },
        tls_handshake={
            "198.51.100.7:443": ControlEndpoint(True, None, "site.test"),
            "198.51.100.8:443": ControlEndpoint(False, "ssl_invalid_hostname", "site.test"),
        },
        http_failure=None,
        http_status_code=200,
        http_body_length=2431,
        http_title="Independent News Today",
        http_headers={"Date": "Sun, 29 Nov 2026 02:00:00 GMT", "X-News-Site": "1"},
    )
    assert to_evidence(ANSWER, source="ooni").source == "ooni"


def test_a_failed_fetch_uses_minus_one() -> None:
    ev = to_evidence(
        {
            "dns": {"failure": "dns_name_error", "addrs": []},
            "http_request": {
                "failure": "dns_lookup_error",
                "status_code": -1,
                "body_length": -1,
                "title": "",
                "headers": {},
            },
        }
    )
    assert (ev.failure, ev.dns_failure, ev.dns_addrs) == (None, "dns_name_error", ())
    assert (ev.http_failure, ev.http_status_code, ev.http_body_length, ev.http_title) == (
        "dns_lookup_error",
        None,
        None,
        None,
    )
    assert (ev.tcp_connect, ev.tls_handshake, ev.http_headers) == ({}, {}, {})


@pytest.mark.parametrize(
    ("status", "length", "want"),
    [
        (200, 0, (200, 0)),  # an empty body has a length
        (1, 1, (1, 1)),
        (0, -1, (None, None)),
        (-1, -1, (None, None)),
        (None, None, (None, None)),
        (200.0, 12.0, (None, None)),  # not whole numbers: the answer is not OONI's shape
    ],
)
def test_status_and_length_values(status: Any, length: Any, want: tuple[Any, Any]) -> None:
    ev = to_evidence({"http_request": {"status_code": status, "body_length": length}})
    assert (ev.http_status_code, ev.http_body_length) == want


@pytest.mark.parametrize(
    ("answer", "where"),
    [
        ([1, 2], "Expected `object`, got `array`"),
        ("text", "Expected `object`, got `str`"),
        (None, "Expected `object`, got `null`"),
        (3, "Expected `object`, got `int`"),
        ({"tcp_connect": {"junk": "not a mapping"}}, "$.tcp_connect[...]"),
        ({"http_request": {"headers": {"X-News-Site": 1}}}, "$.http_request.headers"),
        ({"http_request": {"status_code": "200"}}, "$.http_request.status_code"),
        ({"dns": {"addrs": "10.0.0.1"}}, "$.dns.addrs"),
    ],
)
def test_an_answer_of_another_shape_is_evidence_of_nothing(answer: Any, where: str) -> None:
    """Not OONI's helper answer: json_parse_error, with what was wrong and where; nothing of
    it is used (a field of the wrong type would otherwise be silently dropped)."""
    ev = to_evidence(answer)
    assert (ev.source, ev.failure) == ("helper", "json_parse_error")
    assert ev.raw_failure is not None and where in ev.raw_failure, ev.raw_failure
    assert (ev.dns_addrs, ev.tcp_connect, ev.http_status_code) == ((), {}, None)
    assert to_evidence(answer, source="ooni").source == "ooni"
