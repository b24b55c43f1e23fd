"""The test helper's HTTP/3 (OONI's ``x_quic_enabled``, ``quic_handshake``, ``http3_request``)
against the loopback HTTP/3 world, and the probe reading it back as control evidence."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from probe import failures
from probe.control import to_evidence
from probe.helper import ControlRequest, measure, parse_request
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
