"""The command line end to end: run against the loopback world, export, reclassify, bad input."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from probe.cli import cli, main
from tests.world import World


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def _targets(tmp: Path, w: World) -> Path:
    p = tmp / "targets.yaml"
    p.write_text(
        f"""
targets:
  - name: news
    url: {w.http("news.test")}
    category: NEWS
  - name: blocked
    url: {w.http("blocked.test")}
    category: POLR
  - name: reset
    url: {w.https("tls-reset.test")}
    category: HUMR
  - name: down
    url: {w.http("down.test")}
controls:
  - name: control-site
    url: {w.https("news.test")}
""",
        encoding="utf-8",
    )
    return p


def _run(tmp: Path, w: World, capsys: pytest.CaptureFixture[str], *extra: str) -> Path:
    return _run_output(tmp, w, capsys, *extra)[0]


def _run_output(
    tmp: Path, w: World, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[Path, str, str]:
    """probe run over _targets in the loopback world: the database, stdout and stderr."""
    db = tmp / "r.db"
    code, out, err = run_cli(
        [
            "run",
            "--targets",
            str(_targets(tmp, w)),
            "--db",
            str(db),
            "--resolver",
            w.system_dns.address,
            "--control-resolver",
            w.doh_url,
            "--ca-bundle",
            w.ca_pem,
            "--timeout",
            "1.5",
            "--allow-loopback",
            *extra,
        ],
        capsys,
    )
    assert code == 0, err
    return db, out, err


def test_run_then_export_jsonl(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _run(tmp_path, world, capsys)
    code, out, err = run_cli(["export", "--db", str(db), "--format", "jsonl"], capsys)
    assert code == 0 and "5 measurements exported" in err
    recs = {r["target"]: r for r in map(json.loads, out.splitlines())}
    assert set(recs) == {"news", "blocked", "reset", "down", "control-site"}
    verdicts = {k: (r["blocking"], r["accessible"]) for k, r in recs.items()}
    assert verdicts == {
        "news": (False, True),
        "blocked": ("dns", False),
        "reset": ("http-failure", False),
        "down": (False, False),
        "control-site": (False, True),
    }
    r = recs["reset"]
    assert r["failing_step"] == "tls" and r["failure"] == "connection_reset"
    assert r["throttled"] is None and r["rule_id"] and r["rules_version"]
    assert r["started_at"].endswith("Z") and r["category"] == "HUMR"
    assert r["tls"][0]["failure"] == "connection_reset" and r["dns"] and r["tcp"]
    assert recs["blocked"]["http"][0]["status_code"] == 200
    assert all(rec["bytes_used"] > 0 for rec in recs.values())
    assert len({rec["id"] for rec in recs.values()}) == 5


def test_only_and_filters_and_csv(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _run(tmp_path, world, capsys, "--only", "news", "--quiet")
    out_file = tmp_path / "out.csv"
    code, _, _err = run_cli(
        [
            "export",
            "--db",
            str(db),
            "--format",
            "csv",
            "-o",
            str(out_file),
            "--target",
            "news",
            "--since",
            "2000-01-01",
        ],
        capsys,
    )
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out_file.read_text(encoding="utf-8"))))
    assert [r["target"] for r in rows] == ["news"]
    assert rows[0]["blocking"] == "false" and rows[0]["accessible"] == "true"
    assert json.loads(rows[0]["dns"])[0]["hostname"] == "news.test"
    code, out, _ = run_cli(["export", "--db", str(db), "--until", "2000-01-01"], capsys)
    assert code == 0 and out == ""


def test_offline_round_gives_no_verdicts(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "t.yaml"
    p.write_text(
        f"""targets:
  - {{name: blocked, url: "{world.http("reset.test")}"}}
controls:
  - {{name: c1, url: "{world.http("refused.test")}"}}
""",
        encoding="utf-8",
    )
    db = tmp_path / "o.db"
    code, _, err = run_cli(
        [
            "run",
            "--targets",
            str(p),
            "--db",
            str(db),
            "--quiet",
            "--resolver",
            world.system_dns.address,
            "--control-resolver",
            "udp://" + world.control_dns.address,
            "--allow-loopback",
        ],
        capsys,
    )
    assert code == 0, err
    assert err.count("probe: offline: the control did not load (c1: connection_refused)") == 1
    code, out, _ = run_cli(["export", "--db", str(db)], capsys)
    recs = {r["target"]: r for r in map(json.loads, out.splitlines())}
    rec = recs["blocked"]
    assert (rec["blocking"], rec["accessible"], rec["offline"]) == (None, None, True)
    # the controls of an offline round are offline too (issue 9 item 11)
    ctl = recs["c1"]
    assert (ctl["blocking"], ctl["accessible"], ctl["offline"], ctl["network_ok"]) == (
        None,
        None,
        True,
        False,
    )


def test_run_says_once_what_no_helper_cannot_see(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a helper, a page over consistent DNS is 'accessible (no control)' in the table
    and the export's evidence, and the run says once why (issue 9 item 11)."""
    db, out, err = _run_output(tmp_path, world, capsys, "--only", "news")
    assert err.count("a test helper") == 0 and err.count("no test helper (--helper)") == 1
    assert "accessible (no control)" in out
    _, out, _ = run_cli(["export", "--db", str(db), "--target", "news"], capsys)
    (rec,) = map(json.loads, out.splitlines())
    assert (rec["accessible"], rec["evidence"], rec["rule_id"]) == (
        True,
        "no control",
        "http.success.local",
    )


def test_reclassify_command(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _run(tmp_path, world, capsys, "--quiet")
    code, out, _ = run_cli(["reclassify", "--db", str(db)], capsys)
    assert code == 0 and "5 measurements reclassified, 0 verdicts changed" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--targets", "/nonexistent.yaml"], "/nonexistent.yaml: no such file"),
        (["run", "--resolver", "not-an-ip"], "--resolver: 'not-an-ip' is not an IP address"),
        (["run", "--control-resolver", "ftp://x"], "--control-resolver: unknown scheme"),
        (["run", "--concurrency", "0"], "--concurrency"),
        (["run", "--only", "nosuch"], "--only: no target named 'nosuch'"),
        (["export", "--since", "yesterday"], "--since: 'yesterday' is not an ISO-8601"),
        (["export", "--db", "/nonexistent/x.db"], "/nonexistent/x.db: no such database"),
        (["export", "--format", "xml"], "'xml' is not one of"),
        (["run", "--fingerprints", "/nonexistent.csv"], "/nonexistent.csv: cannot read"),
    ],
)
def test_bad_input_one_line_exit_2(
    args: list[str],
    message: str,
    repo_root: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(repo_root)
    code, _out, err = run_cli(args, capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("probe: error: ") and message in err


def test_corrupt_database_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "bad.db"
    db.write_bytes(b"garbage" * 1000)
    code, _, err = run_cli(["export", "--db", str(db)], capsys)
    assert code == 2 and "bad.db: not a usable SQLite database" in err
    assert db.read_bytes() == b"garbage" * 1000


def test_bad_fingerprint_file(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    repo_root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(repo_root)
    fp = tmp_path / "fp.csv"
    fp.write_text("name,scope,location_found,pattern_type,pattern\nx,isp,body,glob,abc\n")
    code, _, err = run_cli(["run", "--fingerprints", str(fp)], capsys)
    assert code == 2 and "fp.csv:2: pattern_type: 'glob'" in err


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out = []
    for name, cmd in group.commands.items():
        out.append((f"{prefix}{name}", cmd))
        if isinstance(cmd, click.Group):
            out += _commands(cmd, f"{prefix}{name} ")
    return out


@pytest.mark.parametrize(("name", "cmd"), _commands(cli), ids=lambda x: str(x))
def test_every_command_has_help_with_example(name: str, cmd: click.Command) -> None:
    assert cmd.help, f"{name} has no help"
    if not isinstance(cmd, click.Group):
        assert "Example:" in cmd.help, f"{name} --help has no example"


def test_every_command_is_in_the_readme(repo_root: Path) -> None:
    readme = (repo_root / "README.md").read_text(encoding="utf-8")
    for name, cmd in _commands(cli):
        if not isinstance(cmd, click.Group):
            assert f"probe {name}" in readme, f"README does not document 'probe {name}'"


def test_python_dash_m_entry_point() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "probe", "--version"], capture_output=True, text=True, check=False
    )
    assert r.returncode == 0 and "probe" in r.stdout


# -- rough edges (issue 10) ----------------------------------------------------------------------
@pytest.mark.parametrize("group", [[], ["targets"], ["helper"]])
def test_bare_group_prints_its_help(group: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(group, capsys)
    code_help, out_help, _ = run_cli([*group, "--help"], capsys)
    assert (code, err) == (0, "") and out == out_help and code_help == 0
    assert out.startswith("Usage: probe") and out.count("\n") > 5
