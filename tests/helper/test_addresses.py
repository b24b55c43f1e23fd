"""The helper and private addresses (issue 20, item 3): it never dials an address that stands
for a private one (NAT64, IPv4-mapped, 6to4, Teredo, site-local), and neither ``POST /`` nor its
DoH relay ever tells a client a private address its upstream answered."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import dns.message
import httpx
import pytest

from probe.config.resolver import parse_resolver
from tests.servers.dns import DNSServer
from tests.servers.helper import ask, helper_server
from tests.world import World

# Names whose answers mix private addresses with public ones (documentation-free, so the
# filter cannot lean on them being reserved). Only the DoH relay is asked about the public
# ones: POST / would dial them, and tests never touch the internet.
ZONE = {
    "private.test": ["10.1.2.3", "192.168.0.1", "fec0::1", "64:ff9b::a00:1", "::ffff:10.0.0.1"],
    "mixed.test": [
        "10.1.2.3",
        "93.184.215.14",
        "fd00::1",
        "2606:2800:21f:cb07:6820:80da:af6b:8b2c",
    ],
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[DNSServer]:
    server = DNSServer(ZONE, host="127.0.0.55")
    yield server
    server.close()


def test_refuses_addresses_that_stand_for_private_ones(world: World) -> None:
    listener = socket.socket(socket.AF_INET6)
    listener.bind(("::", 0))  # dual-stack: ::ffff:127.0.0.1 reaches it
    listener.listen(8)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    targets = [
        f"[::ffff:127.0.0.1]:{port}",
        f"[64:ff9b::7f00:1]:{port}",  # NAT64 of 127.0.0.1
        "[64:ff9b::a00:1]:80",  # NAT64 of 10.0.0.1
        "[64:ff9b:1::a00:1]:80",  # local-use NAT64
        "[2002:a00:1::1]:80",  # 6to4 of 10.0.0.1
        "[2001:0:4136:e378:8000:63bf:f5ff:fff5]:80",  # Teredo
        "[fec0::1]:80",  # site-local
        "[::a00:1]:80",  # IPv4-compatible
    ]
    with helper_server(world, allow=()) as (base, _):
        doc = ask(base, world.http("news.test"), targets).json()
    assert doc["tcp_connect"] == {}, f"dialled: {sorted(doc['tcp_connect'])}"
    with pytest.raises(TimeoutError):
        listener.accept()  # nothing ever connected
    listener.close()


def test_control_answers_hold_no_private_address(world: World, upstream: DNSServer) -> None:
    resolver = parse_resolver("udp://" + upstream.address)
    with helper_server(world, resolver=resolver, allow=()) as (base, _):
        doc = ask(base, "http://private.test/").json()
    assert doc["dns"]["addrs"] == [], doc["dns"]
    assert doc["ip_info"] == {} and doc["tcp_connect"] == {}


@pytest.mark.parametrize("rdtype", ["A", "AAAA"])
def test_the_doh_relay_passes_no_private_answer(
    world: World, upstream: DNSServer, rdtype: str
) -> None:
    resolver = parse_resolver("udp://" + upstream.address)
    with helper_server(world, resolver=resolver, allow=()) as (base, _):
        got = {}
        for name in ("private.test", "mixed.test"):
            q = dns.message.make_query(name, rdtype)
            r = httpx.post(
                base + "/dns-query",
                content=q.to_wire(),
                headers={"content-type": "application/dns-message"},
                timeout=10,
            )
            assert r.status_code == 200
            reply = dns.message.from_wire(r.content)
            got[name] = sorted(rd.to_text() for rrset in reply.answer for rd in rrset)
    public = {"A": ["93.184.215.14"], "AAAA": ["2606:2800:21f:cb07:6820:80da:af6b:8b2c"]}
    assert got == {"private.test": [], "mixed.test": public[rdtype]}, got


def test_a_lab_allow_list_still_gets_its_answers(world: World, upstream: DNSServer) -> None:
    resolver = parse_resolver("udp://" + upstream.address)
    with helper_server(world, resolver=resolver, allow=("10.0.0.0/8",)) as (base, _):
        q = dns.message.make_query("mixed.test", "A")
        r = httpx.post(base + "/dns-query", content=q.to_wire(), timeout=10)
    answers = sorted(
        rd.to_text() for rrset in dns.message.from_wire(r.content).answer for rd in rrset
    )
    assert answers == ["10.1.2.3", "93.184.215.14"]
