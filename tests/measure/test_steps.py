"""HTTP at its edges (probe.measure.steps), against real loopback servers (tests/servers/edge.py):
307/308 redirects, deflate and raw deflate, the default body cap, a body cut by a reset, and the
decompressor's memory bounded.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from probe import failures
from probe.classify import classify
from probe.measure.steps import _Decoder
from probe.pages import decode_text
from tests.servers import PAGE
from tests.servers.edge import EDGE_SITE, Edges


# -- HTTP edges --------------------------------------------------------------------------------
@pytest.mark.parametrize(("path", "status"), [("/r307", 307), ("/r308", 308), ("/r308-abs", 308)])
def test_307_and_308_redirects_are_followed(edges: Edges, path: str, status: int) -> None:
    obs, _ = edges.world.measure(edges.world.http("edge.test", path))
    first, final = obs.http
    assert (first.status_code, first.depth) == (status, 0)
    assert first.location is not None and first.location.endswith("/moved")
    assert (final.status_code, final.depth, final.url.endswith("/moved")) == (200, 1, True)
    assert final.title == "Independent News Today"


@pytest.mark.parametrize("path", ["/deflate", "/raw-deflate"])
def test_deflate_bodies_are_decoded(edges: Edges, path: str) -> None:
    obs, _ = edges.world.measure(edges.world.http("edge.test", path))
    (h,) = obs.http
    assert h.header("content-encoding") == "deflate" and h.failure is None
    assert (h.body_length, h.body_truncated, h.title) == (
        len(PAGE),
        False,
        "Independent News Today",
    )
    assert h.body == decode_text(PAGE, "text/html; charset=utf-8")


def test_default_body_cap_is_512_kib(edges: Edges) -> None:
    obs, _ = edges.world.measure(edges.world.http("edge.test", "/large"))  # no body_cap given
    (h,) = obs.http
    assert (h.body_length, h.body_truncated, h.failure) == (512 * 1024, True, None)


def test_body_cut_by_a_reset_is_an_http_read_failure(edges: Edges) -> None:
    obs, _ = edges.world.measure(edges.world.http("edge.test", "/cut"))
    (h,) = obs.http
    assert (h.status_code, h.failure, h.failed_operation) == (
        200,
        failures.CONNECTION_RESET,
        failures.OP_READ,
    )
    assert h.header("content-length") == "100000"
    v = classify(obs, network_ok=True)
    assert (v.blocking, v.accessible, v.failing_step, v.failure) == (
        "http-failure",
        False,
        "http",
        failures.CONNECTION_RESET,
    )


_MEMORY_CHILD = r"""
import asyncio, json, sys, tracemalloc, zlib
import httpx
from probe.config.resolver import parse_resolver
from probe.measure.config import MeasureConfig
from probe.measure.net import Shared
from probe.measure.runner import measure_url

args = json.loads(sys.argv[1])

async def measure():
    cfg = MeasureConfig(
        resolver=parse_resolver(args["dns"]), control_resolver=None, timeout=5, deadline=90,
        body_cap=512 * 1024, allow_loopback=True,
    )
    shared = Shared.create(cfg)
    try:
        return await measure_url(shared, args["url"])
    finally:
        await shared.aclose()

def fetch_raw():
    with httpx.Client(trust_env=False) as c:
        with c.stream("GET", args["direct"], headers={"accept-encoding": "gzip"}) as r:
            return b"".join(r.iter_raw())

raw = fetch_raw()
tracemalloc.start()
obs, _, _ = asyncio.run(measure())
capped = tracemalloc.get_traced_memory()[1]
tracemalloc.reset_peak()
plain = len(zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw))
uncapped = tracemalloc.get_traced_memory()[1]
h = obs.http[-1]
print(json.dumps({"capped": capped, "uncapped": uncapped, "plain": plain,
                  "length": h.body_length, "truncated": h.body_truncated}))
"""


def test_decompressor_memory_is_bounded(edges: Edges, repo_root: Path) -> None:
    """A 64 KiB gzip bomb (64 MiB of zeros) measured in a child process: the probe's decoder
    stops at the body cap, so its peak stays small; decoding the same bytes without a limit
    (the reference, same process) shows what the cap saves."""
    args = {
        "dns": edges.world.system_dns.address,
        "url": edges.world.http("edge.test", "/bomb"),
        "direct": f"http://{EDGE_SITE}:{edges.http_port}/bomb",
    }
    r = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD, json.dumps(args)],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    got = json.loads(r.stdout)
    assert (got["length"], got["truncated"]) == (512 * 1024, True)
    assert got["plain"] == 64 * 1024 * 1024
    assert got["uncapped"] > 60 * 1024 * 1024  # the reference: all 64 MiB at once
    assert got["capped"] < 8 * 1024 * 1024, got  # the probe: about the cap, not the bomb


# -- the capped decoder, directly (pure) -------------------------------------------------------
def _raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        (" X-GZIP ", gzip.compress),  # the legacy name, in any case and spacing
        ("deflate", zlib.compress),
        ("Deflate", _raw_deflate),  # raw deflate, as some servers send it
    ],
)
def test_the_decoder_decodes_each_coding_up_to_the_cap(
    encoding: str, encode: Callable[[bytes], bytes]
) -> None:
    body = b"<html>" + bytes(range(256)) * 40 + b"</html>"
    wire = encode(body)
    assert _Decoder(encoding).feed(wire, len(body)) == (body, False)  # exactly the cap
    assert _Decoder(encoding).feed(wire, 100) == (body[:100], True)  # more was pending


def test_the_decoder_passes_an_unknown_or_no_coding_through_cut_at_the_cap() -> None:
    for encoding in ("identity", "br", ""):
        assert _Decoder(encoding).feed(b"abcdef", 6) == (b"abcdef", False)
        assert _Decoder(encoding).feed(b"abcdef", 4) == (b"abcd", True)


def test_the_decoder_raises_on_a_corrupt_body() -> None:
    with pytest.raises(zlib.error):
        _Decoder("gzip").feed(b"not gzip at all", 100)
    with pytest.raises(zlib.error):
        _Decoder("deflate").feed(b"\xff\xff not deflate either", 100)
