"""The measuring code against real loopback servers: every step recorded, failures as results."""

from __future__ import annotations

import pytest

from probe import failures
from probe.classify import classify
from tests.world import BLOCKPAGE, HOLE, PROXY, SITE, World


def _system(obs):  # type: ignore[no-untyped-def]
    return [h for h in obs.http if h.role == "system"]


def test_success_http_records_every_step(world: World) -> None:
    obs, used = world.measure(world.http("news.test"))
    kinds = {(q.resolver, q.query_type) for q in obs.dns}
    assert kinds == {("system", "A"), ("system", "AAAA"), ("control", "A"), ("control", "AAAA")}
    a = next(q for q in obs.dns if q.resolver == "system" and q.query_type == "A")
    assert a.addrs == [SITE] and a.rcode == "NOERROR" and a.answers[0].ttl == 300
    aaaa = next(q for q in obs.dns if q.resolver == "system" and q.query_type == "AAAA")
    assert aaaa.failure == failures.DNS_NO_ANSWER
    assert [(t.ip, t.ok) for t in obs.tcp] == [(SITE, True)]
    (h,) = obs.http
    assert h.status_code == 200 and h.title == "Independent News Today"
    assert h.body_length == len(h.body.encode()) and len(h.body_sha256) == 64
    assert not h.body_truncated and h.header("x-news-site") == "1"
    assert 0 <= h.t0 <= h.t and used > h.body_length
    v = classify(obs)
    assert (v.blocking, v.accessible, v.dns_consistency) == (False, True, "consistent")


def test_success_https_records_tls(world: World) -> None:
    obs, _ = world.measure(world.https("news.test"))
    (tls,) = obs.tls
    assert tls.ok and tls.server_name == "news.test" and tls.tls_version == "TLSv1.3"
    assert tls.cipher_suite and tls.negotiated_protocol == "http/1.1"
    assert tls.certificates and "news.test" in tls.certificates[0].san and tls.bytes > 500
    assert classify(obs).accessible is True


def test_doh_control_resolver(world: World) -> None:
    from probe.config.resolver import parse_resolver

    obs, _ = world.measure(
        world.http("blocked.test"), control_resolver=parse_resolver(world.doh_url)
    )
    ctl = [q for q in obs.dns if q.resolver == "control" and q.query_type == "A"]
    assert ctl[0].engine == "doh" and ctl[0].addrs == [SITE] and ctl[0].bytes > 0


@pytest.mark.parametrize(
    ("host", "step", "failure"),
    [
        ("down.test", "dns", failures.DNS_NXDOMAIN),
        ("servfail.test", "dns", failures.DNS_SERVFAIL),
        ("silent.test", "dns", failures.GENERIC_TIMEOUT),
        ("refused.test", "tcp", failures.CONNECTION_REFUSED),
        ("hole.test", "tcp", failures.GENERIC_TIMEOUT),
        ("reset.test", "http", failures.CONNECTION_RESET),
        ("eof.test", "http", failures.EOF_ERROR),
    ],
)
def test_http_failures_are_results(world: World, host: str, step: str, failure: str) -> None:
    obs, _ = world.measure(world.http(host))
    final = _system(obs)[-1]
    assert final.failure == failure
    assert classify(obs).failing_step == step


@pytest.mark.parametrize(
    ("host", "failure"),
    [
        ("tls-reset.test", failures.CONNECTION_RESET),
        ("eof.test", failures.EOF_ERROR),
        ("wrongname.test", failures.SSL_INVALID_HOSTNAME),
        ("rogue.test", failures.SSL_UNKNOWN_AUTHORITY),
        ("expired.test", failures.SSL_INVALID_CERTIFICATE),
    ],
)
def test_tls_failures(world: World, host: str, failure: str) -> None:
    obs, _ = world.measure(world.https(host))
    (tls,) = [t for t in obs.tls if "system" in t.sources]
    assert tls.failure == failure and tls.raw_failure
    if failure.startswith("ssl_"):
        # the certificate that was presented is kept as evidence
        assert tls.certificates and tls.certificates[0].sha256
    assert _system(obs)[-1].failed_operation == failures.OP_TLS


def test_redirects_each_hop_recorded(world: World) -> None:
    obs, _ = world.measure(world.http("redirect.test", "/hop0"))
    hops = _system(obs)
    assert [h.depth for h in hops] == [*range(11), 11]
    assert all(h.status_code == 302 for h in hops[:-1])
    assert hops[-1].failure == failures.HTTP_TOO_MANY_REDIRECTS
    v = classify(obs)
    assert (v.blocking, v.accessible, v.rule_id) == (False, False, "down.redirect_loop")


def test_ten_redirects_are_followed(world: World) -> None:
    obs, _ = world.measure(world.http("redirect.test", "/hop5"))
    hops = _system(obs)
    assert len(hops) == 11 and hops[-1].status_code == 200


def test_redirect_into_blocked_host(world: World) -> None:
    obs, _ = world.measure(world.http("news.test", "/to-reset"))
    hops = _system(obs)
    assert hops[0].status_code == 302 and hops[1].depth == 1
    assert hops[1].failure == failures.CONNECTION_RESET
    v = classify(obs)
    assert (v.blocking, v.accessible) == ("http-failure", False)


def test_broken_redirect_location(world: World) -> None:
    obs, _ = world.measure(world.http("news.test", "/broken"))
    assert _system(obs)[-1].failure == failures.HTTP_INVALID_REDIRECT_LOCATION_HOST


def test_gzip_bomb_is_capped(world: World) -> None:
    obs, _ = world.measure(world.http("bomb.test", "/bomb"), body_cap=512 * 1024)
    (h,) = obs.http
    assert h.body_truncated and h.body_length == 512 * 1024


def test_large_body_is_truncated(world: World) -> None:
    obs, used = world.measure(world.http("big.test", "/large"), body_cap=100_000)
    (h,) = obs.http
    assert h.body_truncated and h.body_length == 100_000 and h.failure is None
    assert used < 2 * 1024 * 1024  # stopped reading instead of downloading it all


def test_idn_host(world: World) -> None:
    obs, _ = world.measure(f"http://bücher.test:{world.http_port}/")
    assert obs.dns[0].hostname == "xn--bcher-kva.test"
    assert _system(obs)[-1].status_code == 200


def test_dns_lie_to_blockpage_fetches_control_page(world: World) -> None:
    obs, _ = world.measure(world.http("blocked.test"))
    system, control = _system(obs), [h for h in obs.http if h.role == "control"]
    assert system[-1].ip == BLOCKPAGE and control[-1].ip == SITE
    assert {t.ip for t in obs.tcp} == {BLOCKPAGE, SITE}


def test_dns_lie_to_transparent_proxy(world: World) -> None:
    obs, _ = world.measure(world.http("proxied.test"))
    assert _system(obs)[-1].ip == PROXY
    v = classify(obs)
    assert (v.blocking, v.accessible, v.dns_consistency) == (False, True, "inconsistent")
    assert v.rule_id == "dns.inconsistent.same_page"


def test_loopback_answer_is_never_dialled_by_default(world: World) -> None:
    obs, _ = world.measure(world.http("loopback.test"), allow_loopback=False)
    assert not [t for t in obs.tcp if t.ip == "127.0.0.1"]
    v = classify(obs)
    assert (v.blocking, v.accessible) == ("dns", False)


def test_deadline_ends_a_target_cleanly(world: World) -> None:
    obs, _ = world.measure(world.http("hole.test"), timeout=5, deadline=1)
    assert obs.http[-1].failure == failures.GENERIC_TIMEOUT
    assert obs.http[-1].raw_failure == "target deadline"
    assert obs.http[-1].failed_operation == failures.OP_CONNECT  # the step in flight
    assert HOLE in {t.ip for t in obs.tcp} or obs.tcp == ()
