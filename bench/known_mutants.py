"""Issue 14's hand-made mutations: re-apply each to a copy of the tree and see a test fail.

    python bench/known_mutants.py [--only NAME ...] [--jobs 2] [--list]

Each mutant is one textual change located by an exact pattern that must occur exactly once in
its file: when the code moves (a refactor renames or reshapes the line) the script stops with
"pattern not found" instead of silently testing nothing; update the pattern then. Every mutant
runs in its own temporary copy of the checkout (nothing is written to the checkout) against the
whole non-lab suite; a test that fails is run again with the mutant and without it, so only a
failure that is the mutant's doing counts as a kill (a loaded machine or two sessions racing
for a port make the odd test fail). It prints one line per mutant, killed (by which tests) or
survived, and exits 1 when any survived.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.scratch import check_imports_copy, run_tests, scratch_copy


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    pattern: str
    replacement: str
    what: str


MUTANTS = (
    Mutant(
        "body_proportion_0.3",
        "probe/classify/facts.py",
        "length_match = proportion > 0.7",
        "length_match = proportion > 0.3",
        "OONI's body-proportion threshold 0.7 -> 0.3",
    ),
    Mutant(
        "title_all_to_any",
        "probe/classify/facts.py",
        "title_match = all(v == 3 for v in words.values())",
        "title_match = any(v == 3 for v in words.values())",
        "every title word of 5+ characters must match -> any one",
    ),
    Mutant(
        "common_headers_compared",
        "probe/classify/facts.py",
        "bool((ours & theirs) - COMMON_HEADERS)",
        "bool(ours & theirs)",
        "common headers no longer excluded from the header comparison",
    ),
    Mutant(
        "tcp_ip_without_helper_tcp",
        "probe/classify/__init__.py",
        "\n            and f.helper_tcp_ok is not False",
        "",
        "tcp_ip no longer needs the helper's TCP success",
    ),
    Mutant(
        "down_without_helper_failure",
        "probe/classify/__init__.py",
        "\n            and f.helper.http_failure is not None",
        "",
        "'down' no longer needs the helper's own failure",
    ),
    Mutant(
        "redirects_without_307_308",
        "probe/model.py",
        "REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})",
        "REDIRECT_STATUSES = frozenset({301, 302, 303})",
        "307 and 308 dropped from the redirect statuses",
    ),
    Mutant(
        "body_cap_16k",
        "probe/measure/net.py",
        "body_cap: int = 512 * 1024",
        "body_cap: int = 16 * 1024",
        "the default body cap 512 KiB -> 16 KiB",
    ),
    Mutant(
        "decompressor_unbounded",
        "probe/measure/steps.py",
        "self._obj.decompress(data, limit + 1)",
        "self._obj.decompress(data)",
        "the decompressor's output limit removed (memory, not length, grows)",
    ),
    Mutant(
        "doh_status_is_nxdomain",
        "probe/measure/dns.py",
        "except DoHStatusError as exc:\n        return base(\n"
        "            failure=failures.DNS_SERVER_MISBEHAVING,",
        "except DoHStatusError as exc:\n        return base(\n"
        "            failure=failures.DNS_NXDOMAIN,",
        "a DoH answer with a non-200 status mapped to NXDOMAIN",
    ),
    Mutant(
        "read_failure_is_tls",
        "probe/classify/facts.py",
        'failures.OP_READ: "http",',
        'failures.OP_READ: "tls",',
        "a body-read failure attributed to TLS instead of HTTP",
    ),
    Mutant(
        "helper_own_addresses_dialled",
        "probe/measure/net.py",
        " or ip in cfg.deny_addrs",
        "",
        "the helper's own addresses no longer refused",
    ),
    Mutant(
        "shaper_10x",
        "probe/classify/throughput.py",
        "if inflation >= 3:",
        "if inflation >= 10:",
        "the shaper's RTT-inflation threshold 3x -> 10x",
    ),
)
# Issue 14 lists a 13th: the control fetch reusing the system fetch's pooled connection. It is
# a defect of today's code, not a one-line change to it, and issue 9 fixes and tests it.


class PatternMoved(SystemExit):
    pass


def apply(root: Path, m: Mutant) -> None:
    path = root / m.path
    if not path.exists():
        raise PatternMoved(f"{m.name}: {m.path} does not exist (moved?): update {__file__}")
    text = path.read_text(encoding="utf-8")
    n = text.count(m.pattern)
    if n != 1:
        raise PatternMoved(
            f"{m.name}: pattern {m.pattern!r} occurs {n} times in {m.path} (expected once): "
            f"the code moved; update the pattern in {__file__}"
        )
    path.write_text(text.replace(m.pattern, m.replacement), encoding="utf-8")


def check_patterns(mutants: tuple[Mutant, ...]) -> None:
    """Every pattern, against the checkout itself (read only), before anything runs."""
    repo = Path(__file__).resolve().parent.parent
    for m in mutants:
        text = (repo / m.path).read_text(encoding="utf-8") if (repo / m.path).exists() else ""
        if text.count(m.pattern) != 1:
            raise PatternMoved(
                f"{m.name}: pattern {m.pattern!r} occurs {text.count(m.pattern)} times in "
                f"{m.path} (expected once): the code moved; update the pattern in {__file__}"
            )


# The test function, without its parameters (ids may hold spaces): reruns take every case.


@dataclass(frozen=True)
class Outcome:
    mutant: Mutant | None
    killed_by: tuple[str, ...]  # tests that fail with the mutant, twice, and pass without it
    flaky: tuple[str, ...]  # tests that failed once but not for the mutant's sake
    seconds: float
    summary: str


def run_one(m: Mutant | None, extra: list[str], clean: Path | None) -> Outcome:
    """The whole non-lab suite with the mutant; each test that failed is run again with the
    mutant and in the unmutated copy ``clean``: a kill is a failure that repeats with the
    mutant and not without it (two test sessions at once can race for a port)."""
    with scratch_copy("probe-mutant-") as copy:
        check_imports_copy(copy)
        if m is not None:
            apply(copy, m)
        t0 = time.monotonic()
        failed, summary = run_tests(copy, *extra)
        again = run_tests(copy, *failed)[0] if failed else failed
        seconds = time.monotonic() - t0
    if m is None or not again or clean is None:
        # Unmutated: what failed twice is broken; what failed once is flaky.
        return Outcome(
            m, tuple(again), tuple(t for t in failed if t not in again), seconds, summary
        )
    without = set(run_tests(clean, *again)[0])
    kills = tuple(t for t in again if t not in without)
    flaky = tuple(t for t in failed if t not in kills)
    return Outcome(m, kills, flaky, seconds, summary)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--only", nargs="*", default=None, help="mutant names (default: all)")
    ap.add_argument("--jobs", type=int, default=2, help="mutants run at once (default 2)")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--no-baseline", action="store_true", help="skip the unmutated run")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = ap.parse_args()
    chosen = tuple(m for m in MUTANTS if args.only is None or m.name in args.only)
    unknown = set(args.only or ()) - {m.name for m in MUTANTS}
    if unknown:
        ap.error(f"unknown mutant(s): {', '.join(sorted(unknown))}")
    if args.list:
        for m in chosen:
            print(f"{m.name:30} {m.path:30} {m.what}")
        return 0
    check_patterns(chosen)
    with scratch_copy("probe-clean-") as clean:
        if not args.no_baseline:
            base = run_one(None, args.pytest_args, None)
            print(
                f"{'(unmutated)':30} {'pass' if not base.killed_by else 'FAIL':9} "
                f"{base.seconds:6.1f}s  {base.summary}"
            )
            if base.flaky:
                print(f"{'':30} {'':9} {'':7}  flaky (failed once): {', '.join(base.flaky)}")
            if base.killed_by:
                print(f"the unmutated tree fails ({', '.join(base.killed_by)}): fix that first")
                return 2
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            outcomes = list(pool.map(lambda m: run_one(m, args.pytest_args, clean), chosen))
    for o in outcomes:
        assert o.mutant is not None
        state = "killed" if o.killed_by else "SURVIVED"
        by = ", ".join(o.killed_by[:3]) if o.killed_by else o.summary
        more = f" (+{len(o.killed_by) - 3} more)" if len(o.killed_by) > 3 else ""
        print(f"{o.mutant.name:30} {state:9} {o.seconds:6.1f}s  {by}{more}")
        if o.flaky:
            print(
                f"{'':30} {'':9} {'':7}  failed once, not the mutant's doing: {', '.join(o.flaky)}"
            )
    survived = [o for o in outcomes if not o.killed_by]
    print(f"\n{len(outcomes) - len(survived)} killed, {len(survived)} survived of {len(outcomes)}")
    return 1 if survived else 0


if __name__ == "__main__":
    raise SystemExit(main())
