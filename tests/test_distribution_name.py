"""The distribution is ``probe-censorship``: "probe" on PyPI is an unrelated project, so every
``pip install 'probe[...]'`` we gave installed someone else's code (issue 21). The command and the
import package stay ``probe``. Advice for an extra works from a checkout (its own install command)
and from an index (the distribution's name).
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import probe
from probe.config import options
from tests.paths import REPO

NAME = "probe-censorship"


def test_the_distribution_is_named_probe_censorship() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == NAME == options.DISTRIBUTION
    assert project["scripts"] == {"probe": "probe.cli:main"}  # the command stays probe
    assert project["version"] == probe.__version__


def test_importlib_metadata_finds_the_new_name() -> None:
    assert importlib.metadata.version(NAME) == probe.__version__
    dist = importlib.metadata.distribution(NAME)
    scripts = {ep.name: ep.value for ep in dist.entry_points if ep.group == "console_scripts"}
    assert scripts == {"probe": "probe.cli:main"}
    assert set(dist.metadata.get_all("Provides-Extra") or []) >= {"analyst", "test"}


# Every piece of install advice we give: README, docs, the code's messages, scripts, tests.
ADVICE_FILES = sorted(
    p
    for p in [
        REPO / "README.md",
        *(REPO / "docs").rglob("*.md"),
        *(REPO / "probe").rglob("*.py"),
        *(REPO / "probe" / "locale").rglob("*.po"),
        *(REPO / "scripts").iterdir(),
        *(REPO / "deploy").rglob("*"),
    ]
    if p.is_file()
)
# pip install <something>[extra]: what is installed must be ours, by name or as a path.
EXTRA = re.compile(r"pip install (?:-e |--upgrade |-U )*['\"]?([^\s'\"\[]+)\[")


def test_no_advice_names_the_unrelated_distribution() -> None:
    seen = 0
    for path in ADVICE_FILES:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for m in EXTRA.finditer(line):
                seen += 1
                what = m.group(1)
                assert what == NAME or what.startswith((".", "/")) or "{" in what, (
                    f"{path.relative_to(REPO)}:{n}: {line.strip()}"
                )
    assert seen >= 3  # the README's, the docs' and the analysts' lines are all looked at


def test_the_readme_gives_both_ways_to_get_the_analyst_extra() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert f"pip install '{NAME}[analyst]'" in readme  # from an index
    assert "scripts/install '.[analyst]'" in readme  # from a checkout


def _report_without_matplotlib(tmp: Path, **env: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\n"
        "sys.modules['matplotlib'] = None\n"  # as on a volunteer's Pi: not installed
        "from probe.cli import main\n"
        f"sys.exit(main(['report', '--db', {str(tmp / 'x.db')!r}, '-o', 'r.html']))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp,
        env={**os.environ, "LC_ALL": "C.UTF-8", **env},
        timeout=60,
    )


def test_a_missing_analyst_extra_names_this_distribution(tmp_path: Path) -> None:
    # A service keeps no checkout: the advice is the index's, under our name.
    r = _report_without_matplotlib(tmp_path, STATE_DIRECTORY=str(tmp_path))
    assert r.returncode == 2, r.stderr
    assert r.stderr == (
        "probe: error: probe report needs the analyst extra: "
        f"pip install '{NAME}[analyst]' (no matplotlib)\n"
    )


def test_a_missing_analyst_extra_in_a_checkout_says_how_there(tmp_path: Path) -> None:
    r = _report_without_matplotlib(tmp_path)
    assert r.returncode == 2, r.stderr
    found = options.checkout()
    assert found is not None and found.path == REPO
    assert r.stderr.startswith("probe: error: probe report needs the analyst extra: ")
    assert r.stderr.endswith(" (no matplotlib)\n") and "'probe[" not in r.stderr
    assert options.install_advice("analyst") in r.stderr


def test_install_advice_from_a_checkout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    co = options.Checkout(tmp_path, "the probe was installed from it (...)", editable=False)
    monkeypatch.setattr(options, "checkout", lambda: co)
    monkeypatch.setattr(sys, "prefix", str(tmp_path / ".venv"))
    assert options.install_advice("analyst") == f"scripts/install '.[analyst]' (in {tmp_path})"
    editable = options.Checkout(tmp_path, "runs from it", editable=True)
    monkeypatch.setattr(options, "checkout", lambda: editable)
    assert options.install_advice("analyst") == f"scripts/install -e '.[analyst]' (in {tmp_path})"
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "elsewhere"))  # another virtualenv
    assert options.install_advice("analyst") == (
        f"{sys.executable} -m pip install -e '{tmp_path}[analyst]'"
    )
    monkeypatch.setattr(options, "checkout", lambda: None)
    assert options.install_advice("analyst") == f"pip install '{NAME}[analyst]'"


# -- scripts/install removes our distribution under its old name ---------------------------------
def _stand_in_python(log: Path, summary: str) -> str:
    """A virtualenv's python whose pip knows one distribution called "probe" with ``summary``
    and logs every pip command; ``-c`` code runs in this test's Python."""
    return f"""#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then
  echo "$*" >> {log}
  if [ "$3" = "show" ]; then printf 'Name: probe\\nVersion: 0.1.0\\nSummary: {summary}\\n'; fi
  exit 0
fi
if [ "$1" = "-c" ]; then exec {sys.executable} -c "$2"; fi
exit 0
"""


@pytest.mark.parametrize(
    ("summary", "removed"),
    [
        ("Unattended network-interference measurement: DNS, TCP, TLS and HTTP blocking", True),
        ("Probe lets you ship personal metrics", False),  # PyPI's probe: not ours to remove
    ],
)
def test_install_removes_the_old_name(tmp_path: Path, summary: str, removed: bool) -> None:
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    (root / "scripts" / "install").write_bytes((REPO / "scripts" / "install").read_bytes())
    log = tmp_path / "pip.log"
    venv_bin = root / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").write_text(_stand_in_python(log, summary))
    (venv_bin / "probe").write_text('#!/bin/sh\necho "probe, version test"\n')
    for exe in (venv_bin / "python", venv_bin / "probe"):
        exe.chmod(0o755)
    r = subprocess.run(
        ["bash", str(root / "scripts" / "install")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    calls = log.read_text().splitlines()
    assert ("-m pip uninstall -q -y probe" in calls) is removed, calls
    assert calls[-1] == "-m pip install -q ."
