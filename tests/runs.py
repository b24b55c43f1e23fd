"""``probe run`` in-process against the loopback world: its arguments, and one call to the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.cli import main
from tests.world import World


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def run_args(w: World, targets: Path, db: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--targets",
        str(targets),
        "--db",
        str(db),
        "--resolver",
        w.system_dns.address,
        "--control-resolver",
        "udp://" + w.control_dns.address,
        "--ca-bundle",
        w.ca_pem,
        "--timeout",
        "1.5",
        "--allow-loopback",
        "--quiet",
        "--no-throughput",
        *extra,
    ]
