"""Deployment files: the daemon's systemd unit is sandboxed and valid; the image runs the daemon."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def _directives(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
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
