"""Mutation score of the verdict-deciding code, per module, with mutmut 3.

    python bench/mutation.py [--modules classify failures measure control privacy]
                             [--budget 3600] [--jobs 2] [--survivors FILE]
                             [--pytest-arg=--deselect=TEST] [--mutants FILE]
                             [--keep DIR | --resume DIR]

mutmut changes one small thing at a time in the code (a comparison, a constant, a boolean, an
argument) and runs the tests that reach the changed function; a mutant the tests do not notice
"survived". This runs it over ``probe/classify/``, ``probe/failures.py``, ``probe/measure/``,
``probe/control.py`` and ``probe/privacy.py`` (or a subset: ``--modules`` takes those names or
file paths), in a temporary copy of the checkout (nothing is written to it), against the non-lab
tests only, each mutant against the tests that cover its function (mutmut records that from one
clean run).
``--budget`` stops mutating after that many seconds: mutants left are "not checked".
``--mutants FILE`` checks only the mutants named in FILE (one per line: e.g. an earlier run's
survivors, again after new tests), the others reported as not checked.

Per module it prints killed, survived, timeout (counted as killed: the tests noticed), skipped
(no test reaches the function, or mutmut skipped it), not checked, and the score: the share of
non-equivalent mutants killed. Equivalent mutants (no test can tell them from the original) are
listed with one line why in ``docs/mutation-equivalents.md`` as ``- `mutant_name`: why``.

Note: mutmut 3 mutates code inside functions only; module-level tables (classify's ``RULES``,
constants such as ``RATIO_MAX``) are covered by ``bench/known_mutants.py`` and
``tests/classify/test_boundaries.py`` instead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.scratch import LAB_TESTS, REPO, check_imports_copy, scratch_copy, test_env

MODULES = {
    "classify": "probe/classify/*.py",
    "failures": "probe/failures.py",
    "measure": "probe/measure/*.py",
    "control": "probe/control.py",
    "privacy": "probe/privacy.py",
}
EQUIVALENTS = REPO / "docs" / "mutation-equivalents.md"
# What the tests read besides probe/ and tests/ (mutmut copies only what it is told): every
# other top-level entry git tracks, so a new folder the tests read is never forgotten.
ALSO_COPY = sorted(
    {
        line.split("/")[0]
        for line in subprocess.run(
            ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.splitlines()
    }
    - {"probe", "tests", ".ci", ".gitignore"}
)
CHECKOUT_TESTS = (
    "tests/config/test_checkout_paths.py::test_a_fresh_clone_stores_into_its_results",
    "tests/test_distribution_name.py::test_a_missing_analyst_extra_in_a_checkout_says_how_there",
)
KILLED = {"killed", "timeout", "caught by type check"}
SKIPPED = {"no tests", "skipped"}


def equivalents() -> set[str]:
    if not EQUIVALENTS.exists():
        return set()
    text = EQUIVALENTS.read_text(encoding="utf-8")
    return set(re.findall(r"^- `([^`]+)`:", text, re.MULTILINE))


def configure(copy: Path, globs: list[str], pytest_args: list[str]) -> None:
    ignores = [f"--ignore={t}" for t in LAB_TESTS]
    conf = {
        "source_paths": ["probe/"],
        "only_mutate": globs,
        "also_copy": [p for p in ALSO_COPY if (copy / p).exists()],
        "pytest_add_cli_args_test_selection": ["tests/", *ignores],
        # mutmut runs the whole selection in one process to learn which tests reach which
        # function; sockets some tests leave to the garbage collector then surface at its end
        # as unraisable ResourceWarnings (errors here), which say nothing of the mutants.
        "pytest_add_cli_args": [
            "-p",
            "no:cacheprovider",
            "-q",
            "-W",
            "ignore::pytest.PytestUnraisableExceptionWarning",
            # tests of the checkout itself (a git clone of it; the install advice for it): the
            # copy is no checkout (no .git, not the editable install), and they run no mutated code
            *(f"--deselect={t}" for t in CHECKOUT_TESTS),
            *pytest_args,
        ],
        "use_git_change_detection": False,
        "timeout_multiplier": 10.0,
    }
    lines = ["", "[tool.mutmut]"]
    for k, v in conf.items():
        lines.append(f"{k} = {json.dumps(v)}")
    with (copy / "pyproject.toml").open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def run_mutmut(copy: Path, jobs: int, budget: float, names: Sequence[str] = ()) -> float:
    mutmut = Path(sys.executable).with_name("mutmut")
    env = test_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    t0 = time.monotonic()
    log = (copy / "mutmut.log").open("w", encoding="utf-8")
    p = subprocess.Popen(
        [str(mutmut), "run", "--max-children", str(jobs), *names],
        cwd=copy,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        p.wait(timeout=budget)
    except subprocess.TimeoutExpired:
        print(f"budget of {budget:.0f} s spent: stopping mutmut", file=sys.stderr)
        # mutmut 3 records each mutant's result as it comes (its .meta files), and Ctrl-C does
        # not stop it while it waits for its workers: end the whole group at once, losing only
        # the mutants being tested (left "not checked").
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    finally:
        log.close()
    stopped = p.returncode in (0, -signal.SIGKILL, 1, 130)
    if not stopped and not list(copy.glob("mutants/**/*.meta")):
        tail = (copy / "mutmut.log").read_text(encoding="utf-8", errors="replace")[-3000:]
        raise SystemExit(f"mutmut failed (exit {p.returncode}):\n{tail}")
    return time.monotonic() - t0


def results(copy: Path) -> dict[str, dict[str, str]]:
    """{source file: {mutant name: status}} from mutmut's per-file .meta records."""
    from mutmut.stats import status_by_exit_code  # type: ignore[import-untyped]

    out: dict[str, dict[str, str]] = {}
    root = copy / "mutants"
    for meta in sorted(root.glob("probe/**/*.py.meta")):
        data = json.loads(meta.read_text(encoding="utf-8"))
        src = str(meta.relative_to(root))[: -len(".meta")]
        out[src] = {k: status_by_exit_code[v] for k, v in data["exit_code_by_key"].items()}
    return out


def survivors_diff(copy: Path, names: list[str]) -> str:
    mutmut = Path(sys.executable).with_name("mutmut")
    parts = []
    for name in names:
        r = subprocess.run(
            [str(mutmut), "show", name],
            cwd=copy,
            env=test_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        parts.append(r.stdout.strip() or f"# {name}: {r.stderr.strip()[-200:]}")
    return "\n\n".join(parts) + "\n"


def report(by_file: dict[str, dict[str, str]], equiv: set[str]) -> list[str]:
    head = (
        f"{'module':32} {'mutants':>7} {'killed':>6} {'surv.':>5} {'t/o':>4} {'skip':>4} "
        f"{'n/c':>4} {'equiv':>5} {'score':>6}"
    )
    lines = [head, "-" * len(head)]
    total: Counter[str] = Counter()
    for src, statuses in sorted(by_file.items()):
        c: Counter[str] = Counter()
        for name, status in statuses.items():
            if status == "survived" and name in equiv:
                c["equivalent"] += 1
            else:
                c[status] += 1
        total.update(c)
        lines.append(_row(src, c))
    lines.append("-" * len(head))
    lines.append(_row("TOTAL", total))
    return lines


def _row(name: str, c: Counter[str]) -> str:
    killed = sum(c[s] for s in KILLED)
    survived = c["survived"]
    skipped = sum(c[s] for s in SKIPPED)
    judged = killed + survived
    score = f"{100 * killed / judged:5.1f}%" if judged else "    -"
    return (
        f"{name:32} {sum(c.values()):7d} {killed:6d} {survived:5d} {c['timeout']:4d} "
        f"{skipped:4d} {c['not checked']:4d} {c['equivalent']:5d} {score:>6}"
    )


@contextlib.contextmanager
def _copy(resume: Path | None, keep: Path | None) -> Iterator[Path]:
    if resume is None:
        with scratch_copy("probe-mutation-", keep=keep) as copy:
            yield copy
        return
    copy = resume / "probe"
    if not (copy / "mutants").is_dir():
        raise SystemExit(f"--resume {resume}: no mutmut run kept there (see --keep)")
    yield copy


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--modules", nargs="*", default=list(MODULES), help="names or file paths")
    ap.add_argument("--budget", type=float, default=3600, help="seconds of mutating at most")
    ap.add_argument("--jobs", type=int, default=2, help="mutants tested at once")
    ap.add_argument("--survivors", type=Path, help="write the surviving mutants' diffs here")
    ap.add_argument(
        "--pytest-arg",
        action="append",
        default=[],
        help="passed to every pytest run, e.g. --pytest-arg=--deselect=tests/x.py::test_flaky "
        "(mutmut needs every selected test to pass on the unmutated code)",
    )
    ap.add_argument("--mutants", type=Path, help="check only the mutants named in this file")
    ap.add_argument(
        "--resume",
        type=Path,
        help="go on with a run kept with --keep DIR (its tests, coverage and results so far): "
        "the mutants not checked yet",
    )
    ap.add_argument(
        "--keep",
        type=Path,
        help="make the scratch copy in this new folder and leave it (mutmut show, partial results)",
    )
    args = ap.parse_args()
    names = []
    if args.mutants is not None:
        names = [n.strip() for n in args.mutants.read_text(encoding="utf-8").split() if n.strip()]
    globs = []
    for m in args.modules:
        if m in MODULES:
            globs.append(MODULES[m])
        elif m.startswith("probe/") and m.endswith((".py", "*")):
            globs.append(m)
        else:
            ap.error(f"--modules: {m!r} is not one of {', '.join(MODULES)} nor probe/...py")
    equiv = equivalents()
    with _copy(args.resume, args.keep) as copy:
        if args.resume is None:
            check_imports_copy(copy)
            configure(copy, globs, args.pytest_arg)
        seconds = run_mutmut(copy, args.jobs, args.budget, names)
        by_file = results(copy)
        checked = sum(s != "not checked" for st in by_file.values() for s in st.values())
        if not by_file or not checked:
            tail = (copy / "mutmut.log").read_text(encoding="utf-8", errors="replace")[-3000:]
            raise SystemExit(f"mutmut produced no results:\n{tail}")
        print(f"mutmut over {' '.join(globs)}: {seconds:.0f} s, {args.jobs} at once")
        for line in report(by_file, equiv):
            print(line)
        alive = sorted(
            n
            for st in by_file.values()
            for n, s in st.items()
            if s == "survived" and n not in equiv
        )
        print(f"\n{len(alive)} surviving mutants not listed as equivalent in {EQUIVALENTS.name}")
        if args.survivors is not None:
            args.survivors.write_text(survivors_diff(copy, alive), encoding="utf-8")
            print(f"their diffs: {args.survivors}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
