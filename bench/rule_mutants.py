"""Hand-made mutants of the classifier's rules, each run against the non-lab suite.

    python bench/rule_mutants.py [--list] [--only NAME ...] [--jobs 2] [--fast-only]

For each rule of ``probe.classify.RULES`` (read from the checkout's source, never imported) the
script makes these mutants, one change each:

- ``<rule>/delete``: the rule removed from the list;
- ``<rule>/drop[<conjunct>]``: one conjunct of its ``when`` removed (``a and b`` -> ``b``);
- ``<rule>/accessible=<v>``: its accessible value changed to each other of True, False, None;
- ``<rule>/blocking=<v>``: a constant blocking value changed to each other value of the
  vocabulary ("dns", "tcp_ip", "http-failure", "http-diff", False, None).

Each mutant runs in a temporary copy of the checkout (bench/scratch.py; nothing is written to
the checkout). The classifier's own tests run first (they kill most mutants in seconds); a
mutant they do not kill runs against the whole non-lab suite. Both stages stop at the first
failure; a test that failed is run again with the mutant and in an unmutated copy, and only a
failure that repeats with the mutant and passes without it is a kill (two sessions at once can
race for a port). ``--fast-only`` skips the second stage (a screen, not a verdict).

Reading the output: one line per mutant, ``killed`` (by which test), ``equivalent`` (it
survived and ``docs/mutation-equivalents.md`` lists it, as ``- `name`: why``), ``SURVIVED``
(a gap: add a test or, if no test can tell it from the original, list it with a reason), or
``KILLED-EQUIV`` (listed as equivalent, yet a test tells it apart: the claim is wrong, remove
the line). The last line counts them. Exits 1 when a mutant survives unlisted or a listed one
is killed.
"""

from __future__ import annotations

import argparse
import ast
import copy
import queue
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.scratch import (
    LAB_TESTS,
    REPO,
    check_imports_copy,
    run_tests,
    scratch_copy,
)

TARGET = "probe/classify/__init__.py"
EQUIVALENTS = REPO / "docs" / "mutation-equivalents.md"
# The classifier's own tests: fast, and they kill most rule mutants.
FAST = (
    "tests/golden/test_golden.py",
    "tests/classify/",
    "tests/ooni/",
    "tests/test_words.py",
)
BLOCKING_VALUES: tuple[str | bool | None, ...] = (
    "dns",
    "tcp_ip",
    "http-failure",
    "http-diff",
    False,
    None,
)


@dataclass(frozen=True)
class RuleMutant:
    name: str
    kind: str  # delete, drop, accessible, blocking
    rule: int  # index in RULES
    arg: object = None  # the conjunct's index, or the new value


def _rules(tree: ast.Module) -> list[ast.expr]:
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "RULES":
            assert isinstance(node.value, ast.Tuple)
            return node.value.elts
    raise SystemExit(f"no RULES tuple in {TARGET}: update {__file__}")


def _parts(call: ast.expr) -> tuple[str, ast.expr, ast.expr, ast.expr]:
    """(id, when's body, blocking's body, accessible) of one ``Rule(...)`` call."""
    assert isinstance(call, ast.Call) and len(call.args) >= 5, ast.unparse(call)[:80]
    rid, when, blocking, accessible = call.args[0], call.args[2], call.args[3], call.args[4]
    assert isinstance(rid, ast.Constant) and isinstance(rid.value, str)
    assert isinstance(when, ast.Lambda) and isinstance(blocking, ast.Lambda)
    return rid.value, when.body, blocking.body, accessible


def _conjuncts(body: ast.expr) -> list[ast.expr]:
    if isinstance(body, ast.BoolOp) and isinstance(body.op, ast.And):
        return body.values
    return []


def mutants(source: str) -> list[RuleMutant]:
    out = []
    for i, call in enumerate(_rules(ast.parse(source))):
        rid, when, blocking, accessible = _parts(call)
        out.append(RuleMutant(f"{rid}/delete", "delete", i))
        for j, c in enumerate(_conjuncts(when)):
            out.append(RuleMutant(f"{rid}/drop[{ast.unparse(c)}]", "drop", i, j))
        for v in (True, False, None):
            if not (isinstance(accessible, ast.Constant) and accessible.value is v):
                out.append(RuleMutant(f"{rid}/accessible={v}", "accessible", i, v))
        if isinstance(blocking, ast.Constant):
            for b in BLOCKING_VALUES:
                if not (blocking.value == b and type(blocking.value) is type(b)):
                    out.append(RuleMutant(f"{rid}/blocking={b!r}", "blocking", i, b))
    return out


def mutated(source: str, m: RuleMutant) -> str:
    tree = copy.deepcopy(ast.parse(source))
    rules = _rules(tree)
    call = rules[m.rule]
    assert isinstance(call, ast.Call)
    if m.kind == "delete":
        del rules[m.rule]
    elif m.kind == "drop":
        when = call.args[2]
        assert isinstance(when, ast.Lambda) and isinstance(m.arg, int)
        values = _conjuncts(when.body)
        del values[m.arg]
        if len(values) == 1:
            when.body = values[0]
    elif m.kind == "accessible":
        call.args[4] = ast.Constant(m.arg)
    else:
        blocking = call.args[3]
        assert isinstance(blocking, ast.Lambda)
        blocking.body = ast.Constant(m.arg)
    return ast.unparse(ast.fix_missing_locations(tree))


def equivalents() -> set[str]:
    if not EQUIVALENTS.exists():
        return set()
    text = EQUIVALENTS.read_text(encoding="utf-8")
    return set(re.findall(r"^- `([^`]+)`:", text, re.MULTILINE))


def suite_files(copy_root: Path) -> list[str]:
    """The whole non-lab suite, classifier tests first, each file once."""
    rest = sorted(str(p.relative_to(copy_root)) for p in (copy_root / "tests").glob("test_*.py"))
    return [*FAST, *(t for t in rest if t not in FAST and t not in LAB_TESTS)]


def _failed(root: Path, *args: str) -> list[str]:
    return run_tests(root, "-x", "-m", "not lab", *args)[0]


@dataclass(frozen=True)
class Outcome:
    mutant: RuleMutant
    killed_by: str | None
    stage: str  # "fast" or "suite": where it was killed, or how far it survived
    seconds: float


def run_one(m: RuleMutant, work: Path, clean: Path, source: str, fast_only: bool) -> Outcome:
    target = work / TARGET
    t0 = time.monotonic()
    target.write_text(mutated(source, m), encoding="utf-8")
    try:
        stages = [("fast", list(FAST))]
        if not fast_only:
            stages.append(("suite", [t for t in suite_files(work) if t not in FAST]))
        for stage, files in stages:
            for test in _failed(work, *files):
                # Again with the mutant, then without it: only a repeatable failure counts.
                if _failed(work, test) and not _failed(clean, test):
                    return Outcome(m, test, stage, time.monotonic() - t0)
        return Outcome(m, None, stages[-1][0], time.monotonic() - t0)
    finally:
        target.write_text(source, encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--only", nargs="*", default=None, help="mutant names (default: all)")
    ap.add_argument("--jobs", type=int, default=2, help="mutants run at once (default 2)")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--fast-only", action="store_true", help="the classifier tests only")
    args = ap.parse_args()
    source = (REPO / TARGET).read_text(encoding="utf-8")
    every = mutants(source)
    unknown = set(args.only or ()) - {m.name for m in every}
    if unknown:
        ap.error(f"unknown mutant(s): {', '.join(sorted(unknown))}")
    chosen = [m for m in every if args.only is None or m.name in args.only]
    equiv = equivalents()
    if args.list:
        for m in chosen:
            print(f"{m.name}{'  (listed as equivalent)' if m.name in equiv else ''}")
        return 0
    stale = {
        e for e in equiv if "/" in e and e.split("/")[0] in {m.name.split("/")[0] for m in every}
    }
    stale -= {m.name for m in every}
    for name in sorted(stale):
        print(f"{EQUIVALENTS.name} lists {name}, which is no longer a mutant: remove the line")
    jobs = max(1, args.jobs)
    with ExitStack() as stack:
        clean = stack.enter_context(scratch_copy("probe-rules-clean-"))
        check_imports_copy(clean)
        if _failed(clean, *suite_files(clean)):
            print("the unmutated tree fails: fix that first")
            return 2
        copies: queue.Queue[Path] = queue.Queue()
        for _ in range(jobs):
            work = stack.enter_context(scratch_copy("probe-rules-"))
            check_imports_copy(work)
            copies.put(work)

        def task(m: RuleMutant) -> Outcome:
            work = copies.get()
            try:
                o = run_one(m, work, clean, source, args.fast_only)
            finally:
                copies.put(work)
            print(_line(o, equiv), flush=True)
            return o

        with ThreadPoolExecutor(jobs) as pool:
            outcomes = list(pool.map(task, chosen))
    killed = [o for o in outcomes if o.killed_by and o.mutant.name not in equiv]
    wrong = [o for o in outcomes if o.killed_by and o.mutant.name in equiv]
    listed = [o for o in outcomes if not o.killed_by and o.mutant.name in equiv]
    alive = [o for o in outcomes if not o.killed_by and o.mutant.name not in equiv]
    print(
        f"\n{len(outcomes)} mutants: {len(killed)} killed, {len(listed)} equivalent, "
        f"{len(alive)} surviving"
        + (f", {len(wrong)} listed as equivalent but killed" if wrong else "")
        + (" (classifier tests only)" if args.fast_only else "")
    )
    for o in alive:
        print(f"  surviving: {o.mutant.name}")
    return 1 if alive or wrong or stale else 0


def _line(o: Outcome, equiv: set[str]) -> str:
    listed = o.mutant.name in equiv
    if o.killed_by:
        state, by = ("KILLED-EQUIV" if listed else "killed"), f"{o.killed_by} ({o.stage})"
    else:
        state, by = ("equivalent" if listed else "SURVIVED"), f"passes ({o.stage})"
    return f"{state:12} {o.seconds:6.1f}s  {o.mutant.name:60}  {by}"


if __name__ == "__main__":
    raise SystemExit(main())
