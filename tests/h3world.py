"""The loopback HTTP/3 world: sites on 127.0.24.0/24 served over TCP (HTTPS) and QUIC, a UDP
port nobody listens on, a UDP black hole, a QUIC server with a certificate for another name, a
site advertised only by its DNS HTTPS record, one advertised by nothing, and one behind a
censor that reads the server name in QUIC Initial packets (tests/servers/h3.py); a large page
whose HTTP/3 server is throttled, and an address that drops both TCP and UDP.

``make_h3_world`` starts all of it and stops it afterwards; tests get it as a fixture
(tests/measure/test_quic.py), the QUIC goldens are recorded from it (tests/classify/
quic_golden.py) and bench/quic.py measures in it. One TCP and UDP port number for every site.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme

from probe.config.resolver import parse_resolver
from probe.measure import net, quic, steps
from probe.measure.config import MeasureConfig
from probe.measure.runner import measure_url
from probe.model import Observations, QUICObservations
from tests import servers as S
from tests.servers.h3 import H3Server, SNIFilter, UDPBlackhole, with_alt_svc
from tests.world import server_context

OK, REFUSED, HOLE, BADCERT, RR, NONE, SNI, BIG, DEAD, SNIDROP = (
    f"127.0.24.{i}" for i in range(1, 11)
)
# The test helper's QUIC listener (any name), and the censor's relay in front of it.
HELPER_LISTENER, HELPER = "127.0.24.21", "127.0.24.20"
DNS = "127.0.24.53"
NAMES = [
    "h3.test",
    "refused.test",
    "hole.test",
    "badcert.test",
    "rr.test",
    "none.test",
    "sni.test",
    "big.test",
    "dead.test",
    "snidrop.test",
]
BLOCKED_SNI = {"sni.test", "snidrop.test"}
BIG_BYTES = 256 * 1024  # a page large enough for HTTP/3's rate to be compared with TCP's
BIG_RATE = 400 * 1024  # bytes per second: big.test's HTTP/3 server is throttled to this
OBJECT_BYTES = 8 * 1024 * 1024  # /tp on every site: a throughput test's object


@dataclass
class H3World:
    port: int
    ca_pem: str
    dns: S.DNSServer
    h3: H3Server
    censor: SNIFilter
    servers: list[Any] = field(default_factory=list)

    @property
    def helper(self) -> tuple[str, int]:
        """The helper's QUIC address as the probe meets it: behind the censor's relay."""
        return HELPER, self.port

    def config(self, **kw: Any) -> MeasureConfig:
        spec = parse_resolver(self.dns.address)
        base: dict[str, Any] = dict(
            resolver=spec,
            control_resolver=spec,
            ca_bundle=self.ca_pem,
            timeout=1.0,
            deadline=20,
            body_cap=512 * 1024,
            allow_loopback=True,
        )
        base.update(kw)
        return MeasureConfig(**base)

    def url(self, host: str) -> str:
        return f"https://{host}:{self.port}/"

    async def measure_async(
        self, host: str, helper: tuple[str, int] | None = None, **kw: Any
    ) -> tuple[Observations, QUICObservations]:
        shared = net.Shared.create(self.config(**kw))
        try:
            obs, _, _ = await measure_url(shared, self.url(host))
            ctx = steps.StepContext(
                time.monotonic(),
                shared.cfg.timeout,
                shared.ssl_verify,
                shared.ssl_noverify,
                net.ByteCounter(),
            )
            return obs, await quic.measure(shared, ctx, obs, helper=helper)
        finally:
            await shared.aclose()

    def measure(
        self, host: str, helper: tuple[str, int] | None = None, **kw: Any
    ) -> tuple[Observations, QUICObservations]:
        return asyncio.run(self.measure_async(host, helper, **kw))


@contextlib.contextmanager
def make_h3_world(tmp: Path) -> Iterator[H3World]:
    ca = trustme.CA()
    pem = tmp / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    leaf = ca.issue_cert(*NAMES)
    hosts = [OK, REFUSED, HOLE, BADCERT, RR, NONE, SNI, BIG, DEAD, SNIDROP, HELPER]
    port = S.free_port(hosts)
    obj = (200, {"Content-Type": "application/octet-stream"}, b"o" * OBJECT_BYTES)
    page = S.Site({"/": (200, S.SITE_HEADERS, S.PAGE), "/tp": obj})
    big = S.Site(
        {
            "/": (200, {"Content-Type": "text/html"}, b"<title>Big</title>" + b"x" * BIG_BYTES),
            "/tp": obj,  # the throughput test's object: over TCP at once, over HTTP/3 throttled
            "/even": obj,  # over HTTP/3 throttled, and over TCP as much (below)
        }
    )
    tls = server_context(leaf)
    zone: dict[str, Any] = {
        "h3.test": [OK],
        "refused.test": [REFUSED],
        "hole.test": [HOLE],
        "badcert.test": [BADCERT],
        "rr.test": {"https": f'1 . alpn="h3,h2" port={port}', "addrs": [RR]},
        "none.test": [NONE],
        "sni.test": [SNI],
        "big.test": [BIG],
        "dead.test": {"https": f'1 . alpn="h3" port={port}', "addrs": [DEAD]},
        "snidrop.test": [SNIDROP],
    }
    h3 = H3Server(page, OK, leaf, port)
    censor = SNIFilter(SNI, (OK, port), BLOCKED_SNI, port)
    objs: list[Any] = [
        h3,
        censor,
        H3Server(page, BADCERT, ca.issue_cert("somewhere-else.test"), port),
        H3Server(page, RR, leaf, port),
        H3Server(big, BIG, leaf, port, rate=BIG_RATE),
        UDPBlackhole(HOLE, port),
        UDPBlackhole(DEAD, port),
        UDPBlackhole(SNIDROP, port),  # its QUIC dropped by address; its name filtered too
        H3Server(page, HELPER_LISTENER, ca.issue_cert("helper.test"), port),
        SNIFilter(HELPER, (HELPER_LISTENER, port), BLOCKED_SNI, port),
        S.Blackhole(DEAD, port),
        *(
            S.WebServer(with_alt_svc(page, port), ip, port, tls)
            for ip in (OK, REFUSED, HOLE, BADCERT, SNI, SNIDROP)
        ),
        # /even: over TCP paced at HTTP/3's own pace, so the two carry it as fast
        S.WebServer(
            with_alt_svc(
                S.Site({**big.routes, "/even": S.large(OBJECT_BYTES, BIG_RATE * 8)}), port
            ),
            BIG,
            port,
            tls,
        ),
        S.WebServer(page, RR, port, tls),
        S.WebServer(page, NONE, port, tls),
    ]
    dns = S.DNSServer(zone, host=DNS)
    objs.append(dns)
    with S.closing_all(*objs):
        yield H3World(port, str(pem), dns, h3, censor, objs)
