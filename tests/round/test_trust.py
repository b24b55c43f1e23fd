"""Verdicts that hold up (issue 9): the defects review found, each reproduced on loopback.

Every test here failed on the code before its fix. The servers behave like real ones: HTTP/1.1
keep-alive, a blockpage server on one address and the real site on another.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from pathlib import Path

from probe.classify import classify
from probe.classify.fingerprints import FingerprintSet
from probe.model import Measurement
from tests.servers.http import all_forms
from tests.world import PUBLIC_ADDRESS, SITE, UNKNOWN_BLOCK, World


def test_control_fetch_has_its_own_connection(world: World) -> None:
    """The control fetch must not ride the keep-alive connection the system fetch opened to
    the blockpage's address; the address recorded is the socket's peer."""
    obs, _ = world.measure(world.http("unknownblock.test"))
    system = [h for h in obs.http if h.role == "system"]
    control = [h for h in obs.http if h.role == "control"]
    assert (system[-1].ip, system[-1].title) == (UNKNOWN_BLOCK, "Thông báo của nhà mạng")
    assert (control[-1].ip, control[-1].title) == (SITE, "Independent News Today")


def test_dns_redirect_to_an_unknown_blockpage_is_dns_blocking(world: World) -> None:
    obs, _ = world.measure(world.http("unknownblock.test"))
    v = classify(obs, network_ok=True)
    assert (v.blocking, v.accessible, v.dns_consistency) == ("dns", False, "inconsistent")
    assert v.rule_id == "dns.inconsistent.diff" and v.blockpage is None


def _round_measurement(
    world: World,
    url: str,
    fingerprints: FingerprintSet | None = None,
    *,
    helper: bool = False,
    **cfg: object,
) -> Measurement:
    """One target measured by a real round (scrubbed, classified), with the in-process test
    helper when ``helper``."""
    from probe.classify.fingerprints import builtin
    from probe.config.targets import Target
    from probe.measure.helper_client import HelperClient
    from probe.round import run_round
    from tests.servers.helper import helper_server

    stored: list[Measurement] = []
    with contextlib.ExitStack() as stack:
        client = None
        if helper:
            base, _ = stack.enter_context(helper_server(world))
            client = HelperClient(base)
        asyncio.run(
            run_round(
                [Target(name="t", url=url)],
                [],
                world.config(**cfg),
                fingerprints=fingerprints or builtin(),
                helper=client,
                on_measurement=stored.append,
            )
        )
    (m,) = stored
    return m


def test_with_a_helper_its_page_is_the_control(world: World) -> None:
    """The helper fetched the real page; the system page is an unknown blockpage that shares
    only framing headers (Content-Length) with it: not the same page."""
    m = _round_measurement(world, world.http("unknownblock.test"), helper=True)
    assert m.control is not None and m.control.http_title == "Independent News Today"
    v = m.verdict
    assert (v.blocking, v.accessible, v.evidence) == ("dns", False, "helper")
    assert v.rule_id == "dns.inconsistent.diff" and v.headers_match is True  # as OONI says


def test_a_deadline_in_the_control_chain_is_no_blocking(world: World) -> None:
    """The system page loads through an inconsistent answer; the control chain then waits on a
    server that never answers until the target's deadline. The deadline record names the chain
    it interrupted, and a control-side timeout alone never makes a blocking verdict."""
    obs, _ = world.measure(world.http("slowcontrol.test"), timeout=3, deadline=1)
    system = [h for h in obs.http if h.role == "system"]
    deadline = obs.http[-1]
    assert system[-1].status_code == 200 and system[-1].failure is None
    assert (deadline.role, deadline.failure, deadline.raw_failure) == (
        "control",
        "generic_timeout_error",
        "target deadline",
    )
    assert deadline.failed_operation == "http_round_trip"  # the step in flight, df-008
    v = classify(obs, network_ok=True)
    assert (v.blocking, v.accessible, v.rule_id) == (None, None, "dns.inconsistent.unverified")


def test_max_addresses_is_per_source(world: World) -> None:
    """Nine system addresses must not crowd out the control's: each source gets its own cap,
    so the control address is dialled and its page fetched (not labelled dns_bogon_error)."""
    obs, _ = world.measure(world.http("bigcdn.test"))
    dialled = {t.ip: t.sources for t in obs.tcp}
    assert dialled[SITE] == ("control",) and len(dialled) == 8 + 1
    control = [h for h in obs.http if h.role == "control"]
    assert (control[-1].ip, control[-1].status_code, control[-1].failure) == (SITE, 200, None)
    v = classify(obs, network_ok=True)
    assert (v.blocking, v.accessible, v.rule_id) == (False, True, "dns.inconsistent.same_page")


def test_the_volunteers_address_is_stored_nowhere(world: World, tmp_path: Path) -> None:
    """Servers echo the volunteer's address (behind NAT, recognised as theirs) in headers, a
    cookie, the title, the body in every form, a Location and an HTTP error's text; the whole
    database file (WAL included, bodies decompressed) and every export hold it in no form,
    while evidence (another address in X-Forwarded-For) is kept and live and replayed
    verdicts agree."""
    import ipaddress
    import zlib

    from probe.analyst.export import records, write
    from probe.classify.fingerprints import builtin
    from probe.config.targets import Target
    from probe.round import run_round
    from probe.store import Store
    from probe.store.reclassify import reclassify

    urls = {
        "page": world.http("echo.test"),
        "redirect": world.http("echo.test", "/go"),
        "malformed": world.http("echo.test", "/bad"),
        "tls": world.https("echo.test"),
    }
    store = Store.open(tmp_path / "p.db")
    live: list[Measurement] = []

    def save(m: Measurement) -> None:
        store.save(m)
        live.append(m)

    mine = ipaddress.ip_address(PUBLIC_ADDRESS)
    asyncio.run(
        run_round(
            [Target(name=k, url=u) for k, u in urls.items()],
            [],
            world.config(),
            fingerprints=builtin(),
            on_measurement=save,
            recognisers=[lambda ip: ip == mine],
        )
    )
    assert {m.target for m in live} == set(urls)
    by_name = {m.target: m for m in live}
    page = by_name["page"].observations.http[-1]
    assert page.status_code == 200 and page.title == "Your address is [scrubbed]"
    assert page.header("x-forwarded-for") == "[scrubbed], 198.51.100.1"  # evidence kept
    hop = by_name["redirect"].observations.http[0]
    assert hop.location == "/?from=ip-[scrubbed]&ip=[scrubbed]" and hop.status_code == 302
    assert by_name["malformed"].observations.http[-1].failure == "http_protocol_error"
    subject = by_name["tls"].observations.tls[0].certificates[0].subject
    assert "commonName=echo.test for [scrubbed]," in subject

    jsonl, csv_out = tmp_path / "out.jsonl", tmp_path / "out.csv"
    write(records(store), "jsonl", str(jsonl))
    write(records(store), "csv", str(csv_out))
    texts = [jsonl.read_text(encoding="utf-8"), csv_out.read_text(encoding="utf-8")]
    texts += [
        zlib.decompress(r["data"]).decode() for r in store.db.query("SELECT data FROM bodies")
    ]
    texts += ["\n".join(store.db.iterdump())]
    for suffix in ("", "-wal"):
        path = tmp_path / f"p.db{suffix}"
        if path.exists():
            texts.append(path.read_bytes().decode("latin-1"))
    for text in texts:
        low = text.lower()
        for form in all_forms(PUBLIC_ADDRESS):
            assert form not in low, form

    # Reclassifying what was stored gives every live verdict, field by field.
    assert reclassify(store, builtin()) == (4, 0)
    for row in store.rows():
        assert store.verdict(row) == by_name[row["target"]].verdict


def test_a_fingerprint_with_an_address_fires_live_and_on_replay(
    world: World, tmp_path: Path
) -> None:
    """Bodies used to be scrubbed of every address on the way into the database but matched
    raw when live, so a fingerprint naming the filter's address (an iframe to 10.10.34.34)
    fired live and not in probe reclassify. Addresses that are evidence are kept now."""
    from probe.classify.fingerprints import builtin, load
    from probe.store import Store
    from probe.store.reclassify import reclassify

    fp = tmp_path / "fp.csv"
    fp.write_text(
        "name,scope,location_found,pattern_type,pattern\n"
        'test.iframe_filter,nat,body,contains,"<iframe src=""http://10.10.34.34"\n',
        encoding="utf-8",
    )
    fps: FingerprintSet = builtin() + load(fp)
    m = _round_measurement(world, world.http("unknownblock.test", "/iframe"), fps)
    assert (m.verdict.rule_id, m.verdict.blockpage) == ("blockpage.http", "test.iframe_filter")
    store = Store.open(tmp_path / "p.db")
    store.save(replace(m, verdict=replace(m.verdict, blocking=False)))  # older rules
    assert reclassify(store, fps) == (1, 1)
    assert store.verdict(next(store.rows())) == m.verdict


def test_a_truncated_body_is_compared_by_its_declared_length() -> None:
    """A large file read up to the body cap shares only framing headers with the helper's
    copy; its declared Content-Length (unencoded) is its length, so it is the same page, not a
    blockpage. An encoded body's declared length is not comparable and is not used."""
    from probe.classify.facts import Reference, http_diff
    from probe.model import HTTPTransaction

    ref = Reference(200, 4 * 1024 * 1024, None, frozenset({"content-type", "content-length"}))

    def ours(**headers: str) -> HTTPTransaction:
        return HTTPTransaction(
            url="http://x.test/large",
            status_code=200,
            headers=tuple(headers.items()),
            body_length=512 * 1024,
            body_truncated=True,
        )

    same = http_diff(ours(**{"Content-Length": str(4 * 1024 * 1024)}), ref)
    assert (same.body_proportion, same.body_length_match, same.same_page) == (1.0, True, True)
    gz = http_diff(ours(**{"Content-Length": "4194304", "Content-Encoding": "gzip"}), ref)
    assert (gz.body_proportion, gz.body_length_match, gz.same_page) == (None, None, False)
    short = http_diff(ours(**{"Content-Length": "1000"}), ref)
    assert short.body_length_match is False and not short.same_page


def test_dot_checks_the_resolvers_name(world: World, tmp_path: Path) -> None:
    """tls://NAME@IP (issue 9 item 8): the certificate must be valid for NAME; without a name,
    for the resolver's address."""
    import ssl
    import time

    import trustme

    from probe.config.resolver import parse_resolver
    from probe.measure.dns import query
    from tests.servers import DoTServer

    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("dns.test", "127.0.0.54").configure_cert(ctx)
    server = DoTServer(world.zone, "127.0.0.54", ctx)
    verify = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))

    def ask(spec_text: str) -> tuple[str | None, list[str], str]:
        spec = parse_resolver(spec_text)
        q = asyncio.run(
            query(
                "news.test",
                "A",
                spec,
                role="system",
                timeout=2,
                clock0=time.monotonic(),
                tls=verify,
            )
        )
        return q.failure, q.addrs, q.resolver_address

    try:
        right = ask(f"tls://dns.test@127.0.0.54:{server.port}")
        wrong = ask(f"tls://other.test@127.0.0.54:{server.port}")
        unnamed = ask(f"tls://127.0.0.54:{server.port}")
        other_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("dns.test").configure_cert(other_ctx)  # names no address
        unnamed_server = DoTServer(world.zone, "127.0.0.55", other_ctx)
        try:
            no_ip_san = ask(f"tls://127.0.0.55:{unnamed_server.port}")
        finally:
            unnamed_server.close()
    finally:
        server.close()
    assert right == (None, [SITE], f"tls://dns.test@127.0.0.54:{server.port}")
    assert wrong[0] == "ssl_invalid_hostname" and wrong[1] == []
    assert unnamed[:2] == (None, [SITE])
    assert no_ip_san[0] == "ssl_invalid_hostname"  # tls://NAME@IP is what such a one needs


def test_the_helpers_doh_relay_uses_its_upstreams_own_transport(world: World) -> None:
    """--upstream https://... raised an unhandled ValueError and tls://... sent UDP to port
    853 (issue 9 item 7): the relay speaks DoH to a DoH upstream (and DoT to a DoT one)."""
    import dns.message
    import httpx

    from probe.config.resolver import parse_resolver
    from tests.servers.helper import helper_server

    q = dns.message.make_query("blocked.test", "A")
    with helper_server(world, resolver=parse_resolver(world.doh_url)) as (base, _):
        r = httpx.post(
            base + "/dns-query",
            content=q.to_wire(),
            headers={"content-type": "application/dns-message"},
            timeout=10,
        )
    assert r.status_code == 200
    assert dns.message.from_wire(r.content).answer[0][0].to_text() == SITE  # the honest answer


def test_two_redirects_to_the_same_place_are_the_same_page() -> None:
    """A redirect has no body or title; with only framing headers shared, its Location is
    what says whether the probe and the control got the same answer."""
    from probe.classify.facts import Reference, http_diff
    from probe.model import HTTPTransaction

    names = frozenset({"server", "date", "location", "content-length"})

    def hop(location: str) -> HTTPTransaction:
        return HTTPTransaction(
            url="http://x.test/",
            status_code=302,
            headers=(("Server", "nginx"), ("Location", location), ("Content-Length", "0")),
            body_length=0,
            location=location,
        )

    ref = Reference(302, 0, None, names, "http://x.test/next")
    assert http_diff(hop("http://x.test/next"), ref).same_page is True
    assert http_diff(hop("http://10.10.34.34/block"), ref).same_page is False
