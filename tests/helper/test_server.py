"""The test helper server on loopback: OONI's protocol, and the limits that make it safe."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import dns.message
import httpx
import pytest

from probe.config.resolver import parse_resolver
from probe.helper.server import own_addresses
from probe.measure.config import MeasureConfig
from tests.servers import PAGE
from tests.servers.edge import helper_app
from tests.servers.helper import ask, helper_server
from tests.world import BODY_CAP, REFUSE, SITE, World


def test_protocol_shape_and_success(world: World) -> None:
    with helper_server(world) as (base, log):
        r = ask(base, world.http("news.test"), [f"{SITE}:{world.http_port}"])
    assert r.status_code == 200
    doc = r.json()
    assert set(doc) == {
        "tcp_connect",
        "tls_handshake",
        "quic_handshake",
        "http_request",
        "http3_request",
        "dns",
        "ip_info",
    }
    assert doc["dns"] == {"failure": None, "addrs": [SITE]}
    assert doc["tcp_connect"][f"{SITE}:{world.http_port}"] == {"status": True, "failure": None}
    http = doc["http_request"]
    assert http["status_code"] == 200 and http["body_length"] == len(PAGE)
    assert http["title"] == "Independent News Today" and http["failure"] is None
    assert doc["ip_info"][SITE]["flags"] == 1 | 2 | 4  # by probe, by helper, bogon (loopback)
    line = json.loads(log.getvalue().splitlines()[-1])
    assert set(line) == {"time", "method", "path", "status", "ms", "bytes", "in_flight", "bulk"}
    assert "127.0.0.1" not in log.getvalue()  # no client address in the access log


def test_https_records_tls(world: World) -> None:
    with helper_server(world) as (base, _):
        doc = ask(base, world.https("news.test")).json()
    ep = f"{SITE}:{world.https_port}"
    assert doc["tls_handshake"][ep] == {"server_name": "news.test", "status": True, "failure": None}
    assert doc["ip_info"][SITE]["flags"] & 8  # valid for the domain


@pytest.mark.parametrize(
    ("host", "dns_failure", "http_failure"),
    [
        ("down.test", "dns_name_error", "dns_lookup_error"),
        ("refused.test", None, "connection_refused_error"),
    ],
)
def test_failures_use_the_legacy_strings_and_minus_one(
    world: World, host: str, dns_failure: str | None, http_failure: str
) -> None:
    with helper_server(world) as (base, _):
        doc = ask(base, world.http(host)).json()
    assert doc["dns"]["failure"] == dns_failure
    assert doc["http_request"]["failure"] == http_failure
    assert doc["http_request"]["status_code"] == -1 and doc["http_request"]["body_length"] == -1
    if host == "refused.test":
        assert doc["tcp_connect"][f"{REFUSE}:{world.http_port}"] == {
            "status": False,
            "failure": "connection_refused_error",
        }


def test_refuses_loopback_private_link_local_and_its_own(world: World) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    targets = [
        f"127.0.0.1:{port}",
        "10.1.2.3:80",
        "192.168.1.1:80",
        "169.254.169.254:80",
        "224.0.0.1:80",
        "[::1]:80",
    ]
    with helper_server(world, allow=()) as (base, _):
        r = ask(base, world.http("news.test"), targets)
        r2 = ask(base, f"http://127.0.0.1:{port}/")
    assert r.status_code == 200
    doc = r.json()
    assert doc["tcp_connect"] == {} and doc["tls_handshake"] == {}
    # news.test is a loopback address: no address to dial, which OONI's helper calls a DNS error
    assert doc["http_request"]["failure"] == "dns_lookup_error"
    assert r2.json()["http_request"]["status_code"] == -1
    with pytest.raises(TimeoutError):
        listener.accept()  # nothing ever connected
    listener.close()


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"http_request": "ftp://x/"}', 400, "http_request"),
        (b'{"http_request": "http://x/", "tcp_connect": ["nope"]}', 400, "tcp_connect"),
        (b'{"http_request": "http://x/", "tcp_connect": ["1.2.3.4:99999"]}', 400, "port"),
    ],
)
def test_malformed_requests(world: World, body: bytes, status: int, message: str) -> None:
    with helper_server(world) as (base, _):
        r = httpx.post(base + "/", content=body, timeout=10)
        ok = httpx.get(base + "/health", timeout=10)
    assert r.status_code == status and message in r.json()["error"]
    assert ok.status_code == 200  # still serving


def test_huge_bodies_are_refused(world: World) -> None:
    with helper_server(world) as (base, _):
        r = httpx.post(base + "/", content=b"x" * (10 * 1024 * 1024), timeout=30)
        assert r.status_code == 413

        def chunks() -> Iterator[bytes]:  # no Content-Length: refused while streaming
            for _ in range(200):
                yield b"y" * 4096

        r2 = httpx.post(base + "/", content=chunks(), timeout=30)
        assert r2.status_code == 413


def test_slow_clients_time_out_and_others_are_served(world: World) -> None:
    with helper_server(world, body_timeout=0.5) as (base, _):
        port = int(base.rsplit(":", 1)[1])
        slow = []
        for _ in range(5):  # a handful of slowloris clients
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            slow.append(s)
        r = ask(base, world.http("news.test"))
        assert r.status_code == 200
        s = slow[0]
        s.settimeout(5)
        assert b" 408 " in s.recv(4096).split(b"\r\n")[0] + b" "
        for s in slow:
            s.close()


def test_503_past_the_in_flight_limit(world: World) -> None:
    with helper_server(world, max_in_flight=1) as (base, _):
        results: list[int] = []
        t = threading.Thread(
            target=lambda: results.append(ask(base, world.https("hole.test")).status_code)
        )  # connect times out: slow
        t.start()
        time.sleep(0.3)
        busy = ask(base, world.http("news.test"))
        t.join()
    assert busy.status_code == 503 and busy.headers["retry-after"] == "5"
    assert results == [200]


def test_bearer_token(world: World) -> None:
    with helper_server(world, token="s3cret") as (base, _):
        assert ask(base, world.http("news.test")).status_code == 401
        ok = ask(base, world.http("news.test"), headers={"authorization": "Bearer s3cret"})
        assert ok.status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/bulk?bytes=1024"),
        ("POST", "/"),
        ("GET", "/dns-query?dns=AAABAAABAAAAAAAAB2V4YW1wbGUDY29tAAABAAE"),
        ("POST", "/speed"),
        ("POST", "/network"),
    ],
)
def test_every_route_but_health_needs_the_token(world: World, method: str, path: str) -> None:
    """Issue 20, item 4: with a token, /bulk (bytes for anyone who asks) is refused without it,
    as every other route is; /health stays open to load balancers."""
    good = {"authorization": "Bearer s3cret"}
    with helper_server(world, token="s3cret") as (base, _), httpx.Client(timeout=10) as c:
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "s3cret"}):
            r = c.request(method, base + path, headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", r.text
            assert r.json() == {"error": "missing or wrong bearer token"}
        assert c.get(base + "/health").status_code == 200
        if path.startswith("/bulk"):
            r = c.get(base + path, headers=good)
            assert r.status_code == 200 and len(r.content) == 1024


def test_doh_endpoint(world: World) -> None:
    q = dns.message.make_query("news.test", "A")
    with helper_server(world) as (base, _):
        r = httpx.post(
            base + "/dns-query",
            content=q.to_wire(),
            headers={"content-type": "application/dns-message"},
            timeout=10,
        )
        g = httpx.get(
            base + "/dns-query",
            timeout=10,
            params={"dns": base64.urlsafe_b64encode(q.to_wire()).rstrip(b"=").decode()},
        )
        bad = httpx.post(base + "/dns-query", content=b"\x00junk", timeout=10)
    for resp in (r, g):
        assert resp.status_code == 200
        answer = dns.message.from_wire(resp.content)
        assert answer.answer[0][0].to_text() == SITE
    assert bad.status_code == 400


def test_cli_serve_subprocess(world: World, tmp_path: Any) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = tmp_path / "token"
    token.write_text("t0k3n\n")
    token.chmod(0o600)  # a token others may read is refused
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "probe",
            "helper",
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--upstream",
            world.control_dns.address,
            "--allow-network",
            "127.0.0.0/8",
            "--token-file",
            str(token),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        r = ask(
            f"http://127.0.0.1:{port}",
            world.http("news.test"),
            headers={"authorization": "Bearer t0k3n"},
        )
        assert r.status_code == 200 and r.json()["http_request"]["status_code"] == 200
    finally:
        p.terminate()
        p.wait(10)
        for stream in (p.stdout, p.stderr):
            if stream:
                stream.close()


def test_own_addresses() -> None:
    own = own_addresses("127.0.0.5")
    assert "127.0.0.5" in own and "0.0.0.0" not in own and "" not in own
    assert "0.0.0.0" not in own_addresses("0.0.0.0")


def test_helper_refuses_its_own_address(world: World) -> None:
    """A helper whose own address is SITE is asked about the site there: loopback is allowed
    (as in the lab), its own address still is not."""
    cfg = MeasureConfig(
        resolver=parse_resolver("udp://" + world.control_dns.address),
        control_resolver=None,
        timeout=1.5,
        deadline=10,
        body_cap=BODY_CAP,
        public_only=True,
        allow_networks=("127.0.0.0/8",),
        deny_addrs=frozenset({SITE}),
    )
    with helper_app(cfg) as base:
        doc = ask(base, world.http("news.test"), [f"{SITE}:{world.http_port}"]).json()
    assert doc["tcp_connect"] == {}
    assert doc["http_request"]["failure"] == "dns_lookup_error"
    assert doc["dns"]["addrs"] == [SITE]


@pytest.mark.parametrize(
    ("path", "cap", "bad", "reason"),
    [
        ("/speed", 4096, b'{"url": 1}', "speed: "),
        ("/network", 1024, b'{"nonce": "zz"}', "network: nonce: 16 to 64 random bytes, in hex"),
        ("/edges", 4096, b'{"addresses": ["no.such"]}', "edges: addresses: each an IP address"),
    ],
)
def test_each_json_route_refuses_too_large_too_slow_and_bad_alike(
    world: World, path: str, cap: int, bad: bytes, reason: str
) -> None:
    with helper_server(world, body_timeout=0.5) as (base, _):
        big = httpx.post(base + path, content=b"[" * (cap + 1), timeout=10)
        assert big.status_code == 413 and big.json()["error"] == "request body too large"
        wrong = httpx.post(base + path, content=bad, timeout=10)
        assert wrong.status_code == 400 and wrong.json()["error"].startswith(reason), wrong.text
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{".encode())
            s.settimeout(5)
            head = s.recv(4096).split(b"\r\n")[0]
        assert b" 408 " in head + b" ", head
