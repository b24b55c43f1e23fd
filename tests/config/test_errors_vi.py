"""Issue 21: a volunteer's mistakes in the configuration layer (a settings file, a flag, a target
list, a Citizen Lab CSV) come out in Vietnamese under ``probe --lang vi``, still naming the file,
line and field, and the English line is unchanged under ``--lang en``.

Each case runs the real CLI twice on the same bad input: in English it must print today's line,
byte for byte; in Vietnamese the same file, line and field, in Vietnamese words. Where the words
of a line come from a parser outside the configuration layer (a URL's or an address's), the
Vietnamese line must carry that parser's own error as its translation says it, not its English
text (:func:`test_a_nested_parser_error_stays_translatable`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from probe.config.targets import read_targets
from probe.errors import ProbeError, TargetsError
from probe.urls import check_url
from probe.words import translator
from tests.runs import run_fresh

VI_MARKS = re.compile("[ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ]", re.I)
VI_ERROR = "probe: lỗi: "
EN_ERROR = "probe: error: "


def _vi_words(text: str) -> int:
    return len(VI_MARKS.findall(text))


def _settings_file(tmp_path: Path, text: str) -> Path:
    cfg = tmp_path / "settings.toml"
    cfg.write_text(text)
    return cfg


def _both(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[tuple[int, str], tuple[int, str]]:
    en = run_fresh(["--lang", "en", *args], capsys)
    vi = run_fresh(["--lang", "vi", *args], capsys)
    return (en[0], en[2]), (vi[0], vi[2])


def _check_pair(
    args: list[str],
    english: str,
    names: list[str],
    capsys: pytest.CaptureFixture[str],
) -> str:
    """The English line byte for byte, and a Vietnamese one naming the same ``names``."""
    (en_code, en_err), (vi_code, vi_err) = _both(args, capsys)
    assert en_code == 2 and en_err == EN_ERROR + english + "\n", en_err
    assert vi_code == 2 and vi_err.count("\n") == 1 and vi_err.startswith(VI_ERROR), vi_err
    vi_line = vi_err.removeprefix(VI_ERROR).rstrip("\n")
    for name in names:
        assert name in vi_line, (name, vi_line)
    assert _vi_words(vi_line) >= 2, vi_line
    # No English phrase of the message is left: the words, without the names and values.
    words = english
    for name in names:
        words = words.replace(name, " ")
    for phrase in re.findall(r"[a-z]+(?: [a-z]+){2,}", words):
        assert phrase not in vi_line, (phrase, vi_line)
    return vi_line


# -- settings: a file, a flag ------------------------------------------------------------------
SETTINGS_FILES = [
    pytest.param(
        'colour = "red"\n',
        "{cfg}: colour: unknown setting (see 'probe config')",
        ["colour", "probe config"],
        id="unknown-key",
    ),
    pytest.param(
        'max_bytes_per_day = "lots"\n',
        "{cfg}: max_bytes_per_day: 'lots' is not a size (e.g. 500000000, 500M, 1G)",
        ["max_bytes_per_day", "'lots'", "500M"],
        id="bad-size",
    ),
    pytest.param(
        'interval = "soon"\n',
        "{cfg}: interval: 'soon' is not a duration (e.g. 90s, 45m, 6h, 1d)",
        ["interval", "'soon'", "45m"],
        id="bad-duration",
    ),
    pytest.param(
        'interval = "0s"\n',
        "{cfg}: interval: '0s' is not a duration between 1 ms and a year",
        ["interval", "'0s'"],
        id="duration-out-of-range",
    ),
    pytest.param(
        'allow_loopback = "maybe"\n',
        "{cfg}: allow_loopback: 'maybe' is not true or false",
        ["allow_loopback", "'maybe'"],
        id="bad-bool",
    ),
    pytest.param(
        "concurrency = 0\n",
        "{cfg}: concurrency: 0 is not a whole number from 1 to 256",
        ["concurrency", "0", "256"],
        id="bad-int",
    ),
    pytest.param(
        'timeout = "soon"\n',
        "{cfg}: timeout: 'soon' is not a number from 0.1 to 300",
        ["timeout", "'soon'", "0.1", "300"],
        id="bad-number",
    ),
    pytest.param(
        'asn = "ASX"\n',
        "{cfg}: asn: 'ASX' is not an AS number (e.g. AS7552)",
        ["asn", "'ASX'", "AS7552"],
        id="bad-asn",
    ),
    pytest.param(
        'cc = "VNM"\n',
        "{cfg}: cc: 'VNM' is not a two-letter country code (e.g. VN)",
        ["cc", "'VNM'"],
        id="bad-cc",
    ),
    pytest.param(
        'log_format = "xml"\n',
        "{cfg}: log_format: 'xml' is not one of text, json",
        ["log_format", "'xml'", "text, json"],
        id="bad-choice",
    ),
]


@pytest.mark.parametrize(("text", "english", "names"), SETTINGS_FILES)
def test_a_bad_settings_file_is_vietnamese(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, english: str, names: list[str]
) -> None:
    cfg = _settings_file(tmp_path, text)
    _check_pair(
        ["config", "--config", str(cfg)], english.format(cfg=cfg), [str(cfg), *names], capsys
    )


def test_a_missing_settings_file_is_vietnamese(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "nowhere.toml"
    english = f"{cfg}: no such settings file"
    _check_pair(["config", "--config", str(cfg)], english, [str(cfg)], capsys)


def test_a_private_token_file_is_asked_for_in_vietnamese(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = tmp_path / "token"
    token.write_text("secret\n")
    token.chmod(0o644)
    english = (
        f"--helper-token-file: {token}: the helper's token is open to others (mode 0644); make it "
        f"private: chmod 600 {token}"
    )
    args = ["config", "--helper-token-file", str(token)]
    _check_pair(args, english, ["--helper-token-file", str(token), "0644", "chmod 600"], capsys)


FLAGS = [
    pytest.param(
        ["--profile", "fast"],
        "--profile: 'fast' is not one of default, mobile",
        ["--profile", "'fast'", "default, mobile"],
        id="profile",
    ),
    pytest.param(
        ["--max-bytes-per-day", "lots"],
        "--max-bytes-per-day: 'lots' is not a size (e.g. 500000000, 500M, 1G)",
        ["--max-bytes-per-day", "'lots'"],
        id="size-flag",
    ),
    pytest.param(
        ["--resolver", "ftp://1.1.1.1"],
        "--resolver: unknown scheme in 'ftp://1.1.1.1' (udp://, tls://, https://)",
        ["--resolver", "'ftp://1.1.1.1'", "udp://, tls://, https://"],
        id="resolver-scheme",
    ),
    pytest.param(
        ["--resolver", "http://1.1.1.1/dns-query"],
        "--resolver: DoH needs https://, not 'http://1.1.1.1/dns-query'",
        ["--resolver", "https://", "'http://1.1.1.1/dns-query'"],
        id="resolver-http",
    ),
    pytest.param(
        ["--control-resolver", "tls://bad_name!@1.1.1.1"],
        "--control-resolver: 'bad_name!' is not a host name (tls://NAME@IP)",
        ["--control-resolver", "'bad_name!'", "tls://NAME@IP"],
        id="resolver-tls-name",
    ),
    pytest.param(
        ["--control-resolver", "https:///dns-query"],
        "--control-resolver: no host in 'https:///dns-query'",
        ["--control-resolver", "'https:///dns-query'"],
        id="resolver-doh-no-host",
    ),
]


@pytest.mark.parametrize(("flags", "english", "names"), FLAGS)
def test_a_bad_flag_is_vietnamese(
    capsys: pytest.CaptureFixture[str], flags: list[str], english: str, names: list[str]
) -> None:
    _check_pair(["config", *flags], english, names, capsys)


def test_a_bad_resolver_keeps_its_address_error_translatable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--resolver tls://``: the words are the address parser's (probe.addr); the line is
    that parser's error through the catalog, after the flag, and the same in English."""
    from probe import addr

    with pytest.raises(addr.AddressError) as info:
        addr.split_ip_port("", 853)
    (en_code, en_err), (vi_code, vi_err) = _both(["config", "--resolver", "tls://"], capsys)
    assert en_code == 2 and en_err == f"{EN_ERROR}--resolver: {info.value}\n", en_err
    vi = translator("vi").gettext
    shown = info.value.translated(vi) if isinstance(info.value, ProbeError) else str(info.value)
    assert vi_code == 2 and vi_err == f"{VI_ERROR}--resolver: {shown}\n", vi_err


# -- target lists ------------------------------------------------------------------------------
def _targets(tmp_path: Path, text: str) -> Path:
    t = tmp_path / "t.yaml"
    t.write_text(text)
    return t


TARGET_FILES = [
    pytest.param(
        "targets:\n  - name: a\n    url: https://a.example/: b\n",
        "{t}:3: mapping values are not allowed in this context",
        ["{t}:3"],
        id="bad-yaml-mapping",
    ),
    pytest.param(
        "targets:\n\t- name: a\n",
        "{t}:2: found character that cannot start any token",
        ["{t}:2"],
        id="bad-yaml-tab",
    ),
    pytest.param(
        "targets:\n  - name: 'a\n",
        "{t}:3: found unexpected end of stream",
        ["{t}:3"],
        id="bad-yaml-quote",
    ),
    pytest.param(
        "targets:\n  - name: a\n   url: b\n",
        "{t}:3: did not find expected '-' indicator",
        ["{t}:3", "'-'"],
        id="bad-yaml-indent",
    ),
    pytest.param(
        "sites:\n  - name: a\n",
        "{t}: unknown top-level key 'sites' (targets, controls, intervals)",
        ["{t}", "'sites'", "targets, controls, intervals"],
        id="unknown-top-level-key",
    ),
    pytest.param(
        "- a\n- b\n",
        "{t}: expected a mapping with 'targets:' and 'controls:' lists",
        ["{t}", "'targets:'", "'controls:'"],
        id="not-a-mapping",
    ),
    pytest.param(
        "targets: a\n",
        "{t}: 'targets:' must be a list",
        ["{t}", "'targets:'"],
        id="not-a-list",
    ),
    pytest.param(
        "targets: []\n",
        "{t}: 'targets:' is empty",
        ["{t}", "'targets:'"],
        id="empty",
    ),
    pytest.param(
        "targets:\n  - name: a\n    url: https://a.example/\n---\ntargets: []\n",
        "{t}: expected one YAML document, found more",
        ["{t}", "YAML"],
        id="two-documents",
    ),
    pytest.param(
        "intervals:\n  news: soon\ntargets:\n  - name: a\n    url: https://a.example/\n",
        "{t}:2: intervals.news: 'soon' is not a duration (e.g. 90s, 45m, 6h, 1d)",
        ["{t}:2", "intervals.news", "'soon'"],
        id="bad-intervals-entry",
    ),
    pytest.param(
        "intervals:\n  news: [1]\ntargets:\n  - name: a\n    url: https://a.example/\n",
        "{t}:2: intervals.news: not a duration (e.g. 45m, 6h, 90s)",
        ["{t}:2", "intervals.news"],
        id="intervals-entry-not-a-scalar",
    ),
    pytest.param(
        "intervals: 6h\ntargets:\n  - name: a\n    url: https://a.example/\n",
        "{t}:1: 'intervals:' must map tags to durations (news: 6h)",
        ["{t}:1", "'intervals:'", "news: 6h"],
        id="intervals-not-a-mapping",
    ),
]


@pytest.mark.parametrize(("text", "english", "names"), TARGET_FILES)
def test_an_unusable_targets_file_is_vietnamese(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, english: str, names: list[str]
) -> None:
    t = _targets(tmp_path, text)
    shown = [n.format(t=t) for n in names]
    _check_pair(["targets", "check", str(t)], english.format(t=t), shown, capsys)


def test_a_missing_targets_file_is_vietnamese(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t = tmp_path / "none.yaml"
    _check_pair(["targets", "check", str(t)], f"{t}: no such file", [str(t)], capsys)


def test_only_naming_no_target_is_vietnamese(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t = _targets(tmp_path, "targets:\n  - name: a\n    url: https://a.example/\ncontrols: []\n")
    args = ["run", "--targets", str(t), "--only", "zzz"]
    _check_pair(args, "--only: no target named 'zzz'", ["--only", "'zzz'"], capsys)


BROKEN = (
    "targets:\n"
    "  - name: good\n    url: https://good.example/\n"  # 2
    "  - name: bad name\n    url: https://b.example/\n"  # 4
    "  - name: c\n    url: https://c.example/\n    category: NOPE\n"  # 6
    "  - name: d\n    url: https://d.example/\n    colour: red\n"  # 9
    "  - name: e\n"  # 12
    "  - name: f\n    url: https://f.example/\n    interval: soon\n"  # 13
    "  - name: good\n    url: https://g.example/\n"  # 16
    "  - name: h\n    url: https://h.example/\n    is_control: true\n"  # 18
    "  - just a string\n"  # 21
    "  - name: 5\n    url: https://i.example/\n"  # 22
    "controls:\n  - name: ctl\n    url: https://ctl.example/\n"
)


def _broken_english(t: Path) -> list[str]:
    allowed = "name, url, category, throughput_url, tags, notes, interval, class"
    return [
        f"{t}:4: targets[1].name: must be 1-64 letters, digits, '.', '_' or '-', starting alnum",
        f"{t}:6: targets[2].category: unknown Citizen Lab category code 'NOPE'",
        f"{t}:9: targets[3].colour: unknown field (allowed: {allowed})",
        f"{t}:12: targets[4].url: missing (every entry needs name and url)",
        f"{t}:13: targets[5].interval: 'soon' is not a duration (e.g. 90s, 45m, 6h, 1d)",
        f"{t}:16: targets[6].name: 'good' is used twice (names must be unique)",
        f"{t}:18: targets[7].is_control: not a target field (use the 'controls:' list)",
        f"{t}:21: targets[8]: each entry must be a mapping with name and url",
        f"{t}:22: targets[9].name: Expected 'str', got 'int'",
    ]


def test_broken_entries_are_reported_in_vietnamese(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t = _targets(tmp_path, BROKEN)
    english = _broken_english(t)
    fail = f"{t}: 9 broken entries (1 targets and 1 controls usable)"
    (en_code, en_err), (vi_code, vi_err) = _both(["targets", "check", str(t)], capsys)
    assert en_code == 2
    assert en_err.splitlines() == [EN_ERROR + line for line in [*english, fail]], en_err
    assert vi_code == 2
    vi_lines = vi_err.splitlines()
    assert len(vi_lines) == len(english) + 1, vi_err
    places = [line.split(": ")[0] + ": " + line.split(": ")[1] for line in english] + [str(t)]
    for place, en_line, vi_line in zip(places, [*english, fail], vi_lines, strict=True):
        assert vi_line.startswith(VI_ERROR + place), (place, vi_line)
        assert vi_line != VI_ERROR + en_line, vi_line
        assert _vi_words(vi_line.removeprefix(VI_ERROR + place)) >= 2, vi_line
    assert f"{t}:6: targets[2].category:" in vi_err and "'NOPE'" in vi_err
    assert f"{t}:16: targets[6].name:" in vi_err and "'good'" in vi_err
    words = vi_err.replace(str(t), "")
    assert "broken entries" not in words and "unknown Citizen Lab" not in words


def test_more_broken_entries_than_listed_are_counted_in_vietnamese(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from probe.config import targets as targets_mod

    monkeypatch.setattr(targets_mod, "MAX_PROBLEMS", 2)
    t = _targets(tmp_path, BROKEN)
    (en_code, en_err), (vi_code, vi_err) = _both(["targets", "check", str(t)], capsys)
    assert en_code == vi_code == 2
    assert f"{EN_ERROR}{t}: 7 more\n" in en_err, en_err
    (more,) = [
        line
        for line in vi_err.splitlines()
        if line.startswith(f"{VI_ERROR}{t}: ") and " 7 " in line.removeprefix(VI_ERROR + str(t))
    ]
    assert _vi_words(more) >= 2 and "more" not in more.removeprefix(f"{VI_ERROR}{t}"), more


def test_a_bad_url_entry_carries_the_url_error(tmp_path: Path) -> None:
    """A broken entry's problem is kept as an error with fields (the URL's own error among
    them), so it is translated where it is shown; ``str()`` is the English line."""
    t = _targets(tmp_path, "targets:\n  - name: a\n    url: ftp://a.example/\n")
    (problem,) = read_targets(t).problems
    with pytest.raises(ValueError) as url_error:
        check_url("ftp://a.example/")
    assert str(problem) == f"{t}:2: targets[0].url: {url_error.value}"
    assert isinstance(problem, TargetsError)
    assert problem.fields.get("problem") is not None
    assert str(problem.fields["problem"]) == str(url_error.value)


def test_a_nested_parser_error_stays_translatable(tmp_path: Path) -> None:
    """The URL parser's error is a field of the entry's line, not its text: a catalog that
    knows both messages translates the whole line."""
    t = _targets(tmp_path, "targets:\n  - name: a\n    url: ftp://a.example/\n")
    (problem,) = read_targets(t).problems
    assert isinstance(problem, ProbeError)
    inner = problem.fields["problem"]
    assert isinstance(inner, ProbeError)
    catalog = {inner.template: "«" + inner.template + "»"}
    fake: Callable[[str], str] = lambda m: catalog.get(m, m)  # noqa: E731
    assert problem.translated(fake) == f"{t}:2: targets[0].url: «{inner}»"


# -- a Citizen Lab CSV -------------------------------------------------------------------------
def _csv(tmp_path: Path, rows: str) -> Path:
    c = tmp_path / "vn.csv"
    c.write_text("url,category_code,category_description,date_added,source,notes\n" + rows)
    return c


def test_an_unknown_category_code_is_vietnamese(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c = _csv(tmp_path, "https://a.example/,NEWS,,,,\nhttps://b.example/,NOPE,,,,\n")
    english = f"{c}:3: category_code: unknown code 'NOPE'"
    _check_pair(
        ["targets", "import", str(c)], english, [f"{c}:3", "category_code", "'NOPE'"], capsys
    )


def test_a_csv_without_a_url_column_is_vietnamese(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c = tmp_path / "vn.csv"
    c.write_text("address,category_code\nhttps://a.example/,NEWS\n")
    english = f"{c}:1: header must have a 'url' column (Citizen Lab format)"
    _check_pair(["targets", "import", str(c)], english, [f"{c}:1", "'url'", "Citizen Lab"], capsys)


def test_a_csv_that_is_not_utf8_is_vietnamese(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c = tmp_path / "vn.csv"
    c.write_bytes(b"url,category_code\nhttps://a.example/\xff,NEWS\n")
    english = f"{c}:2: not UTF-8 text (byte 0xff); save it as UTF-8"
    _check_pair(["targets", "import", str(c)], english, [f"{c}:2", "UTF-8", "0xff"], capsys)


def test_a_bad_url_on_a_csv_line_names_the_line_and_carries_the_url_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The words are the URL validator's (probe.urls): the line is its error through the
    catalog, after the file, line and column, and the same in English."""
    c = _csv(tmp_path, "https://a.example/,NEWS,,,,\nftp://b.example/,NEWS,,,,\n")
    with pytest.raises(ValueError) as info:
        check_url("ftp://b.example/")
    (en_code, en_err), (vi_code, vi_err) = _both(["targets", "import", str(c)], capsys)
    assert en_code == 2 and en_err == f"{EN_ERROR}{c}:3: url: {info.value}\n", en_err
    vi = translator("vi").gettext
    err = info.value
    shown = err.translated(vi) if isinstance(err, ProbeError) else str(err)
    assert vi_code == 2 and vi_err == f"{VI_ERROR}{c}:3: url: {shown}\n", vi_err


# -- the targets-check warning -----------------------------------------------------------------
def test_no_controls_warning_is_vietnamese(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t = _targets(tmp_path, "targets:\n  - name: a\n    url: https://a.example/\n")
    code, _, en_err = run_fresh(["--lang", "en", "targets", "check", str(t)], capsys)
    assert code == 0 and en_err == (
        f"probe: warning: {t} has no controls: without them an offline round cannot be told "
        "from blocking (add a 'controls:' list, e.g. the default one)\n"
    )
    code, _, vi_err = run_fresh(["--lang", "vi", "targets", "check", str(t)], capsys)
    assert code == 0 and str(t) in vi_err and "'controls:'" in vi_err, vi_err
    assert "without them" not in vi_err and _vi_words(vi_err) >= 5, vi_err
