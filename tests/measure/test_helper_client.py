"""The test helper's client (probe.measure.helper_client) against the in-process helper and the
edge servers: its query, failures as evidence, the speed test and the bulk form.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import pytest

from probe import failures
from probe.measure import helper_client
from probe.measure.helper_client import MAX_ANSWER, HelperClient, HelperNetwork, network_answer
from probe.measure.steps import REQUEST_HEADERS
from probe.model import HelperSpeed, Network
from probe.network import addr_hmac
from tests.servers import PAGE
from tests.servers.edge import EDGE_SITE, Edges
from tests.servers.helper import helper_server
from tests.world import SITE, World

T = TypeVar("T")


# -- the test helper's client against the in-process helper ------------------------------------
def test_helper_client_query(world: World) -> None:
    async def go(base: str) -> Any:
        client = HelperClient(base + "/")
        try:
            return await client.query(world.http("news.test"), [f"{SITE}:{world.http_port}"])
        finally:
            await client.aclose()

    with helper_server(world) as (base, _):
        ev = asyncio.run(go(base))
    assert (ev.failure, ev.dns_failure, ev.dns_addrs) == (None, None, (SITE,))
    assert (ev.http_failure, ev.http_status_code, ev.http_body_length) == (None, 200, len(PAGE))
    assert ev.http_title == "Independent News Today"
    assert ev.http_headers["X-News-Site"] == "1"
    assert ev.tcp_connect[f"{SITE}:{world.http_port}"].ok is True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _query(base: str, ca: str | None = None) -> Any:
    async def go() -> Any:
        client = HelperClient(base, ca_bundle=ca, timeout=5)
        try:
            return await client.query("http://news.test/", [])
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_helper_client_failures_are_evidence(edges: Edges) -> None:
    assert _query(f"http://127.0.0.1:{_free_port()}/").failure == failures.CONNECTION_REFUSED
    # An HTML page where JSON was expected; a helper answering 500.
    assert _query(f"http://{EDGE_SITE}:{edges.http_port}/").failure == "json_parse_error"
    status = _query(edges.doh_500, edges.ca_pem)
    assert (status.failure, status.raw_failure) == ("http_request_failed", "status:500")


def test_helper_client_speed(world: World) -> None:
    async def go(base: str) -> tuple[HelperSpeed, HelperSpeed]:
        client = HelperClient(base)
        try:
            good = await client.speed(world.http("big.test", "/large"), 300_000, 3.0)
            bad = await client.speed("ftp://nowhere/", 1000, 1.0)
            return good, bad
        finally:
            await client.aclose()

    with helper_server(world) as (base, _):
        good, bad = asyncio.run(go(base))
    assert good.failure is None and good.bps is not None and good.bps > 0
    assert good.bytes is not None and good.bytes >= 300_000
    assert good.bytes_used == 0  # the helper's download costs the volunteer nothing
    assert (bad.bps, bad.failure) == (None, "http_request_failed")


def test_helper_client_speed_unreachable() -> None:
    async def go() -> HelperSpeed:
        client = HelperClient(f"http://127.0.0.1:{_free_port()}", timeout=2)
        try:
            return await client.speed("http://news.test/", 1000, 1.0)
        finally:
            await client.aclose()

    assert asyncio.run(go()) == HelperSpeed(failure="connection_refused")


def test_helper_client_bulk() -> None:
    by_address = HelperClient("https://127.0.0.7:8443/").bulk()
    assert by_address is not None
    assert (by_address.base, by_address.addresses, by_address.port) == (
        "https://127.0.0.7:8443/",
        ("127.0.0.7",),
        8443,
    )
    assert HelperClient("https://helper.example/").bulk() is None  # a name is not resolved
    given = HelperClient("https://helper.example/").bulk(["192.0.2.1", "192.0.2.2"])
    assert given is not None and (given.addresses, given.port) == (("192.0.2.1", "192.0.2.2"), 443)
    assert given.speed is not None


# -- the request the helper sees, and answers no real helper gives -----------------------------
@dataclass
class Seen:
    path: str
    headers: dict[str, str]  # names lower-cased: HTTP field names are case-insensitive
    body: Any


class FakeHelper:
    """A loopback HTTP server standing in for a helper: it records each request (path, headers,
    JSON body) and answers ``routes[path]`` = (status, body, seconds to wait first)."""

    def __init__(self, routes: dict[str, tuple[int, bytes, float]]) -> None:
        self.routes, self.seen = routes, list[Seen]()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.seen.append(Seen(self.path, headers, json.loads(raw)))
                status, body, wait = outer.routes.get(self.path, (404, b"not found", 0.0))
                time.sleep(wait)
                with contextlib.suppress(OSError):  # the client may have given up
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def __enter__(self) -> FakeHelper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _run(base: str, call: Callable[[HelperClient], Awaitable[T]], **kw: Any) -> T:
    async def go() -> T:
        client = HelperClient(base, **kw)
        try:
            return await asyncio.wait_for(call(client), 30)  # a hang fails, not blocks
        finally:
            await client.aclose()

    return asyncio.run(go())


# What httpx itself sends with every request; the probe adds only the three below.
HTTPX_OWN = {"host", "accept", "accept-encoding", "connection", "content-length"}
ANSWER = {
    "dns": {"failure": None, "addrs": ["192.0.2.7"]},
    "tcp_connect": {"192.0.2.7:80": {"status": True, "failure": None}},
    "http_request": {"failure": None, "status_code": 200, "body_length": 1234, "title": "Hi"},
}


def test_the_control_request_is_oonis_with_only_the_probes_headers() -> None:
    """OONI's control request exactly (its helper reads these keys), the page headers a browser
    sends bar Accept-Encoding (the helper measures the decoded body), at most 32 endpoints; and
    no header beyond httpx's own, a content type, the user agent "probe" and the token."""
    endpoints = [f"192.0.2.{i}:443" for i in range(1, 41)]
    with FakeHelper({"/th/": (200, json.dumps(ANSWER).encode(), 0.0)}) as fake:
        ev = _run(
            fake.base + "/th/", lambda c: c.query("https://site.test/a", endpoints), token="s3cr3t"
        )
    assert (ev.failure, ev.dns_addrs, ev.http_body_length, ev.http_title) == (
        None,
        ("192.0.2.7",),
        1234,
        "Hi",
    )
    (seen,) = fake.seen
    assert seen.path == "/th/"
    assert seen.body == {
        "http_request": "https://site.test/a",
        "http_request_headers": {
            "User-Agent": [REQUEST_HEADERS["User-Agent"]],
            "Accept": [REQUEST_HEADERS["Accept"]],
            "Accept-Language": [REQUEST_HEADERS["Accept-Language"]],
        },
        "tcp_connect": endpoints[:32],
        "x_quic_enabled": False,
    }
    assert set(seen.headers) == HTTPX_OWN | {"content-type", "user-agent", "authorization"}
    assert seen.headers["content-type"].lower() == "application/json"  # media types: any case
    assert (seen.headers["user-agent"], seen.headers["authorization"]) == ("probe", "Bearer s3cr3t")


def test_without_a_token_no_authorization_is_sent() -> None:
    with FakeHelper({"/": (200, json.dumps(ANSWER).encode(), 0.0)}) as fake:
        _run(fake.base + "/", lambda c: c.query("http://site.test/", []))
    (seen,) = fake.seen
    assert set(seen.headers) == HTTPX_OWN | {"content-type", "user-agent"}
    assert seen.headers["user-agent"] == "probe"


def test_the_helper_gets_its_32_endpoints_and_answers_for_each(world: World) -> None:
    """The project's helper refuses more than 32 endpoints: the client sends the first 32, and
    each given endpoint (not only those the helper resolves itself) comes back with its result."""
    closed = _free_port()
    endpoints = [f"127.0.0.1:{closed}"] + [f"127.0.0.{i}:{closed}" for i in range(2, 42)]

    with helper_server(world) as (base, _):
        ev = _run(base + "/", lambda c: c.query(world.http("news.test"), endpoints))
    assert ev.failure is None
    assert set(ev.tcp_connect) >= set(endpoints[:32])
    assert set(ev.tcp_connect) & set(endpoints[32:]) == set()
    refused = ev.tcp_connect[f"127.0.0.1:{closed}"]
    assert (refused.ok, refused.failure) == (False, "connection_refused_error")  # OONI's word


def test_a_long_answer_is_read_whole_and_one_too_long_is_refused() -> None:
    padded = json.dumps({**ANSWER, "x_padding": "p" * 300_000}).encode()
    too_long = json.dumps({**ANSWER, "x_padding": "p" * MAX_ANSWER}).encode()
    base = len(json.dumps({**ANSWER, "x_padding": ""}).encode())
    just = json.dumps({**ANSWER, "x_padding": "p" * (MAX_ANSWER - base)}).encode()
    assert len(just) == MAX_ANSWER  # the largest answer allowed
    routes = {"/long": (200, padded, 0.0), "/huge": (200, too_long, 0.0), "/max": (200, just, 0.0)}
    with FakeHelper(routes) as fake:
        long = _run(fake.base + "/long", lambda c: c.query("http://site.test/", []))
        huge = _run(fake.base + "/huge", lambda c: c.query("http://site.test/", []))
        most = _run(fake.base + "/max", lambda c: c.query("http://site.test/", []))
    assert (long.failure, long.http_body_length, long.http_title) == (None, 1234, "Hi")
    assert (most.failure, most.http_body_length) == (None, 1234)
    assert (huge.failure, huge.raw_failure) == (
        "unknown_failure: answer too large",
        "over 1048576 bytes",
    )


def test_a_failed_query_keeps_the_raw_reason() -> None:
    refused = _query(f"http://127.0.0.1:{_free_port()}/")
    assert (refused.failure, refused.raw_failure) == ("connection_refused", "ECONNREFUSED")
    with FakeHelper({"/": (200, b"<html>oops</html>", 0.0)}) as fake:
        html = _query(fake.base + "/")
    assert (html.failure, html.raw_failure) == (
        "json_parse_error",
        "Expecting value: line 1 column 1 (char 0)",
    )


def test_the_clients_timeout_bounds_a_slow_helper() -> None:
    with FakeHelper({"/": (200, json.dumps(ANSWER).encode(), 3.0)}) as fake:
        t0 = time.monotonic()
        ev = _run(fake.base, lambda c: c.query("http://a.test/", []), timeout=1)
        took = time.monotonic() - t0
    # Its own timeout (1 s), not httpx's default (5 s), nor none.
    assert (ev.failure, ev.raw_failure) == (failures.GENERIC_TIMEOUT, "ReadTimeout")
    assert took < 2.5


def test_proxy_settings_in_the_environment_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy the volunteer's environment names would be what the control measures: the client
    talks to the helper directly."""
    nowhere = f"http://127.0.0.1:{_free_port()}"
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(var, nowhere)
    with FakeHelper({"/": (200, json.dumps(ANSWER).encode(), 0.0)}) as fake:
        ev = _run(fake.base + "/", lambda c: c.query("http://site.test/", []))
    assert ev.failure is None and len(fake.seen) == 1


def test_speed_request_path_body_and_bad_answers() -> None:
    good = json.dumps({"bps": 8e6, "bytes": 1_000_000, "seconds": 1.0, "bytes_used": 0})
    with FakeHelper(
        {
            "/lab-X/speed": (200, good.encode(), 0.0),
            "/bad/speed": (200, b'{"bps": "fast"}', 0.0),
            "/html/speed": (200, b"<html>", 0.0),
        }
    ) as fake:
        # Under a base path, one ending in a letter: the path is kept as given.
        ok = _run(fake.base + "/lab-X/", lambda c: c.speed("http://big.test/f", 5000, 2.5))
        bad = _run(fake.base + "/bad", lambda c: c.speed("http://big.test/f", 5000, 2.5))
        html = _run(fake.base + "/html/", lambda c: c.speed("http://big.test/f", 5000, 2.5))
    assert ok == HelperSpeed(bps=8e6, bytes=1_000_000, seconds=1.0, bytes_used=0)
    assert fake.seen[0].path == "/lab-X/speed"
    assert fake.seen[0].body == {"url": "http://big.test/f", "max_bytes": 5000, "max_seconds": 2.5}
    assert (bad, html) == (HelperSpeed(failure="json_parse_error"),) * 2


def test_the_speed_test_outwaits_the_clients_own_timeout() -> None:
    """The helper downloads for up to ``max_seconds`` before answering: the request waits for
    that (and a margin), not for the client's shorter timeout."""
    answer = json.dumps({"bps": 1e6, "bytes": 1000, "seconds": 1.0, "bytes_used": 0}).encode()
    with FakeHelper({"/speed": (200, answer, 1.5)}) as fake:
        got = _run(fake.base, lambda c: c.speed("http://big.test/f", 1000, 1.0), timeout=0.5)
    assert got.failure is None and got.bps == 1e6


def test_a_speed_answer_later_than_the_margin_is_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(helper_client, "SPEED_MARGIN", 0.5)
    answer = json.dumps({"bps": 1e6, "bytes": 1000, "seconds": 1.0, "bytes_used": 0}).encode()
    with FakeHelper({"/speed": (200, answer, 2.5)}) as fake:
        # gives up at 1.0 + 0.5 s: the answer, 2.5 s late, is never read
        got = _run(fake.base, lambda c: c.speed("http://big.test/f", 1000, 1.0), timeout=0.2)
    assert got.failure == failures.GENERIC_TIMEOUT and got.bps is None


def test_the_network_question_sends_a_fresh_32_byte_nonce() -> None:
    with FakeHelper({"/network": (200, b'{"asn": "AS64500", "cc": "vn"}', 0.0)}) as fake:
        first = _run(fake.base, lambda c: c.network())
        _run(fake.base, lambda c: c.network())
    assert first == HelperNetwork(Network("AS64500", "VN", None, "helper"))
    nonces = [bytes.fromhex(s.body["nonce"]) for s in fake.seen]
    assert [len(n) for n in nonces] == [32, 32] and nonces[0] != nonces[1]


def test_the_network_question_fails_as_evidence() -> None:
    refused = _run(f"http://127.0.0.1:{_free_port()}", lambda c: c.network())
    assert refused == HelperNetwork(failure="connection_refused")


def test_the_network_question_gives_up_after_ten_seconds() -> None:
    """The round waits for this answer: a helper slower than 10 s is a timeout, not a delay of
    every round (the answer here comes at 10.5 s, too late)."""
    with FakeHelper({"/network": (200, b'{"asn": "AS64500"}', 10.5)}) as fake:
        got = _run(fake.base, lambda c: c.network(), timeout=60)
    assert got == HelperNetwork(failure=failures.GENERIC_TIMEOUT)


# -- network_answer: a helper's /network answer, field by field --------------------------------
NONCE = bytes(range(32))


def test_a_network_answer_keeps_what_it_has() -> None:
    assert network_answer({"asn": 64500, "cc": "vn"}, NONCE) == HelperNetwork(
        Network("AS64500", "VN", None, "helper")
    )
    assert network_answer({"asn": "as7552"}, NONCE) == HelperNetwork(
        Network("AS7552", None, None, "helper")
    )
    assert network_answer({"cc": "VN", "network_name": "X"}, NONCE) == HelperNetwork(
        Network(None, "VN", "X", "helper")
    )
    # A name with neither number nor country says nothing of where the probe is.
    assert (
        network_answer({"network_name": "Somewhere", "addr_hmac": None}, NONCE) == HelperNetwork()
    )


def test_a_network_name_is_collapsed_and_cut_at_200_characters() -> None:
    got = network_answer({"asn": "AS1", "network_name": "  A \t B " + "n" * 300}, NONCE)
    assert got.network is not None and got.network.name == "A B " + "n" * 196


def test_a_network_answer_recognises_the_address_only_with_a_digest() -> None:
    digest = addr_hmac(NONCE, "203.0.113.5")
    got = network_answer({"asn": "AS1", "addr_hmac": digest}, NONCE)
    assert got.recognise is not None
    assert got.recognise(ipaddress.ip_address("203.0.113.5"))
    assert not got.recognise(ipaddress.ip_address("203.0.113.6"))
    assert network_answer({"asn": "AS1"}, NONCE).recognise is None


@pytest.mark.parametrize(
    "doc",
    [
        ["AS1"],
        "AS1",
        {"asn": "not a number"},
        {"cc": "VNM"},
        {"asn": "AS1", "addr_hmac": "ABCD"},
        {"asn": "AS1", "addr_hmac": 5},
        {"asn": "AS1", "addr_hmac": "0" * 63},
    ],
)
def test_a_network_answer_out_of_shape_is_a_json_parse_error(doc: Any) -> None:
    assert network_answer(doc, NONCE) == HelperNetwork(failure=failures.JSON_PARSE_ERROR)


def test_a_hostile_helpers_deep_json_is_a_parse_error_not_a_crash() -> None:
    """A helper answering 200 kB of '[' raised RecursionError out of the round's target."""
    with FakeHelper({"/": (200, b"[" * 200_000, 0.0)}) as fake:
        ev = _query(fake.base + "/")
    assert ev.failure == "json_parse_error"
