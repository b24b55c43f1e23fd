"""Deployment files: the daemon's and the test helper's systemd units are sandboxed (exposure
under 2.0 by ``systemd-analyze security``) and valid, their secrets come through
``LoadCredential=``; the image runs the daemon."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def _directives(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")  # continued lines
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_daemon_unit_is_sandboxed() -> None:
    d = _directives(DEPLOY / "probe.service")
    assert d["Type"] == ["notify"] and d["WatchdogSec"]
    assert d["DynamicUser"] == ["yes"] and d["StateDirectory"] == ["probe"]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert d[key] == ["yes"], key
    assert d["ProtectSystem"] == ["strict"]
    assert d["CapabilityBoundingSet"] == [""] and d["AmbientCapabilities"] == [""]
    assert set(d["RestrictAddressFamilies"][0].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert d["RestartPreventExitStatus"] == ["2"]  # bad settings: no restart loop


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_daemon_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify wants ExecStart to exist: point it at this environment's probe.
    probe = Path(sys.executable).parent / "probe"
    unit = tmp_path / "probe.service"
    text = (DEPLOY / "probe.service").read_text(encoding="utf-8")
    unit.write_text(text.replace("/opt/probe/.venv/bin/probe", str(probe)), encoding="utf-8")
    r = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert r.returncode == 0 and "probe.service" not in r.stderr, r.stderr


def test_image_runs_the_daemon_by_default() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert 'ENTRYPOINT ["probe"]' in text and 'CMD ["daemon"]' in text
    assert "STOPSIGNAL SIGTERM" in text and "USER probe" in text


# -- the test helper's unit (issue 20, item 5) --------------------------------------------------
def _exposure(unit: Path) -> float:
    """``systemd-analyze security --offline=true``'s overall exposure level of a unit file."""
    r = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout)
    assert match, r.stdout + r.stderr
    return float(match.group(1))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
@pytest.mark.parametrize("name", ["probe.service", "probe-helper.service"])
def test_units_expose_under_2(name: str, tmp_path: Path) -> None:
    unit = tmp_path / name
    unit.write_text((DEPLOY / name).read_text(encoding="utf-8"), encoding="utf-8")
    level = _exposure(unit)
    assert level < 2.0, f"{name}: exposure {level} by systemd-analyze security"


def test_helper_unit_is_sandboxed_without_any_capability() -> None:
    """The directives the exposure rests on, pinned where systemd-analyze cannot run."""
    d = _directives(DEPLOY / "probe-helper.service")
    assert d["DynamicUser"] == ["yes"] and d["PrivateUsers"] == ["yes"]
    assert d["CapabilityBoundingSet"] == [""] and d["AmbientCapabilities"] == [""]
    assert "CAP_NET_BIND_SERVICE" not in (DEPLOY / "probe-helper.service").read_text()
    assert d["SystemCallFilter"] == ["@system-service", "~@privileged @resources"]
    assert d["SystemCallArchitectures"] == ["native"]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices", "ProtectClock"):
        assert d[key] == ["yes"], key
    assert d["ProtectSystem"] == ["strict"] and d["ProtectProc"] == ["invisible"]
    assert set(d["RestrictAddressFamilies"][0].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert d["RestartPreventExitStatus"] == ["2"]
    # The port by socket activation; the secrets by LoadCredential=, named as the helper's
    # flags default to them ($CREDENTIALS_DIRECTORY/token, tls-cert, tls-key).
    assert d["Requires"] == ["probe-helper.socket"]
    assert _directives(DEPLOY / "probe-helper.socket")["ListenStream"] == ["443"]
    assert d["ExecStart"] == ["/opt/probe/.venv/bin/probe helper serve"]
    assert sorted(c.partition(":")[0] for c in d["LoadCredential"]) == [
        "tls-cert",
        "tls-key",
        "token",
    ]


def test_probe_reads_its_helper_token_as_a_credential() -> None:
    d = _directives(DEPLOY / "probe.service.d" / "helper-token.conf")
    assert d["LoadCredential"] == ["helper-token:/etc/probe/helper-token"]
    assert d["Environment"] == ["PROBE_HELPER_TOKEN_FILE=%d/helper-token"]


def test_the_token_variable_is_the_probe_setting(tmp_path: Path) -> None:
    """PROBE_HELPER_TOKEN_FILE is the probe's own name for --helper-token-file."""
    env = {**os.environ, "PROBE_HELPER_TOKEN_FILE": "/run/credentials/probe.service/helper-token"}
    env.pop("PROBE_CONFIG", None)
    r = subprocess.run(
        [sys.executable, "-m", "probe", "config", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    )
    got = json.loads(r.stdout)["helper_token_file"]
    assert got == {
        "value": "/run/credentials/probe.service/helper-token",
        "source": "environment PROBE_HELPER_TOKEN_FILE",
    }


def _verify(units: list[Path], debug: bool = False) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify``; at debug level it also prints each unit as it loaded it."""
    return subprocess.run(
        ["systemd-analyze", "verify", *map(str, units)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "debug" if debug else "info"},
    )


def _with_this_probe(name: str, into: Path) -> Path:
    """A copy of a unit whose ExecStart is this environment's probe (verify wants it to exist)."""
    probe = Path(sys.executable).parent / "probe"
    text = (DEPLOY / name).read_text(encoding="utf-8")
    unit = into / name
    unit.write_text(text.replace("/opt/probe/.venv/bin/probe", str(probe)), encoding="utf-8")
    return unit


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_helper_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    service = _with_this_probe("probe-helper.service", tmp_path)
    socket_unit = tmp_path / "probe-helper.socket"
    socket_unit.write_text((DEPLOY / "probe-helper.socket").read_text(encoding="utf-8"))
    r = _verify([service, socket_unit])
    assert r.returncode == 0 and "probe-helper" not in r.stderr, r.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_probe_unit_with_the_token_drop_in_passes_verify(tmp_path: Path) -> None:
    unit = _with_this_probe("probe.service", tmp_path)
    drop_in = tmp_path / "probe.service.d"
    drop_in.mkdir()
    conf = DEPLOY / "probe.service.d" / "helper-token.conf"
    (drop_in / conf.name).write_text(conf.read_text(encoding="utf-8"), encoding="utf-8")
    r = _verify([unit], debug=True)
    assert r.returncode == 0, r.stderr[-2000:]
    dump = r.stdout + r.stderr  # the unit as systemd loaded it, at debug level
    assert f"DropIn Path: {drop_in / conf.name}" in dump  # systemd read the drop-in
    # %d is the service's credentials directory, where LoadCredential= puts the token.
    assert "PROBE_HELPER_TOKEN_FILE=/run/credentials/probe.service/helper-token" in dump
