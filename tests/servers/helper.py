"""The project's test helper (probe.helper.server) served on loopback by uvicorn for a test, and
a client's request to it in OONI's shape."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from probe.config.resolver import parse_resolver
from probe.helper.server import HelperApp
from probe.measure.config import MeasureConfig
from tests.world import BODY_CAP, World


@contextmanager
def helper_server(world: World, **kw: Any) -> Iterator[tuple[str, io.StringIO]]:
    cfg_kw = dict(
        resolver=kw.pop("resolver", None) or parse_resolver("udp://" + world.control_dns.address),
        control_resolver=None,
        ca_bundle=world.ca_pem,
        timeout=1.5,
        deadline=10,
        body_cap=BODY_CAP,
        public_only=True,
        allow_networks=kw.pop("allow", ("127.0.0.0/8",)),
    )
    log = io.StringIO()
    app = HelperApp(MeasureConfig(**cfg_kw), log=log, **kw)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="error", access_log=False, lifespan="on"
        )
    )
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", log
    finally:
        server.should_exit = True
        t.join(10)


def ask(base: str, url: str, endpoints: list[str] | None = None, **kw: Any) -> httpx.Response:
    body = {
        "http_request": url,
        "http_request_headers": {"User-Agent": ["x"]},
        "tcp_connect": endpoints or [],
    }
    return httpx.post(base + "/", json=body, timeout=30, **kw)
