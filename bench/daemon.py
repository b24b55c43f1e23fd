"""Fast-forward the daemon through thousands of rounds: is its memory flat, is it idle between
rounds?

    python bench/daemon.py [--rounds 2000] [--targets 8] [--idle 30]

A child process serves loopback targets (``bench/world.py``: HTTP and HTTPS pages, NXDOMAIN
at the resolver under test, resets). The real ``probe daemon`` runs against them with a mean
gap of 50 ms, so months of rounds pass in minutes; every few seconds this script reads the
daemon's resident memory (VmRSS) and CPU time from /proc and counts its rounds in the
database. After ``--rounds`` rounds it switches the daemon to a one-hour interval (a new
settings file and SIGHUP, as a volunteer would) and measures the CPU it uses while it waits.
It prints RSS and CPU over time, the RSS slope over the second half (after warm-up) and the
idle CPU. Goals (issue 11): steady RSS under 80 MB with no upward trend, near-zero CPU between
rounds.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.world import bench_world  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def count_rounds(db: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return int(
                con.execute("SELECT count(*) FROM rounds WHERE kind = 'pages'").fetchone()[0]
            )
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2000)
    ap.add_argument("--targets", type=int, default=4)
    ap.add_argument("--idle", type=float, default=30.0, help="seconds of idle measured")
    ap.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    args = ap.parse_args()
    # Stop cleanly (the daemon and the servers too) on SIGTERM, and on SIGINT even when a
    # shell started this in the background with SIGINT ignored.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    signal.signal(signal.SIGINT, signal.default_int_handler)

    with tempfile.TemporaryDirectory() as tmp, bench_world(args.targets + 1, tmp) as w:
        t = Path(tmp)
        urls = list(w.urls)
        control = next(u for u in urls[3:] if u.startswith("https"))  # a page that loads
        lines = ["targets:"]
        lines += [f"  - name: t{i}\n    url: {u}" for i, u in enumerate(urls) if u != control]
        lines += ["controls:", f"  - name: control\n    url: {control}"]
        (t / "targets.yaml").write_text("\n".join(lines) + "\n")
        cfg = t / "settings.toml"
        cfg.write_text('interval = "50ms"\n')
        db = t / "daemon.db"
        cmd = [
            sys.executable,
            "-m",
            "probe",
            "daemon",
            "--config",
            str(cfg),
            "--targets",
            str(t / "targets.yaml"),
            "--db",
            str(db),
            "--resolver",
            w.system_dns,
            "--control-resolver",
            "udp://" + w.honest_dns,
            "--ca-bundle",
            w.ca_pem,
            "--timeout",
            "2",
            "--allow-loopback",
        ]
        log = (t / "daemon.log").open("w")
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT)
        samples: list[tuple[float, int, float, float]] = []  # (t, rounds, rss MB, cpu s)
        t0 = time.monotonic()
        print(f"{'time':>6} {'rounds':>7} {'RSS MB':>7} {'CPU s':>7} {'CPU/round ms':>12}")
        try:
            while True:
                time.sleep(args.every)
                if proc.poll() is not None:
                    print((t / "daemon.log").read_text()[-2000:])
                    raise SystemExit("the daemon died")
                n = count_rounds(db)
                s = (time.monotonic() - t0, n, rss_mb(proc.pid), cpu_s(proc.pid))
                per = (
                    (s[3] - samples[-1][3]) / max(1, n - samples[-1][1]) * 1000
                    if samples
                    else float("nan")
                )
                samples.append(s)
                print(f"{s[0]:6.0f} {n:7d} {s[2]:7.1f} {s[3]:7.1f} {per:12.1f}", flush=True)
                if n >= args.rounds:
                    break
            # A volunteer's pace: one round an hour. Measure the CPU while it waits.
            cfg.write_text('interval = "1h"\n')
            proc.send_signal(signal.SIGHUP)
            time.sleep(3)  # the round in flight ends; the next is an hour away
            c0, w0 = cpu_s(proc.pid), time.monotonic()
            time.sleep(args.idle)
            idle_cpu = (cpu_s(proc.pid) - c0) / (time.monotonic() - w0)
            idle_rss = rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)
            log.close()
        half = [s for s in samples if s[1] >= samples[-1][1] / 2]
        slope = (
            statistics.linear_regression([s[1] for s in half], [s[2] for s in half]).slope * 1000
            if len(half) >= 3
            else float("nan")
        )
        rss = [s[2] for s in half]
        wall = samples[-1][0]
        print(
            f"rounds            {samples[-1][1]} in {wall:.0f} s "
            f"({args.targets + 1} measurements each)"
        )
        print(
            f"RSS (2nd half)    min {min(rss):.1f} MB, max {max(rss):.1f} MB, last {rss[-1]:.1f} MB"
        )
        print(f"RSS slope         {slope:+.2f} MB per 1000 rounds (2nd half)")
        print(
            f"CPU while idle    {idle_cpu * 100:.3f}% of a core over {args.idle:.0f} s "
            f"(RSS {idle_rss:.1f} MB)"
        )
        print(f"daemon exit       {code}")
        ok = max(rss) < 80 and slope < 1.0 and idle_cpu < 0.01
        print(f"goal (RSS < 80 MB, flat, idle CPU ~0): {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
