"""Loopback targets for the benchmarks, served from a child process so the measured process's
CPU and memory are its own: two DNS servers, HTTP and HTTPS sites and a reset server."""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.connection
import os
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

SITE, RST = "127.0.0.10", "127.0.0.30"


@dataclass(frozen=True)
class BenchWorld:
    urls: list[str]  # 60% HTTP, 25% HTTPS, 10% NXDOMAIN at the system resolver, 5% reset
    ca_pem: str
    system_dns: str  # IP:PORT of the resolver under test
    honest_dns: str  # IP:PORT of the honest resolver


def _serve(n: int, conn: multiprocessing.connection.Connection, tmp: str) -> None:
    import trustme

    from tests import servers as S

    names = [f"t{i}.bench.test" for i in range(n)]
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("*.bench.test").configure_cert(ctx)
    pem = os.path.join(tmp, "ca.pem")
    ca.cert_pem.write_to_path(pem)
    http_port = S.free_port([SITE, RST])
    page = S.Site({"/": (200, {"Content-Type": "text/html"}, S.PAGE)})
    objs = [S.WebServer(page, SITE, http_port), S.TCPServer("rst", RST, http_port)]
    https = S.WebServer(page, SITE, 0, ctx)
    objs.append(https)
    zone: dict[str, object] = {}
    honest: dict[str, object] = {}
    for i, name in enumerate(names):
        kind = i % 20
        zone[name] = "NXDOMAIN" if kind in (0, 1) else [RST] if kind == 2 else [SITE]
        honest[name] = [RST] if kind == 2 else [SITE]
    sysdns, ctldns = S.DNSServer(zone), S.DNSServer(honest, host="127.0.0.53")
    urls = [
        f"https://{name}:{https.port}/" if i % 20 in range(3, 8) else f"http://{name}:{http_port}/"
        for i, name in enumerate(names)
    ]
    conn.send(BenchWorld(urls, pem, sysdns.address, ctldns.address))
    conn.recv()
    for o in [*objs, sysdns, ctldns]:
        o.close()


@contextmanager
def bench_world(n: int, tmp: str) -> Iterator[BenchWorld]:
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=_serve, args=(n, child, tmp))
    proc.start()
    try:
        yield parent.recv()
    finally:
        parent.send("done")
        proc.join(10)
