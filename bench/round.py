"""Benchmark one round over loopback-hosted targets: throughput, CPU per measurement, peak RSS.

    python bench/round.py [--targets 400] [--concurrency 32]

A child process hosts everything the probe talks to (two DNS servers, HTTP and HTTPS sites, a
reset server) on 127.0.0.0/8; this process runs ``run_round`` exactly as ``probe run`` does,
storing every measurement in a temporary SQLite database. Mix: 60% HTTP pages, 25% HTTPS pages,
10% DNS-blocked (NXDOMAIN at the resolver under test), 5% reset on the Host. The goal from the
issue: 400 targets in under 60 s at concurrency 32 on 2 cores, under 60 MB RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import ssl
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SITE, RST = "127.0.0.10", "127.0.0.30"


def serve(n: int, conn: mp.connection.Connection, tmp: str) -> None:
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
    control: dict[str, object] = {}
    for i, name in enumerate(names):
        kind = i % 20
        zone[name] = "NXDOMAIN" if kind in (0, 1) else [RST] if kind == 2 else [SITE]
        control[name] = [RST] if kind == 2 else [SITE]
    sysdns, ctldns = S.DNSServer(zone), S.DNSServer(control, host="127.0.0.53")
    urls = []
    for i, name in enumerate(names):
        scheme_https = i % 20 in range(3, 8)
        urls.append(
            f"https://{name}:{https.port}/" if scheme_https else f"http://{name}:{http_port}/"
        )
    conn.send((urls, pem, sysdns.address, ctldns.address))
    conn.recv()  # wait until the benchmark is done
    for o in [*objs, sysdns, ctldns]:
        o.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()

    from probe.classify.fingerprints import builtin
    from probe.measure.dns import parse_resolver
    from probe.measure.runner import MeasureConfig
    from probe.round import run_round
    from probe.store import Store
    from probe.targets import Target

    with tempfile.TemporaryDirectory() as tmp:
        parent, child = mp.Pipe()
        proc = mp.get_context("spawn").Process(target=serve, args=(args.targets, child, tmp))
        proc.start()
        urls, pem, sysdns, ctldns = parent.recv()
        targets = [Target(name=f"t{i}", url=u) for i, u in enumerate(urls)]
        cfg = MeasureConfig(
            resolver=parse_resolver(sysdns),
            control_resolver=parse_resolver("udp://" + ctldns),
            ca_bundle=pem,
            timeout=5,
            allow_loopback=True,
        )
        store = Store.open(Path(tmp) / "bench.db")
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        result = asyncio.run(
            run_round(
                targets,
                [],
                cfg,
                fingerprints=builtin(),
                concurrency=args.concurrency,
                on_measurement=store.save,
            )
        )
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        parent.send("done")
        proc.join(10)
        n = len(result.measurements)
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        verdicts: dict[str, int] = {}
        for m in result.measurements:
            key = str(m.verdict.blocking)
            verdicts[key] = verdicts.get(key, 0) + 1
        stored = store.db.table("measurements").count
    print(f"targets           {n} (stored {stored}), concurrency {args.concurrency}")
    print(f"wall time         {wall:.2f} s")
    print(f"measurements/s    {n / wall:.1f}")
    print(f"CPU s/measurement {cpu / n * 1000:.2f} ms")
    print(f"peak RSS          {rss_mb:.1f} MB")
    print(f"bytes used        {result.bytes_used} ({result.bytes_used / n:.0f} per measurement)")
    print(f"verdicts          {verdicts}")
    goal = wall < 60 and rss_mb < 60
    print(f"goal (<60 s, <60 MB): {'met' if goal else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
