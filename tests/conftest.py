"""Fixtures and hooks only: the loopback world (built in tests/world.py) and its edges, strict
rounds, Hypothesis kept outside the checkout, and a failure when a test writes into the checkout."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import hypothesis.configuration
import pytest

from tests.paths import REPO
from tests.servers.edge import Edges, make_edges
from tests.world import World, make_world


@pytest.fixture(autouse=True)
def fresh_caches() -> None:
    """Under mutmut (bench/mutation.py), every memoised function of the probe starts empty, before
    every test: mutmut records which tests reach a function from the calls it sees, and a cache
    filled by an earlier test hides the function from every later one. And a
    cache filled before the mutant was switched on (mutmut forks a process that already ran
    the code) answers with the original's results, and the mutants of probe.privacy's
    lru_cache'd builders (_finder's _wrapped, _dotted, _literals ...) all "survived" though a
    fresh process kills them."""
    if not os.environ.get("MUTANT_UNDER_TEST"):
        return
    for name, module in list(sys.modules.items()):
        if name == "probe" or name.startswith("probe."):
            for value in list(vars(module).values()):
                clear = getattr(value, "cache_clear", None)
                if callable(clear):
                    clear()


@pytest.fixture(scope="session", autouse=True)
def strict_rounds() -> Iterator[None]:
    """A bug in the probe's own code fails the test that hit it: the per-target boundary in
    ``probe.round`` re-raises instead of recording an ``unknown_failure`` (a test of that
    isolation unsets PROBE_STRICT with monkeypatch). And no real STUN server is asked."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PROBE_STRICT", "1")
    # Tests never ask a real STUN server for the public address (probe.measure.whoami): a
    # test that wants one starts its own and says so.
    mp.setenv("PROBE_STUN_SERVERS", "none")
    yield
    mp.undo()


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("world")) as w:
        yield w


@pytest.fixture(scope="module")
def edges(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edges]:
    """The edges the world does not reach (tests/servers/edge.py), for one test module."""
    with make_edges(tmp_path_factory.mktemp("edges")) as e:
        yield e


@pytest.fixture
def repo_root() -> Path:
    return REPO


# -- tests never write into the checkout ---------------------------------------------------------
# Hypothesis keeps no example database and its other files outside the checkout (by default
# .hypothesis/ in the working directory), and has no deadline: two shared cores make
# per-example timing meaningless.
hypothesis.settings.register_profile("probe", database=None, deadline=None)
hypothesis.settings.load_profile("probe")
hypothesis.configuration.set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "probe-hypothesis")

_CHECKOUT = REPO
# What running Python and the tools leave by design; everything else is a test writing where it
# must not (a database, an export, coverage data, a mutation tool's copy).
_LEFT_BY_TOOLS = {
    ".git",
    ".venv",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    "build",
}


def checkout_files(root: Path = _CHECKOUT) -> set[str]:
    """Every file under the checkout, bar the tools' own caches and the virtualenv."""
    out: set[str] = set()
    for here, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _LEFT_BY_TOOLS and not d.endswith(".egg-info")]
        rel = Path(here).relative_to(root)
        out.update(str(rel / f) for f in files)
    return out


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_BEFORE] = checkout_files()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.config.stash.get(_BEFORE, None)
    if before is None:
        return
    gained = sorted(checkout_files() - before)
    if gained:
        session.config.stash[_GAINED] = gained
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    gained = terminalreporter.config.stash.get(_GAINED, [])
    if gained:
        terminalreporter.write_line(
            f"FAILED: the tests wrote {len(gained)} file(s) into the checkout "
            f"({_CHECKOUT}): {', '.join(gained[:10])}",
            red=True,
            bold=True,
        )


_BEFORE = pytest.StashKey[set[str]]()
_GAINED = pytest.StashKey[list[str]]()
