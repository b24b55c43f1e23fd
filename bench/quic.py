"""Benchmark the QUIC and HTTP/3 steps (issue 24): their cost per target (wall time, bytes,
CPU) and a round's total with QUIC on and off.

    python bench/quic.py [--runs 5] [--round-targets 40]

A child process hosts the loopback HTTP/3 world (tests/h3world.py: aioquic servers, a UDP
black hole, a closed UDP port, a censor reading Initial packets), so this process's CPU is the
probe's alone. How to read it:

- ``per target``: for each kind of site, the QUIC part of one measurement (discovery's DNS
  HTTPS queries, the handshakes, the HTTP/3 GET, the neutral-name handshake when nothing
  answered), after its TCP chain: median wall seconds, bytes counted for the data budget (UDP
  payload both ways and the DNS queries), and CPU seconds of this process (user + system)
  during the QUIC part. ``ok`` is a 2.4 KB page; a dropped or filtered site costs the handshake
  timeout (the probe's ``--timeout``, here 1 s) twice: the site's name, then the neutral one.
- ``round``: ``--round-targets`` targets (the five kinds, in turn) measured as a round does,
  all at once (``measure_target``), with QUIC on and off: wall seconds, bytes, CPU.
- ``throughput flow``: one throughput flow of a 8 MiB object (``--flow-seconds``, 4 MiB cap),
  over TCP (``probe.measure.throughput.download``) and over HTTP/3 (``probe.measure.h3flow``):
  body rate, the wire's bytes over the body's (overhead: headers, acknowledgements, QUIC's
  packet protection), and this process's CPU per body MB. On loopback the HTTP/3 rate is
  aioquic's CPU ceiling in this process (pure Python), not a network's: a link faster than it
  would read as HTTP/3 being slower. ``h3 shaped`` is big.test, whose HTTP/3 server paces its
  body at 400 KiB/s.
- ``deadline``: a site whose UDP is silent, measured as a round does with ``--deadline``
  1.5 s and a 1 s timeout: the target ends at its deadline, not after two timeouts.
- On a shared machine the times move with the load: compare within one session.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

KINDS = {
    "ok": "h3.test",
    "https record": "rr.test",
    "udp dropped": "hole.test",
    "udp rejected": "refused.test",
    "sni filtered": "sni.test",
    "not advertised": "none.test",
}


def _host(conn: Any) -> None:
    from tests.h3world import make_h3_world

    with tempfile.TemporaryDirectory() as tmp, make_h3_world(Path(tmp)) as w:
        conn.send((w.port, w.ca_pem, w.dns.address))
        conn.recv()  # until the parent is done


def _config(port: int, ca: str, dns: str, **kw: Any) -> Any:
    from probe.config.resolver import parse_resolver
    from probe.measure.config import MeasureConfig

    spec = parse_resolver(dns)
    base: dict[str, Any] = dict(
        resolver=spec,
        control_resolver=spec,
        ca_bundle=ca,
        timeout=1.0,
        deadline=20,
        body_cap=512 * 1024,
        allow_loopback=True,
    )
    return MeasureConfig(**(base | kw))


async def _one(cfg: Any, url: str) -> tuple[float, int, float]:
    from probe.measure import net, quic, steps
    from probe.measure.runner import measure_url

    shared = net.Shared.create(cfg)
    try:
        obs, _, _ = await measure_url(shared, url)
        ctx = steps.StepContext(
            time.monotonic(), cfg.timeout, shared.ssl_verify, shared.ssl_noverify, net.ByteCounter()
        )
        cpu, t = time.process_time(), time.monotonic()
        q = await quic.measure(shared, ctx, obs)
        return time.monotonic() - t, q.bytes, time.process_time() - cpu
    finally:
        await shared.aclose()


async def _round(cfg: Any, urls: list[str]) -> tuple[float, int, float]:
    from probe.classify.fingerprints import builtin
    from probe.config.targets import Target
    from probe.measure.net import Shared
    from probe.privacy import Scrubber
    from probe.round import measure_target

    shared = Shared.create(cfg)
    try:
        cpu, t = time.process_time(), time.monotonic()
        ms = await asyncio.gather(
            *(
                measure_target(
                    shared,
                    None,
                    Target(name=f"t{i}", url=u),
                    round_id="bench",
                    device_id=None,
                    fingerprints=builtin(),
                    network_ok=True,
                    scrubber=Scrubber(shared.local_addresses),
                )
                for i, u in enumerate(urls)
            )
        )
        return time.monotonic() - t, sum(m.bytes_used for m in ms), time.process_time() - cpu
    finally:
        await shared.aclose()


async def _flow(
    cfg: Any, url: str, ip: str, h3: bool, seconds: float
) -> tuple[float, float, float]:
    from probe.measure import h3flow, net, throughput

    shared = net.Shared.create(cfg)
    try:
        cpu = time.process_time()
        get = h3flow.download if h3 else throughput.download
        f = await get(
            shared, url, ip, role="h3" if h3 else "target", max_bytes=4 * 1024 * 1024,
            max_seconds=seconds, clock0=time.monotonic(),
        )  # fmt: skip
        used = time.process_time() - cpu
        assert f.failure is None, f.failure
        return (
            f.bytes * 8 / max(f.duration, 1e-3) / 1e6,
            f.wire_bytes / f.bytes,
            used / (f.bytes / 1e6),
        )
    finally:
        await shared.aclose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--round-targets", type=int, default=40)
    ap.add_argument("--flow-seconds", type=float, default=2.0)
    args = ap.parse_args()
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=_host, args=(child,), daemon=True)
    proc.start()
    port, ca, dns = parent.recv()
    try:
        cfg = _config(port, ca, dns)
        print(f"{'per target':<16}{'wall s':>9}{'bytes':>9}{'CPU ms':>9}   (median of {args.runs})")
        for kind, host in KINDS.items():
            url = f"https://{host}:{port}/"
            runs = [asyncio.run(_one(cfg, url)) for _ in range(args.runs)]
            wall, used, cpu = (statistics.median(r[i] for r in runs) for i in range(3))
            print(f"{kind:<16}{wall:>9.3f}{int(used):>9}{cpu * 1000:>9.1f}")
        hosts = list(KINDS.values())
        urls = [f"https://{hosts[i % len(hosts)]}:{port}/" for i in range(args.round_targets)]
        print(f"\n{'round':<16}{'wall s':>9}{'bytes':>9}{'CPU s':>9}   ({len(urls)} targets)")
        for label, on in (("quic on", True), ("quic off", False)):
            wall, used, cpu = asyncio.run(_round(_config(port, ca, dns, quic=on), urls))
            print(f"{label:<16}{wall:>9.2f}{used:>9}{cpu:>9.2f}")
        from tests.h3world import BIG, OK

        print(f"\n{'throughput flow':<16}{'Mbit/s':>9}{'wire/body':>10}{'CPU s/MB':>9}")
        for label, host, ip, h3 in (
            ("tcp", "h3.test", OK, False),
            ("h3", "h3.test", OK, True),
            ("h3 shaped", "big.test", BIG, True),
        ):
            url = f"https://{host}:{port}/tp"
            runs = [asyncio.run(_flow(cfg, url, ip, h3, args.flow_seconds)) for _ in range(3)]
            rate, wire, cpu = (statistics.median(r[i] for r in runs) for i in range(3))
            print(f"{label:<16}{rate:>9.1f}{wire:>10.3f}{cpu:>9.3f}")
        tight = _config(port, ca, dns, deadline=1.5)
        wall, used, _ = asyncio.run(_round(tight, [f"https://hole.test:{port}/"]))
        print(f"\n{'deadline 1.5 s':<16}{wall:>9.2f}{used:>9}   (udp dropped, timeout 1 s)")
    finally:
        parent.send("done")
        proc.join(10)


if __name__ == "__main__":
    main()
