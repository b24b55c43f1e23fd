"""Issue 21, the command line's own words: under ``probe --lang vi`` or ``LANG=vi_VN.UTF-8`` the
errors the CLI prints (its own checks, click's usage errors, the analyst's, the OONI importer's
and the helper's) are Vietnamese lines naming the same flag, file or value, exit status 2; under
``--lang en`` they are the English lines they always were. click's messages are translated from
probe's catalog: every msgid probe.cli lists for it must still be one of click's own strings."""

from __future__ import annotations

import ast
import gzip
import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from probe import cli
from probe import words as V
from probe.store import Store

VI_MARKS = re.compile("[ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ]", re.I)
EN_PREFIX = "probe: error: "
VI_PREFIX = "probe: lỗi: "


@pytest.fixture(autouse=True)
def english_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.chdir(Path(__file__).parent)  # no targets.yaml or settings of the checkout's
    yield


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _error(err: str, prefix: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, err
    return lines[0].removeprefix(prefix)


def _vi(argv: list[str], how: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``argv`` asking for Vietnamese ``how``: by ``--lang vi`` or by the environment."""
    if how == "env":
        monkeypatch.setenv("LANG", "vi_VN.UTF-8")
        return argv
    return ["--lang", "vi", *argv]


# -- click's own usage errors ------------------------------------------------------------------
TOKEN = Path(__file__)  # an existing file, for the flags that need one
USAGE = [
    # argv, the English line (pinned), a Vietnamese piece of the translated one
    (["run", "--bogus"], "No such option '--bogus'.", "Không có tùy chọn '--bogus'."),
    (["--bogus", "status"], "No such option '--bogus'.", "Không có tùy chọn '--bogus'."),
    (
        ["run", "--quie"],
        "No such option '--quie'. Did you mean '--quiet'?",
        "Có phải ý bạn là '--quiet'?",
    ),
    (
        ["targets", "import"],
        "Missing argument 'CSV_PATH'.",
        "Thiếu đối số 'CSV_PATH'.",
    ),
    (
        ["import", "x.jsonl"],
        "Missing option '--format'. Choose from: \tooni",
        "Thiếu tùy chọn '--format'. Hãy chọn một trong: \tooni",
    ),
    (
        ["events", "--format", "xml"],
        "Invalid value for '--format': 'xml' is not one of 'table', 'jsonl'.",
        "Giá trị không hợp lệ cho '--format': 'xml' không phải là một trong 'table', 'jsonl'.",
    ),
    (
        ["--lang", "fr", "status"],
        "Invalid value for '--lang': 'fr' is not one of 'en', 'vi'.",
        "'fr' không phải là một trong 'en', 'vi'.",
    ),
    (["nosuchcommand"], "No such command 'nosuchcommand'.", "Không có lệnh 'nosuchcommand'."),
    (
        ["statu"],
        "No such command 'statu'. Did you mean 'status'?",
        "Không có lệnh 'statu'. Có phải ý bạn là 'status'?",
    ),
    (
        ["targets", "check", "a.yaml", "b.yaml"],
        "Got unexpected extra argument (b.yaml)",
        "Thừa đối số (b.yaml)",
    ),
    (
        ["targets", "check", "a.yaml", "b.yaml", "c.yaml"],
        "Got unexpected extra arguments (b.yaml c.yaml)",
        "Thừa đối số (b.yaml c.yaml)",
    ),
    (["status", "--db"], "Option '--db' requires an argument.", "Tùy chọn '--db' cần 1 đối số."),
    (
        ["run", "--quiet=yes"],
        "Option '--quiet' does not take a value.",
        "Tùy chọn '--quiet' không nhận giá trị.",
    ),
    (
        ["helper", "serve", "--max-in-flight", "many"],
        "Invalid value for '--max-in-flight': 'many' is not a valid integer range.",
        "'many' không phải là số hợp lệ (integer range).",
    ),
    (
        ["helper", "serve", "--max-in-flight", "0"],
        "Invalid value for '--max-in-flight': 0 is not in the range 1<=x<=4096.",
        "0 nằm ngoài khoảng 1<=x<=4096.",
    ),
    (
        ["helper", "serve", "--token-file", "/nonexistent/token"],
        "Invalid value for '--token-file': File '/nonexistent/token' does not exist.",
        "Tệp '/nonexistent/token' không tồn tại.",
    ),
    (
        ["helper", "serve", "--token-file", str(TOKEN.parent)],
        f"Invalid value for '--token-file': File '{TOKEN.parent}' is a directory.",
        f"Tệp '{TOKEN.parent}' là một thư mục.",
    ),
]


@pytest.mark.parametrize(("argv", "english", "vietnamese"), USAGE)
@pytest.mark.parametrize("how", ["flag", "env"])
def test_click_usage_errors_are_vietnamese(
    argv: list[str],
    english: str,
    vietnamese: str,
    how: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, _, err = _run(_vi(argv, how, monkeypatch), capsys)
    line = _error(err, VI_PREFIX)
    assert code == 2
    assert vietnamese in line and VI_MARKS.search(line), line
    assert line != english


@pytest.mark.parametrize(("argv", "english", "vietnamese"), USAGE)
@pytest.mark.parametrize("how", ["default", "flag", "flag over a Vietnamese environment"])
def test_click_usage_errors_stay_english(
    argv: list[str],
    english: str,
    vietnamese: str,
    how: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if how != "default":
        if "--lang" in argv:
            pytest.skip("the bad --lang is the error itself")
        argv = ["--lang", "en", *argv]
    if how.endswith("environment"):
        monkeypatch.setenv("LANG", "vi_VN.UTF-8")
    code, _, err = _run(argv, capsys)
    assert code == 2 and _error(err, EN_PREFIX) == english


def test_the_environment_and_text_domain_are_restored(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import gettext
    import os

    before = gettext.textdomain()
    _run(["--lang", "vi", "run", "--bogus"], capsys)
    assert gettext.textdomain() == before and "LANGUAGE" not in os.environ
    monkeypatch.setenv("LANGUAGE", "fr")
    _run(["--lang", "vi", "run", "--bogus"], capsys)
    assert os.environ["LANGUAGE"] == "fr"


def _click_strings() -> set[str]:
    found: set[str] = set()
    for source in Path(click.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.add(node.value)
    return found


def test_every_click_message_probe_translates_is_still_clicks() -> None:
    """A click upgrade that rewords a message is noticed here: its old msgid would translate
    nothing, and the usage error would be English again."""
    strings = _click_strings()
    listed = [msgid for ids in cli.click_messages() for msgid in ids]
    assert len(listed) >= 20
    gone = [msgid for msgid in listed if msgid not in strings]
    assert not gone, f"click no longer says these (update probe.cli.click_messages): {gone}"
    vi = V.translator("vi")
    for ids in cli.click_messages():
        if len(ids) == 1:
            assert vi.gettext(ids[0]) != ids[0], ids
        else:
            assert vi.ngettext(ids[0], ids[1], 1) != ids[0], ids


# -- the CLI's own checks and lines --------------------------------------------------------------
def _db(tmp_path: Path) -> str:
    path = tmp_path / "p.db"
    Store.open(str(path)).close()
    return str(path)


def _cases(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    """Each bad input: argv, and the English line (pinned)."""
    db = _db(tmp_path)
    gz = tmp_path / "broken.jsonl.gz"
    whole = gzip.compress(b"".join(b'{"n": %d, "pad": "%x"}\n' % (i, i**7) for i in range(500)))
    gz.write_bytes(whole[: len(whole) // 2])
    asn = tmp_path / "asn.tsv"
    asn.write_text("1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET\nnot a line\n")
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    no = tmp_path / "no"
    return {
        "json and format": (
            ["events", "--db", db, "--json", "--format", "jsonl"],
            "--json and --format jsonl: choose one",
        ),
        "listen": (["helper", "serve", "--listen", "here"], "--listen: 'here' is not ADDR:PORT"),
        "listen address": (
            ["helper", "serve", "--listen", "nowhere:80"],
            "--listen/--allow-network: 'nowhere' does not appear to be an IPv4 or IPv6 address",
        ),
        "tls pair": (
            ["helper", "serve", "--tls-cert", str(cert)],
            "--tls-cert and --tls-key go together",
        ),
        "asn line": (
            ["helper", "serve", "--asn-db", str(asn)],
            f"{asn}:2: expected range_start, range_end, AS number, country and description, "
            "separated by tabs (the iptoasn format)",
        ),
        "import no file": (
            ["import", "--format", "ooni", "--db", db, str(no / "x.jsonl")],
            f"{no / 'x.jsonl'}: no such file",
        ),
        "import cannot read": (
            ["import", "--format", "ooni", "--db", db, str(gz)],
            f"{gz}: cannot read (Compressed file ended before the end-of-stream marker was "
            "reached)",
        ),
        "export excel": (
            ["export", "--db", db, "--excel"],
            "--excel goes with --format csv",
        ),
        "export parquet": (
            ["export", "--db", db, "--format", "parquet"],
            "--format parquet writes a folder: give -o DIR",
        ),
        "export since": (
            ["export", "--db", db, "--since", "yesterday"],
            "--since: 'yesterday' is not an ISO-8601 date or time",
        ),
        "export folder": (
            ["export", "--db", db, "-o", str(no / "x.csv")],
            f"{no}: no such folder (for -o {no / 'x.csv'})",
        ),
        "export is a folder": (
            ["export", "--db", db, "-o", str(tmp_path)],
            f"{tmp_path}: is a folder",
        ),
        "network": (
            ["export", "--db", db, "--network", "mobifone"],
            "--network: 'mobifone' is neither an AS number (AS7552, as7552 or 7552) nor a "
            "resolver (udp://IP:PORT, tls://IP:PORT, https://HOST/PATH)",
        ),
        "merge folder": (
            ["merge", db, "-o", str(no / "m.db")],
            f"{no}: no such folder (for -o {no / 'm.db'})",
        ),
        "merge itself": (["merge", db, "-o", db], f"{db}: is the output itself"),
    }


CASES = list(_cases(Path("/tmp/unused")))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("how", ["flag", "env"])
def test_cli_errors_are_vietnamese(
    case: str,
    how: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv, english = _cases(tmp_path)[case]
    code, _, err = _run(["--lang", "en", *argv], capsys)
    assert (code, _error(err, EN_PREFIX)) == (2, english)
    code, _, err = _run(_vi(argv, how, monkeypatch), capsys)
    line = _error(err, VI_PREFIX)
    assert code == 2 and line != english and VI_MARKS.search(line), line
    for data in re.findall(r"'[^']*'|/\S+|--[a-z-]+", english):  # the values, files and flags
        assert data.strip(")") in line, (data, line)


def test_counts_and_lines_are_vietnamese(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    csv = Path(__file__).parent / "fixtures" / "test-lists" / "vn.csv"
    code, _, err = _run(["--lang", "en", "targets", "import", str(csv)], capsys)
    assert code == 0 and re.search(r"^\d+ entries from .*vn\.csv, 0 duplicates skipped$", err, re.M)
    code, _, err = _run(["--lang", "vi", "targets", "import", str(csv)], capsys)
    assert code == 0 and str(csv) in err and VI_MARKS.search(err) and "entries" not in err
    db = _db(tmp_path)
    code, _, err = _run(["--lang", "en", "export", "--db", db, "-o", str(tmp_path / "a")], capsys)
    assert code == 0 and err == "0 measurements exported\n"
    code, _, err = _run(["--lang", "vi", "export", "--db", db, "-o", str(tmp_path / "b")], capsys)
    assert code == 0 and err == "Đã xuất 0 phép đo\n"
    code, out, _ = _run(["--lang", "en", "reclassify", "--db", db], capsys)
    assert code == 0 and out == "0 measurements reclassified, 0 verdicts changed\n"
    code, out, _ = _run(["--lang", "vi", "reclassify", "--db", db], capsys)
    assert code == 0 and VI_MARKS.search(out) and "reclassified" not in out
    targets = Path(__file__).parent.parent / "probe" / "data" / "targets.yaml"
    code, out, _ = _run(["--lang", "en", "targets", "check", str(targets)], capsys)
    assert code == 0 and re.fullmatch(rf"{targets}: \d+ targets, \d+ controls: OK\n", out)
    code, out, _ = _run(["--lang", "vi", "targets", "check", str(targets)], capsys)
    assert code == 0 and str(targets) in out and VI_MARKS.search(out) and "targets," not in out
