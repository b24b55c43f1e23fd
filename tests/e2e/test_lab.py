"""End to end through the censorship lab: ``probe run`` against real interference.

Needs root and network namespaces. Elsewhere these tests skip with one line; under CI=true
they fail instead, because CI must prove the probe against a real network.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.lab import Lab, lab_for_tests
from tests.lab.scenarios import CONTROLS, SCENARIOS, Scenario

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from lab_for_tests()


@pytest.fixture(scope="module")
def records(lab: Lab) -> dict[str, dict[str, Any]]:
    recs = lab.run_targets({s.name: s.url for s in SCENARIOS}, CONTROLS, "scenarios")
    return {r["target"]: r for r in recs}


def test_enough_scenarios() -> None:
    assert len(SCENARIOS) + 2 >= 20  # plus link down and congestion below


@pytest.mark.parametrize("s", SCENARIOS, ids=lambda s: s.name)
def test_scenario(records: dict[str, dict[str, Any]], s: Scenario) -> None:
    r = records[s.name]
    got = (r["blocking"], r["accessible"], r["failing_step"], r["failure"])
    assert got == (s.blocking, s.accessible, s.failing_step, s.failure), (
        f"{s.name} ({s.what}): rule {r['rule_id']}"
    )
    assert (r["offline"], r["network_ok"], r["evidence"]) == (False, True, s.evidence)


def test_controls_loaded(records: dict[str, dict[str, Any]]) -> None:
    assert (records["control-site"]["blocking"], records["control-site"]["accessible"]) == (
        False,
        True,
    )


def test_blockpages_were_fingerprinted(records: dict[str, dict[str, Any]]) -> None:
    for name in ("dns_blockpage_address", "blockpage_injection_consistent_dns"):
        assert records[name]["blockpage"] == "probe.vn_http_blocked_vi"


def test_access_link_down_gives_no_verdicts(lab: Lab) -> None:
    with lab.link_down():
        recs = lab.run_targets(
            {"news": SCENARIOS[0].url, "rst": SCENARIOS[5].url, "dnsnx": SCENARIOS[2].url},
            CONTROLS,
            "linkdown",
        )
    for r in recs:
        if r["target"] in CONTROLS:
            continue
        assert (r["blocking"], r["accessible"], r["offline"]) == (None, None, True), r["target"]


def test_congestion_flags_nothing(lab: Lab) -> None:
    with lab.congestion("2mbit"):
        recs = lab.run_targets(
            {
                "news": SCENARIOS[0].url,
                "news-tls": SCENARIOS[1].url,
                "large": "http://news.lab/large",
            },
            CONTROLS,
            "congestion",
            "--timeout",
            "10",
        )  # the default; the lab's 3 s is for drops
    for r in recs:
        assert (r["blocking"], r["accessible"]) == (False, True), r["target"]


def test_lab_has_no_route_out(lab: Lab) -> None:
    from tests.lab import sh

    for ns in (lab.client, lab.isp, lab.servers):
        routes = sh("ip", "route", "show", ns=ns).stdout
        assert "default" not in routes, f"{ns} has a default route: {routes}"


def _rate(rec: dict[str, Any]) -> float:
    """Download rate (bit/s) of the final response's body."""
    h = rec["http"][-1]
    return float(h["body_length"] * 8 / (h["t"] - h["t0"]))


@pytest.mark.parametrize(
    ("how", "url"),
    [
        ("address", "https://ipthrottled.lab/large"),
        ("sni", "https://snithrottled.lab/large"),
    ],
)
def test_throttle_mechanisms_slow_only_their_target(lab: Lab, how: str, url: str) -> None:
    """The lab's throttles (for the throughput scenarios): 1 Mbit/s on the target only."""
    kw = {"address": "10.77.1.16"} if how == "address" else {"sni": "snithrottled.lab"}
    with lab.throttle("1mbit", **kw):
        recs = {
            r["target"]: r
            for r in lab.run_targets(
                {"throttled": url, "free": "https://news.lab/large"},
                CONTROLS,
                f"throttle-{how}",
                "--timeout",
                "20",
            )
        }
    slow, fast = _rate(recs["throttled"]), _rate(recs["free"])
    assert recs["throttled"]["http"][-1]["body_length"] == 512 * 1024
    assert 0.5e6 < slow < 1.3e6, slow
    assert fast > 10e6, fast


# -- with the test helper (issue: a control vantage) -----------------------------------------
DOWN_TCP = Scenario(
    "down_for_everyone_tcp",
    "http://tcpdown.lab/",
    False,
    False,
    "tcp",
    "connection_refused",
    "nothing listens on the site's address, anywhere",
)


@pytest.fixture(scope="module")
def helper_records(lab: Lab) -> dict[str, dict[str, Any]]:
    targets = {s.name: s.url for s in [*SCENARIOS, DOWN_TCP]}
    recs = lab.run_targets(targets, CONTROLS, "helper", "--helper", lab.helper)
    return {r["target"]: r for r in recs}


@pytest.mark.parametrize("s", [*SCENARIOS, DOWN_TCP], ids=lambda s: s.name)
def test_scenario_with_helper(helper_records: dict[str, dict[str, Any]], s: Scenario) -> None:
    """Every blocking scenario keeps its verdict; down-for-everyone becomes false/false."""
    r = helper_records[s.name]
    got = (r["blocking"], r["accessible"], r["failing_step"], r["failure"])
    assert got == (s.blocking, s.accessible, s.failing_step, s.failure), (
        f"{s.name}: rule {r['rule_id']}"
    )
    assert r["evidence"] == "helper" and r["control"]["failure"] is None


def test_down_for_everyone_needs_the_helper(lab: Lab) -> None:
    """Without a helper, a site refusing connections everywhere looks like IP blocking."""
    (r,) = [
        r
        for r in lab.run_targets({"down": DOWN_TCP.url}, CONTROLS, "nohelper")
        if r["target"] == "down"
    ]
    assert (r["blocking"], r["accessible"], r["evidence"]) == ("tcp_ip", False, "local")


def test_blocked_helper_gives_null_where_ooni_does(lab: Lab) -> None:
    """OONI: control failure + HTTP success -> null/null; + HTTPS success -> accessible."""
    with lab.helper_blocked():
        recs = {
            r["target"]: r
            for r in lab.run_targets(
                {"http": SCENARIOS[0].url, "https": SCENARIOS[1].url},
                CONTROLS,
                "helperblocked",
                "--helper",
                lab.helper,
            )
        }
    assert (recs["http"]["blocking"], recs["http"]["accessible"]) == (None, None)
    assert (recs["https"]["blocking"], recs["https"]["accessible"]) == (False, True)
    assert recs["http"]["control"]["failure"] == "connection_refused"  # RST to the SYN


def test_helper_doh_as_control_resolver(lab: Lab) -> None:
    """The helper's /dns-query serves as the probe's control resolver."""
    picks = {
        s.name: s
        for s in SCENARIOS
        if s.name in ("success_http", "dns_nxdomain", "dns_lie_to_transparent_proxy_http")
    }
    recs = lab.run_targets(
        {k: s.url for k, s in picks.items()},
        CONTROLS,
        "helperdoh",
        "--control-resolver",
        lab.helper + "dns-query",
    )
    for r in recs:
        if r["target"] in picks:
            s = picks[r["target"]]
            assert (r["blocking"], r["accessible"]) == (s.blocking, s.accessible), s.name
            assert r["control_resolver"] == lab.helper + "dns-query"


# -- throughput and throttling -----------------------------------------------------------------
TP_CONTROL = {
    "control-site": {"url": "https://control.lab/", "throughput_url": "https://control.lab/tp"}
}
TARGETED = {"sni_targeted", "ip_targeted"}


def _tp_args(lab: Lab, seconds: float, trials: int, helper: bool = True) -> list[str]:
    args = ["--throughput-seconds", str(seconds), "--throughput-trials", str(trials)]
    if helper:
        args += [
            "--helper",
            lab.helper,
            "--helper-bulk-address",
            "10.77.1.70",
            "--helper-bulk-address",
            "10.77.1.71",
        ]
    return args


def _tp(recs: list[dict[str, Any]], name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    (r,) = [r for r in recs if r["target"] == name]
    assert r["throughput"] is not None, name
    return r, r["throughput"]


@pytest.mark.parametrize(
    ("how", "rate", "bps"),
    [
        ("address", "1mbit", 1_000_000),
        ("sni", "1mbit", 1_000_000),
        ("address", "150kbit", 150_000),
        ("sni", "150kbit", 150_000),
    ],
)
def test_throttle_detected_labelled_and_measured(lab: Lab, how: str, rate: str, bps: int) -> None:
    name = "ipthrottled" if how == "address" else "snithrottled"
    kw: dict[str, Any] = (
        {"address": "10.77.1.16"} if how == "address" else {"sni": "snithrottled.lab"}
    )
    target = {name: {"url": f"https://{name}.lab/", "throughput_url": f"https://{name}.lab/tp"}}
    with lab.throttle(rate, **kw):
        seconds = 4 if bps >= 1_000_000 else 6  # enough packets at 150 kbit/s for a steady rate
        recs = lab.run_targets(target, TP_CONTROL, f"tp-{how}-{rate}", *_tp_args(lab, seconds, 3))
    r, tp = _tp(recs, name)
    assert r["throttled"] is True, tp
    assert tp["label"] == ("ip_targeted" if how == "address" else "sni_targeted"), tp
    assert abs(tp["bps"] / bps - 1) <= 0.10, tp["bps"]  # within 10% of the configured rate
    assert tp["ratio"] <= 0.5 and tp["p_value"] < 0.05 and tp["mechanism"] == "shaper"
    assert tp["bytes_used"] > 0 and r["bytes_used"] >= tp["bytes_used"]
    assert {f["role"] for f in tp["samples"]} >= {
        "target",
        "control",
        "ab_neutral",
        "ab_target",
        "ab_neutral2",
    }


def test_throttle_after_a_burst(lab: Lab) -> None:
    target = {
        "ipthrottled": {
            "url": "https://ipthrottled.lab/",
            "throughput_url": "https://ipthrottled.lab/tp",
        }
    }
    with lab.throttle("1mbit", address="10.77.1.16", after_bytes=500_000):
        recs = lab.run_targets(target, TP_CONTROL, "tp-burst", *_tp_args(lab, 5, 3))
    r, tp = _tp(recs, "ipthrottled")
    assert r["throttled"] is True, tp
    # "near 500 KB": the lab's connbytes counts IP bytes per (offload-free) packet from the
    # handshake on, and the probe sees the shift at 250 ms granularity.
    assert 350_000 <= tp["burst_bytes"] <= 650_000, tp["burst_bytes"]


REPS = 10


def _reps(n: int, url: str, tp_url: str) -> dict[str, Any]:
    return {f"rep{i:02d}": {"url": url, "throughput_url": tp_url} for i in range(n)}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("case", ["congestion", "capacity_drop", "slow_server"])
def test_never_a_targeted_label(lab: Lab, case: str) -> None:
    """10 repetitions each (30 in all): what slows everything, or only the site's own server,
    is never blamed on the censor. Ten tests in a round is also a weaker Bonferroni correction
    than twenty (p < 0.005 each, not 0.0025): a false label is easier to get, not harder."""
    tp_url = "https://news.lab/slowtp" if case == "slow_server" else "https://news.lab/tp"
    targets = _reps(REPS, "https://news.lab/", tp_url)
    args = [*_tp_args(lab, 1.5, 2), "--concurrency", "1"]
    if case == "congestion":
        ctx: Any = lab.congestion("4mbit")
    elif case == "capacity_drop":
        ctx = lab.capacity_flapping("20mbit", "3mbit", 0.6)
    else:
        ctx = contextlib.nullcontext()
    with ctx:
        recs = lab.run_targets(targets, TP_CONTROL, f"tp-{case}", *args)
    tps = [_tp(recs, name)[1] for name in targets]
    labels = [tp["label"] for tp in tps]
    assert len(labels) == REPS and not TARGETED & set(labels), labels
    if case == "slow_server":
        # It looked slow every time, so the attribution ran, and it saw the site slow from
        # the helper too: the site's own server, not the censor.
        for tp in tps:
            assert {f["role"] for f in tp["samples"]} >= {"ab_neutral", "ab_target"}
            assert tp["helper_bps"] is not None and tp["helper_bps"] < 1e6, tp["helper_bps"]


def test_data_cap_stops_throughput_tests(lab: Lab) -> None:
    target = {"t": {"url": "https://news.lab/", "throughput_url": "https://news.lab/tp"}}
    recs = lab.run_targets(
        target,
        TP_CONTROL,
        "tp-cap",
        *_tp_args(lab, 1, 1, helper=False),
        "--max-bytes-per-day",
        "1M",
    )
    r, tp = _tp(recs, "t")
    assert tp["skipped"] == "data_cap" and r["throttled"] is None and tp["samples"] == []


# -- issue 9: verdicts that hold up, end to end ----------------------------------------------
def test_a_control_chain_slower_than_the_deadline_is_no_blocking(lab: Lab) -> None:
    """The ISP's answer leads to the real page; the honest answer leads to a server that never
    answers, and the target's deadline cuts the control chain: can't tell, never 'dns'."""
    (r,) = [
        r
        for r in lab.run_targets(
            {"slow": "http://slowcontrol.lab/"}, CONTROLS, "slowcontrol", "--deadline", "2"
        )
        if r["target"] == "slow"
    ]
    assert (r["blocking"], r["accessible"], r["rule_id"]) == (
        None,
        None,
        "dns.inconsistent.unverified",
    )
    system = [h for h in r["http"] if h["role"] == "system"]
    assert system[-1]["status_code"] == 200
    assert (r["http"][-1]["role"], r["http"][-1]["raw_failure"]) == ("control", "target deadline")


def test_a_redirect_to_a_link_local_literal_is_not_followed(
    records: dict[str, dict[str, Any]],
) -> None:
    r = records["redirect_to_link_local_literal"]
    assert [(h["depth"], h["status_code"]) for h in r["http"]] == [(0, 302)]
    assert not [t for t in r["tcp"] if t["ip"].startswith("169.254.")]


def test_the_clients_address_is_stored_nowhere(lab: Lab) -> None:
    """Servers echo the address they see (the client's own: no NAT in the lab) in headers, a
    cookie, the title, the body in every form, a Location and an HTTP error's text. The probe
    learnt it from its own sockets; the database file, its WAL, the decompressed bodies and
    the JSON Lines and CSV exports hold it in no form."""
    import zlib

    from probe.store import Store
    from tests.lab import CLIENT_IP
    from tests.servers import echo_forms

    targets = {
        "echo-http": "http://echo.lab/",
        "echo-https": "https://echo.lab/",
        "echo-redirect": "http://echo.lab/go",
        "echo-malformed": "http://echo.lab/bad",
    }
    recs = {r["target"]: r for r in lab.run_targets(targets, CONTROLS, "echo")}
    page = recs["echo-http"]["http"][-1]
    assert page["status_code"] == 200 and page["title"] == "Your address is [scrubbed]"
    assert recs["echo-malformed"]["http"][-1]["failure"] == "http_protocol_error"
    db = lab.tmp / "echo.db"
    texts = []
    for fmt in ("jsonl", "csv"):
        out = lab.probe("export", "--db", str(db), "--format", fmt)
        assert out.returncode == 0, out.stderr
        texts.append(out.stdout)
    store = Store.open(db)
    texts += [
        zlib.decompress(r["data"]).decode() for r in store.db.query("SELECT data FROM bodies")
    ]
    texts.append("\n".join(store.db.iterdump()))
    store.close()
    for suffix in ("", "-wal"):
        path = lab.tmp / f"echo.db{suffix}"
        if path.exists():
            texts.append(path.read_bytes().decode("latin-1"))
    forms = [f.lower() for f in echo_forms(CLIENT_IP)]
    for text in texts:
        assert not [f for f in forms if f in text.lower()]


# -- issue 12: throughput of every listed site, and which network ------------------------------
def _default_list() -> tuple[dict[str, Any], dict[str, Any]]:
    """The repository's own targets.yaml, as the lab's replica serves it."""
    from probe.config.targets import load_targets
    from tests.lab import REPO

    tl = load_targets(REPO / "targets.yaml")
    return {t.name: t.url for t in tl.targets}, {c.name: c.url for c in tl.controls}


@pytest.fixture(scope="module")
def replica_run(lab: Lab) -> tuple[list[dict[str, Any]], Any]:
    """One round over the default targets (their replica), with a helper and a NAT in front of
    the client, plus sites echoing the address they see: throughput tests as the daemon's
    throughput rounds run them (short flows: the lab's links are fast)."""
    targets, controls = _default_list()
    targets |= {"echo-http": "http://echo.lab/", "echo-tls": "https://echo.lab/"}
    with lab.nat():
        recs = lab.run_targets(targets, controls, "replica", *_tp_args(lab, 1, 1))
    return recs, lab.tmp / "replica.db"


def test_every_default_target_gets_a_throughput_test(
    replica_run: tuple[list[dict[str, Any]], Any],
) -> None:
    from probe.store import Store
    from tests.lab.replica import BY_NAME

    recs, db = replica_run
    targets, controls = _default_list()
    for name in targets:
        (r,) = [r for r in recs if r["target"] == name]
        tp = r["throughput"]
        assert tp is not None and tp["skipped"] is None, (name, tp)
        expect = BY_NAME[name].expect
        if expect is not None:  # its own object, against the control's
            assert tp["url"] == expect and tp["control"] == "control-vnexpress", (name, tp)
            assert {f["role"] for f in tp["samples"]} >= {"target", "control", "ab_target"}
        else:  # the SNI A/B alone
            assert tp["url"] is None and {f["role"] for f in tp["samples"]} == {
                "ab_neutral",
                "ab_target",
                "ab_neutral2",
            }, (name, tp)
        assert r["throttled"] is False, (name, tp)  # nothing throttles the replica
    store = Store.open(db)
    chosen = {r["target"]: r["url"] for r in store.db.query("SELECT * FROM throughput_objects")}
    store.close()
    assert chosen["control-vnexpress"] == BY_NAME["control-vnexpress"].expect
    assert set(controls) - set(chosen) == {
        "control-wikipedia",
        "control-example",
        "control-tuoitre",
    }


def test_the_helpers_network_is_on_every_measurement_and_the_address_nowhere(
    lab: Lab, replica_run: tuple[list[dict[str, Any]], Any]
) -> None:
    """Behind the lab's NAT the helper sees 203.0.113.5; it answers the network and an HMAC.
    The echo sites send that address back in every form: the database file, its WAL, the
    decompressed bodies and the exports hold it nowhere; every measurement has the ASN."""
    import zlib

    from probe.store import Store
    from tests.lab import PUBLIC_IP
    from tests.servers import echo_forms

    recs, db = replica_run
    assert {(r["probe_asn"], r["probe_cc"]) for r in recs} == {("AS64500", "VN")}
    page = next(r for r in recs if r["target"] == "echo-http")["http"][-1]
    assert page["title"] == "Your address is [scrubbed]"
    store = Store.open(db)
    assert {r["network_name"] for r in store.rows()} == {"LAB-MOBILE Lab Mobile Data"}
    (rnd,) = store.db.query("SELECT * FROM rounds")
    assert (rnd["probe_asn"], rnd["network_source"], rnd["resolver_kind"]) == (
        "AS64500",
        "helper",
        "local",
    )
    texts = [zlib.decompress(r["data"]).decode() for r in store.db.query("SELECT data FROM bodies")]
    texts.append("\n".join(store.db.iterdump()))
    store.close()
    for fmt in ("jsonl", "csv"):
        out = lab.probe("export", "--db", str(db), "--format", fmt)
        assert out.returncode == 0, out.stderr
        texts.append(out.stdout)
    for suffix in ("", "-wal"):
        path = lab.tmp / f"replica.db{suffix}"
        if path.exists():
            texts.append(path.read_bytes().decode("latin-1"))
    forms = [f.lower() for f in echo_forms(PUBLIC_IP)]
    for text in texts:
        assert not [f for f in forms if f in text.lower()]


def test_a_discovered_object_throttled_by_address_and_found_again(lab: Lab) -> None:
    """No throughput_url: the site's page links its own picture, the control's page its own.
    Throttled by address: ip_targeted. Then the editors replace the picture: the stored choice
    answers 404, and the next test runs on the new one."""
    target = {"ipthrottled": "https://ipthrottled.lab/"}
    control = {"control-site": "https://control.lab/"}
    lab.set_media("front")
    with lab.throttle("1mbit", address="10.77.1.16"):
        recs = lab.run_targets(target, control, "tp-found", *_tp_args(lab, 4, 3))
    r, tp = _tp(recs, "ipthrottled")
    assert tp["url"] == "https://ipthrottled.lab/media/front.jpg", tp
    assert r["throttled"] is True and tp["label"] == "ip_targeted", tp
    assert abs(tp["bps"] / 1e6 - 1) <= 0.10 and tp["control"] == "control-site"
    lab.set_media("second")
    try:
        recs = lab.run_targets(target, control, "tp-found", *_tp_args(lab, 1, 1))
    finally:
        lab.set_media("front")
    r, tp = _tp([x for x in recs if x["target"] == "ipthrottled"][-1:], "ipthrottled")
    assert tp["url"] == "https://ipthrottled.lab/media/second.jpg", tp
    assert r["throttled"] is False


def test_an_sni_throttle_on_a_site_without_an_object_is_seen_by_the_ab_alone(lab: Lab) -> None:
    target = {"snithrottled": "https://snithrottled.lab/plain"}
    with lab.throttle("1mbit", sni="snithrottled.lab"):
        recs = lab.run_targets(target, CONTROLS, "tp-sni-ab", *_tp_args(lab, 4, 3))
    r, tp = _tp(recs, "snithrottled")
    assert tp["url"] is None and r["throttled"] is True, tp
    assert tp["label"] == "sni_targeted" and tp["mechanism"] == "shaper", tp
    assert tp["p_value"] < 0.05 and tp["samples"]
