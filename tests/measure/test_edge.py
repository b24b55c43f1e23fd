"""Edge facts (probe.measure.edge): what a real download records of where it was served from,
and the pure folding of flows into one fact per address."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from probe.measure import edge
from probe.measure.edge import Where, edge_facts, locality, on_net, pop, served_class
from probe.model import EdgeFact, Flow, Sample
from tests import servers as S
from tests.measure.test_throughput import fetch
from tests.world import World

CDN_HEADERS = {
    "CF-RAY": "8a1b2c3d4e5f6789-HAN",
    "X-Cache": "HIT",
    "Server-Timing": 'cfL4;desc="?proto=TCP&rtt=8123"',
    "X-FB-Debug": "opaque-token",
}


def test_a_download_records_its_connect_time_rtt_and_the_cdns_locality_headers(
    world: World,
) -> None:
    body = b"x" * 200_000
    server = S.WebServer(S.Site({"/o.bin": (200, CDN_HEADERS, body)}), "127.0.0.18", 0)
    try:
        flow, _ = fetch(world, f"http://127.0.0.18:{server.port}/o.bin", "127.0.0.18")
    finally:
        server.close()
    assert flow.failure is None and flow.bytes == len(body)
    assert flow.connect_s is not None and 0 < flow.connect_s <= (flow.ttfb or 0)
    # Names lower-cased; the opaque debug token is not a place and is not kept.
    assert dict(flow.locality) == {
        "cf-ray": "8a1b2c3d4e5f6789-HAN",
        "x-cache": "HIT",
        "server-timing": 'cfL4;desc="?proto=TCP&rtt=8123"',
    }
    (fact,) = edge_facts([flow], own_asn="AS7552")
    assert (fact.ip, fact.roles, fact.pop) == ("127.0.0.18", ("target",), "HAN")
    assert fact.rtt_ms is not None and fact.rtt_ms > 0  # TCP_INFO's smoothed RTT, loopback
    assert fact.min_rtt_ms is not None and fact.min_rtt_ms <= fact.rtt_ms
    assert (fact.asn, fact.on_net, fact.network_source) == (None, None, "none")  # no table


def test_a_connection_never_made_has_no_connect_time(world: World) -> None:
    flow, _ = fetch(world, world.http("hole.test"), "127.0.0.40", max_seconds=0.6)
    assert (flow.connect_s, flow.locality) == (None, ())


def _flow(ip: str, role: str, rtts: list[int], connect: float | None = 0.01) -> Flow:
    samples = tuple(
        Sample(0.25 * (i + 1), 1000 * (i + 1), r, None, min(rtts)) for i, r in enumerate(rtts)
    )
    return Flow(role, "https://x.test/o", ip, samples=samples, bytes=1000, connect_s=connect)


def test_facts_are_one_per_address_with_medians_over_its_flows() -> None:
    table = {
        "203.0.113.5": Where("AS7552", "VN", "helper"),
        "198.51.100.9": Where("AS32934", "US", "local"),
    }
    flows = [
        _flow("203.0.113.5", "target", [8000, 9000, 10000], 0.010),
        _flow("198.51.100.9", "control", [45000], 0.050),
        _flow("203.0.113.5", "target", [7000], 0.020),
    ]
    a, b = edge_facts(flows, lookup=table.get, own_asn="AS7552")
    assert (a.ip, a.asn, a.cc, a.network_source) == ("203.0.113.5", "AS7552", "VN", "helper")
    assert (a.on_net, a.on_net_basis, a.rtt_ms, a.min_rtt_ms) == (True, "probe_asn", 8.5, 7.0)
    assert a.connect_s == 0.015
    assert (b.on_net, b.on_net_basis, b.rtt_ms, b.roles) == (
        False,
        "other_network",
        45.0,
        ("control",),
    )


def test_inside_the_network_is_the_probes_as_or_a_known_cache_prefix() -> None:
    cache = edge.parse_prefixes(["100.64.7.0/24", " "])
    assert on_net("100.64.7.9", None, None, cache) == (True, "cache_prefix")
    assert on_net("100.64.8.9", None, "AS7552", cache) == (None, None)  # no table: cannot tell
    assert on_net("100.64.8.9", Where("AS7552"), "AS7552") == (True, "probe_asn")
    assert on_net("100.64.8.9", Where("AS1"), "AS7552") == (False, "other_network")
    assert on_net("100.64.8.9", Where("AS1"), None) == (None, None)
    assert on_net("not an address", Where("AS1"), "AS1") == (None, None)
    assert on_net("2001:db8::1", None, None, cache) == (None, None)  # another family


def test_the_pop_is_read_from_each_cdns_own_header() -> None:
    assert pop([("cf-ray", "8a1b2c3d4e5f-SGN")]) == "SGN"
    assert pop([("x-amz-cf-pop", "HAN50-C1")]) == "HAN"
    assert pop([("x-served-by", "cache-sin1, cache-hkg17920-HKG")]) == "HKG"
    assert pop([("x-cache", "HIT"), ("via", "1.1 varnish")]) is None
    assert pop([("cf-ray", "nodash")]) is None
    # Letters outside ASCII name no airport (Hypothesis found "AAª" taken for a code).
    assert pop([("x-amz-cf-pop", "AAª")]) is None
    assert pop([("cf-ray", "8a1b-Maß")]) is None


@given(st.lists(st.tuples(st.sampled_from([*edge.LOCALITY, "x-other"]), st.text(max_size=300))))
def test_any_headers_give_capped_locality_and_a_pop_or_none(headers: list[tuple[str, str]]) -> None:
    kept = locality(headers)
    assert all(k in edge.LOCALITY and len(v) <= edge.MAX_VALUE for k, v in kept)
    code = pop(kept)
    assert code is None or (len(code) == 3 and code.isalpha() and code.isupper())


def test_a_target_is_classed_by_where_it_was_served_from() -> None:
    def e(**kw: object) -> EdgeFact:
        return EdgeFact("192.0.2.1", roles=("target",), **kw)  # type: ignore[arg-type]

    assert served_class(e(on_net=True, cc="US"), "VN") == "foreign_on_net"
    assert served_class(e(on_net=False, cc="VN"), "VN") == "domestic"
    assert served_class(e(on_net=False, cc="US"), "VN") == "foreign_origin"
    assert served_class(e(on_net=None, cc=None), "VN") is None
    assert served_class(None, "VN") is None
    assert edge.target_edge([EdgeFact("192.0.2.2", roles=("control",)), e()]) == e()
    assert ipaddress.ip_address(e().ip).version == 4


def _ask(base: str, addresses: list[str]) -> dict[str, Where]:
    import asyncio

    from probe.measure.helper_client import HelperClient

    async def go() -> dict[str, Where]:
        client = HelperClient(base)
        try:
            return await client.edges(addresses)
        finally:
            await client._client.aclose()

    return asyncio.run(go())


def test_the_helpers_table_names_the_edges_networks(world: World, tmp_path: Path) -> None:
    """POST /edges: the helper's IP-to-ASN table, asked about the servers a test dialled."""
    import httpx

    from probe.helper.asn import load
    from tests.servers.helper import helper_server

    tsv = tmp_path / "asn.tsv"
    tsv.write_text(
        "192.0.2.0\t192.0.2.255\t32934\tUS\tFACEBOOK\n198.51.100.0\t198.51.100.255\t7552\tVN\tVIETTEL\n",
        encoding="utf-8",
    )
    with helper_server(world, asn_table=load([tsv])) as (base, log):
        got = _ask(base, ["192.0.2.7", "198.51.100.1", "203.0.113.9", "192.0.2.7"])
        assert got == {
            "192.0.2.7": Where("AS32934", "US", "helper"),
            "198.51.100.1": Where("AS7552", "VN", "helper"),
        }  # an address the table does not know is left out
        for bad in ({"addresses": ["not an address"]}, {"addresses": "192.0.2.7"}, [1]):
            r = httpx.post(f"{base}/edges", json=bad)
            assert r.status_code == 400 and "edges:" in r.text
        r = httpx.post(f"{base}/edges", json={"addresses": ["192.0.2.1"] * 65})
        assert r.status_code == 400
        assert _ask(base, []) == {}
    assert "192.0.2.7" not in log.getvalue()  # nothing of the question is logged
    with helper_server(world) as (base, _):
        assert _ask(base, ["192.0.2.7"]) == {}  # no table: nothing known


def test_a_helper_that_cannot_say_gives_no_networks() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert _ask(f"http://127.0.0.1:{port}", ["192.0.2.7"]) == {}  # refused
