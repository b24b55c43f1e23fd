"""Bytes per day of the default targets in each profile, measured in the censorship lab.

    sudo .venv/bin/python bench/budget_throughput.py [--helper | --no-helper]

Builds the lab, whose replica serves the default targets' front pages (tests/lab/replica.py)
under their real names, and prints first what ``probe targets discover`` chooses for each target
and control. Then, per profile, it runs ``probe run`` over the repository's targets.yaml twice:
a page round (``--no-throughput``) and a throughput round (the profile's plan, unchanged; with the
lab's test helper, so the SNI A/B runs too), and prints the bytes each used (the sum of the
measurements' ``bytes_used``: every byte on the wire, TLS and headers included), the largest
test, and the bytes per day at the profile's intervals (default: a page round every 45 min,
a throughput round every 6 h; mobile: 3 h and 24 h), uncapped and how many tests fit under the
profile's daily cap. The lab's links are fast, so every flow reads its whole byte cap:
on a slower link flows stop at their time cap first and use less. Front-page sizes in the
replica are typical, not measured (the probe cannot reach the real sites here).

``bench/budget.py`` measures page rounds on front pages of the real sites' sizes, and the
storage a measurement takes.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from probe.config.settings import resolve
from probe.model import Plan
from probe.round.budget import RESERVE_SHARE
from tests.lab import REPO, Lab, running_lab

MB = 1e6


def _round_bytes(db: Path) -> tuple[int, int, int, int]:
    """(bytes of the last round, its largest throughput test, its tests that ran, its tests
    planned: those skipped for the data cap included)."""
    con = sqlite3.connect(db)
    try:
        (rid,) = con.execute("SELECT id FROM rounds ORDER BY started_at DESC LIMIT 1").fetchone()
        total = con.execute(
            "SELECT coalesce(sum(bytes_used), 0) FROM measurements WHERE round_id = ?", [rid]
        ).fetchone()[0]
        tests = [
            json.loads(t)
            for (t,) in con.execute(
                "SELECT throughput FROM measurements WHERE round_id = ? AND throughput IS NOT NULL",
                [rid],
            )
        ]
    finally:
        con.close()
    ran = [t for t in tests if not t.get("skipped")]
    largest = max((t.get("bytes_used", 0) for t in ran), default=0)
    return int(total), largest, len(ran), len(tests)


def _run(lab: Lab, name: str, *args: str) -> Path:
    db = lab.tmp / f"{name}.db"
    r = lab.probe(
        "run",
        "--targets",
        str(REPO / "targets.yaml"),
        "--db",
        str(db),
        *lab.resolvers(),
        "--quiet",
        *args,
        timeout=1800,
    )
    if r.returncode != 0:
        raise SystemExit(f"probe run failed: {r.stderr.strip()}")
    return db


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--no-helper", action="store_true", help="no helper: no SNI A/B test")
    args = ap.parse_args()
    with running_lab() as lab:
        helper = [] if args.no_helper else ["--helper", lab.helper]
        helper += [] if args.no_helper else ["--helper-bulk-address", "10.77.1.70"]
        helper += [] if args.no_helper else ["--helper-bulk-address", "10.77.1.71"]
        r = lab.probe(
            "targets",
            "discover",
            "--targets",
            str(REPO / "targets.yaml"),
            *lab.resolvers(),
        )
        print("probe targets discover (default profile), on the replica:")
        print(r.stdout.rstrip() or r.stderr)
        print()
        print(
            f"{'profile':8} {'page round':>11} {'tp round':>10} {'tests':>6} {'per test':>9} "
            f"{'largest':>9} {'worst case':>11} {'uncapped/day':>13} {'cap':>6} {'tests/day':>9}"
        )
        for profile in ("default", "mobile"):
            plan = Plan.profile(profile)
            s = resolve({"profile": profile}, env={})
            page_gap, tp_gap, cap = s.interval, s.throughput_interval, s.max_bytes_per_day
            pages = _run(lab, f"pages-{profile}", "--profile", profile, "--no-throughput")
            tp = _run(
                lab,
                f"tp-{profile}",
                "--profile",
                profile,
                "--throughput-trials",
                str(plan.trials),  # the profile's own plan: the flag enables the tests here
                *helper,
            )
            page_bytes, _, _, _ = _round_bytes(pages)
            tp_bytes, largest, tests, planned = _round_bytes(tp)
            pages_day = page_bytes * 86400 / page_gap
            mean = (tp_bytes - page_bytes) / max(tests, 1)
            per_day = pages_day + mean * planned * 86400 / tp_gap
            # Under the cap: the tests a day that fit beside the day's pages and the reserve
            # a throughput test leaves (probe.round.budget: a tenth of the cap).
            room = (cap - pages_day - RESERVE_SHARE * cap) if cap else None
            fit = min(planned * 86400 / tp_gap, room / mean) if room is not None else None
            print(
                f"{profile:8} {page_bytes / MB:9.2f}MB {tp_bytes / MB:8.2f}MB {tests:6d} "
                f"{mean / MB:7.2f}MB {largest / MB:7.2f}MB {plan.worst_case_bytes / MB:9.2f}MB "
                f"{per_day / MB:11.1f}MB {f'{cap / MB:.0f}' if cap else 'none':>6} "
                f"{'all' if fit is None else f'{fit:.0f}':>9}"
            )
            print(
                f"         a page round every {page_gap / 60:.0f} min ({pages_day / MB:.1f} MB a "
                f"day), a throughput round every {tp_gap / 3600:.0f} h"
            )
        print(
            "a throughput round's tests stop where the daily cap would be passed; the next "
            "round starts with the least recently tested targets. 'tests/day': how many fit "
            "under the cap beside the day's pages and the reserve the budget keeps for them."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
