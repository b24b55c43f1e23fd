"""scripts/install replaces a .venv made by a Python older than 3.11 (issue 10, item 12).

Runs the real script in a scratch copy, with stand-ins for the interpreters so no package is
downloaded: ``python3`` on PATH is this test's Python (its ``-m venv`` makes a stand-in venv
whose pip does nothing), and the old ``.venv/bin/python`` answers like a Python 3.9.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _exe(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


def _python_like(version: str) -> str:
    """A stand-in interpreter: runs ``-c`` code under a faked sys.version_info, pip is a no-op,
    and ``-m venv DIR`` makes a stand-in venv of the same version."""
    major, minor = version.split(".")
    return f"""#!/bin/sh
FAKE="import sys; sys.version_info = ({major}, {minor}, 0)"
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then exit 0; fi
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin"
  cp "$0" "$3/bin/python"
  printf '#!/bin/sh\\necho "probe, version test"\\n' > "$3/bin/probe"
  chmod +x "$3/bin/probe"
  exit 0
fi
if [ "$1" = "-c" ]; then
  exec {sys.executable} -c "$FAKE; exec(sys.argv[1])" "$2"
fi
exit 0
"""


def _checkout(tmp: Path) -> Path:
    root = tmp / "checkout"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "install", root / "scripts" / "install")
    _exe(tmp / "bin" / "python3", _python_like("3.11"))
    return root


def _install(root: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{tmp / 'bin'}:{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", str(root / "scripts" / "install")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )


def test_an_old_venv_is_recreated(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    _exe(root / ".venv" / "bin" / "python", _python_like("3.9"))
    (root / ".venv" / "old-marker").write_text("made by 3.9")
    r = _install(root, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "older than 3.11" in r.stderr and "installed: probe, version test" in r.stderr
    assert not (root / ".venv" / "old-marker").exists()


def test_a_good_venv_is_kept(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    _exe(root / ".venv" / "bin" / "python", _python_like("3.12"))
    _exe(root / ".venv" / "bin" / "probe", '#!/bin/sh\necho "probe, version test"\n')
    (root / ".venv" / "marker").write_text("kept")
    r = _install(root, tmp_path)
    assert r.returncode == 0, r.stderr
    assert (root / ".venv" / "marker").exists()


def test_an_old_system_python_is_one_line(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    _exe(tmp_path / "bin" / "python3", _python_like("3.9"))
    r = _install(root, tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "3.11" in r.stderr
    assert not (root / ".venv").exists()


pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
