"""Hostile redirects and DNS replies (issue 10, items 6 to 9), each failing before its fix.

A site can send any Location; a resolver or an off-path injector can send records for another
name. None of it may make a false "dns" verdict, lose the response, use an answer the queried
name does not own, or make the probe dial an address on the volunteer's own network.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from probe.classify import classify
from tests import servers as S
from tests.world import OTHER, SITE, World

REDIRECTOR = "127.0.0.98"


@pytest.fixture
def redirect_to(world: World) -> Iterator[dict[str, S.WebServer]]:
    """A site at redir.test whose / answers 302 with the Location the test sets."""
    servers: dict[str, S.WebServer] = {}
    world.zone["redir.test"] = world.control_zone["redir.test"] = [REDIRECTOR]
    yield servers
    for srv in servers.values():
        srv.close()


def _serve(world: World, servers: dict[str, S.WebServer], location: str) -> None:
    servers["r"] = S.WebServer(S.Site({"/": S.redirect(location)}), REDIRECTOR, world.http_port)


@pytest.mark.parametrize(
    "location",
    ["http://2130706433/", "http://" + "a" * 300 + ".test/", "http://[zz"],
    ids=["decimal-ip-host", "300-char-label", "bracket-garbage"],
)
def test_a_redirect_host_that_fails_for_the_control_too_is_no_blocking(
    world: World, redirect_to: dict[str, S.WebServer], location: str
) -> None:
    _serve(world, redirect_to, location)
    obs, _ = world.measure(world.http("redir.test"))
    v = classify(obs, network_ok=True)
    assert (v.blocking, v.accessible, v.failing_step) == (False, False, "dns")
    assert v.rule_id == "down.redirect_dns"


def test_a_redirect_hop_the_control_resolves_is_still_dns_blocking(world: World) -> None:
    obs, _ = world.measure(world.http("news.test", "/to-nx"))  # nowhere.test: NXDOMAIN only here
    v = classify(obs, network_ok=True)
    assert (v.blocking, v.accessible, v.rule_id) == ("dns", False, "dns.redirect_hop")


@pytest.mark.parametrize("location", ["javascript:alert(1)", "file:///etc/passwd"])
def test_a_redirect_to_a_non_web_scheme_keeps_the_response(
    world: World, redirect_to: dict[str, S.WebServer], location: str
) -> None:
    """javascript: used to lose the response (unknown_failure, no status code)."""
    _serve(world, redirect_to, location)
    obs, _ = world.measure(world.http("redir.test"))
    hop, broken = obs.http[0], obs.http[1]
    assert (hop.status_code, hop.location, hop.failure) == (302, location, None)
    assert broken.failure == "http_invalid_redirect_location_host"
    assert broken.raw_failure == location and len(obs.http) == 2


def test_a_redirect_to_a_loopback_literal_is_recorded_and_not_followed(
    world: World, redirect_to: dict[str, S.WebServer]
) -> None:
    """Something listens on 127.0.0.1 and must never be asked. (Private and link-local
    literals are checked by refuse_redirect_to below and end to end in the lab, whose
    namespaces have no route out: a regression here must not send a packet off this host.)"""
    _serve(world, redirect_to, f"http://127.0.0.1:{world.http_port}/latest/meta-data")
    watch = socket.socket()
    watch.bind(("127.0.0.1", world.http_port))
    watch.listen(1)
    watch.settimeout(0.3)
    try:
        obs, _ = world.measure(
            world.http("redir.test"), allow_loopback=False, allow_networks=(f"{REDIRECTOR}/32",)
        )
        with pytest.raises(TimeoutError):
            watch.accept()
    finally:
        watch.close()
    assert [(h.depth, h.status_code) for h in obs.http] == [(0, 302)]
    assert obs.http[0].location == f"http://127.0.0.1:{world.http_port}/latest/meta-data"
    assert {t.ip for t in obs.tcp} == {REDIRECTOR}


@pytest.mark.parametrize(
    ("host", "refused"),
    [
        ("169.254.169.254", True),  # cloud metadata, link-local
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("192.168.1.1", True),
        ("100.64.0.1", True),  # carrier-grade NAT
        ("127.0.0.1", True),
        ("0.0.0.0", True),
        ("224.0.0.1", True),
        ("[fe80::1]", True),
        ("[::1]", True),
        ("[fd00::1]", True),
        ("93.184.216.34", False),  # a public address: followed
        ("[2606:2800:220:1:248:1893:25c8:1946]", False),
        ("news.test", False),  # a name: resolved and judged by its answers
    ],
)
def test_refuse_redirect_to(world: World, host: str, refused: bool) -> None:
    from probe.measure.config import refuse_redirect_to

    assert refuse_redirect_to(host, world.config(allow_loopback=False)) is refused


def test_answers_owned_by_another_name_are_not_used(world: World) -> None:
    """An A record for victim.example served as the answer for spoofed.test: ignored, so the
    name has no address (and OTHER is never dialled)."""
    obs, _ = world.measure(world.http("spoofed.test"))
    sys_a = next(q for q in obs.dns if q.resolver == "system" and q.query_type == "A")
    assert (sys_a.answers, sys_a.failure) == ((), "dns_no_answer")
    assert OTHER not in {t.ip for t in obs.tcp}


def test_a_cname_chain_is_followed_from_the_queried_name(world: World) -> None:
    obs, _ = world.measure(world.http("alias.test"))
    sys_a = next(q for q in obs.dns if q.resolver == "system" and q.query_type == "A")
    assert [(a.type, a.value) for a in sys_a.answers] == [("CNAME", "edge.cdn.test"), ("A", SITE)]
    assert obs.http[-1].status_code == 200


# -- issue 20, item 4: a redirect through a *name* that resolves into the volunteer's network ---
# fe80::1 is link-local, and connect() refuses a link-local address without an interface
# (EINVAL) before any packet is sent: were the probe to dial it (the defect), nothing would
# leave this host. A private IPv4 address would go out of the default route.
LINK_LOCAL = "fe80::1"


@pytest.fixture
def router_name(world: World) -> Iterator[str]:
    """router.test: a name every resolver answers with an address on the volunteer's network."""
    world.zone["router.test"] = world.control_zone["router.test"] = [LINK_LOCAL]
    yield f"http://router.test:{world.http_port}/admin"
    del world.zone["router.test"], world.control_zone["router.test"]


def test_a_redirect_to_a_name_on_the_volunteer_s_network_is_recorded_not_dialled(
    world: World, redirect_to: dict[str, S.WebServer], router_name: str
) -> None:
    _serve(world, redirect_to, router_name)
    obs, _ = world.measure(world.http("redir.test"))
    assert LINK_LOCAL not in {t.ip for t in obs.tcp}
    assert [(h.depth, h.status_code) for h in obs.http] == [(0, 302), (1, None)]
    hop = obs.http[1]
    assert (hop.url, hop.failure, hop.failed_operation) == (
        router_name,
        "dns_bogon_error",
        "resolve",
    )
    assert hop.raw_failure == LINK_LOCAL
    assert {q.resolver for q in obs.dns if LINK_LOCAL in q.addrs} == {"system", "control"}


def test_a_site_s_own_redirect_into_the_local_network_is_no_dns_blocking(
    world: World, redirect_to: dict[str, S.WebServer], router_name: str
) -> None:
    """Both resolvers put the redirect's name on a local address: the site's own redirect, not
    the resolver's lie (it was "blocked (dns)", rule dns.redirect_hop)."""
    _serve(world, redirect_to, router_name)
    obs, _ = world.measure(world.http("redir.test"))
    v = classify(obs, network_ok=True)
    assert (v.blocking, v.accessible, v.rule_id) == (False, False, "down.redirect_dns")


def test_a_resolver_answering_a_private_address_for_a_hop_is_dns_blocking(
    world: World, redirect_to: dict[str, S.WebServer]
) -> None:
    """As Iran's resolvers answer 10.10.34.34 for blocked names: the resolver under test alone
    puts the redirect's name on a local address, the control resolver gives the site's."""
    world.zone["poisoned.test"], world.control_zone["poisoned.test"] = [LINK_LOCAL], [SITE]
    try:
        _serve(world, redirect_to, f"http://poisoned.test:{world.http_port}/")
        obs, _ = world.measure(world.http("redir.test"))
    finally:
        del world.zone["poisoned.test"], world.control_zone["poisoned.test"]
    assert LINK_LOCAL not in {t.ip for t in obs.tcp}
    assert (obs.http[-1].depth, obs.http[-1].failure) == (1, "dns_bogon_error")
    v = classify(obs, network_ok=True)
    assert (v.blocking, v.rule_id) == ("dns", "dns.redirect_hop")


def test_an_intranet_site_may_redirect_within_its_own_network(
    world: World, redirect_to: dict[str, S.WebServer], router_name: str
) -> None:
    """A lab or intranet deployment: the first answer is on the local network already, so its
    redirects there are followed (dialled: here connect() refuses fe80::1 without a packet)."""
    world.zone["redir.test"] = world.control_zone["redir.test"] = [REDIRECTOR, "fe80::2"]
    try:
        _serve(world, redirect_to, router_name)
        obs, _ = world.measure(world.http("redir.test"))
    finally:
        world.zone["redir.test"] = world.control_zone["redir.test"] = [REDIRECTOR]
    assert LINK_LOCAL in {t.ip for t in obs.tcp if t.depth == 1}
