"""The README's "Try it on your own machine first" runs as written (issue 21), so the docs cannot
rot: its server command is started, its commands run through ``bash`` in an empty folder with
this interpreter's ``probe`` first on the PATH, and the verdicts it promises are the exported ones.

Two things differ from a volunteer's run, and only these: the ports 8000 and 8001 become free
ones (other tests may hold them), and PROBE_RESOLVER and PROBE_CONTROL_RESOLVER name a loopback
port nothing answers, as PROBE_STUN_SERVERS=none (the session's) does for STUN: a test never
asks a real resolver (the control resolver is also asked for the public address)."""

from __future__ import annotations

import csv
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.paths import REPO

README = REPO / "README.md"


def block(name: str) -> str:
    """The fenced block right after ``<!-- try-it: NAME -->`` in the README."""
    m = re.search(
        rf"<!-- try-it: {name} -->\n```[a-z]*\n(.*?)\n```", README.read_text(encoding="utf-8"), re.S
    )
    assert m is not None, f"README.md: no <!-- try-it: {name} --> block"
    return m.group(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def ports() -> dict[str, str]:
    return {"8000": str(_free_port()), "8001": str(_free_port())}


def _with(ports: dict[str, str], text: str) -> str:
    return re.sub(r"\b(8000|8001)\b", lambda m: ports[m.group(1)], text)


@pytest.fixture
def server(tmp_path: Path, ports: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    (command,) = block("server").splitlines()
    argv = shlex.split(_with(ports, command))
    assert argv[:3] == ["python3", "-m", "http.server"], argv
    proc = subprocess.Popen(
        [sys.executable, *argv[1:]],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", int(ports["8000"])), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "no http.server"
                time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _env() -> dict[str, str]:
    """The volunteer's environment, with this venv's probe first on PATH and the resolvers
    (and STUN) pointed at a dead loopback port: the README's run asks nothing beyond loopback."""
    nobody = f"127.0.0.1:{_free_port()}"
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PROBE_RESOLVER": nobody,
        "PROBE_CONTROL_RESOLVER": f"udp://{nobody}",
        "PROBE_STUN_SERVERS": "none",
    }


def _bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_the_readme_loopback_example_runs_as_written(
    tmp_path: Path, ports: dict[str, str], server: subprocess.Popen[bytes]
) -> None:
    env = _env()
    env.pop("PROBE_DB", None)
    env.pop("PROBE_TARGETS", None)
    script = _with(ports, block("commands"))
    assert "--allow-loopback" in script and "--db try.db" in script
    done = _bash(script, tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert "3 measurements stored in try.db" in done.stderr, done.stderr
    with (tmp_path / "try.csv").open(encoding="utf-8-sig", newline="") as f:
        rows = {r["target"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"my-server", "nothing-there", "my-server-again"}
    assert rows["my-server-again"]["is_control"] == "true"
    promised = [re.split(r"\s{2,}", line)[:2] for line in block("verdicts").splitlines()]
    assert [t for t, _ in promised] == ["my-server", "nothing-there"]
    for target, verdict in promised:
        assert rows[target]["verdict"] == verdict, (target, rows[target])
    assert rows["nothing-there"]["failure"] == "connection_refused"
    assert rows["nothing-there"]["failing_step"] == "tcp"
    assert rows["my-server"]["failure"] == "" and rows["my-server-again"]["network_ok"] == "true"
    # The page really came from the server on this machine.
    assert '"status_code":200' in rows["my-server"]["http"].replace(" ", ""), rows["my-server"]


def test_without_allow_loopback_the_same_file_is_not_dialled(
    tmp_path: Path, ports: dict[str, str], server: subprocess.Popen[bytes]
) -> None:
    """The README says loopback is never dialled without the flag: the same round then records
    no connection to the server on this machine."""
    env = _env()
    script = _with(ports, block("commands")).replace(" --allow-loopback", "")
    done = _bash(script, tmp_path, env)
    assert done.returncode == 0, done.stderr
    with (tmp_path / "try.csv").open(encoding="utf-8-sig", newline="") as f:
        rows = {r["target"]: r for r in csv.DictReader(f)}
    for r in rows.values():
        assert '"status_code":200' not in r["http"].replace(" ", ""), r


@pytest.mark.parametrize("command", ["run", "daemon"])
def test_allow_loopback_is_in_help(command: str) -> None:
    from click.testing import CliRunner

    from probe.cli import cli

    result = CliRunner().invoke(cli, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    (line,) = [x for x in result.output.splitlines() if "--allow-loopback" in x]
    assert "this machine" in line and "Try it on your own machine first" in line, line
