"""The project's test helper (probe.helper.server) served on loopback for a test, with ``probe
helper serve``'s own uvicorn configuration (its connection limits included: a test server kinder
than the internet hides bugs), and a client's request to it in OONI's shape."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from probe.config.resolver import parse_resolver
from probe.helper.server import ConnectionLimits, HelperApp, listen_socket, server_config
from probe.measure.config import MeasureConfig
from tests.world import BODY_CAP, World


@contextmanager
def helper_server(
    world: World,
    limits: ConnectionLimits | None = None,
    tls: tuple[str, str] | None = None,
    **kw: Any,
) -> Iterator[tuple[str, io.StringIO]]:
    """The helper in a thread; yields its base URL and its access log. ``tls``: (certificate
    chain, key) PEM files, for HTTPS. ``kw``: ``resolver``, ``allow`` (networks it may measure,
    loopback by default) and HelperApp's arguments."""
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
    sock = listen_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    cert, key = tls or (None, None)
    config = server_config(app, "127.0.0.1", port, limits=limits, tls_cert=cert, tls_key=key)
    config.log_level = "error"
    server = uvicorn.Server(config)
    t = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    t.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}", log
    finally:
        server.should_exit = True
        t.join(10)
        sock.close()


def ask(base: str, url: str, endpoints: list[str] | None = None, **kw: Any) -> httpx.Response:
    body = {
        "http_request": url,
        "http_request_headers": {"User-Agent": ["x"]},
        "tcp_connect": endpoints or [],
    }
    return httpx.post(base + "/", json=body, **{"timeout": 30, **kw})
