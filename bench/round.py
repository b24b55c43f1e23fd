"""Benchmark one round over loopback-hosted targets: wall time against curl plus two dig per
URL, CPU per measurement, peak RSS.

    python bench/round.py [--targets 400] [--concurrency 32]
    python bench/round.py --profile /tmp/round.prof   # cProfile of the round alone
    python bench/round.py --targets 100000          # memory: flat in the number of targets
    python bench/round.py --conservative            # no STUN answer: literals masked

A child process hosts everything the probe talks to (``bench/world.py``); this process writes
the targets to a YAML file and runs the round exactly as ``probe run --no-throughput`` does
(settings -> ``prepare`` -> ``run_once``; ``--throughput`` adds the throughput tests, which
curl and dig have no counterpart for), storing every measurement in a temporary SQLite
database. Mix: 60% HTTP pages, 25% HTTPS pages, 10% DNS-blocked (NXDOMAIN at the resolver under
test), 5% reset. Goals from the issues: 400 targets in under 60 s at concurrency 32 on 2 cores,
under 60 MB RSS; 100,000 targets under 100 MB RSS (issue 10: 408 MB before); CPU under 5 ms per
measurement and the round in under 0.5 of the reference's wall time (issue 19).

How to read it:

- ``wall time``: the round, from ``run_once`` called to returned.
- ``reference``: the same URLs, in the same run and against the same world, done by the tools a
  volunteer would otherwise use: per URL ``dig A`` and ``dig AAAA`` at the resolver under test,
  then ``curl`` with the world's CA bundle and ``--resolve`` to dig's first A answer (no curl when
  dig found none: the NXDOMAIN tenth), ``--concurrency`` URLs at a time (``xargs -P``). The
  probe does more per URL (TCP and TLS to every address, the control resolver, a classifier
  and a database); ``ratio`` is the round's wall time over the reference's, so under 1 is
  faster than curl and dig. Without ``dig`` on the PATH the comparison is skipped, and the
  memory run (10,000 targets or more) skips it too.
- ``CPU s/measurement``: this process's CPU time (user + system, every thread: the event loop,
  the store's writes, the target list's read-ahead) during ``run_once``, over the measurements
  stored. Not counted: imports, reading the settings and opening the store, the world's
  servers (another process), and the reference's processes (they run after the round).
- On a shared machine both times move with the load: compare before and after in one session,
  several runs each, and read medians.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.world import BenchWorld, bench_world

# One URL's reference work; $1 the URL, $2 its host, $3 its port.
_REFERENCE = r"""
set -- "$1" "$2" "$3" $(dig +short +time=5 +tries=1 -p "$DNS_PORT" "@$DNS_HOST" "$2" A)
dig +short +time=5 +tries=1 -p "$DNS_PORT" "@$DNS_HOST" "$2" AAAA >/dev/null
[ -z "$4" ] || curl -s -o /dev/null --max-time 5 --cacert "$CA" --resolve "$2:$3:$4" "$1"
exit 0
"""


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reference(w: BenchWorld, concurrency: int) -> float | None:
    """Wall seconds for curl plus two dig per URL, ``concurrency`` URLs at a time; None (and
    a line saying how to get them) when dig or curl is missing."""
    missing = [tool for tool in ("dig", "curl", "xargs") if shutil.which(tool) is None]
    if missing:
        print(
            f"reference         skipped: {', '.join(missing)} not found"
            " (apt-get install -y bind9-dnsutils curl)"
        )
        return None
    lines = []
    for u in w.urls:
        parts = urlsplit(u)
        lines.append(f"{u} {parts.hostname} {parts.port}\n")
    host, port = w.system_dns.rsplit(":", 1)
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "DNS_HOST": host, "DNS_PORT": port}
    t0 = time.perf_counter()
    subprocess.run(
        ["xargs", "-P", str(concurrency), "-L", "1", "sh", "-c", _REFERENCE, "sh"],
        input="".join(lines),
        text=True,
        check=True,
        env={**env, "CA": w.ca_pem},
    )
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--targets", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--throughput", action="store_true", help="add the throughput tests")
    ap.add_argument("--no-reference", action="store_true", help="skip curl and dig")
    ap.add_argument("--profile", metavar="FILE", help="write a cProfile of the round to FILE")
    ap.add_argument(
        "--conservative",
        action="store_true",
        help="no STUN server: the public address unknown, address literals masked",
    )
    args = ap.parse_args()

    from probe.config import settings as settings_mod
    from probe.round import prepare, run_once
    from probe.store import Store

    # A loopback STUN server tells the round its public address, as the default servers do a
    # volunteer's (with none, every page is scrubbed conservatively: the slower path).
    from tests.servers.stun import StunServer

    stun = StunServer("203.0.113.5")
    with tempfile.TemporaryDirectory() as tmp, bench_world(args.targets, tmp) as w:
        tfile = Path(tmp) / "targets.yaml"
        with tfile.open("w", encoding="utf-8") as fh:
            fh.write("targets:\n")
            for i, u in enumerate(w.urls):
                fh.write(f"  - {{name: t{i}, url: '{u}', category: NEWS}}\n")
        list_mb = tfile.stat().st_size / 1e6
        rss_imports = rss_mb()
        settings = settings_mod.resolve(
            {
                "targets": str(tfile),
                "db": str(Path(tmp) / "bench.db"),
                "resolver": w.system_dns,
                "control_resolver": "udp://" + w.honest_dns,
                "ca_bundle": w.ca_pem,
                "timeout": "5",
                "concurrency": str(args.concurrency),
                # A flag's value says whether it was given: True is --no-throughput.
                "throughput": not args.throughput,
                "allow_loopback": True,
                "stun_servers": stun.address if not args.conservative else "none",
            },
            env={},
        )
        t_load = time.perf_counter()
        setup = prepare(settings)
        load_s, rss_loaded = time.perf_counter() - t_load, rss_mb()
        store = Store.open(settings.db)
        profiler = cProfile.Profile() if args.profile else None
        cpu0, t0 = time.process_time(), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        result = asyncio.run(run_once(setup, store))
        if profiler is not None:
            profiler.disable()
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        stored = store.db.table("measurements").count
        skip = args.no_reference or args.targets >= 10_000
        ref = None if skip else reference(w, args.concurrency)
    if profiler is not None:
        profiler.dump_stats(args.profile)
    n = result.count
    rss = rss_mb()
    verdicts: dict[str, int] = {}
    for (blocking, _), k in result.verdicts.items():
        verdicts[str(blocking)] = verdicts.get(str(blocking), 0) + k
    cpu_ms = cpu / n * 1000
    print(f"targets           {n} (stored {stored}), concurrency {args.concurrency}")
    print(f"target list       {list_mb:.1f} MB read in {load_s:.1f} s")
    print(f"wall time         {wall:.2f} s")
    if ref is not None:
        print(f"reference         {ref:.2f} s (curl + dig A + dig AAAA per URL)")
        print(f"ratio             {wall / ref:.2f} of the reference")
    print(f"measurements/s    {n / wall:.1f}")
    print(f"CPU s/measurement {cpu_ms:.2f} ms")
    print(
        f"RSS               {rss_imports:.1f} MB after imports, {rss_loaded:.1f} MB with the list"
    )
    print(f"peak RSS          {rss:.1f} MB")
    print(f"bytes used        {result.bytes_used} ({result.bytes_used / n:.0f} per measurement)")
    print(f"verdicts          {verdicts}")
    if profiler is not None:
        print(f"profile           {args.profile} (python -m pstats {args.profile})")
    if args.targets >= 10_000:
        print(f"goal (<100 MB at {args.targets}): {'met' if rss < 100 else 'NOT met'}")
    else:
        met = wall < 60 and rss < 60 and cpu_ms < 5 and (ref is None or wall < 0.5 * ref)
        goal = "<60 s, <60 MB, <5 ms CPU" + (", <0.5 of the reference" if ref else "")
        print(f"goal ({goal}): {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
