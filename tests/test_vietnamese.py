"""A volunteer in Vietnam: under ``LANG=vi_VN.UTF-8`` (or ``probe --lang vi``) ``probe init``,
``run``, ``status`` and errors are Vietnamese, plural forms are right in English, and the consent
text is wrapped to the terminal's width without breaking a word."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from probe import words as V
from probe.config.init import CONSENT, consent
from tests.runs import run_args, run_fresh
from tests.world import World

VI_MARKS = re.compile("[ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ]", re.I)


@pytest.fixture
def vi(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "vi_VN.UTF-8")


@pytest.fixture
def en(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")


def _vietnamese(text: str) -> bool:
    return len(VI_MARKS.findall(text)) > 5


@pytest.mark.usefixtures("vi")
def test_init_is_vietnamese(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "s.toml"
    db = str(tmp_path / "data" / "p.db")  # init makes its key beside it
    code, out, err = run_fresh(["init", "--config", str(cfg), "--db", db, "--yes"], capsys)
    assert code == 0, err
    assert "probe đo xem mạng của bạn" in out and "Đã ghi cài đặt vào" in out
    assert "What it does" not in out and "Settings written" not in out
    assert _vietnamese(out)


@pytest.mark.usefixtures("vi")
def test_a_typical_error_is_vietnamese(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_fresh(["status", "--db", str(tmp_path / "none.db")], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("probe: lỗi: --db: ")
    assert "không có tệp" in err, err
    cfg = tmp_path / "s.toml"
    cfg.write_text("")
    code, _, err = run_fresh(["init", "--config", str(cfg), "--yes"], capsys)
    assert code == 2 and "đã có một tệp cài đặt" in err and err.startswith("probe: lỗi: ")


def test_lang_flag_overrides_the_environment(
    en: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "none.db")
    code, _, err = run_fresh(["--lang", "vi", "status", "--db", missing], capsys)
    assert code == 2 and err.startswith("probe: lỗi: ")
    code, _, err = run_fresh(["status", "--db", missing], capsys)
    assert code == 2 and err.startswith("probe: error: --db: ") and "no such file" in err
    code, _, err = run_fresh(["--lang", "fr", "status"], capsys)
    assert code == 2 and "--lang" in err


def test_lang_flag_wins_over_lang_vi(
    vi: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_fresh(["--lang", "en", "status", "--db", str(tmp_path / "x.db")], capsys)
    assert code == 2 and err.startswith("probe: error: --db: ") and "no such file" in err


def _targets(tmp_path: Path, world: World) -> Path:
    t = tmp_path / "t.yaml"
    t.write_text(
        f"targets:\n  - name: news\n    url: {world.http('news.test')}\n"
        f"  - name: blocked\n    url: {world.http('blocked.test')}\n"
        f"controls:\n  - name: ctl\n    url: {world.http('news.test')}\n"
    )
    return t


@pytest.mark.usefixtures("vi")
def test_run_and_status_are_vietnamese(
    tmp_path: Path,
    world: World,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    db = tmp_path / "p.db"
    args = [a for a in run_args(world, _targets(tmp_path, world), db) if a != "--quiet"]
    code, out, err = run_fresh(args, capsys)
    assert code == 0, err
    assert "trang web" in out and "kết luận" in out and "(đối chứng)" in out, out
    assert "mạng ổn" in out, out
    assert f"3 phép đo đã lưu vào {db}" in err, err
    assert "measurements stored" not in err and "verdict" not in out
    code, out, err = run_fresh(["status", "--db", str(db)], capsys)
    assert code == 3, err
    assert "trình nền   không chạy" in out, out
    assert "đã đo" in out and "không giới hạn hằng tháng" in out, out
    assert "health" not in out and "measured" not in out
    assert _vietnamese(out)


@pytest.mark.usefixtures("en")
def test_english_counts_have_their_singular(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    t = tmp_path / "one.yaml"
    t.write_text(f"targets:\n  - name: news\n    url: {world.http('news.test')}\ncontrols: []\n")
    db = tmp_path / "p.db"
    code, _, err = run_fresh(run_args(world, t, db), capsys)
    assert code == 0, err
    assert f"1 measurement stored in {db}" in err, err
    code, out, _ = run_fresh(["status", "--db", str(db)], capsys)
    assert "measured   1 today, 1 in total" in out, out
    assert "1 measurements" not in out + err


# -- the consent text, wrapped to the terminal -------------------------------------------------
def _words(text: str) -> list[str]:
    return text.split()


@pytest.mark.parametrize("lang", ["en", "vi"])
@pytest.mark.parametrize("width", [80, 60, 40])
def test_consent_wraps_without_breaking_a_word(lang: str, width: int) -> None:
    db, config = "/home/v/.local/share/probe/probe.db", "/home/v/.config/probe/settings.toml"
    text = consent(db, config, lang=lang, width=width)
    t = V.translator(lang).gettext
    whole = " ".join(t(p).format(db=db, config=config) for p in CONSENT)
    assert _words(text) == _words(whole)  # same words, in order: none split, none lost
    for line in text.splitlines():
        # a word longer than the width (a long path) stands alone; nothing else overflows
        assert len(line) <= width or len(line.split()) == 1 or line.strip().startswith("- "), line
        assert len(line) <= width or len(line.split()[-1]) > width - 6, line


@pytest.mark.parametrize("columns", [80, 60])
def test_init_wraps_to_the_terminal(
    vi: None,
    columns: int,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.chdir(tmp_path)  # p.db, and the key init makes beside it, are here
    short = tmp_path / "c"
    code, out, err = run_fresh(["init", "--config", str(short), "--db", "p.db", "--yes"], capsys)
    assert code == 0, err
    text = out.split("Đã ghi cài đặt")[0]  # the consent text, before what was written
    assert "probe wipe" in text
    long_lines = [line for line in text.splitlines() if len(line) > columns]
    assert all(len(line.split()) == 1 for line in long_lines), long_lines
    assert max(len(line) for line in text.splitlines()) > columns - 15  # it uses the width


def test_the_readme_links_the_vietnamese_quick_start() -> None:
    from tests.paths import REPO

    head = (REPO / "README.md").read_text(encoding="utf-8").split("---")[0]
    assert "(docs/vi/quick-start.md)" in head
    quick = (REPO / "docs" / "vi" / "quick-start.md").read_text(encoding="utf-8")
    assert _vietnamese(quick) and "probe --lang vi status" in quick and "probe init" in quick
