"""The test helper's client (probe.measure.helper_client) against the in-process helper and the
edge servers: its query, failures as evidence, the speed test and the bulk form.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from probe import failures
from probe.measure.helper_client import HelperClient
from probe.model import HelperSpeed
from tests.servers import PAGE
from tests.servers.edge import EDGE_SITE, Edges
from tests.servers.helper import helper_server
from tests.world import SITE, World


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
