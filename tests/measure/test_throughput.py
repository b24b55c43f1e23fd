"""The throughput step's address choice (probe.measure.throughput.first_address) against the
loopback world's resolver: an address in the URL is judged by the same policy as an answer."""

from __future__ import annotations

import asyncio
from typing import Any

from probe.measure.net import Shared
from probe.measure.throughput import first_address
from tests.world import SITE, World


def first(world: World, url: str, **cfg: Any) -> tuple[str | None, str | None]:
    async def go() -> tuple[str | None, str | None]:
        shared = Shared.create(world.config(**cfg))
        try:
            return await first_address(shared, url)
        finally:
            await shared.aclose()

    return asyncio.run(go())


def test_a_name_is_resolved_by_the_resolver_under_test(world: World) -> None:
    assert first(world, world.http("news.test", "/big.bin")) == (SITE, None)
    assert first(world, "http://nowhere.test/") == (None, "dns_nxdomain_error")


def test_an_address_in_the_url_is_dialled_only_as_policy_allows(world: World) -> None:
    assert first(world, "http://127.0.0.1:8080/x") == ("127.0.0.1", None)
    assert first(world, "http://127.0.0.1:8080/x", allow_loopback=False) == (
        None,
        "dns_bogon_error",
    )
    lab = {"allow_loopback": False, "allow_networks": ("2001:db8::/32",)}
    # An IPv6 literal, written in capitals: the address dialled and recorded is its own text.
    assert first(world, "http://[2001:DB8::7]:8080/x", **lab) == ("2001:db8::7", None)
    denied = {**lab, "deny_addrs": frozenset({"2001:db8::7"})}
    assert first(world, "http://[2001:DB8::7]:8080/x", **denied) == (None, "dns_bogon_error")
