"""``probe run`` in-process against the loopback world: its arguments, and one call to the CLI.

The property tests over outside input (issue 10, "Done when") share ``FAST``, ``run_fresh`` and
``one_line_messages``: whatever a generated targets file, flag value or OONI line holds, the probe
exits 0 or 2 (never 1), prints no traceback and every stderr line is one message. The session sets
PROBE_STRICT=1, so a bug in the probe's own code fails there instead of being recorded as a
target's failure.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from probe.cli import main
from tests.world import World

FAST = settings(
    max_examples=25,
    deadline=None,  # a loaded 2-core CI machine: time is bench/'s business, not a test's
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def run_fresh(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """One call to the CLI, with whatever an earlier call printed thrown away first."""
    capsys.readouterr()
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def one_line_messages(code: int, err: str) -> None:
    assert code in (0, 2), err
    assert "Traceback" not in err
    for line in err.splitlines():
        assert line.startswith("probe: ") or re.search(r" measurements? stored in ", line), line


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def world_settings(
    w: World, targets: Path, db: Path | None = None, *, control: str | None = None, **extra: Any
) -> dict[str, Any]:
    """The settings, by flag name, that point the probe at the loopback world: its system
    resolver, its control resolver (DoH unless ``control`` names another), its CA, a short
    timeout, loopback allowed; ``extra`` adds or overrides (``profile="mobile"``)."""
    settings: dict[str, Any] = {"targets": str(targets)}
    if db is not None:
        settings["db"] = str(db)
    return {
        **settings,
        "resolver": w.system_dns.address,
        "control_resolver": control or w.doh_url,
        "ca_bundle": w.ca_pem,
        "timeout": "1.5",
        "allow_loopback": True,
        **extra,
    }


def as_flags(settings: dict[str, Any]) -> list[str]:
    """Settings by flag name as command-line flags: ``True`` is the bare flag."""
    out: list[str] = []
    for name, value in settings.items():
        flag = "--" + name.replace("_", "-")
        out += [flag] if value is True else [flag, str(value)]
    return out


def run_args(w: World, targets: Path, db: Path, *extra: str) -> list[str]:
    control = "udp://" + w.control_dns.address
    flags = as_flags(world_settings(w, targets, db, control=control))
    return ["run", *flags, "--quiet", "--no-throughput", *extra]


# A targets file of the loopback world with four broken entries among three usable ones.
def mixed_targets(tmp: Path, w: World) -> Path:
    p = tmp / "mixed.yaml"
    p.write_text(
        "targets:\n"
        f"  - {{name: news, url: '{w.http('news.test')}'}}\n"
        '  - {name: emoji, url: "https://\\U0001f600.example/"}\n'
        '  - {name: octal, url: "http://0177.0.0.1/"}\n'
        '  - {name: nul, url: "https://a\\x00b.example/"}\n'
        '  - {name: spaced, url: "https://exa mple.com/"}\n'
        f"  - {{name: blocked, url: '{w.http('blocked.test')}'}}\n"
        "controls:\n"
        f"  - {{name: ctl, url: '{w.https('news.test')}'}}\n",
        encoding="utf-8",
    )
    return p
