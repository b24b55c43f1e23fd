"""Errors of the lower layers in Vietnamese (issue 21): a database that cannot be used, a second
daemon, wipe's refusals, the round's token and CA files, a bad URL or address.

Each case runs the real CLI (``probe.cli.main``) on real bad input in the test's folder: under
``--lang vi`` the one stderr line is Vietnamese and still names the file (and what SQLite or the
OS said, which stays as it was said); under ``--lang en`` it is the English line, byte for byte.
The parsers' own errors (:class:`URLError`, :class:`AddressError`) are checked where they are
raised, and through the CLI as the field of the error that names the targets file's line or the
flag (probe.config wraps them).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from probe import addr, urls
from probe import words as V
from probe.daemon.lock import DaemonLock
from probe.errors import AddressError, URLError
from tests.dbs import golden_db
from tests.runs import run_fresh
from tests.test_vietnamese import VI_MARKS

TARGETS = "targets:\n  - name: example\n    url: https://example.com/\n"


def vietnamese(text: str) -> bool:
    return len(VI_MARKS.findall(text)) >= 3


def not_sqlite(p: Path) -> None:
    p.write_bytes(b"not sqlite at all\n" * 100)


def someone_else_s(p: Path) -> None:
    con = sqlite3.connect(p)
    con.execute("CREATE TABLE chapters (n)")
    con.commit()
    con.close()


def empty_sqlite(p: Path) -> None:
    sqlite3.connect(p).close()


def from_a_newer_probe(p: Path) -> None:
    golden_db(p, days=1)
    con = sqlite3.connect(p)
    con.execute(
        "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
        "VALUES ('probe', 'm999_from_the_future', '2030-01-01')"
    )
    con.commit()
    con.close()


TOKEN_ARGS = ["run", "--db", "{db}", "--targets", "{tmp}/t.yaml", "--helper-token-file"]
TOKEN_ARGS += ["{tmp}/token", "--helper", "http://127.0.0.1:9/"]

# name -> (how the bad file is made, the command's arguments ({db}: its path, {tmp}: the folder),
# the English line after "probe: error: ")
Case = tuple[Callable[[Path], None] | None, list[str], str]
CASES: dict[str, Case] = {
    "status, not SQLite": (
        not_sqlite,
        ["status", "--db", "{db}"],
        "{db}: not a usable SQLite database (file is not a database)",
    ),
    "export, not SQLite": (
        not_sqlite,
        ["export", "--db", "{db}"],
        "{db}: not a usable SQLite database (file is not a database)",
    ),
    "events, not probe's": (
        someone_else_s,
        ["events", "--db", "{db}"],
        "{db}: not a probe database (tables: chapters)",
    ),
    "status, not probe's": (
        someone_else_s,
        ["status", "--db", "{db}"],
        "{db}: not a probe database (tables: chapters)",
    ),
    "merge, no tables": (
        empty_sqlite,
        ["merge", "{db}", "-o", "{tmp}/out.db"],
        "{db}: not a probe database (tables: none)",
    ),
    "merge, not SQLite": (
        not_sqlite,
        ["merge", "{db}", "-o", "{tmp}/out.db"],
        "{db}: not a usable SQLite database (file is not a database)",
    ),
    "merge, a newer probe's": (
        from_a_newer_probe,
        ["merge", "{db}", "-o", "{tmp}/out.db"],
        "{db}: made by a newer probe (migration m999_from_the_future)",
    ),
    "merge, missing": (None, ["merge", "{db}", "-o", "{tmp}/out.db"], "{db}: no such database"),
    "report, missing": (
        None,
        ["report", "--db", "{db}", "-o", "{tmp}/r.html"],
        "{db}: no such database",
    ),
    "wipe, not probe's": (
        someone_else_s,
        ["wipe", "--db", "{db}", "--yes"],
        "{db}: not a probe database (tables: chapters); nothing removed",
    ),
    "wipe, not SQLite": (
        not_sqlite,
        ["wipe", "--db", "{db}", "--yes"],
        "{db}: not a usable SQLite database (file is not a database); nothing removed",
    ),
    "run, a file where the folder belongs": (
        lambda p: p.parent.joinpath("afile").write_text("mine"),
        ["run", "--db", "{tmp}/afile/p.db", "--targets", "{tmp}/t.yaml", "--timeout", "0.1"],
        "{tmp}/afile/p.db: cannot create its folder (File exists)",
    ),
    "run, a CA file that is not PEM": (
        lambda p: p.parent.joinpath("ca.pem").write_text("not a certificate\n"),
        ["run", "--db", "{db}", "--targets", "{tmp}/t.yaml", "--ca-bundle", "{tmp}/ca.pem"],
        "--ca-bundle {tmp}/ca.pem: not a PEM file of certificates (NO_CERTIFICATE_OR_CRL_FOUND)",
    ),
    "run, a CA file that is a folder": (
        None,
        ["run", "--db", "{db}", "--targets", "{tmp}/t.yaml", "--ca-bundle", "{tmp}"],
        "--ca-bundle {tmp}: cannot read (Is a directory)",
    ),
    "run, a token of two words": (
        lambda p: _private(p.parent / "token", b"two words\n"),
        TOKEN_ARGS,
        "{tmp}/token: the token must be one word",
    ),
    "run, a token that is not UTF-8": (
        lambda p: _private(p.parent / "token", b"\xff\xfe\n"),
        TOKEN_ARGS,
        "{tmp}/token: cannot read the token ('utf-8' codec can't decode byte 0xff in position 0: "
        "invalid start byte)",
    ),
}


def _private(p: Path, data: bytes) -> None:
    p.write_bytes(data)
    p.chmod(0o600)


def _filled(text: str, tmp_path: Path) -> str:
    return text.format(db=tmp_path / "probe.db", tmp=tmp_path)


def _run(
    lang: str, tmp_path: Path, args: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    return run_fresh(["--lang", lang, *(_filled(a, tmp_path) for a in args)], capsys)


def _made(tmp_path: Path, make: Callable[[Path], None] | None) -> None:
    (tmp_path / "t.yaml").write_text(TARGETS, encoding="utf-8")
    if make is not None:
        make(tmp_path / "probe.db")


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_database_or_file_error_is_vietnamese(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make, args, english = CASES[case]
    _made(tmp_path, make)
    code, out, err = _run("vi", tmp_path, args, capsys)
    assert code == 2 and out == "", err
    assert err.startswith("probe: lỗi: ") and err.count("\n") == 1, err
    assert vietnamese(err.removeprefix("probe: lỗi: ")), err
    line = _filled(english, tmp_path)
    assert err.startswith(f"probe: lỗi: {line.split(': ')[0]}: "), err  # the file or the flag
    assert line.split(": ", 1)[1] not in err, err


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_english_line_is_unchanged(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make, args, english = CASES[case]
    _made(tmp_path, make)
    code, _, err = _run("en", tmp_path, args, capsys)
    assert (code, err) == (2, f"probe: error: {_filled(english, tmp_path)}\n")


@pytest.mark.parametrize("command", ["daemon", "wipe"])
def test_a_second_daemon_or_a_wipe_under_a_running_daemon_is_vietnamese(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _made(tmp_path, None)
    db = tmp_path / "probe.db"
    args = {
        "daemon": ["daemon", "--db", "{db}", "--targets", "{tmp}/t.yaml"],
        "wipe": ["wipe", "--db", "{db}", "--yes"],
    }[command]
    english = {
        "daemon": f"{db}: a probe daemon (PID {os.getpid()}) already measures into this database",
        "wipe": f"{db}: a probe daemon (PID {os.getpid()}) measures into this database: stop it "
        "first (systemctl stop probe, or Ctrl-C), nothing removed",
    }[command]
    lock = DaemonLock(str(db)).acquire()  # the daemon already measuring here
    try:
        code, out, err = _run("vi", tmp_path, args, capsys)
        assert code == 2 and out == "", err
        assert err.startswith(f"probe: lỗi: {db}: ") and err.count("\n") == 1, err
        assert f"PID {os.getpid()}" in err and vietnamese(err), err
        code, _, err = _run("en", tmp_path, args, capsys)
        assert (code, err) == (2, f"probe: error: {english}\n")
    finally:
        lock.release()


LINK_ARGS = ["run", "--db", "{db}", "--targets", "{tmp}/t.yaml", "--timeout", "0.1"]


def test_a_symbolic_link_where_the_database_belongs_in_english(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _made(tmp_path, None)
    db = tmp_path / "probe.db"
    db.symlink_to(tmp_path / "elsewhere.db")
    code, _, err = _run("en", tmp_path, LINK_ARGS, capsys)
    assert (code, err) == (
        2,
        f"probe: error: {db}: is a symbolic link; the probe never writes through one where its "
        "own file belongs (remove the link if you did not make it)\n",
    )
    assert not (tmp_path / "elsewhere.db").exists()


def test_a_symbolic_link_where_the_database_belongs_is_vietnamese(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _made(tmp_path, None)
    db = tmp_path / "probe.db"
    db.symlink_to(tmp_path / "elsewhere.db")
    code, out, err = _run("vi", tmp_path, LINK_ARGS, capsys)
    assert code == 2 and out == "" and err.startswith(f"probe: lỗi: {db}: "), err
    assert vietnamese(err), err


VI = V.translator("vi").gettext

LONG = "https://a.example/" + "a" * 3000
BAD_URLS = {
    "ftp://x": "'ftp://x' must start with http:// or https://",
    "http://": "'http://' has no host",
    "https://exa mple.com/": "'https://exa mple.com/' has an invalid host name (labels are 1-63 "
    "letters, digits, '-' or '_')",
    "http://a.example:0/": "'http://a.example:0/' has a port outside 1-65535",
    "http://user:pw@a.example/": "'http://user:pw@a.example/' must not hold a user name or "
    "password",
    "http://[fe80::1%25eth0]/": "'http://[fe80::1%25eth0]/' has an IPv6 zone id",
    "http://127.1/": "'http://127.1/' has a host that is neither a name nor a dotted-quad IPv4 "
    "address",
    "http://[::1": "'http://[::1' is not a valid URL (Invalid port: ':1')",
    LONG: f"{urls.show(LONG)} is longer than 2048 characters (3018)",
}


@pytest.mark.parametrize("text", sorted(BAD_URLS))
def test_a_bad_url_s_reason_is_vietnamese(text: str) -> None:
    with pytest.raises(URLError) as caught:
        urls.check_url(text)
    assert str(caught.value) == BAD_URLS[text]
    said = caught.value.translated(VI)
    quoted = urls.show(text)
    assert said.startswith(quoted) and vietnamese(said.removeprefix(quoted)), said


def test_a_value_that_is_not_text_is_vietnamese() -> None:
    with pytest.raises(URLError) as caught:
        urls.check_url(42)
    assert str(caught.value) == "42 is not text"
    assert caught.value.translated(VI).startswith("42 ") and vietnamese(caught.value.translated(VI))


BAD_ADDRESSES: dict[str, tuple[Callable[[str], object], str]] = {
    "1.2.3.4:99999": (addr.parse_endpoint, "'99999' is not a port number (1-65535)"),
    "[::1": (addr.parse_endpoint, "unclosed '[' in '[::1'"),
    "[::1]x": (addr.parse_endpoint, "expected ':PORT' after ']' in '[::1]x'"),
    ":53": (addr.parse_endpoint, "no host in ':53'"),
    "1.2.3.4": (addr.parse_endpoint, "no port in '1.2.3.4'"),
    "dns.example:53": (addr.parse_endpoint, "'dns.example' is not an IP address"),
}


@pytest.mark.parametrize("text", sorted(BAD_ADDRESSES))
def test_a_bad_address_s_reason_is_vietnamese(text: str) -> None:
    parse, english = BAD_ADDRESSES[text]
    with pytest.raises(AddressError) as caught:
        parse(text)
    assert str(caught.value) == english
    said = caught.value.translated(VI)
    assert said != english and vietnamese(said), said
    quoted = english[english.index("'") :].split(" ")[0]
    assert quoted in said, said  # the user's text, as it was quoted


# Through the CLI, a URL's reason is a field of the error that names the file and line, or
# the flag (probe.config wraps it).
CLI_URLS = ["ftp://x", "http://", "https://exa mple.com/", "http://a.example:0/"]
CLI_URLS += ["http://user:pw@a.example/", "http://[fe80::1%25eth0]/"]


@pytest.mark.parametrize("text", CLI_URLS)
def test_a_bad_url_in_a_targets_file_is_vietnamese(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t = tmp_path / "t.yaml"
    t.write_text(f"targets:\n  - name: example\n    url: {json.dumps(text)}\n", encoding="utf-8")
    where = f"{t}:2: targets[0].url: "
    code, _, err = run_fresh(["--lang", "en", "targets", "check", str(t)], capsys)
    assert code == 2 and err.splitlines()[0] == f"probe: error: {where}{BAD_URLS[text]}", err
    code, _, err = run_fresh(["--lang", "vi", "targets", "check", str(t)], capsys)
    first = err.splitlines()[0]
    assert code == 2 and first.startswith(f"probe: lỗi: {where}{urls.show(text)} "), err
    assert vietnamese(first.removeprefix(f"probe: lỗi: {where}{urls.show(text)}")), err


@pytest.mark.parametrize(
    ("flag", "value", "english"),
    [
        ("--helper", "ftp://x", BAD_URLS["ftp://x"]),
        ("--helper", "http://", BAD_URLS["http://"]),
        ("--resolver", "1.2.3.4:99999", BAD_ADDRESSES["1.2.3.4:99999"][1]),
        ("--resolver", "[::1", BAD_ADDRESSES["[::1"][1]),
    ],
)
def test_a_bad_url_or_address_in_a_flag_is_vietnamese(
    flag: str, value: str, english: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _made(tmp_path, None)
    args = ["run", "--db", "{db}", "--targets", "{tmp}/t.yaml", flag, value]
    code, _, err = _run("en", tmp_path, args, capsys)
    assert (code, err) == (2, f"probe: error: {flag}: {english}\n")
    code, out, err = _run("vi", tmp_path, args, capsys)
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert err.startswith(f"probe: lỗi: {flag}: ") and english not in err, err
    assert vietnamese(err.removeprefix(f"probe: lỗi: {flag}: ")), err
    assert not (tmp_path / "probe.db").exists()
