"""Bytes per day of the default targets in each profile, measured in the censorship lab.

    sudo .venv/bin/python bench/budget_throughput.py [--helper | --no-helper]

Builds the lab, whose replica serves the default targets' front pages (tests/lab/replica.py)
under their real names, and prints first what ``probe targets discover`` chooses for each target
and control. Then, per profile, it runs ``probe run`` over the repository's targets.yaml twice:
a page round (``--no-throughput``) and a throughput round (the profile's plan, unchanged; with the
lab's test helper, so the SNI A/B runs too), and prints the bytes each used (the sum of the
measurements' ``bytes_used``: every byte on the wire, TLS and headers included), the largest
test, and the bytes per day at the daemon's default intervals (a page round every 45 min, a
throughput round every 6 h). The lab's links are fast, so every flow reads its whole byte cap:
on a slower link flows stop at their time cap first and use less. Front-page sizes in the
replica are typical, not measured (the probe cannot reach the real sites here).

This is a measurement of its own; the daemon's ``bench/budget.py`` (issue 11), when merged,
measures the same thing through the daemon.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from probe.model import Plan
from probe.settings import BY_NAME, MOBILE_DAILY_CAP
from tests.lab import REPO, Lab, running_lab

MB = 1e6


def _round_bytes(db: Path) -> tuple[int, int, int]:
    """(bytes of the last round, its largest throughput test, its tests that ran)."""
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
    return int(total), max((t.get("bytes_used", 0) for t in ran), default=0), len(ran)


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
    page_gap = BY_NAME["interval"].default
    tp_gap = BY_NAME["throughput_interval"].default
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
            f"{'largest':>9} {'worst case':>11} {'per day':>9} {'cap':>6}"
        )
        for profile in ("default", "mobile"):
            plan = Plan.profile(profile)
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
            page_bytes, _, _ = _round_bytes(pages)
            tp_bytes, largest, tests = _round_bytes(tp)
            per_day = page_bytes * 86400 / page_gap + tp_bytes * 86400 / tp_gap
            cap = MOBILE_DAILY_CAP / MB if profile == "mobile" else float("nan")
            mean = (tp_bytes - page_bytes) / max(tests, 1)
            print(
                f"{profile:8} {page_bytes / MB:9.2f}MB {tp_bytes / MB:8.2f}MB {tests:6d} "
                f"{mean / MB:7.2f}MB {largest / MB:7.2f}MB {plan.worst_case_bytes / MB:9.2f}MB "
                f"{per_day / MB:7.1f}MB {cap:6.0f}"
            )
        print(
            f"per day: {86400 / page_gap:.0f} page rounds and {86400 / tp_gap:.0f} throughput "
            "rounds (a throughput round's bytes include its own pages; 'per day' is uncapped: "
            "past --max-bytes-per-day the tests of the day are skipped, least recently tested "
            "first next time)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
