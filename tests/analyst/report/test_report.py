"""probe report: one self-contained HTML file, opened in a real headless Chromium (Debian's,
installed by scripts/check) with no network: it renders, every plot is there and not blank
(screenshot pixels), and the evidence for every anomaly is in the page text."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from probe.classify import RULES_VERSION
from probe.cli import main
from tests.dbs import report_fleet, scenario

Image = pytest.importorskip("PIL.Image")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]
PLOTS = ("timeline", "throughput", "dns")


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("report")
    db = report_fleet(tmp / "fleet.db")
    out = {}
    for lang in ("en", "vi"):
        out[lang] = tmp / f"report-{lang}.html"
        args = ["report", "--db", str(db), "-o", str(out[lang]), "--lang", lang]
        assert main([*args, "--png", str(tmp / "png-vi")] if lang == "vi" else args) == 0
    return out


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Debian's Chromium, headless, a fresh profile, in a network namespace of its own when
    root (nothing to connect to at all); the page's own CSP forbids requests anyway."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: scripts/check installs Debian's chromium")
        pytest.skip("Debian's chromium is not installed (scripts/check installs it)")
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args]
    if os.geteuid() == 0 and shutil.which("unshare"):
        cmd = ["unshare", "--net", "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)


def test_the_report_asks_the_network_for_nothing(reports: dict[str, Path]) -> None:
    page = reports["en"].read_text(encoding="utf-8")
    assert "default-src 'none'" in page  # the browser refuses any request the page might make
    assert not re.search(r"""(src|href|srcset|action)\s*=\s*["'](?!#|data:)""", page, re.I)
    assert not re.search(r"url\((?!#)", page)  # only the SVGs' own #clip-path references
    assert "@import" not in page and "<script" not in page
    for plot in PLOTS:
        assert re.search(rf'<figure id="plot-{plot}"><svg', page), plot


def test_chromium_renders_the_report_with_the_evidence(
    reports: dict[str, Path], tmp_path: Path
) -> None:
    r = chromium(tmp_path, "--dump-dom", reports["en"].as_uri())
    assert r.returncode == 0, r.stderr[-2000:]
    dom = r.stdout
    for plot in PLOTS:
        assert re.search(rf'<figure id="plot-{plot}"><svg', dom), f"{plot} missing from the DOM"
    text = re.sub(r"<[^>]+>", " ", re.sub(r"<svg.*?</svg>", "", dom, flags=re.S))
    text = re.sub(r"\s+", " ", text).replace("&#x27;", "'").replace("&amp;", "&")
    # Addresses and ports as the goldens recorded them, and the rules as they are now.
    nx = scenario("dns_nxdomain")["observations"]["dns"]
    control_resolver = next(q["resolver_address"] for q in nx if q["resolver"] == "control")
    (tls,) = scenario("tls_reset_on_sni")["observations"]["tls"]
    for evidence in (
        "gave no address for nxblocked.test: the name does not exist (NXDOMAIN)",
        f"The control resolver ({control_resolver}) answered 127.0.0.10",
        f"The TLS handshake with tls-reset.test at 127.0.0.30:{tls['port']} failed: "
        "the connection was reset (RST) (connection_reset)",
        f"Decided by rule dns.failure (rules {RULES_VERSION})",
        f"Decided by rule http.failure (rules {RULES_VERSION})",
        "No test helper was asked",
        "Throughput was 11% of a control site's measured at the same moment",
        "20261101T020000Z_AS7552_rfa-vietnamese",
        "rfa-vietnamese: blocked (dns)",
        "facebook: anomaly (tls/http failure)",
        "facebook: throttled",
        "Period: 2026-11-01 – 2026-11-03",
    ):
        assert evidence in text, evidence
    shot = tmp_path / "report.png"
    r = chromium(
        tmp_path, f"--screenshot={shot}", "--window-size=1000,1600", reports["en"].as_uri()
    )
    assert r.returncode == 0 and shot.exists(), r.stderr[-2000:]
    img = Image.open(shot).convert("RGB")
    assert len(img.getcolors(1 << 20) or []) > 200  # text, tables and plots: not a blank page


def test_every_plot_is_drawn_and_not_blank(reports: dict[str, Path], tmp_path: Path) -> None:
    """Each plot of the report, in a box of its own on one page: Chromium's screenshot of each
    box must hold a drawing (many colours, a good share of non-white pixels)."""
    page = reports["vi"].read_text(encoding="utf-8")
    style = re.search(r"<style>.*?</style>", page, re.S)
    assert style is not None
    box = 900
    figures = []
    for plot in PLOTS:
        m = re.search(rf'<figure id="plot-{plot}">(<svg.*?</svg>)', page, re.S)
        assert m is not None, plot
        figures.append(
            f'<div style="height:{box}px;width:1000px;overflow:hidden;margin:0">{m.group(1)}</div>'
        )
    sheet = tmp_path / "plots.html"
    sheet.write_text(
        f'<!doctype html><html><head><meta charset="utf-8">{style.group(0)}'
        "<style>body{margin:0;max-width:none;padding:0}svg{width:1000px;height:auto}</style>"
        f"</head><body>{''.join(figures)}</body></html>",
        encoding="utf-8",
    )
    shot = tmp_path / "plots.png"
    size = f"--window-size=1000,{box * len(PLOTS)}"
    r = chromium(tmp_path, f"--screenshot={shot}", size, sheet.as_uri())
    assert r.returncode == 0 and shot.exists(), r.stderr[-2000:]
    img = Image.open(shot).convert("RGB")
    for i, plot in enumerate(PLOTS):
        band = img.crop((0, i * box, 1000, (i + 1) * box))
        colours = band.getcolors(1 << 20) or []
        inked = sum(n for n, c in colours if sum(c) < 3 * 235)
        assert len(colours) > 50, f"{plot}: blank ({len(colours)} colours)"
        assert inked > 0.03 * 1000 * 200, f"{plot}: almost nothing drawn ({inked} pixels)"


def test_vietnamese_labels_and_png(reports: dict[str, Path]) -> None:
    page = reports["vi"].read_text(encoding="utf-8")
    for words in ("Báo cáo can thiệp mạng", "bị chặn (DNS)", "Bằng chứng cho từng bất thường"):
        assert words in page
    assert "tên miền không tồn tại (NXDOMAIN)" in page and 'lang="vi"' in page
    pngs = sorted((reports["vi"].parent / "png-vi").glob("*.png"))
    assert [p.name for p in pngs] == ["dns.png", "throughput.png", "timeline.png"]
    for p in pngs:
        img = Image.open(p)
        assert img.size[0] >= 1000 and len(img.convert("RGB").getcolors(1 << 20) or []) > 50


def test_filters_and_an_empty_report(
    reports: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = reports["en"].parent / "fleet.db"
    out = tmp_path / "r.html"
    code, _, err = _run(
        [
            "report",
            "--db",
            str(db),
            "-o",
            str(out),
            "--target",
            "wikipedia",
            "--since",
            "2026-11-02",
        ],
        capsys,
    )
    assert code == 0 and "16 measurements, 0 kinds of anomaly" in err
    assert "No anomaly in this period." in out.read_text(encoding="utf-8")
    code, _, err = _run(
        ["report", "--db", str(db), "-o", str(out), "--since", "2030-01-01"], capsys
    )
    page = out.read_text(encoding="utf-8")
    assert (
        code == 0 and "No measurements match." in page and "No measurements in this period" in page
    )


def test_without_the_analyst_extra_it_says_how_to_get_it(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "sys.modules['matplotlib'] = None\n"  # as on a volunteer's Pi: not installed
        "from probe.cli import main\n"
        f"sys.exit(main(['report', '--db', {str(tmp_path / 'x.db')!r}, '-o', 'r.html']))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.returncode == 2
    from probe.config.options import install_advice  # this checkout's way (issue 21)

    assert r.stderr == (
        "probe: error: probe report needs the analyst extra: "
        f"{install_advice('analyst')} (no matplotlib)\n"
    )


def test_a_skipped_throughput_test_is_no_ratio_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A test skipped (no object without a helper, a data cap) is stored with ``analysis``
    null: the report leaves it out of the throughput plot and goes on."""
    from probe.model import Plan, ThroughputRecord
    from probe.store import Store
    from tests.dbs import measurement

    db = tmp_path / "skipped.db"
    store = Store.open(db)
    for i, why in enumerate(("no_object", "data_cap")):
        m = measurement("success_https", f"20261101T0{i}0000Z_x", target=f"site{i}")
        store.save(
            replace(m, throughput=ThroughputRecord(skipped=why, plan=Plan.profile("default")))
        )
    store.close()
    out = tmp_path / "r.html"
    code, _, err = _run(["report", "--db", str(db), "-o", str(out)], capsys)
    assert code == 0, err
    assert "2 measurements" in err


@pytest.mark.parametrize(
    ("args", "env"),
    [(["--lang", "vi", "report"], {}), (["report"], {"LANG": "vi_VN.UTF-8", "LANGUAGE": ""})],
    ids=["global-lang", "LANG"],
)
def test_the_report_follows_the_invocations_language(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str]
) -> None:
    """``probe --lang vi report`` (or LANG=vi_VN.UTF-8) writes the Vietnamese report, as every
    other command speaks Vietnamese then; ``report --lang en`` still wins."""
    for k in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    db = report_fleet(tmp_path / "fleet.db")
    out = tmp_path / "r.html"
    assert main([*args, "--db", str(db), "-o", str(out)]) == 0
    assert 'lang="vi"' in out.read_text()
    assert main([*args, "--db", str(db), "-o", str(out), "--lang", "en"]) == 0
    assert 'lang="en"' in out.read_text()
