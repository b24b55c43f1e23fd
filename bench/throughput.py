"""Benchmark the throughput measurement against curl, in the censorship lab (needs root).

    sudo .venv/bin/python bench/throughput.py [--rates 150kbit,1mbit,5mbit] [--seconds 16]

For each htb rate, the lab throttles one site by address; curl (in the client namespace)
downloads the same file over the same path, then ``probe run`` measures it (target and control
flows, as in production). Prints the configured rate, curl's rate, the probe's, and the ratios.
curl's figure is its average over the whole transfer (handshake and slow start included), the
probe's the steady rate after the slow-start transient: the default 16 s keeps curl's transfer
long enough at 150 kbit/s for the two to be comparable (at 8 s, curl reads 0.66 of the rate).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.lab import THROTTLED, running_lab

UNITS = {"kbit": 1e3, "mbit": 1e6}


def _bps(rate: str) -> float:
    unit = next(u for u in UNITS if rate.endswith(u))
    return float(rate[: -len(unit)]) * UNITS[unit]


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rates", default="150kbit,1mbit,5mbit")
    ap.add_argument("--seconds", type=float, default=16.0)
    args = ap.parse_args()
    rows = []
    with running_lab() as lab:
        for rate in args.rates.split(","):
            nbytes = int(min(1024 * 1024, _bps(rate) / 8 * args.seconds * 0.8))
            with lab.throttle(rate, address=THROTTLED):
                curl = subprocess.run(
                    [
                        "ip",
                        "netns",
                        "exec",
                        lab.client,
                        "curl",
                        "-s",
                        "-o",
                        "/dev/null",
                        "--cacert",
                        lab.ca_pem,
                        "--resolve",
                        f"ipthrottled.lab:443:{THROTTLED}",
                        "--max-time",
                        str(args.seconds * 2),
                        "-r",
                        f"0-{nbytes - 1}",
                        "-w",
                        "%{speed_download}",
                        "https://ipthrottled.lab/tp",
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                curl_bps = float(curl.stdout or 0) * 8
                recs = lab.run_targets(
                    {
                        "t": {
                            "url": "https://ipthrottled.lab/",
                            "throughput_url": "https://ipthrottled.lab/tp",
                        }
                    },
                    {
                        "c": {
                            "url": "https://control.lab/",
                            "throughput_url": "https://control.lab/tp",
                        }
                    },
                    f"bench-{rate}",
                    "--throughput-seconds",
                    str(args.seconds),
                    "--throughput-trials",
                    "3",
                    "--throughput-bytes",
                    str(nbytes),
                )
            tp = next(r["throughput"] for r in recs if r["target"] == "t")
            rows.append((rate, _bps(rate), curl_bps, tp["bps"] or 0.0))
    print(
        f"{'rate':>8} {'configured':>12} {'curl':>12} {'probe':>12} {'probe/curl':>10} "
        f"{'probe/cfg':>9}"
    )
    for rate, cfg, curl_bps, probe_bps in rows:
        print(
            f"{rate:>8} {cfg:>12.0f} {curl_bps:>12.0f} {probe_bps:>12.0f} "
            f"{probe_bps / curl_bps if curl_bps else float('nan'):>10.3f} "
            f"{probe_bps / cfg:>9.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
