"""Inside a checkout the probe keeps its database in the checkout's ``results/`` and measures the
checkout's ``targets.yaml``; elsewhere the platform's folders (issue 21).

"Inside a checkout" means the running probe belongs to one: its package sits in the checkout (an
editable install, ``python -m probe`` from the tree), or it was installed from the checkout's
folder (``scripts/install``: pip records the folder in the distribution's ``direct_url.json``,
PEP 610). It never depends on the working directory, so ``probe status`` from the home folder
reads the same database as ``probe run`` from the checkout. Under a service (systemd's or the
Docker image's ``STATE_DIRECTORY``) the service's own folder wins and no checkout is used.

The slow test follows the README: a fresh clone, its first command, the database in the clone's
``results/probe.db``. Its target lists (the checkout's and the packaged copy) are replaced by the
loopback world's before anything is installed, so nothing but loopback is measured whatever the
probe decides.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from probe.cli import main
from probe.config import options
from tests.paths import REPO
from tests.world import World

DIST = "probe-censorship"


def _fake_checkout(root: Path, name: str = DIST) -> Path:
    (root / "probe").mkdir(parents=True)
    (root / "probe" / "__init__.py").write_text("")
    (root / "pyproject.toml").write_text(f'[project]\nname = "{name}"\nversion = "1"\n')
    (root / "targets.yaml").write_text("targets: []\n")
    return root


def _direct_url(path: Path, **dir_info: object) -> str:
    return json.dumps({"url": path.as_uri(), "dir_info": dir_info})


# -- which checkout, and why (pure over the package's folder, pip's record and the environment) --
def test_the_package_inside_a_checkout(tmp_path: Path) -> None:
    root = _fake_checkout(tmp_path / "co")
    found = options.find_checkout(root / "probe", None, {})
    assert found is not None and found.path == root
    assert "runs from" in found.how


def test_installed_from_a_checkout_not_editable(tmp_path: Path) -> None:
    root = _fake_checkout(tmp_path / "my probe")  # a space: the record is a file: URL
    site = tmp_path / "venv" / "site-packages" / "probe"
    found = options.find_checkout(site, _direct_url(root), {})
    assert found is not None and found.path == root
    assert found.how == "the probe was installed from it (scripts/install, pip install .)"


def test_installed_from_a_checkout_editable(tmp_path: Path) -> None:
    root = _fake_checkout(tmp_path / "co")
    found = options.find_checkout(tmp_path / "elsewhere", _direct_url(root, editable=True), {})
    assert found is not None and found.path == root and "pip install -e" in found.how


@pytest.mark.parametrize(
    "record",
    [
        None,  # from an index
        '{"url": "file:///tmp/probe-0.1.0-py3-none-any.whl", "archive_info": {}}',  # a wheel
        '{"url": "https://github.com/x/probe", "vcs_info": {"vcs": "git"}}',
        "not json",
        '{"url": 3, "dir_info": {}}',
        "[]",
    ],
)
def test_not_from_a_checkout(tmp_path: Path, record: str | None) -> None:
    assert options.find_checkout(tmp_path / "site" / "probe", record, {}) is None


def test_a_folder_of_another_project_is_no_checkout(tmp_path: Path) -> None:
    other = _fake_checkout(tmp_path / "other", name="probe")  # PyPI's unrelated "probe"
    assert options.find_checkout(other / "probe", _direct_url(other), {}) is None
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "pyproject.toml").write_text("[project\n")
    assert options.find_checkout(broken / "probe", _direct_url(broken), {}) is None


def test_a_checkout_removed_since_the_install_is_none(tmp_path: Path) -> None:
    root = _fake_checkout(tmp_path / "co")
    record = _direct_url(root)
    shutil.rmtree(root)
    assert options.find_checkout(tmp_path / "site" / "probe", record, {}) is None


def test_a_service_uses_its_own_folder_never_a_checkout(tmp_path: Path) -> None:
    root = _fake_checkout(tmp_path / "co")
    env = {"STATE_DIRECTORY": str(tmp_path / "state")}
    assert options.find_checkout(root / "probe", None, env) is None


def test_a_service_state_directory_wins_over_this_checkout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path))
    assert options.default_db() == (str(tmp_path / "probe.db"), "default (systemd StateDirectory)")
    assert options.default_targets()[1] == "default (the packaged target list)"


def test_config_says_which_checkout_and_why(
    repo_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["checkout"]["value"] == str(repo_root)
    assert "runs from" in got["checkout"]["source"] or "installed" in got["checkout"]["source"]
    assert got["db"]["value"] == str(repo_root / "results" / "probe.db")
    assert got["targets"]["value"] == str(repo_root / "targets.yaml")
    assert main(["config"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(ln.split()[:2] == ["checkout", str(repo_root)] for ln in lines), lines


def test_config_outside_a_checkout_says_none(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(options, "find_checkout", lambda *a, **k: None)
    assert main(["config", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["checkout"]["value"] is None
    assert got["db"]["source"] == "default (the platform's data directory)"


# -- the README's first command in a fresh clone -------------------------------------------------
def _readme_first_command(readme: str) -> str:
    block = re.search(r"```sh\n(.*?)```", readme, re.S)
    assert block is not None
    return block.group(1).strip()


def _clone(dest: Path) -> Path:
    """A fresh clone of this checkout's commit, with the working tree's edits laid over it (the
    files git tracks or would add), so the test checks the code under test, committed or not."""
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(dest)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout.split(b"\0")
    for rel in filter(None, (os.fsdecode(p) for p in listed)):
        src = REPO / rel
        if src.is_file() and not src.is_symlink():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
        elif not src.exists() and not src.is_symlink():
            (dest / rel).unlink(missing_ok=True)  # deleted in the working tree
    return dest


def _loopback_targets(w: World) -> str:
    return (
        "targets:\n"
        f"  - {{name: news, url: '{w.http('news.test')}'}}\n"
        f"  - {{name: blocked, url: '{w.http('blocked.test')}'}}\n"
        "controls:\n"
        f"  - {{name: control-site, url: '{w.https('news.test')}'}}\n"
    )


# The distribution installed in the clone's virtualenv, and where its package is.
_WHICH = (
    "import importlib.metadata as m, probe; "
    f"d = m.distribution('{DIST}'); print(d.metadata['Name'], probe.__file__)"
)


def _pip_cache() -> str:
    r = subprocess.run(
        [sys.executable, "-m", "pip", "cache", "dir"], capture_output=True, text=True, check=False
    )
    return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else ""


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_fresh_clone_stores_into_its_results(tmp_path: Path, world: World) -> None:
    clone = _clone(tmp_path / "clone")
    targets = _loopback_targets(world)
    # Loopback only, whatever the probe picks: the checkout's list and the packaged copy.
    (clone / "targets.yaml").write_text(targets)
    (clone / "probe" / "data" / "targets.yaml").write_text(targets)
    home = tmp_path / "home"
    home.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PROBE_", "XDG_DATA", "XDG_CONFIG_HOME", "VIRTUAL_ENV"))
        and k not in ("STATE_DIRECTORY", "PYTHONPATH", "COVERAGE_PROCESS_START")
    }
    env.update(
        HOME=str(home),  # the platform's folders, were they used, are the test's
        PIP_CACHE_DIR=_pip_cache() or str(tmp_path / "pip-cache"),
        LC_ALL="C.UTF-8",  # English, whatever the machine's language
        PROBE_STRICT="1",
        PROBE_STUN_SERVERS="none",
        PROBE_RESOLVER=world.system_dns.address,
        PROBE_CONTROL_RESOLVER="udp://" + world.control_dns.address,
        PROBE_CA_BUNDLE=world.ca_pem,
        PROBE_ALLOW_LOOPBACK="true",
        PROBE_THROUGHPUT="false",
        PROBE_TIMEOUT="1.5",
    )
    command = _readme_first_command((clone / "README.md").read_text(encoding="utf-8"))
    assert command == "scripts/install && .venv/bin/probe run"
    t0 = time.monotonic()
    r = subprocess.run(
        ["bash", "-c", command],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=280,
    )
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr[-3000:]
    db = clone / "results" / "probe.db"
    assert db.is_file(), (r.stderr[-2000:], sorted(str(p) for p in home.rglob("*.db")))
    with sqlite3.connect(db) as con:
        names = {n for (n,) in con.execute("select target from measurements")}
    assert names == {"news", "blocked", "control-site"}
    assert not list(home.rglob("probe.db"))
    assert str(db) in r.stderr, r.stderr  # "... measurements stored in <db>"

    # probe config, in the clone and elsewhere, says the same, and why: the checkout it was
    # installed from (not editable: scripts/install's default).
    for where in (clone, home):
        cfg = subprocess.run(
            [str(clone / ".venv" / "bin" / "probe"), "config", "--json"],
            cwd=where,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        got = json.loads(cfg.stdout)
        assert got["checkout"] == {
            "value": str(clone),
            "source": "the probe was installed from it (scripts/install, pip install .)",
        }
        assert got["db"] == {"value": str(db), "source": "default (this checkout's results/)"}
        assert got["targets"] == {
            "value": str(clone / "targets.yaml"),
            "source": "default (this checkout's targets.yaml)",
        }
    installed = subprocess.run(
        [str(clone / ".venv" / "bin" / "python"), "-c", _WHICH],
        cwd=home,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    assert installed[0] == DIST and installed[1].startswith(str(clone / ".venv")), installed
    print(f"fresh clone: README's first command took {took:.0f} s")
