"""The volunteer's public address without the test helper (probe.measure.whoami): STUN against
coturn and against loopback STUN servers that answer as one behind a NAT would, or misbehave,
and the "what is my address" DNS query against a loopback resolver that answers as Cloudflare's
and OpenDNS's do."""

from __future__ import annotations

import asyncio
import ssl
import time

import httpx
import pytest
import trustme
from hypothesis import given
from hypothesis import strategies as st

from probe.config.parse import parse_stun_server, parse_stun_servers
from probe.config.resolver import parse_resolver
from probe.measure.whoami import (
    WHOAMI_QUERIES,
    PublicAddress,
    dns_whoami,
    learn,
    stun_binding,
    whoami_query,
)
from tests.servers.dns import DNSServer, DoTServer, doh_route
from tests.servers.http import Site, WebServer
from tests.servers.stun import BEHAVIOURS, StunServer, coturn

MAPPED = "203.0.113.5"


def test_coturn_answers_the_address_it_saw() -> None:
    """A real STUN server (coturn) on loopback sees the client at 127.0.0.1."""
    with coturn() as where:
        host, port = where.split(":")
        assert asyncio.run(stun_binding(host, int(port))) == "127.0.0.1"


def test_a_stun_server_behind_nat_gives_the_translated_address() -> None:
    server = StunServer(MAPPED)
    try:
        got = asyncio.run(learn([("127.0.0.1", server.port)], timeout=5))
    finally:
        server.close()
    assert got.methods == ("stun",)
    assert got.addresses == frozenset({MAPPED})
    assert MAPPED not in repr(got)  # never in a log line by accident


@pytest.mark.parametrize("behaviour", [b for b in BEHAVIOURS if b != "answer"])
def test_a_misbehaving_stun_server_is_no_answer_within_the_timeout(behaviour: str) -> None:
    server = StunServer(MAPPED, behaviour)
    t0 = time.monotonic()
    try:
        got = asyncio.run(learn([("127.0.0.1", server.port)], timeout=2))
    finally:
        server.close()
    took = time.monotonic() - t0
    assert got == PublicAddress(), behaviour
    assert took < 4, f"{behaviour}: {took:.1f} s for a 2 s timeout"
    assert server.requests >= 1


def test_one_stun_server_down_another_answers() -> None:
    good, silent = StunServer(MAPPED), StunServer(MAPPED, "silent")
    try:
        got = asyncio.run(
            learn(
                [
                    ("127.0.0.1", silent.port),
                    ("no-such-host.invalid", 3478),
                    ("127.0.0.1", good.port),
                ],
                timeout=3,
            )
        )
    finally:
        good.close()
        silent.close()
    assert got.addresses == frozenset({MAPPED}) and got.methods == ("stun",)


def test_loopback_answers_are_not_an_address_to_scrub() -> None:
    with coturn() as where:
        host, port = where.split(":")
        got = asyncio.run(learn([(host, int(port))], timeout=5))
    assert got == PublicAddress()  # 127.0.0.1 identifies no one


@pytest.mark.parametrize("operator", sorted(WHOAMI_QUERIES))
def test_the_resolvers_what_is_my_address(operator: str) -> None:
    query = whoami_query(operator)
    assert query is not None
    name, _, rdtype = query
    entry = {"txt": MAPPED} if rdtype == "TXT" else [MAPPED]
    server = DNSServer({name.rstrip("."): entry})
    try:
        spec = parse_resolver("udp://" + server.address)
        got = asyncio.run(learn([], resolver=spec, query=query, timeout=3))
    finally:
        server.close()
    assert got.addresses == frozenset({MAPPED}) and got.methods == ("dns",)


@pytest.mark.parametrize(
    "entry", ["NXDOMAIN", "REFUSED", "DROP", {"txt": "not an address"}, {"txt": "127.0.0.1"}]
)
def test_a_resolver_without_an_answer_is_no_answer(entry: object) -> None:
    server = DNSServer({"whoami.cloudflare": entry})
    query = WHOAMI_QUERIES["Cloudflare"]
    try:
        spec = parse_resolver("udp://" + server.address)
        raw = asyncio.run(dns_whoami(spec, query, None, 1.0))
        got = asyncio.run(learn([], resolver=spec, query=query, timeout=2))
    finally:
        server.close()
    assert raw == ("127.0.0.1" if entry == {"txt": "127.0.0.1"} else None)
    assert got == PublicAddress()


def test_only_operators_that_answer_the_clients_address_are_asked() -> None:
    assert whoami_query("Cloudflare") == ("whoami.cloudflare.", "CH", "TXT")
    assert whoami_query("Google") is None  # o-o.myaddr answers the resolver's own address
    assert whoami_query(None) is None


def test_nothing_configured_asks_nothing() -> None:
    assert asyncio.run(learn([], timeout=1)) == PublicAddress()


# -- the setting -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("stun.example.net", "stun.example.net:3478"),
        ("stun.example.net:19302", "stun.example.net:19302"),
        ("[2001:db8::1]:3478", "[2001:db8::1]:3478"),
        ("192.0.2.1", "192.0.2.1:3478"),
    ],
)
def test_a_stun_server_setting(text: str, value: str) -> None:
    assert parse_stun_server(text) == value
    assert parse_stun_server(value) == value  # written back, read back the same


@pytest.mark.parametrize("none", ["none", "NONE", "", ["none"], []])
def test_no_stun_servers(none: object) -> None:
    assert parse_stun_servers(none) == ()


@given(st.one_of(st.text(max_size=80), st.lists(st.text(max_size=30), max_size=20)))
def test_any_stun_setting_parses_or_fails_in_one_line(v: object) -> None:
    try:
        got = parse_stun_servers(v)
    except ValueError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(got, tuple) and all(isinstance(x, str) for x in got)
        assert parse_stun_servers(list(got)) == got


def test_a_cancelled_round_leaves_no_stun_query_running() -> None:
    """The daemon stopping mid-round cancels learn(): its queries go with it."""
    silent = StunServer(MAPPED, "silent")

    async def go() -> set[asyncio.Task[object]]:
        task = asyncio.ensure_future(learn([("127.0.0.1", silent.port)], timeout=30))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}

    try:
        assert asyncio.run(go()) == set()
    finally:
        silent.close()


# -- the answer's forms and transports ---------------------------------------------------------
def _whoami(entry: object, spec: str | None = None, **kwargs: object) -> str | None:
    server = DNSServer({"whoami.cloudflare": entry})
    try:
        resolver = parse_resolver(spec or "udp://" + server.address)
        return asyncio.run(dns_whoami(resolver, WHOAMI_QUERIES["Cloudflare"], None, 2.0))
    finally:
        server.close()


def test_an_address_in_several_character_strings_is_read_whole() -> None:
    assert _whoami({"txt": [("203.0.", "113.5")]}) == MAPPED


def test_a_txt_record_that_is_not_ascii_is_no_address_and_the_next_one_is_read() -> None:
    assert _whoami({"txt": "\\200\\255"}) is None
    assert _whoami({"txt": ["\\200\\255", MAPPED]}) == MAPPED


def test_an_address_in_quotes_inside_the_record_is_read() -> None:
    assert _whoami({"txt": f'\\"{MAPPED}\\"'}) == MAPPED


def test_an_address_with_other_text_around_it_is_no_address() -> None:
    assert _whoami({"txt": f"X{MAPPED}X"}) is None


def test_cloudflares_question_is_asked_in_the_chaos_class() -> None:
    # whoami.cloudflare answers only in class CH: the same question in IN gets nothing.
    assert _whoami({"txt": MAPPED, "class": "CH"}) == MAPPED
    assert _whoami({"txt": MAPPED, "class": "IN"}) is None


def _tls_servers(zone: dict[str, object]) -> tuple[trustme.CA, DoTServer, WebServer]:
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    dot = DoTServer(zone, "127.0.0.1", ctx)
    doh = WebServer(Site({"/dns-query": doh_route(zone)}), "127.0.0.1", 0, ctx)
    return ca, dot, doh


def test_over_dot_and_doh_the_given_tls_context_and_client_are_used() -> None:
    # The resolvers' certificates come from a CA only the given context and client trust: the
    # system store (what a missing context or client would use) does not know it.
    zone: dict[str, object] = {"whoami.cloudflare": {"txt": MAPPED}}
    ca, dot, doh = _tls_servers(zone)
    query = WHOAMI_QUERIES["Cloudflare"]
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)

    async def over_doh() -> str | None:
        async with httpx.AsyncClient(verify=ctx, trust_env=False) as client:
            spec = parse_resolver(f"https://127.0.0.1:{doh.port}/dns-query")
            return await dns_whoami(spec, query, client, 2.0, ctx)

    try:
        spec = parse_resolver(f"tls://127.0.0.1:{dot.port}")
        assert asyncio.run(dns_whoami(spec, query, None, 2.0, ctx)) == MAPPED
        assert asyncio.run(dns_whoami(spec, query, None, 2.0)) is None  # unknown authority
        assert asyncio.run(over_doh()) == MAPPED
    finally:
        dot.close()
        doh.close()
