"""Benchmark the test helper: requests per second and peak RSS under a loopback load.

    python bench/helper.py [--seconds 15] [--concurrency 32] [--targets 200]

Three processes: the loopback targets (``bench/world.py``), the helper (``probe helper serve``,
allowed to measure 127.0.0.0/8), and this one, which loads it with control requests for the
targets' URLs. Prints requests per second, latency percentiles, status counts and the helper's
peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.world import bench_world


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def load(
    base: str, urls: list[str], seconds: float, concurrency: int
) -> tuple[list[float], dict[int, int]]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + seconds
    rng = random.Random(1)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def worker() -> None:
            while time.monotonic() < deadline:
                body = {
                    "http_request": rng.choice(urls),
                    "http_request_headers": {},
                    "tcp_connect": [],
                }
                t0 = time.monotonic()
                r = await client.post(base + "/", json=body)
                latencies.append(time.monotonic() - t0)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, statuses


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--targets", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, bench_world(args.targets, tmp) as w:
        port = _free_port()
        helper = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "probe",
                "helper",
                "serve",
                "--listen",
                f"127.0.0.1:{port}",
                "--upstream",
                w.honest_dns,
                "--allow-network",
                "127.0.0.0/8",
                "--ca-bundle",
                w.ca_pem,
                "--max-in-flight",
                str(args.concurrency),
            ],
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    httpx.get(base + "/health", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            t0 = time.monotonic()
            lat, statuses = asyncio.run(load(base, w.urls, args.seconds, args.concurrency))
            wall = time.monotonic() - t0
            hwm = _vm_hwm_mb(helper.pid)
        finally:
            helper.terminate()
            helper.wait(10)
    lat.sort()
    q = statistics.quantiles(lat, n=100)
    print(f"requests          {len(lat)} in {wall:.1f} s, concurrency {args.concurrency}")
    print(f"requests/s        {len(lat) / wall:.1f}")
    print(f"latency p50/p95   {q[49] * 1000:.0f} / {q[94] * 1000:.0f} ms")
    print(f"statuses          {statuses}")
    print(f"helper peak RSS   {hwm:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
