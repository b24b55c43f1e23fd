"""HTTP/3 steps (probe.measure.quic) against real loopback servers: an aioquic HTTP/3 server
advertised by Alt-Svc or by a DNS HTTPS record, a UDP port nobody listens on (ICMP port
unreachable), a UDP black hole, a certificate for another name; and the Alt-Svc parser under
Hypothesis.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from hypothesis import given
from hypothesis import strategies as st

from probe import failures
from probe.config.resolver import parse_resolver
from probe.measure import net, quic, steps
from probe.measure.config import MeasureConfig
from probe.measure.runner import measure_url
from probe.model import DNSAnswer, DNSQuery, H3Endpoint, Observations, QUICObservations
from tests import servers as S
from tests.servers.h3 import H3Server, UDPBlackhole, with_alt_svc
from tests.world import server_context

OK, REFUSED, HOLE, BADCERT, RR, NONE = (f"127.0.24.{i}" for i in range(1, 7))
NAMES = ["h3.test", "refused.test", "hole.test", "badcert.test", "rr.test", "none.test"]


@dataclass
class H3World:
    port: int
    ca_pem: str
    dns: S.DNSServer
    h3: H3Server

    def config(self, **kw: Any) -> MeasureConfig:
        spec = parse_resolver(self.dns.address)
        base: dict[str, Any] = dict(
            resolver=spec,
            control_resolver=spec,
            ca_bundle=self.ca_pem,
            timeout=1.0,
            deadline=20,
            body_cap=512 * 1024,
            allow_loopback=True,
        )
        base.update(kw)
        return MeasureConfig(**base)

    def url(self, host: str) -> str:
        return f"https://{host}:{self.port}/"

    def measure(self, host: str, **kw: Any) -> tuple[Observations, QUICObservations]:
        async def go() -> tuple[Observations, QUICObservations]:
            shared = net.Shared.create(self.config(**kw))
            try:
                obs, _, _ = await measure_url(shared, self.url(host))
                ctx = steps.StepContext(
                    time.monotonic(), shared.cfg.timeout, shared.ssl_verify,
                    shared.ssl_noverify, net.ByteCounter(),
                )  # fmt: skip
                return obs, await quic.measure(shared, ctx, obs)
            finally:
                await shared.aclose()

        return asyncio.run(go())


@pytest.fixture(scope="module")
def h3w(tmp_path_factory: pytest.TempPathFactory) -> Iterator[H3World]:
    tmp: Path = tmp_path_factory.mktemp("h3")
    ca = trustme.CA()
    pem = tmp / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    leaf = ca.issue_cert(*NAMES)
    port = S.free_port([OK, REFUSED, HOLE, BADCERT, RR, NONE])
    page = S.Site({"/": (200, S.SITE_HEADERS, S.PAGE)})
    advertised = with_alt_svc(page, port)
    tls = server_context(leaf)
    zone: dict[str, Any] = {
        "h3.test": [OK],
        "refused.test": [REFUSED],
        "hole.test": [HOLE],
        "badcert.test": [BADCERT],
        "rr.test": {"https": f'1 . alpn="h3,h2" port={port}', "addrs": [RR]},
        "none.test": [NONE],
    }
    h3 = H3Server(page, OK, leaf, port)
    objs: list[Any] = [
        h3,
        H3Server(page, BADCERT, ca.issue_cert("somewhere-else.test"), port),
        H3Server(page, RR, leaf, port),
        UDPBlackhole(HOLE, port),
        *(S.WebServer(advertised, ip, port, tls) for ip in (OK, REFUSED, HOLE, BADCERT)),
        S.WebServer(page, RR, port, tls),
        S.WebServer(page, NONE, port, tls),
    ]
    dns = S.DNSServer(zone, host="127.0.24.53")
    objs.append(dns)
    with S.closing_all(*objs):
        yield H3World(port, str(pem), dns, h3)


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


def test_an_http_only_target_has_no_quic(h3w: H3World) -> None:
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
        ),  # fmt: skip
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
