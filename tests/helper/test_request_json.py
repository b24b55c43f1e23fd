"""The helper's request bodies (issue 20, item 2): whatever bytes a client sends within the size
limit, the answer is 200 or a 400 with a one-line reason, never a 500 with a traceback. Deeply
nested JSON is the case that found it; Hypothesis looks for the others, on the parser and on the
real server."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe.errors import BadRequest
from probe.helper import ControlRequest, parse_body
from probe.helper.server import MAX_BODY
from tests.servers.helper import helper_server
from tests.world import World

DEEP = 20_000  # brackets: within the 64 KiB limit, far past any recursion limit


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/", nested(DEEP)),
        ("/", '{"http_request": ' + nested(DEEP, '"x"') + "}"),
        ("/", '{"http_request": "http://a.example/", "tcp_connect": [' + nested(900) + "]}"),
        ("/", '{"http_request": "http://a.example/", "http_request_headers": ' + nested(900) + "}"),
        ("/speed", nested(2000)),  # /speed takes 4 KiB
        ("/speed", '{"url": "http://a.example/", "max_bytes": ' + nested(900) + "}"),
        ("/network", '{"nonce": ' + nested(500) + "}"),  # /network takes 1 KiB
        # A port of 5000 digits: more than Python turns into an int (found with item 6)
        (
            "/",
            '{"http_request": "http://a.example/", "tcp_connect": ["10.0.0.1:' + "9" * 5000 + '"]}',
        ),
    ],
    ids=["array", "in-a-field", "endpoint", "headers", "speed", "speed-field", "network", "port"],
)
def test_hostile_json_is_400_with_one_line(world: World, path: str, body: str) -> None:
    assert len(body) <= MAX_BODY
    with helper_server(world) as (base, _):
        r = httpx.post(base + path, content=body.encode(), timeout=15)
    assert r.status_code == 400, f"{path} with {len(body)} bytes: {r.status_code} {r.text}"
    error = r.json()["error"]
    assert "\n" not in error and "Traceback" not in r.text


# -- Hypothesis: any bytes within the limit ---------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4)
    ),
    max_leaves=20,
)
# Loopback names of the world, or nothing that parses as a URL: the server test must never
# dial the internet (the helper is told to measure nothing but what resolves to loopback).
urls = st.one_of(
    st.sampled_from(
        ["http://news.test/", "https://news.test/", "ftp://x/", "http://[::1", "http:"]
    ),
    st.text(max_size=30),
    json_values,
)
long_endpoints = st.integers(4000, 5000).map(lambda n: "10.0.0.1:" + "9" * n)
requests = st.fixed_dictionaries(
    {},
    optional={
        "http_request": urls,
        "http_request_headers": json_values
        | st.dictionaries(
            st.sampled_from(["User-Agent", "Accept", "accept-language"]), json_values
        ),
        "tcp_connect": json_values
        | st.lists(st.text(max_size=25) | json_values | long_endpoints, max_size=40),
        "url": urls,
        "max_bytes": json_values,
        "max_seconds": json_values,
        "nonce": json_values,
    },
)


def _deep(field: str | None, brackets: tuple[str, str], depth: int) -> str:
    value = brackets[0] * depth + "1" + brackets[1] * depth
    return value if field is None else json.dumps({field: 0})[:-2] + value + "}"


# Nesting past the recursion limit, in the body or in one field; numbers past the digit limit.
deep = st.builds(
    _deep,
    st.sampled_from([None, "http_request", "http_request_headers", "tcp_connect", "max_bytes"]),
    st.sampled_from([("[", "]"), ('{"a":', "}")]),
    st.integers(0, 10_000),  # 6 bytes a level at most: within the 64 KiB
)
long_numbers = st.builds(
    lambda field, digits: json.dumps({field: 0})[:-2] + "9" * digits + "}",
    st.sampled_from(["http_request", "tcp_connect", "max_bytes", "max_seconds", "nonce"]),
    st.integers(4000, 5000),
)
bodies = st.one_of(
    st.binary(max_size=2000),
    requests.map(json.dumps),
    json_values.map(json.dumps),
    deep,
    long_numbers,
).map(lambda b: b if isinstance(b, bytes) else b.encode())


@given(bodies)
def test_any_body_is_a_request_or_a_bad_request(raw: bytes) -> None:
    assert len(raw) <= MAX_BODY
    try:
        req = parse_body(raw)
    except BadRequest as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 300, str(exc)
        return
    assert isinstance(req, ControlRequest)


@pytest.mark.parametrize("path", ["/", "/speed", "/network"])
def test_any_body_within_the_limit_is_200_or_400_never_500(world: World, path: str) -> None:
    """The same bodies against the real server. It may measure nothing outside loopback (the
    lab's allow-list is empty), so a body that is a valid request is answered quickly."""
    with helper_server(world, allow=()) as (base, _), httpx.Client(timeout=15) as c:

        @settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
        @given(bodies)
        def post(raw: bytes) -> None:
            r = c.post(base + path, content=raw)
            assert r.status_code in (200, 400, 413), f"{path}: {raw[:80]!r}: {r.status_code}"
            if r.status_code != 200:
                assert "\n" not in r.json()["error"]

        post()
