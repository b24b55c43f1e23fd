"""One settings object: flags > PROBE_* environment > settings file > defaults, each value with
its source, and one-line errors naming the flag, variable or file and key."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from probe.config import options, parse, resolver
from probe.config.options import OPTIONS
from probe.config.settings import Settings, resolve
from probe.errors import SettingsError
from probe.model import ResolverSpec
from tests.runs import FAST, run_args, run_cli
from tests.runs import one_line_messages as _one_line_messages
from tests.runs import run_fresh as _run
from tests.world import World

NO_ENV: dict[str, str] = {}


def test_defaults_and_their_sources(tmp_path: Path) -> None:
    s = resolve({}, env={"PROBE_CONFIG": str(_toml(tmp_path, ""))})
    assert (s.concurrency, s.timeout, s.profile, s.only) == (16, 10.0, "default", ())
    assert s.sources["concurrency"] == "default" and s.sources["config"] == "PROBE_CONFIG"
    # Every profile bounds the data it uses; "none", given, lifts the cap.
    assert (s.max_bytes_per_day, s.sources["max_bytes_per_day"]) == (
        500_000_000,
        "default (default profile)",
    )
    lifted = resolve({"max_bytes_per_day": "none"}, env={"PROBE_CONFIG": str(_toml(tmp_path, ""))})
    assert lifted.max_bytes_per_day is None
    assert lifted.sources["max_bytes_per_day"] == "flag --max-bytes-per-day"


def _toml(tmp: Path, text: str) -> Path:
    p = tmp / "settings.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_precedence_flag_env_file(tmp_path: Path) -> None:
    cfg = _toml(tmp_path, 'concurrency = 3\ntimeout = 7\nprofile = "mobile"\n')
    env = {"PROBE_TIMEOUT": "5", "PROBE_CONFIG": str(cfg)}
    s = resolve({"concurrency": 9}, env=env)
    assert (s.concurrency, s.timeout, s.profile) == (9, 5.0, "mobile")
    assert s.sources["concurrency"] == "flag --concurrency"
    assert s.sources["timeout"] == "environment PROBE_TIMEOUT"
    assert s.sources["profile"] == f"file {cfg}"
    # The mobile profile brings a daily cap unless one is given.
    assert (s.max_bytes_per_day, s.sources["max_bytes_per_day"]) == (
        25_000_000,
        "default (mobile profile)",
    )
    assert resolve({"max_bytes_per_day": "1M"}, env=env).max_bytes_per_day == 1_000_000
    assert s.config == str(cfg)


def test_config_flag_beats_the_environment(tmp_path: Path) -> None:
    a = _toml(tmp_path, "concurrency = 2\n")
    b = tmp_path / "b.toml"
    b.write_text("concurrency = 4\n", encoding="utf-8")
    s = resolve({}, env={"PROBE_CONFIG": str(a)}, config=str(b))
    assert (s.concurrency, s.sources["config"]) == (4, "--config")


def test_environment_lists_are_comma_separated(tmp_path: Path) -> None:
    s = resolve({}, env={"PROBE_ONLY": "a, b,,c", "PROBE_CONFIG": str(_toml(tmp_path, ""))})
    assert s.only == ("a", "b", "c")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("concurrency = 0\n", ": concurrency: 0 is not a whole number from 1 to 256"),
        ("colour = 1\n", ": colour: unknown setting (see 'probe config')"),
        ("concurrency = \n", ": Invalid value"),
        ('timeout = "soon"\n', ": timeout: 'soon' is not a number from 0.1 to 300"),
    ],
)
def test_bad_settings_file(tmp_path: Path, text: str, message: str) -> None:
    cfg = _toml(tmp_path, text)
    with pytest.raises(SettingsError) as err:
        resolve({}, env={}, config=str(cfg))
    assert str(err.value).startswith(str(cfg)) and message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_and_unreadable_settings_files(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="no such settings file"):
        resolve({}, env={}, config=str(tmp_path / "nope.toml"))
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SettingsError, match=str(binary)):
        resolve({}, env={}, config=str(binary))
    with pytest.raises(SettingsError, match="cannot read"):
        resolve({}, env={}, config=str(tmp_path))  # a directory


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PROBE_CONCURRENCY", "many", "PROBE_CONCURRENCY: 'many' is not a whole number"),
        ("PROBE_ALLOW_LOOPBACK", "perhaps", "PROBE_ALLOW_LOOPBACK: 'perhaps' is not true or false"),
        ("PROBE_PROFILE", "satellite", "PROBE_PROFILE: 'satellite' is not one of default, mobile"),
    ],
)
def test_bad_environment(tmp_path: Path, name: str, value: str, message: str) -> None:
    env = {name: value, "PROBE_CONFIG": str(_toml(tmp_path, ""))}
    with pytest.raises(SettingsError, match=message):
        resolve({}, env=env)


def test_items_list_every_option_with_its_source(tmp_path: Path) -> None:
    s = resolve({"timeout": "3"}, env={"PROBE_CONFIG": str(_toml(tmp_path, ""))})
    items = {name: (value, src) for name, value, src in s.items()}
    assert set(items) == {o.name for o in options.OPTIONS}
    assert items["timeout"] == (3.0, "flag --timeout")


@pytest.mark.parametrize(
    ("parse", "text", "value"),
    [
        (parse.parse_bool, " YES ", True),
        (parse.parse_bool, "off", False),
        (parse.parse_size, "256KiB", 262_144),
        (parse.parse_size, "1 GB", 1_000_000_000),
        (parse.parse_size, 12, 12),
        (parse.parse_duration, "1.5h", 5400.0),
        (parse.parse_duration, "250ms", 0.25),
        (parse.parse_duration, 90, 90.0),
        (parse.parse_float(0, 1), " 0.25 ", 0.25),
        (parse.parse_url, " https://helper.example:8443/ ", "https://helper.example:8443/"),
        (parse.parse_ip, "2001:DB8::1", "2001:db8::1"),
        (resolver.parse_resolver_option, " tls://192.0.2.1", ResolverSpec("dot", "192.0.2.1", 853)),
    ],
)
def test_value_parsers(parse: object, text: object, value: object) -> None:
    assert parse(text) == value  # type: ignore[operator]


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (parse.parse_size, "2000000T", "too large"),
        (parse.parse_size, -1, "not a size"),
        (parse.parse_duration, "0s", "between 1 ms and a year"),
        (parse.parse_duration, "400d", "between 1 ms and a year"),
        (parse.parse_duration, True, "not a duration"),
        (parse.parse_float(0, 1), "nan", "not a number from 0 to 1"),
        (parse.parse_float(0, 1), True, "not a number"),
        (parse.parse_int(1, 5), True, "not a whole number"),
        (parse.parse_url, "ftp://x/", "must start with http:// or https://"),
        (parse.parse_url, "https://x:0/", "has a port outside 1-65535"),
        (parse.parse_url, "https://x:99999/", r"is not a valid URL \(Port out of range"),
        (parse.parse_path, "  ", "empty path"),
        (parse.parse_text, "a\tb", "control characters"),
        (parse.parse_text, 3, "is not text"),
        (resolver.parse_resolver_option, "ftp://1.2.3.4", "unknown scheme"),
        (parse.parse_choice("a", "b"), "c", "'c' is not one of a, b"),
    ],
)
def test_value_parser_errors(parse: object, text: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(text)  # type: ignore[operator]


def test_defaults_outside_a_checkout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(options, "checkout", lambda: None)
    monkeypatch.setenv("STATE_DIRECTORY", f"{tmp_path}/state:/other")
    assert options.default_db() == (
        f"{tmp_path}/state/probe.db",
        "default (systemd StateDirectory)",
    )
    monkeypatch.delenv("STATE_DIRECTORY")
    path, why = options.default_db()
    assert path.endswith("probe.db") and why == "default (the platform's data directory)"
    path, why = options.default_targets()
    assert path.endswith("targets.yaml") and why == "default (the packaged target list)"


def test_defaults_inside_this_checkout(repo_root: Path) -> None:
    assert options.default_db() == (
        str(repo_root / "results" / "probe.db"),
        "default (this checkout's results/)",
    )
    assert options.default_targets()[0] == str(repo_root / "targets.yaml")


def test_the_option_table_is_the_one_home_of_defaults(tmp_path: Path) -> None:
    """Settings has one field per option and no defaults of its own, so a default written in
    the table is the default used, and a new option cannot be forgotten in the dataclass."""
    names = [f.name for f in dataclasses.fields(Settings)]
    assert set(names) - {"config", "checkout", "sources"} == {o.name for o in options.OPTIONS}
    with_defaults = [
        f.name
        for f in dataclasses.fields(Settings)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    ]
    assert with_defaults == ["config", "checkout", "sources"]
    s = resolve({}, env={"PROBE_CONFIG": str(_toml(tmp_path, ""))})
    for o in options.OPTIONS:
        if s.sources[o.name] == "default":
            assert getattr(s, o.name) == o.default, o.name


def test_resolvers_are_parsed_once_into_specs(tmp_path: Path) -> None:
    env = {"PROBE_CONFIG": str(_toml(tmp_path, 'control_resolver = "tls://dns.test@192.0.2.9"\n'))}
    s = resolve({"resolver": "192.0.2.1"}, env=env)
    assert s.resolver == ResolverSpec("udp", "192.0.2.1", 53)
    assert s.control_resolver == ResolverSpec("dot", "192.0.2.9", 853, server_name="dns.test")
    assert s.sources["control_resolver"] == f"file {tmp_path / 'settings.toml'}"
    default = resolve({}, env={"PROBE_CONFIG": str(_toml(tmp_path, ""))})
    assert default.resolver is None  # the system's, chosen when a round is prepared
    assert str(default.control_resolver) == options.DEFAULT_CONTROL_RESOLVER
    # Shown (probe config) and dumped (--json) as the text a settings file would hold.
    items = {name: value for name, value, _ in s.items()}
    assert items["resolver"] == "udp://192.0.2.1:53"
    assert items["control_resolver"] == "tls://dns.test@192.0.2.9:853"


# -- generated flag values (property tests over outside input, issue 10) ------------------------
FLAGS = [o.flag for o in OPTIONS if o.flag and not o.is_flag]
# Flags a run may take with any value: none of them sends traffic anywhere new.
RUN_FLAGS = ["--timeout", "--deadline", "--concurrency", "--max-bytes-per-day", "--only"]
values = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["nan", "inf", "-1", "0", "1e999", "²", "٣", "0x10", "1_000", "", " 5 "]),
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
)


@FAST
@given(flag=st.sampled_from(FLAGS), value=values)
def test_property_flag_values(
    flag: str, value: str, capsys: pytest.CaptureFixture[str], repo_root: Path
) -> None:
    code, _, err = _run(["config", "--json", flag, value], capsys)
    _one_line_messages(code, err)


@hypothesis_settings(FAST, max_examples=15)
@given(flag=st.sampled_from(RUN_FLAGS), value=values)
def test_property_run_flag_values(
    flag: str, value: str, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        p, db = Path(tmp) / "t.yaml", Path(tmp) / "r.db"
        p.write_text(f"targets:\n  - {{name: a, url: '{world.http('news.test')}'}}\n")
        code, _, err = _run([*run_args(world, p, db), flag, value], capsys)
        _one_line_messages(code, err)


# -- bad flag and environment values are one line, exit 2 (issue 10) ---------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--timeout", "nan"], "--timeout: 'nan' is not a number"),
        (["--timeout", "inf"], "--timeout"),
        (["--deadline", "nan"], "--deadline: 'nan' is not a number"),
        (["--deadline", "-1"], "--deadline"),
        (["--helper", "http://[::1"], "--helper: 'http://[::1'"),
        (
            ["--helper", "https://helper.example:70000/"],
            "--helper: 'https://helper.example:70000/'",
        ),
        (["--helper", "http://0177.0.0.1/"], "--helper"),
        (["--helper-bulk-address", "not-ip"], "--helper-bulk-address: 'not-ip' is not an IP"),
        (["--max-bytes-per-day", "\u00b2"], "--max-bytes-per-day: '\u00b2' is not a size"),
        (["--max-bytes-per-day", "1e999"], "--max-bytes-per-day"),
        (["--concurrency", "\u0661\u0662"], "--concurrency"),  # Arabic-Indic digits
        (["--throughput-seconds", "nan"], "--throughput-seconds"),
        (["--ca-bundle", "GARBAGE"], "--ca-bundle GARBAGE: not a PEM file of certificates"),
        (["--ca-bundle", "/nonexistent.pem"], "--ca-bundle /nonexistent.pem: cannot read"),
        (["--helper-token-file", "/nonexistent"], "/nonexistent: cannot read the token"),
    ],
)
def test_bad_flag_values_are_one_line(
    args: list[str],
    message: str,
    tmp_path: Path,
    world: World,
    capsys: pytest.CaptureFixture[str],
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text(
        "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n"
    )
    args = [str(garbage) if a == "GARBAGE" else a for a in args]
    message = message.replace("GARBAGE", str(garbage))
    p, db = tmp_path / "t.yaml", tmp_path / "r.db"
    p.write_text(f"targets:\n  - {{name: a, url: '{world.http('news.test')}'}}\n")
    base = run_args(world, p, db)
    base.remove("--ca-bundle")
    base.remove(world.ca_pem)
    code, _, err = run_cli([*base, *args], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("probe: error: "), err
    assert message in err
    assert not db.exists()  # checked before a byte is written


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PROBE_TIMEOUT": "nan"}, "PROBE_TIMEOUT: 'nan'"),
        ({"PROBE_HELPER": "http://[::1"}, "PROBE_HELPER"),
        ({"PROBE_MAX_BYTES_PER_DAY": "\u00b2"}, "PROBE_MAX_BYTES_PER_DAY"),
    ],
)
def test_bad_environment_values_are_one_line(
    env: dict[str, str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    code, _, err = run_cli(["config"], capsys)
    assert code == 2 and err.count("\n") == 1 and message in err
