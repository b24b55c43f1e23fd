"""The test helper's HTTP/3 (OONI's ``x_quic_enabled``, ``quic_handshake``, ``http3_request``)
against the loopback HTTP/3 world, and the probe reading it back as control evidence."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from probe import failures
from probe.control import to_evidence
from probe.helper import ControlRequest, measure, parse_request, quic_ab
from probe.measure import net, quic, steps
from probe.measure.net import Shared
from tests.h3world import HOLE, OK, H3World, make_h3_world


@pytest.fixture(scope="module")
def h3w(tmp_path_factory: pytest.TempPathFactory) -> Iterator[H3World]:
    with make_h3_world(tmp_path_factory.mktemp("h3helper")) as w:
        yield w


def _ask(w: H3World, host: str, quic: bool) -> Any:
    async def go() -> Any:
        shared = Shared.create(w.config(control_resolver=None))
        try:
            return await measure(shared, ControlRequest(w.url(host), {}, (), quic))
        finally:
            await shared.aclose()

    return asyncio.run(go())


def test_x_quic_enabled_is_read_and_only_true_counts() -> None:
    assert parse_request({"http_request": "https://a.test/", "x_quic_enabled": True}).quic
    assert not parse_request({"http_request": "https://a.test/", "x_quic_enabled": "yes"}).quic
    assert not parse_request({"http_request": "https://a.test/"}).quic


def test_the_helper_measures_http3_when_asked(h3w: H3World) -> None:
    answer = _ask(h3w, "h3.test", True)
    ep = f"{OK}:{h3w.port}"
    assert answer["quic_handshake"] == {
        ep: {"server_name": "h3.test", "status": True, "failure": None}
    }
    assert answer["http3_request"]["status_code"] == 200
    assert answer["http3_request"]["title"] == "Independent News Today"
    assert answer["http_request"]["discovered_h3_endpoint"] == f"h3.test:{h3w.port}"
    ev = to_evidence(answer)
    assert ev.quic_handshake[ep].ok and ev.http3_status_code == 200 and ev.http3_failure is None


def test_the_helper_sees_a_dropped_quic_too(h3w: H3World) -> None:
    answer = _ask(h3w, "hole.test", True)
    (hs,) = [v for k, v in answer["quic_handshake"].items() if k.startswith(HOLE)]
    assert (hs["status"], hs["failure"]) == (False, failures.GENERIC_TIMEOUT)
    assert answer["http3_request"] is None
    assert not any(e.ok for e in to_evidence(answer).quic_handshake.values())


def test_not_asked_the_helper_does_no_quic(h3w: H3World) -> None:
    answer = _ask(h3w, "h3.test", False)
    assert (answer["quic_handshake"], answer["http3_request"]) == ({}, None)
    assert answer["http_request"]["discovered_h3_endpoint"] == ""


# -- the helper's QUIC listener: the far end of the probe's SNI A/B ----------------------------
def test_the_listener_completes_a_handshake_for_any_name(tmp_path: Path) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("helper.test")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))

    async def go() -> list[Any]:
        server = await quic_ab.listen("127.0.24.30", 0, str(cert), str(key))
        port = server._transport.get_extra_info("sockname")[1]
        try:
            ctx = steps.StepContext(time.monotonic(), 1.0, None, None, net.ByteCounter())  # type: ignore[arg-type]
            return await quic.helper_ab(ctx, ("127.0.24.30", port), "blocked.example")
        finally:
            server.close()

    named, neutral = asyncio.run(go())
    assert (named.role, named.server_name, named.ok) == ("helper_sni", "blocked.example", True)
    assert (neutral.role, neutral.server_name, neutral.ok) == (
        "helper_neutral",
        quic.NEUTRAL_SNI,
        True,
    )


def test_the_helper_s_quic_address_comes_from_its_url() -> None:
    async def go(url: str) -> Any:
        from probe.config.resolver import parse_resolver
        from probe.measure.config import MeasureConfig

        cfg = MeasureConfig(
            resolver=parse_resolver("127.0.0.1:9"), control_resolver=None, timeout=0.5,
            deadline=5, body_cap=1,
        )  # fmt: skip
        shared = Shared.create(cfg)
        try:
            return await quic.helper_endpoint(shared, url)
        finally:
            await shared.aclose()

    assert asyncio.run(go("https://10.77.1.70/")) == ("10.77.1.70", 443)
    assert asyncio.run(go("https://[2001:db8::7]:8443/")) == ("2001:db8::7", 8443)
    assert asyncio.run(go("http://10.77.1.70/")) is None  # no certificate: no QUIC listener
