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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--round-targets", type=int, default=40)
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
    finally:
        parent.send("done")
        proc.join(10)


if __name__ == "__main__":
    main()
