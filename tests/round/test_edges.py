"""A real throughput round records where each site was served from (issue 25): the edges'
networks from a local IP-to-ASN table, inside the volunteer's network or not, the class, and
the ``throughput_edges`` / ``edge_tests`` views (schema m013) that attribution reads."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from probe.config.settings import resolve
from probe.errors import AsnDbError
from probe.measure.edge import Where
from probe.round import prepare, run_once
from probe.round.edges import local_lookup
from probe.store import Store
from tests.runs import world_settings
from tests.world import World


def _round(world: World, tmp_path: Path, declared: str = "", **extra: str) -> Store:
    targets = tmp_path / "t.yaml"
    tp = world.http("news.test", "/large")
    targets.write_text(
        f"targets:\n  - name: news\n    url: {world.http('news.test')}\n"
        f"    throughput_url: {tp}\n{declared}"
        f"controls:\n  - name: ctl\n    url: {world.http('news.test')}\n"
        f"    throughput_url: {tp}\n",
        encoding="utf-8",
    )
    table = tmp_path / "asn.tsv"
    table.write_text("127.0.0.0\t127.255.255.255\t64500\tVN\tLOOPBACK-NET\n", encoding="utf-8")
    flags = world_settings(
        world,
        targets,
        tmp_path / "p.db",
        control="udp://" + world.control_dns.address,
        throughput_bytes="128K",
        throughput_seconds="1",
        throughput_trials="1",
        asn_db=str(table),
        asn="AS64500",
        cc="VN",
        **extra,
    )
    store = Store.open(tmp_path / "p.db")
    asyncio.run(run_once(prepare(resolve(flags, env={})), store, kind="throughput"))
    return store


def test_a_round_records_each_edge_and_classes_the_target_by_where_it_was_served(
    world: World, tmp_path: Path
) -> None:
    store = _round(world, tmp_path)
    rows = list(store.db.query("SELECT * FROM throughput_edges WHERE target = 'news'"))
    assert rows, "no edge recorded"
    e = rows[0]
    assert (e["asn"], e["cc"], e["network_source"]) == ("AS64500", "VN", "local")
    assert (e["on_net"], e["on_net_basis"]) == (1, "probe_asn")
    assert e["rtt_ms"] > 0 and e["connect_s"] > 0
    assert (e["target_class"], e["class_basis"]) == ("foreign_on_net", "served")
    (t,) = store.edge_tests(["news"])
    assert (t.network, t.edge_asn, t.on_net, t.target_class) == (
        "AS64500",
        "AS64500",
        True,
        "foreign_on_net",
    )
    assert t.bps is not None and t.bps > 0


def test_a_declared_class_wins_over_where_it_was_served(world: World, tmp_path: Path) -> None:
    store = _round(world, tmp_path, "    class: domestic\n")
    (t,) = store.edge_tests(["news"])
    assert t.target_class == "domestic"
    (row,) = store.db.query("SELECT DISTINCT class_basis FROM throughput_edges")
    assert row["class_basis"] == "declared"


def test_a_bad_table_names_its_file(tmp_path: Path) -> None:
    bad = tmp_path / "asn.tsv"
    bad.write_text("not a table\n", encoding="utf-8")
    with pytest.raises(AsnDbError, match=r"asn\.tsv"):
        local_lookup([str(bad)])
    assert local_lookup([])("192.0.2.1") is None


def test_a_table_is_read_once_while_its_file_is_unchanged(tmp_path: Path) -> None:
    table = tmp_path / "asn.tsv"
    table.write_text("192.0.2.0\t192.0.2.255\t64500\tVN\tA\n", encoding="utf-8")
    first = local_lookup([str(table)])
    assert first("192.0.2.7") == Where("AS64500", "VN", "local")
    table.write_text("192.0.2.0\t192.0.2.255\t64511\tDE\tChanged table\n", encoding="utf-8")
    assert local_lookup([str(table)])("192.0.2.7") == Where("AS64511", "DE", "local")


def test_the_helpers_table_is_asked_only_what_the_local_one_does_not_know() -> None:
    from collections.abc import Mapping, Sequence

    from probe.model import Plan
    from probe.round.throughput import ThroughputOptions, _lookup

    asked: list[list[str]] = []

    async def helper(addresses: Sequence[str]) -> Mapping[str, Where]:
        asked.append(list(addresses))
        return {"198.51.100.1": Where("AS7552", "VN", "helper")}

    local = {"192.0.2.7": Where("AS32934", "US", "local")}
    opts = ThroughputOptions(Plan(), edge_lookup=local.get, edge_networks=helper)
    ips = ["192.0.2.7", "198.51.100.1", "198.51.100.1", "203.0.113.9"]
    lookup = asyncio.run(_lookup(opts, ips))
    assert asked == [["198.51.100.1", "203.0.113.9"]]  # once each, the local one's first
    assert lookup("192.0.2.7") == local["192.0.2.7"]
    assert lookup("198.51.100.1") == Where("AS7552", "VN", "helper")
    assert lookup("203.0.113.9") is None
    asyncio.run(
        _lookup(
            ThroughputOptions(Plan(), edge_lookup=local.get, edge_networks=helper), ["192.0.2.7"]
        )
    )
    assert len(asked) == 1  # all known locally: the helper is not asked


def test_a_bad_cache_prefix_is_one_line_naming_the_setting() -> None:
    from probe.errors import SettingsError

    s = resolve({"cache_prefixes": ["203.0.113.0/24", "2001:db8::/32"]}, env={})
    assert s.cache_prefixes == ("203.0.113.0/24", "2001:db8::/32")
    with pytest.raises(SettingsError) as e:
        resolve({}, env={"PROBE_CACHE_PREFIXES": "203.0.113.0/24,cache.example"})
    assert "PROBE_CACHE_PREFIXES" in str(e.value) and "'cache.example'" in str(e.value)
    assert "\n" not in str(e.value)
