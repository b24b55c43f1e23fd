"""Which network a measurement came from, without the volunteer's address ever being told.

The helper's IP-to-ASN tables (an iptoasn TSV and a tiny MaxMind database written with
mmdb-writer), its ``/network`` answer (an HMAC of the address it sees under the probe's nonce),
the probe's recogniser of its own public address behind NAT, the ``asn``/``cc`` settings, the
resolver's kind, the network on every measurement and round, changes of network, and
``probe events`` keeping one baseline per network.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import ipaddress
import json
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probe.config.resolver import parse_resolver
from probe.config.settings import resolve
from probe.errors import AsnDbError, SettingsError
from probe.helper.asn import Entry, load
from probe.helper.server import HelperApp
from probe.measure.config import MeasureConfig
from probe.model import Network
from probe.network import addr_hmac, recogniser, resolver_kind
from tests.dbs import measurement
from tests.runs import world_settings
from tests.world import BODY_CAP, PUBLIC_ADDRESS, World

TSV = (
    "1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET\n"
    "127.0.0.0\t127.255.255.255\t64501\tVN\tLOOPBACK-HOME Loopback Home Net\n"
    "203.0.113.0\t203.0.113.255\t64500\tVN\tVIETTEL-LAB Viettel Lab\n"
    "203.0.114.0\t203.0.114.255\t0\tNone\tNot routed\n"
    "2001:db8::\t2001:db8:ffff:ffff:ffff:ffff:ffff:ffff\t64502\tVN\tV6-LAB\n"
)


def tsv(tmp_path: Path, text: str = TSV, name: str = "ip2asn.tsv") -> Path:
    p = tmp_path / name
    p.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    return p


def mmdb(tmp_path: Path) -> Path:
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    w = MMDBWriter(ip_version=6, database_type="GeoLite2-ASN", ipv4_compatible=True)
    w.insert_network(
        IPSet(["203.0.113.0/24"]),
        {"autonomous_system_number": 64500, "autonomous_system_organization": "VIETTEL-LAB"},
    )
    w.insert_network(IPSet(["198.51.100.0/24"]), {"asn": "AS64510", "as_name": "FPT-LAB"})
    p = tmp_path / "asn.mmdb"
    w.to_db_file(str(p))
    return p


def test_the_iptoasn_table(tmp_path: Path) -> None:
    for name in ("ip2asn.tsv", "ip2asn.tsv.gz"):
        table = load([tsv(tmp_path, name=name)])
        assert table.lookup("203.0.113.5") == Entry("AS64500", "VN", "VIETTEL-LAB Viettel Lab")
        assert table.lookup("::ffff:203.0.113.5") == Entry(
            "AS64500", "VN", "VIETTEL-LAB Viettel Lab"
        )
        assert table.lookup("2001:db8::7") == Entry("AS64502", "VN", "V6-LAB")
        assert table.lookup("203.0.114.1") is None  # "Not routed"
        assert table.lookup("9.9.9.9") is None and table.lookup("not an address") is None


def test_a_maxmind_table_and_tables_merged(tmp_path: Path) -> None:
    table = load([mmdb(tmp_path)])
    assert table.lookup("203.0.113.5") == Entry("AS64500", None, "VIETTEL-LAB")
    assert table.lookup("198.51.100.1") == Entry("AS64510", None, "FPT-LAB")
    both = load([mmdb(tmp_path), tsv(tmp_path)])  # the ASN database, then one with countries
    assert both.lookup("203.0.113.5") == Entry("AS64500", "VN", "VIETTEL-LAB")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1.0.0.0 1.0.0.255 13335 US x\n", "ip2asn.tsv:1: expected range_start"),
        ("1.0.0.0\tnope\t1\tUS\tx\n", "ip2asn.tsv:1: 'nope' does not appear"),
        ("1.0.0.9\t1.0.0.1\t1\tUS\tx\n", "ip2asn.tsv:1: 1.0.0.9-1.0.0.1 is not a range"),
        ("# only a comment\n", "ip2asn.tsv: no routed range"),
    ],
)
def test_a_bad_table_is_one_line_naming_file_and_line(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(AsnDbError) as e:
        load([tsv(tmp_path, text)])
    assert message in str(e.value) and "\n" not in str(e.value)


def test_the_cli_refuses_a_bad_table_with_exit_2(tmp_path: Path) -> None:
    from probe.cli import main

    assert main(["helper", "serve", "--asn-db", str(tmp_path / "missing.tsv")]) == 2


def _ask_network(app: HelperApp, client: str, nonce: bytes) -> tuple[int, dict[str, Any]]:
    """One POST /network through the ASGI app, from ``client`` (as uvicorn presents a peer)."""
    body = json.dumps({"nonce": nonce.hex()}).encode()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/network",
        "headers": [(b"content-length", str(len(body)).encode())],
        "client": (client, 51515),
        "query_string": b"",
    }
    asyncio.run(app(scope, receive, send))
    status = sent[0]["status"]
    return status, json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


def _app(tmp_path: Path, world: World, log: io.StringIO) -> HelperApp:
    cfg = MeasureConfig(
        resolver=parse_resolver(world.control_dns.address),
        control_resolver=None,
        timeout=1.5,
        deadline=10,
        body_cap=BODY_CAP,
    )
    return HelperApp(cfg, log=log, asn_table=load([tsv(tmp_path)]))


def test_the_helper_answers_the_network_and_an_hmac_never_the_address(
    tmp_path: Path, world: World
) -> None:
    log = io.StringIO()
    app = _app(tmp_path, world, log)
    nonce = bytes(range(32))
    status, doc = _ask_network(app, PUBLIC_ADDRESS, nonce)
    assert status == 200
    assert doc == {
        "asn": "AS64500",
        "cc": "VN",
        "network_name": "VIETTEL-LAB Viettel Lab",
        "addr_hmac": addr_hmac(nonce, PUBLIC_ADDRESS),
    }
    mine = recogniser(nonce, doc["addr_hmac"])
    assert mine(ipaddress.ip_address(PUBLIC_ADDRESS))
    assert not mine(ipaddress.ip_address("203.0.113.6"))
    assert not recogniser(bytes(32), doc["addr_hmac"])(ipaddress.ip_address(PUBLIC_ADDRESS))
    seen = json.dumps(doc) + log.getvalue()
    assert PUBLIC_ADDRESS not in seen and "203-0-113-5" not in seen
    assert _ask_network(app, PUBLIC_ADDRESS, b"short")[0] == 400


def test_the_client_learns_its_network_from_a_helper_on_loopback(
    tmp_path: Path, world: World
) -> None:
    from probe.measure.helper_client import HelperClient
    from tests.servers.helper import helper_server

    with helper_server(world, asn_table=load([tsv(tmp_path)])) as (base, _):

        async def go() -> Any:
            client = HelperClient(base + "/")
            try:
                return await client.network()
            finally:
                await client.aclose()

        got = asyncio.run(go())
    assert got.network == Network("AS64501", "VN", "LOOPBACK-HOME Loopback Home Net", "helper")
    assert got.recognise is not None and got.recognise(ipaddress.ip_address("127.0.0.1"))


def test_behind_nat_the_public_address_is_scrubbed_everywhere_and_the_asn_kept(
    tmp_path: Path, world: World
) -> None:
    """The helper saw the volunteer's public address (behind NAT, as it would); the probe was
    never told it. Servers echo it in every form: the database file (WAL included, bodies
    decompressed) and the exports hold it nowhere, and every measurement has the network."""
    from probe.analyst.export import records, write
    from probe.classify.fingerprints import builtin
    from probe.config.targets import Target
    from probe.round import run_round
    from probe.store import Store
    from tests.servers.http import all_forms

    nonce = b"n" * 32
    _, doc = _ask_network(_app(tmp_path, world, io.StringIO()), PUBLIC_ADDRESS, nonce)
    network = Network(doc["asn"], doc["cc"], doc["network_name"], "helper")
    store = Store.open(tmp_path / "p.db")
    urls = {
        "page": world.http("echo.test"),
        "redirect": world.http("echo.test", "/go"),
        "tls": world.https("echo.test"),
        "news": world.http("news.test"),
    }
    result = asyncio.run(
        run_round(
            [Target(name=k, url=u) for k, u in urls.items()],
            [Target(name="ctl", url=world.http("news.test"), is_control=True)],
            world.config(),
            fingerprints=builtin(),
            on_measurement=store.save,
            recognisers=[recogniser(nonce, doc["addr_hmac"])],
            network=network,
        )
    )
    assert result.count == 5
    rows = list(store.rows())
    assert {(r["probe_asn"], r["probe_cc"], r["network_name"]) for r in rows} == {
        ("AS64500", "VN", "VIETTEL-LAB Viettel Lab")
    }
    assert {r["resolver_kind"] for r in rows} == {"local"}  # the loopback resolver
    out = tmp_path / "out.jsonl"
    write(records(store), "jsonl", str(out))
    texts = [out.read_text(encoding="utf-8"), "\n".join(store.db.iterdump())]
    texts += [
        zlib.decompress(r["data"]).decode() for r in store.db.query("SELECT data FROM bodies")
    ]
    store.close()
    texts += [p.read_bytes().decode("latin-1") for p in tmp_path.glob("p.db*")]
    assert '"probe_asn":"AS64500"' in texts[0]
    for text in texts:
        for form in all_forms(PUBLIC_ADDRESS):
            assert form not in text.lower(), form


def test_asn_and_cc_settings(tmp_path: Path) -> None:
    s = resolve({"asn": "as7552", "cc": "vn"}, env={})
    assert (s.asn, s.cc) == ("AS7552", "VN")
    assert resolve({}, env={"PROBE_ASN": "45899"}).asn == "AS45899"
    with pytest.raises(SettingsError, match="--asn: 'AS-1' is not an AS number"):
        resolve({"asn": "AS-1"}, env={})
    with pytest.raises(SettingsError, match="--cc: 'Viet Nam' is not a two-letter"):
        resolve({"cc": "Viet Nam"}, env={})


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("127.0.0.53", ("local", None)),
        ("192.168.1.1", ("local", None)),
        ("8.8.8.8", ("public", "Google")),
        ("2606:4700:4700::1111", ("public", "Cloudflare")),
        ("dns.quad9.net", ("public", "Quad9")),
        ("203.113.131.1", ("isp", None)),
        ("doh.example.net", ("other", None)),
    ],
)
def test_the_resolvers_kind(host: str, kind: tuple[str, str | None]) -> None:
    assert resolver_kind(host) == kind


def _settings(world: World, tmp_path: Path, **flags: Any) -> Any:
    targets = tmp_path / "t.yaml"
    targets.write_text(
        f"targets:\n  - name: news\n    url: {world.http('news.test')}\n"
        f"controls:\n  - name: ctl\n    url: {world.http('news.test')}\n",
        encoding="utf-8",
    )
    control = "udp://" + world.control_dns.address
    return resolve(
        world_settings(world, targets, tmp_path / "r.db", control=control, **flags), env={}
    )


def test_rounds_keep_their_network_and_a_move_is_recorded(world: World, tmp_path: Path) -> None:
    from probe.round import prepare, run_once
    from probe.store import Store

    store = Store.open(tmp_path / "r.db")
    for asn in ("AS64500", "AS64500", "AS45899", None):
        setup = prepare(_settings(world, tmp_path, asn=asn, cc="VN" if asn else None))
        asyncio.run(run_once(setup, store, throughput=False))
    rounds = list(store.db.query("SELECT * FROM rounds ORDER BY started_at"))
    assert [(r["probe_asn"], r["network_source"]) for r in rounds] == [
        ("AS64500", "settings"),
        ("AS64500", "settings"),
        ("AS45899", "settings"),
        (None, "none"),
    ]
    (change,) = store.network_changes()
    assert (change["old_asn"], change["new_asn"], change["round_id"]) == (
        "AS64500",
        "AS45899",
        rounds[2]["id"],
    )
    by_round = {r["round_id"]: r["probe_asn"] for r in store.rows()}
    assert [by_round[r["id"]] for r in rounds] == ["AS64500", "AS64500", "AS45899", None]


def test_events_keep_one_baseline_per_network(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A laptop alternates between home broadband (the site as fast as the control) and
    mobile data (always a third as fast: that network's normal). Keyed on the ASN, neither is
    an event, and a real drop at home is; keyed on the resolver alone, mobile data would look
    throttled all along."""
    from probe.classify.events import find_events
    from probe.store import Store

    store = Store.open(tmp_path / "e.db")
    for i in range(24):
        home = i % 2 == 0
        ratio = (1.0 if i < 18 else 0.1) if home else 0.33
        m = measurement(
            "success_https",
            f"m{i:02d}",
            started_at=f"2026-11-{1 + i // 4:02d}T{(i % 4) * 6:02d}:00:00.000Z",
            target="facebook",
            probe_asn="AS7552" if home else "AS45899",
            resolver="udp://8.8.8.8:53",
        )
        analysis = {"ratio": ratio, "throttled": False}
        store.save(replace(m, throughput={"analysis": analysis}))  # type: ignore[arg-type]
    events = find_events(store.throughput_tests())
    assert [(e.network, e.open) for e in events] == [("AS7552", True)]
    from probe.cli import main

    assert main(["events", "--db", str(tmp_path / "e.db"), "--format", "jsonl"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["network"] == "AS7552" and json.loads(line)["closed_at"] is None
    store.db.execute("UPDATE measurements SET probe_asn = NULL")
    merged = find_events(store.throughput_tests())
    assert {e.network for e in merged} == {"udp://8.8.8.8:53"} and len(merged) >= 1
    assert merged[0].opened_at < events[0].opened_at  # mobile data's normal read as throttling


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=80),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
answer_fields = st.fixed_dictionaries(
    {},
    optional={
        "asn": json_values | st.from_regex(r"(AS)?[0-9]{1,12}", fullmatch=True),
        "cc": json_values | st.from_regex(r"[A-Za-z]{2}", fullmatch=True),
        "network_name": json_values,
        "addr_hmac": json_values | st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
    },
)


@given(json_values | answer_fields)
def test_any_network_answer_is_checked_never_raised(doc: Any) -> None:
    from probe.measure.helper_client import network_answer

    got = network_answer(doc, b"n" * 32)
    if got.failure is None and got.network is not None:
        assert got.network.asn is None or got.network.asn.startswith("AS")
        assert got.network.cc is None or len(got.network.cc) == 2
        assert got.network.name is None or len(got.network.name) <= 200


@given(st.lists(st.text(alphabet="0123456789.:abcdefAS \t-#xN/", max_size=60), max_size=8))
def test_any_table_text_loads_or_fails_in_one_line(lines: list[str]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "t.tsv"
        p.write_text("\n".join(lines), encoding="utf-8")
        try:
            table = load([p])
        except AsnDbError as exc:
            assert "\n" not in str(exc) and str(p) in str(exc)
        else:
            table.lookup("1.2.3.4")
