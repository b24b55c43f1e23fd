"""Size checks (probe.measure.discover.check) against real loopback servers that answer HEAD and
ranged GETs the ways servers do: what each check asked for, and what it concluded.

The servers record every request, so a test can say "a HEAD with a length was enough" (a size
check costs the volunteer a connection, and a GET without its Range a whole object).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

import pytest

from probe.measure import net, steps
from probe.measure.discover import check, discover, repeat_for
from probe.measure.net import Shared
from probe.measure.objects import MAX_REPEAT, Candidate, Checked
from tests import servers as S
from tests.world import World

HOST = "127.0.0.14"


@dataclass(frozen=True)
class Asked:
    method: str
    range: str | None


Route = Callable[[BaseHTTPRequestHandler], None]


class Recording:
    """A web server on HOST whose routes are ``answer(handler)`` functions; each request's
    method and Range header, and the last request's headers, are kept."""

    def __init__(self) -> None:
        self.asked: dict[str, list[Asked]] = {}
        self.headers: dict[str, str] = {}
        self.site = S.Site({})
        self.server = S.WebServer(self.site, HOST, 0)

    def route(self, path: str, answer: Route) -> str:
        def recorded(h: BaseHTTPRequestHandler) -> None:
            asked_range = h.headers.get("Range")  # a range unit is case-insensitive (RFC 9110)
            self.asked.setdefault(path, []).append(
                Asked(h.command, asked_range.lower() if asked_range else None)
            )
            self.headers = {k.lower(): v for k, v in h.headers.items()}
            answer(h)

        self.site.routes[path] = recorded
        return f"http://{HOST}:{self.server.port}{path}"


@pytest.fixture(scope="module")
def site() -> Iterator[Recording]:
    r = Recording()
    try:
        yield r
    finally:
        r.server.close()


def reply(
    status: int, headers: dict[str, str], body: bytes = b""
) -> Callable[[BaseHTTPRequestHandler], None]:
    def send(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        if "Content-Length" not in headers:
            h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    return send


def by_method(head: Route, get: Route) -> Route:
    return lambda h: head(h) if h.command == "HEAD" else get(h)


def ranged(total: int, ctype: str, range_text: str | None = None) -> Route:
    """A 206 with one byte, its Content-Range giving ``total`` (or ``range_text``)."""
    return reply(
        206, {"Content-Type": ctype, "Content-Range": range_text or f"bytes 0-0/{total}"}, b"x"
    )


def checks(world: World, *urls: str, kind: str = "image") -> tuple[list[Checked], Shared]:
    async def go() -> tuple[list[Checked], Shared]:
        shared = Shared.create(world.config())
        try:
            out = []
            for u in urls:
                out.append(
                    await asyncio.wait_for(check(shared, Candidate(u, kind), net.ByteCounter()), 10)
                )
            return out, shared
        finally:
            await shared.aclose()

    return asyncio.run(go())


HEAD_ONLY = [Asked("HEAD", None)]
HEAD_THEN_BYTE = [Asked("HEAD", None), Asked("GET", "bytes=0-0")]


def test_a_head_with_a_length_is_enough(world: World, site: Recording) -> None:
    url = site.route("/plain.jpg", S.large(300_000, content_type="image/jpeg"))
    (got,), shared = checks(world, url)
    assert got == Checked(Candidate(url, "image"), 200, 300_000, "image/jpeg")
    assert site.asked["/plain.jpg"] == HEAD_ONLY
    # A browser-like agent, any type, and the length of the object itself (not of a coding;
    # codings, as range units, are case-insensitive: RFC 9110 8.4.1, 14.1).
    assert (
        site.headers["user-agent"],
        site.headers["accept"],
        site.headers["accept-encoding"].lower(),
    ) == (
        steps.USER_AGENT,
        "*/*",
        "identity",
    )
    # The local address the check's connection used is known to the scrubber.
    assert shared.local_addresses == {"127.0.0.1"}


def test_an_encoded_length_is_not_the_size(world: World, site: Recording) -> None:
    """A HEAD answering with Content-Encoding gives the compressed length: the ranged GET's
    Content-Range gives the object's."""
    head = reply(
        200,
        {"Content-Type": "text/javascript", "Content-Encoding": "gzip", "Content-Length": "1000"},
    )
    url = site.route("/app.js", by_method(head, ranged(5000, "text/javascript")))
    (got,), _ = checks(world, url, kind="script")
    assert (got.status, got.size, got.content_type) == (200, 5000, "text/javascript")
    assert site.asked["/app.js"] == HEAD_THEN_BYTE


@pytest.mark.parametrize("head_status", [200, 403, 405, 501])
def test_a_head_without_a_length_is_followed_by_one_byte(
    world: World, site: Recording, head_status: int
) -> None:
    """No length in a 200 HEAD, or no HEAD (403, 405, 501, as some servers answer it): one byte,
    whose Content-Range gives the total, and the GET's type."""
    path = f"/head-{head_status}.mp4"
    head = reply(head_status, {}, b"") if head_status != 200 else _no_length_head
    url = site.route(path, by_method(head, ranged(9000, "video/mp4")))
    (got,), _ = checks(world, url, kind="media")
    assert got == Checked(Candidate(url, "media"), 200, 9000, "video/mp4")
    assert site.asked[path] == HEAD_THEN_BYTE
    assert (
        site.headers["range"].lower() == "bytes=0-0"
        and site.headers["user-agent"] == steps.USER_AGENT
    )


def _no_length_head(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "video/mp4")
    h.send_header("Connection", "close")  # no length: the end of the answer is the close
    h.end_headers()
    h.close_connection = True


def test_a_server_ignoring_the_range_gives_its_length(world: World, site: Recording) -> None:
    url = site.route(
        "/style.css",
        by_method(reply(405, {}), reply(200, {"Content-Type": "text/css"}, b"b{}" * 700)),
    )
    (got,), _ = checks(world, url, kind="style")
    assert got == Checked(Candidate(url, "style"), 200, 2100, "text/css")
    assert site.asked["/style.css"] == HEAD_THEN_BYTE


def test_what_a_check_does_not_take_for_a_size(world: World, site: Recording) -> None:
    """A missing object is not asked again; an error page's length is not the object's size;
    an unknown total (``bytes 0-0/*``) is no size."""
    gone = site.route("/gone.jpg", reply(404, {"Content-Type": "text/html"}, b"<p>not here</p>"))
    error = site.route(
        "/err.jpg",
        by_method(reply(405, {}), reply(404, {"Content-Type": "text/html"}, b"<p>no</p>")),
    )
    star = site.route(
        "/star.jpg", by_method(reply(405, {}), ranged(0, "image/jpeg", "bytes 0-0/*"))
    )
    got, _ = checks(world, gone, error, star)
    assert got == [
        Checked(Candidate(gone, "image"), 404, None, "text/html"),
        Checked(Candidate(error, "image"), 404, None, "text/html"),
        Checked(Candidate(star, "image"), 200, None, "image/jpeg"),
    ]
    assert site.asked["/gone.jpg"] == HEAD_ONLY
    assert got[2].why_not(1 << 20) == "no size given"


def test_a_network_failure_is_the_checks_result(world: World) -> None:
    with S.closing_all(rst := S.TCPServer("rst", HOST)):
        (got,), _ = checks(world, f"http://{HOST}:{rst.port}/a.jpg")
    assert got == Checked(
        Candidate(f"http://{HOST}:{rst.port}/a.jpg", "image"), failure="connection_reset"
    )


def test_a_name_that_does_not_resolve_is_the_checks_result(world: World) -> None:
    (got,), _ = checks(world, "http://nowhere.test/x.jpg")
    assert got == Checked(
        Candidate("http://nowhere.test/x.jpg", "image"), failure="dns_nxdomain_error"
    )


def _slow(seconds: float, then: Route) -> Route:
    def answer(h: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        with contextlib.suppress(OSError):  # the check gave up first
            then(h)

    return answer


def test_each_request_of_a_check_is_bounded_by_the_timeout(world: World, site: Recording) -> None:
    """The configured timeout (1.5 s) bounds the HEAD and the ranged GET alike: a server that
    answers after 3 s is a timeout, not a size."""
    late = site.route("/late-head.jpg", _slow(3, reply(200, {"Content-Length": "100000"})))
    late_get = site.route(
        "/late-get.jpg", by_method(reply(405, {}), _slow(3, ranged(100_000, "image/jpeg")))
    )
    t0 = time.monotonic()
    got, _ = checks(world, late, late_get)
    assert [g.failure for g in got] == ["generic_timeout_error"] * 2
    assert time.monotonic() - t0 < 5


def test_an_https_object_is_checked_with_the_configured_trust(world: World) -> None:
    (got,), _ = checks(world, world.https("news.test"), kind="image")
    assert (got.failure, got.status) == (None, 200)


def test_repeat_for_reads_a_flow_from_a_smaller_object() -> None:
    assert repeat_for(None, 1 << 20) == 1  # a size unknown: once
    assert repeat_for(0, 1 << 20) == 1
    assert repeat_for(2 << 20, 1 << 20) == 1  # larger than a flow: once
    assert repeat_for(1 << 20, 1 << 20) == 1
    assert repeat_for(100_000, 1 << 20) == 11  # rounded up: 10.49 requests read a flow
    assert repeat_for(1000, 1 << 20) == MAX_REPEAT == 16  # at most


def test_a_tls_server_that_never_answers_the_hello_is_a_timeout(world: World) -> None:
    with S.closing_all(silent := S.TCPServer("hang", HOST)):
        t0 = time.monotonic()
        (got,), _ = checks(world, f"https://{HOST}:{silent.port}/a.jpg")
        took = time.monotonic() - t0
    assert got.failure == "generic_timeout_error" and took < 5


def test_discovery_stops_at_the_first_object_large_enough() -> None:
    """Each check costs a connection: an object of exactly the flow's size ends the search."""
    asked: list[str] = []
    sizes = {"a.mp4": 1 << 20, "b.mp4": 5 << 20, "c.mp4": 9 << 20}

    async def check_one(c: Candidate) -> Checked:
        asked.append(c.url)
        return Checked(c, 200, sizes[c.url.rsplit("/", 1)[1]], "video/mp4")

    found = [Candidate(f"https://s.example/{n}", "media") for n in sizes]
    choice, checked = asyncio.run(discover(found, check_one, 1 << 20))
    assert asked == ["https://s.example/a.mp4"] and len(checked) == 1
    assert (choice.url, choice.size, choice.repeat) == ("https://s.example/a.mp4", 1 << 20, 1)
