"""HTTP/3 steps (probe.measure.quic) against real loopback servers: an aioquic HTTP/3 server
advertised by Alt-Svc or by a DNS HTTPS record, a UDP port nobody listens on (ICMP port
unreachable), a UDP black hole, a certificate for another name; and the Alt-Svc parser under
Hypothesis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probe import failures
from probe.classify.fingerprints import builtin
from probe.config.targets import Target
from probe.measure import quic
from probe.measure.net import Shared
from probe.model import (
    DNSAnswer,
    DNSQuery,
    H3Endpoint,
    Measurement,
    Observations,
    QUICObservations,
)
from probe.privacy import Scrubber
from probe.round import measure_target
from tests import servers as S
from tests.h3world import OK, SNI, H3World, make_h3_world
from tests.servers.h3 import ClientHelloReader


@pytest.fixture(scope="module")
def h3w(tmp_path_factory: pytest.TempPathFactory) -> Iterator[H3World]:
    with make_h3_world(tmp_path_factory.mktemp("h3")) as w:
        yield w


# -- the steps against real servers ------------------------------------------------------------
def test_h3_advertised_by_alt_svc_handshakes_and_gets_the_page(h3w: H3World) -> None:
    obs, q = h3w.measure("h3.test")
    assert q.skipped is None and q.host == "h3.test"
    assert H3Endpoint("alt-svc", "h3", h3w.port) in q.discovery
    (hs,) = q.handshakes
    assert (hs.ok, hs.ip, hs.server_name, hs.role) == (True, OK, "h3.test", "system")
    assert (hs.quic_version, hs.negotiated_protocol, hs.tls_version) == (
        "0x00000001",
        "h3",
        "TLSv1.3",
    )
    assert hs.certificates and "h3.test" in hs.certificates[0].san
    assert 0 <= hs.t0 < hs.t
    (get,) = q.http
    tcp_get = obs.http[0]
    assert (get.role, get.status_code, get.failure, get.title) == (
        "h3",
        200,
        None,
        "Independent News Today",
    )
    assert (get.body_length, get.body_sha256) == (tcp_get.body_length, tcp_get.body_sha256)
    # the data budget: every datagram, both ways (a QUIC Initial alone is padded to 1200 bytes)
    assert q.bytes >= hs.bytes + get.bytes > 1200 + len(S.PAGE)


def test_h3_advertised_by_an_https_record(h3w: H3World) -> None:
    _, q = h3w.measure("rr.test")
    assert q.discovery == (H3Endpoint("https-rr", "h3", h3w.port),)
    assert {d.query_type for d in q.dns} == {"HTTPS"}
    assert all(d.answers and d.answers[0].type == "HTTPS" for d in q.dns)
    assert q.handshakes[0].ok and q.http[0].status_code == 200


def test_nothing_advertised_is_not_tried(h3w: H3World) -> None:
    _, q = h3w.measure("none.test")
    assert (q.skipped, q.handshakes, q.http) == ("not_advertised", (), ())
    assert q.dns and all(d.failure == failures.DNS_NO_ANSWER for d in q.dns)


def test_the_setting_turns_quic_off(h3w: H3World) -> None:
    _, q = h3w.measure("h3.test", quic=False)
    assert q == QUICObservations(skipped="off")
    assert h3w.config(quic=False).quic is False


def test_udp_port_closed_is_connection_refused(h3w: H3World) -> None:
    _, q = h3w.measure("refused.test")
    hs = q.handshakes[0]
    assert (hs.failure, hs.raw_failure, hs.answered) == (
        failures.CONNECTION_REFUSED,
        "ECONNREFUSED",
        False,
    )
    assert hs.t - hs.t0 < 0.9  # the ICMP error, not the timeout
    assert q.http == ()
    # nothing came back on the site's name: the neutral name asks whether it is the name
    assert q.handshakes[-1].role == "neutral_sni"
    assert q.handshakes[-1].failure == failures.CONNECTION_REFUSED


def test_silent_drop_is_a_timeout_during_quic_handshake(h3w: H3World) -> None:
    _, q = h3w.measure("hole.test")
    system, neutral = q.handshakes
    assert (system.failure, system.answered, neutral.role, neutral.failure) == (
        failures.GENERIC_TIMEOUT,
        False,
        "neutral_sni",
        failures.GENERIC_TIMEOUT,
    )
    assert system.t - system.t0 >= 0.9
    assert q.bytes >= 2 * 1200  # the Initials sent count, answered or not


def test_a_certificate_for_another_name_is_ssl_invalid_hostname(h3w: H3World) -> None:
    obs, q = h3w.measure("badcert.test")
    assert obs.tls[0].ok  # TCP's certificate is fine: only the QUIC server's is wrong
    (hs,) = q.handshakes  # the server answered: no neutral A/B
    assert (hs.failure, hs.answered) == (failures.SSL_INVALID_HOSTNAME, True)
    assert hs.raw_failure is not None and hs.raw_failure.startswith("quic:0x12a:")
    assert hs.certificates and hs.certificates[0].san == ("somewhere-else.test",)
    assert q.http == ()


def test_an_http_only_target_has_no_quic() -> None:
    obs = Observations("http://h3.test/")
    assert quic.https_origin(obs) is None


# -- the parsers of outside input --------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('h3=":443"; ma=86400', [quic.AltSvc("h3", None, 443, 86400)]),
        (
            'h3=":443"; ma=2592000,h3-29=":443"; ma=2592000',
            [quic.AltSvc("h3", None, 443, 2592000), quic.AltSvc("h3-29", None, 443, 2592000)],
        ),
        (
            'h2="alt.example:8443", h3="[2001:db8::1]:443"',
            [quic.AltSvc("h2", "alt.example", 8443), quic.AltSvc("h3", "2001:db8::1", 443)],
        ),
        ("clear", []),
        ('h3=":0"', []),
        ('h3=":99999"', []),
        ('h3="nope"', []),
        ("", []),
        ('w%3Dx=":80"', [quic.AltSvc("w=x", None, 80)]),
    ],
)
def test_alt_svc_values(value: str, expected: list[quic.AltSvc]) -> None:
    assert quic.parse_alt_svc(value) == expected


@given(st.text())
def test_alt_svc_parser_never_raises(value: str) -> None:
    for alt in quic.parse_alt_svc(value):
        assert 0 < alt.port < 65536


_proto = st.sampled_from(["h3", "h3-29", "h2", "http%2F1.1"])  # a protocol-id is %-encoded
_host = st.one_of(st.none(), st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z]{2,6})?", fullmatch=True))


@given(st.lists(st.tuples(_proto, _host, st.integers(1, 65535), st.integers(0, 10**7)), max_size=5))
def test_alt_svc_round_trip(alts: list[tuple[str, str | None, int, int]]) -> None:
    value = ", ".join(f'{p}="{h or ""}:{port}"; ma={ma}' for p, h, port, ma in alts)
    expected = [quic.AltSvc(p.replace("%2F", "/"), h, port, ma) for p, h, port, ma in alts]
    assert quic.parse_alt_svc(value) == expected


def _https_query(*values: str) -> DNSQuery:
    answers = tuple(DNSAnswer("HTTPS", v) for v in values)
    return DNSQuery("site.test", "HTTPS", "system", "udp://x", "udp", answers)


def test_https_record_endpoints() -> None:
    q = _https_query(
        '1 . alpn="h2,h3" port=8443',
        "0 alias.example.",  # alias mode: not an endpoint
        '2 . alpn="h2"',  # no h3
        '3 cdn.example. alpn="h3"',  # another host, port 443
        "garbage that is no record",
    )
    assert quic.https_rr_endpoints(q, "site.test") == [
        H3Endpoint("https-rr", "h3", 8443),
        H3Endpoint("https-rr", "h3", 443, "cdn.example"),
    ]


@given(st.text(max_size=200))
def test_https_record_parser_never_raises(value: str) -> None:
    for ep in quic.https_rr_endpoints(_https_query(value), "site.test"):
        assert ep.alpn == "h3"


@pytest.mark.parametrize(
    ("code", "reason", "failure"),
    [
        (0x12A, "hostname 'a' doesn't match 'b'", failures.SSL_INVALID_HOSTNAME),
        (0x12A, "unable to get local issuer certificate", failures.SSL_UNKNOWN_AUTHORITY),
        (0x12A, "self-signed certificate", failures.SSL_UNKNOWN_AUTHORITY),
        (0x12D, "Certificate is no longer valid", failures.SSL_INVALID_CERTIFICATE),
        (0x12A, "something else", failures.SSL_INVALID_CERTIFICATE),
        (0x128, "handshake failure", failures.SSL_FAILED_HANDSHAKE),
        (0x1, "Could not find a common protocol version", failures.QUIC_INCOMPATIBLE_VERSION),
        (0x0, "Idle timeout", failures.GENERIC_TIMEOUT),
    ],
)
def test_quic_close_codes(code: int, reason: str, failure: str) -> None:
    info = failures.classify_quic_close(code, reason)
    assert (info.failure, info.operation) == (failure, "quic_handshake")
    assert info.raw == f"quic:0x{code:x}:{reason}"


def test_an_unknown_close_keeps_its_code_scrubbed() -> None:
    info = failures.classify_quic_close(0xA, "peer 192.0.2.7 said no")
    assert info.failure == "unknown_failure: quic:0xa:peer [scrubbed] said no"
    assert failures.is_known(info.failure)


# -- a censor that reads the name in QUIC Initial packets -------------------------------------
def test_a_filter_reading_the_initial_drops_the_blocked_name_only(h3w: H3World) -> None:
    obs, q = h3w.measure("sni.test")
    assert obs.tls[0].ok  # TCP and TLS to the same address: fine
    system, neutral = q.handshakes
    assert (system.failure, system.answered, system.ip) == (failures.GENERIC_TIMEOUT, False, SNI)
    assert (neutral.role, neutral.server_name, neutral.ok, neutral.ip) == (
        "neutral_sni",
        quic.NEUTRAL_SNI,
        True,
        SNI,
    )
    assert "sni.test" in h3w.censor.seen and quic.NEUTRAL_SNI in h3w.censor.seen


def test_the_client_hello_reader_reads_aioquic_s_initial() -> None:
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection

    conn = QuicConnection(
        configuration=QuicConfiguration(is_client=True, alpn_protocols=["h3"], server_name="a.b")
    )
    conn.connect(("127.0.0.1", 443), now=0.0)
    reader = ClientHelloReader()
    names = [reader.feed(d) for d, _ in conn.datagrams_to_send(now=0.0)]
    assert names[-1] == "a.b"
    assert ClientHelloReader().feed(b"\x00" * 1200) is None  # not an Initial


# -- one target, as a round measures it ---------------------------------------------------------
def _measure_target(w: H3World, host: str, **kw: Any) -> Measurement:
    async def go() -> Measurement:
        shared = Shared.create(w.config(**kw))
        try:
            return await measure_target(
                shared,
                None,
                Target(name=host, url=w.url(host)),
                round_id="r",
                device_id=None,
                fingerprints=builtin(),
                network_ok=True,
                scrubber=Scrubber(shared.local_addresses),
            )
        finally:
            await shared.aclose()

    return asyncio.run(go())


def test_a_round_s_measurement_carries_http3_and_its_verdict(h3w: H3World) -> None:
    m = _measure_target(h3w, "sni.test")
    q = m.observations.quic
    assert q is not None and [h.role for h in q.handshakes] == ["system", "neutral_sni"]
    assert (m.verdict.quic, m.verdict.quic_rule, m.verdict.rule_id) == (
        "sni_blocked",
        "quic.sni_blocked",
        "https.success",
    )
    tcp_only = _measure_target(h3w, "sni.test", quic=False)
    assert tcp_only.observations.quic is None and tcp_only.verdict.quic is None
    # the data budget counts every QUIC datagram and the HTTPS record queries (the TCP part's
    # count moves a little between runs: the kernel's TCP_INFO)
    assert q.bytes > 2 * 1200
    assert abs((m.bytes_used - q.bytes) - tcp_only.bytes_used) < 0.1 * tcp_only.bytes_used
    assert m.runtime >= q.handshakes[-1].t


# -- the setting ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("flags", "env", "on"),
    [
        ({}, {}, True),
        ({"http3": True}, {}, False),
        ({}, {"PROBE_HTTP3": "0"}, False),
    ],  # --no-http3 given
)
def test_the_http3_setting(flags: dict[str, Any], env: dict[str, str], on: bool) -> None:
    from probe.config.settings import resolve

    assert resolve(flags, env=env).http3 is on


def test_the_http3_get_summarises_as_the_tcp_get_does(h3w: H3World) -> None:
    """Field for field: the page over HTTP/3 is the same page as over TCP (status, headers but
    the transport's own, title, length, digest, not truncated, no Location), and its timing
    lies inside the measurement."""
    obs, q = h3w.measure("h3.test")
    (get,) = q.http
    tcp = obs.http[0]
    assert (get.status_code, get.title, get.body_length, get.body_sha256) == (
        tcp.status_code,
        tcp.title,
        tcp.body_length,
        tcp.body_sha256,
    )
    assert get.body_truncated is False and get.location is None and get.failure is None
    assert get.headers and not any(k.startswith(":") for k, _ in get.headers)
    h3_headers = {k.lower(): v for k, v in get.headers}
    tcp_headers = {k.lower(): v for k, v in tcp.headers}
    assert h3_headers["content-type"] == tcp_headers["content-type"]
    assert h3_headers["content-length"] == str(tcp.body_length)
    assert get.t0 < get.t and get.bytes > 0


def test_an_http3_body_past_the_cap_is_cut_at_the_cap(h3w: H3World) -> None:
    """The body cap holds over HTTP/3 as over TCP: the kept length is the cap, truncated."""
    cap = 10_000
    obs, q = h3w.measure("big.test", body_cap=cap)
    (get,) = q.http
    assert get.failure is None and get.status_code == 200
    assert (get.body_length, get.body_truncated) == (cap, True)
    tcp = obs.http[0]
    assert (tcp.body_length, tcp.body_truncated) == (cap, True)
