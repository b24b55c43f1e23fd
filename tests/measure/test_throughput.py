"""The throughput step (probe.measure.throughput) against the loopback world: the address a
download goes to (judged by the same policy as an answer), and what one download records."""

from __future__ import annotations

import asyncio
import contextlib
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from probe.config.resolver import parse_resolver
from probe.measure import steps
from probe.measure.net import Shared
from probe.measure.throughput import download, first_address
from probe.model import Flow
from tests import servers as S
from tests.servers import PAGE
from tests.servers.edge import DOT, EDGE_SITE, Edges
from tests.world import BADCERT, RST, SITE, World


def first(world: World, url: str, **cfg: Any) -> tuple[str | None, str | None]:
    async def go() -> tuple[str | None, str | None]:
        shared = Shared.create(world.config(**cfg))
        try:
            return await asyncio.wait_for(first_address(shared, url), 10)
        finally:
            await shared.aclose()

    return asyncio.run(go())


def test_a_name_is_resolved_by_the_resolver_under_test(world: World) -> None:
    assert first(world, world.http("news.test", "/big.bin")) == (SITE, None)
    assert first(world, "http://nowhere.test/") == (None, "dns_nxdomain_error")


def test_a_silent_resolver_is_a_timeout_within_the_configured_bound(world: World) -> None:
    t0 = time.monotonic()
    assert first(world, "http://silent.test/") == (None, "generic_timeout_error")
    assert time.monotonic() - t0 < 4  # the timeout is 1.5 s


def test_the_resolver_under_test_may_be_doh_or_dot(world: World, edges: Edges) -> None:
    """Through the round's own DoH client and DoT context (the configured CA trusted)."""
    doh = parse_resolver(world.doh_url)  # the control's zone: there, nowhere.test resolves
    assert first(world, "http://nowhere.test/", resolver=doh) == (SITE, None)
    dot = parse_resolver(f"tls://{DOT}:{edges.dot.port}")
    assert first(edges.world, "http://edge.test/", resolver=dot, ca_bundle=edges.ca_pem) == (
        EDGE_SITE,
        None,
    )


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


def fetch(
    world: World, url: str, ip: str, max_bytes: int = 10**6, max_seconds: float = 5, **kw: Any
) -> tuple[Flow, set[str]]:
    async def go() -> tuple[Flow, set[str]]:
        clock0 = time.monotonic()  # the test's start, as run_test's
        shared = Shared.create(world.config())
        try:
            got = await download(
                shared,
                url,
                ip,
                role="target",
                max_bytes=max_bytes,
                max_seconds=max_seconds,
                clock0=clock0,
                **kw,
            )
            return got, shared.local_addresses
        finally:
            await shared.aclose()

    return asyncio.run(go())


def test_a_download_is_one_get_of_the_object_by_default(world: World) -> None:
    flow, local = fetch(world, world.http("news.test"), SITE)
    assert (flow.role, flow.ip, flow.trial, flow.failure) == ("target", SITE, 0, None)
    assert flow.bytes == len(PAGE)  # once, though the flow may read more
    assert local == {"127.0.0.1"}  # the connection's local address, for the scrubber


def test_a_download_verifies_the_certificate_unless_told_not_to(world: World) -> None:
    good, _ = fetch(world, world.https("news.test"), SITE)
    assert (good.failure, good.bytes) == (None, len(PAGE))
    wrong, _ = fetch(world, world.https("wrongname.test"), BADCERT)
    assert (wrong.failure, wrong.bytes) == ("ssl_invalid_hostname", 0)
    # The SNI A/B test names hosts the helper's certificate does not: it does not verify.
    unverified, _ = fetch(world, world.https("wrongname.test"), BADCERT, verify=False)
    assert (unverified.failure, unverified.bytes) == (None, len(PAGE))


def _whole_body(size: int) -> Any:
    """A server that ignores Range and sends all ``size`` bytes (a flow stops reading first)."""

    def route(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(size))
        h.end_headers()
        h.close_connection = True  # the client goes away mid-body: read no next request
        with contextlib.suppress(OSError):
            for _ in range(size // 65536):
                h.wfile.write(b"x" * 65536)

    return route


def test_samples_count_what_the_kernel_received_and_never_go_back(world: World) -> None:
    """A flow cut at its cap on a server that sends more: the sample taken while the connection
    is open holds the kernel's count (headers and what was past the cap included); the last,
    after the connection closed and TCP_INFO no longer answers, keeps it rather than falling
    back to the body bytes read."""
    server = S.WebServer(S.Site({"/all": _whole_body(4 << 20)}), "127.0.0.16", 0)
    try:
        flow, _ = fetch(world, f"http://127.0.0.16:{server.port}/all", "127.0.0.16", 300_000)
    finally:
        server.close()
    assert flow.failure is None and 300_000 <= flow.bytes < 4 << 20
    counts = [s.bytes for s in flow.samples]
    assert counts == sorted(counts)  # never backwards
    assert counts[-1] > flow.bytes  # the wire count, not the body's
    open_ = [s for s in flow.samples if s.segs_in is not None]
    assert open_ and all(
        s.rtt_us is not None and s.min_rtt_us is not None and s.rcv_rtt_us is not None
        for s in open_
    )
    assert all(s.ooo == 0 and s.segs_in > 0 for s in open_)  # loopback: nothing out of order


def test_before_any_connection_a_sample_counts_nothing(world: World) -> None:
    """A path that drops the SYN (the world's blackhole): samples every 250 ms, all of 0 bytes,
    until the time cap."""
    flow, _ = fetch(world, world.http("hole.test"), "127.0.0.40", max_seconds=0.6)
    assert flow.failure is None and flow.bytes == 0
    assert len(flow.samples) >= 2 and {s.bytes for s in flow.samples} == {0}
    assert 0.2 <= flow.samples[0].t < 0.5 and flow.ttfb is None  # the first, at 250 ms


class Recorder:
    """An object server (HEAD and Range as a CDN answers them) that keeps each GET's headers."""

    def __init__(self, size: int) -> None:
        self.asked: list[dict[str, str]] = []
        serve = S.large(size, content_type="image/jpeg")

        def route(h: BaseHTTPRequestHandler) -> None:
            self.asked.append({k.lower(): v for k, v in h.headers.items()})
            serve(h)

        self.server = S.WebServer(S.Site({"/o.jpg": route}), "127.0.0.17", 0)
        self.url = f"http://127.0.0.17:{self.server.port}/o.jpg"


def test_a_repeated_download_asks_each_time_for_the_bytes_still_wanted(world: World) -> None:
    """A 100 kB object read three times for a 250 kB flow: each GET's Range asks only for what
    the flow still may read, so no buffer fills past the cap."""
    rec = Recorder(100_000)
    try:
        flow, _ = fetch(world, rec.url, "127.0.0.17", 250_000, repeat=3)
    finally:
        rec.server.close()
    assert (flow.failure, flow.raw_failure, flow.bytes) == (None, None, 250_000)
    assert [a["range"] for a in rec.asked] == ["bytes=0-249999", "bytes=0-149999", "bytes=0-49999"]
    for a in rec.asked:  # the object's own bytes, as a browser would ask
        assert (a["user-agent"], a["accept"], a["accept-encoding"].lower()) == (
            steps.USER_AGENT,
            "*/*",
            "identity",
        )
    # The time to the first byte, and each sample's time, since the request: 0.1 ms steps.
    assert flow.ttfb is not None and 0 < flow.ttfb <= flow.duration
    assert all(0 <= s.t <= flow.duration and s.t == round(s.t, 4) for s in flow.samples)


def test_https_counts_its_handshake_in_the_bytes_used(world: World) -> None:
    """What the volunteer's link carried: over TLS the handshake (the certificate alone is
    about a kilobyte) counts besides the request and the page."""
    plain, _ = fetch(world, world.http("news.test"), SITE)
    tls, _ = fetch(world, world.https("news.test"), SITE)
    assert plain.bytes == tls.bytes == len(PAGE)
    assert plain.wire_bytes > len(PAGE)  # TCP payload both ways: request, headers, page
    assert tls.wire_bytes - plain.wire_bytes > 1000


def test_a_failed_download_is_a_result(world: World) -> None:
    reset, _ = fetch(world, world.http("reset.test"), RST)
    assert (reset.failure, reset.raw_failure, reset.bytes, reset.ttfb) == (
        "connection_reset",
        "ECONNRESET",
        0,
        None,
    )
    missing, _ = fetch(world, world.http("news.test", "/no-such-object"), SITE)
    assert (missing.failure, missing.raw_failure, missing.bytes) == (
        "http_request_failed",
        "status:404",
        0,
    )
    assert missing.ttfb is not None  # it answered


def _cap_then_pause(cap: int) -> Any:
    """Ignores Range: sends ``cap`` bytes, waits 3 s, then sends more."""

    def route(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(cap + 65536))
        h.end_headers()
        h.close_connection = True
        with contextlib.suppress(OSError):
            h.wfile.write(b"x" * cap)
            h.wfile.flush()
            time.sleep(3)
            h.wfile.write(b"x" * 65536)

    return route


def test_a_flow_stops_the_moment_it_has_its_bytes(world: World) -> None:
    server = S.WebServer(S.Site({"/o": _cap_then_pause(200_000)}), "127.0.0.18", 0)
    try:
        flow, _ = fetch(world, f"http://127.0.0.18:{server.port}/o", "127.0.0.18", 200_000)
    finally:
        server.close()
    assert (flow.failure, flow.bytes) == (None, 200_000)
    assert flow.duration < 2  # not waiting for what the server sends next


def test_a_repeat_stops_once_the_flow_has_its_bytes(world: World) -> None:
    rec = Recorder(100_000)
    try:
        flow, _ = fetch(world, rec.url, "127.0.0.17", 200_000, repeat=5)
    finally:
        rec.server.close()
    assert flow.bytes == 200_000 and len(rec.asked) == 2


def _slow(seconds: float) -> Any:
    serve = S.large(20_000, content_type="image/jpeg")

    def route(h: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        serve(h)

    return route


def test_ttfb_is_the_first_requests_and_start_is_since_the_test_began(world: World) -> None:
    server = S.WebServer(S.Site({"/o": _slow(0.3)}), "127.0.0.19", 0)
    try:
        flow, _ = fetch(world, f"http://127.0.0.19:{server.port}/o", "127.0.0.19", repeat=3)
    finally:
        server.close()
    assert flow.bytes == 60_000 and flow.duration > 0.85
    assert flow.ttfb is not None and 0.25 < flow.ttfb < 0.6  # the first answer's, not the last's
    assert (flow.ttfb, flow.duration) == (round(flow.ttfb, 4), round(flow.duration, 4))
    assert 0 < flow.start < 1 and flow.start == round(flow.start, 4)
