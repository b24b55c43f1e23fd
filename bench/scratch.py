"""A throw-away copy of the checkout, for tools that change source files (mutation testing).

Contract: ``scratch_copy()`` yields a temporary directory holding the checkout's working tree
(uncommitted edits included; no ``.git``, virtualenv, caches or databases) and removes it
afterwards (unless told to keep it in a named new folder, for reading a tool's results later),
so nothing a mutation tool writes or changes ever lands in the checkout.
``pytest_command`` runs the non-lab tests of that copy with this interpreter: ``python -m``
puts the copy first on ``sys.path``, so the copy's ``probe`` is imported, not the editable
install's.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IGNORED = (
    ".git",
    ".venv",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
    "mutants",
    "*.db",
    "*.db-wal",
    "*.db-shm",
    ".coverage*",
)
# Tests that need the censorship lab (root, namespaces, minutes): never part of a mutant run.
LAB_TESTS = ("tests/e2e",)


@contextlib.contextmanager
def scratch_copy(prefix: str = "probe-scratch-", keep: Path | None = None) -> Iterator[Path]:
    """The copy, removed afterwards; with ``keep``, made in that new folder and left there."""
    if keep is not None:
        dest = keep / "probe"
        keep.mkdir(parents=True, exist_ok=False)
        shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(*IGNORED), symlinks=True)
        yield dest
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        dest = Path(tmp) / "probe"
        shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(*IGNORED), symlinks=True)
        yield dest


def test_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("CI", None)  # the lab is not run here: CI=true would make its absence a failure
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    for name in ("COVERAGE_PROCESS_START", "COVERAGE_PROCESS_CONFIG", "MUTANT_UNDER_TEST"):
        env.pop(name, None)
    return env


def pytest_command(*args: str) -> list[str]:
    ignores = [f"--ignore={t}" for t in LAB_TESTS]
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *ignores, *args]


def check_imports_copy(copy: Path) -> None:
    """Fail loudly if the copy would import the checkout's ``probe`` instead of its own."""
    out = subprocess.run(
        [sys.executable, "-c", "import probe; print(probe.__file__)"],
        cwd=copy,
        env=test_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not Path(out).resolve().is_relative_to(copy.resolve()):
        raise SystemExit(f"the copy imports {out}, not its own probe/: refusing to run")


_FAILED = re.compile(r"^(?:FAILED|ERROR) ([^\s\[]+)", re.MULTILINE)
_SUMMARY = re.compile(r"^=*\s*(.*\d+ (?:passed|failed|error).*?)\s*=*$", re.MULTILINE)


def run_tests(copy: Path, *args: str) -> tuple[list[str], str]:
    """Run pytest in ``copy`` with ``args``: the tests that failed (in order, once each) and
    pytest's closing summary line. Any exit but "passed" or "some failed" stops the bench."""
    r = subprocess.run(
        pytest_command("-q", "-rfE", *args),
        cwd=copy,
        env=test_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    out = r.stdout + r.stderr
    if r.returncode not in (0, 1):
        raise SystemExit(f"pytest exit {r.returncode} in {copy}:\n{out[-2000:]}")
    summaries = _SUMMARY.findall(out)
    failed = list(dict.fromkeys(f.split(" - ")[0] for f in _FAILED.findall(out)))
    return failed, summaries[-1] if summaries else "?"
