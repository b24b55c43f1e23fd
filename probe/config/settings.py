"""Settings: one object for every command, each value with the place it came from.

Contract: :func:`resolve` merges, highest first, command-line flags, environment variables
(``PROBE_<NAME>``, e.g. ``PROBE_MAX_BYTES_PER_DAY``), the settings file (TOML; ``--config`` or
``PROBE_CONFIG``, else ``settings.toml`` in the platform's config directory when it exists) and
the defaults, and returns a frozen :class:`Settings` whose ``sources`` say where each value came
from. Every value goes through one parser whatever its origin, so a flag, a variable and a file
entry are held to the same rules; a bad one raises :class:`SettingsError` naming the flag,
variable or file and key. The option table (:data:`OPTIONS`) is data: the CLI builds its flags
from it, so ``probe run`` and ``probe daemon`` take the same ones.

Defaults that are paths are absolute, so the probe works from any folder: inside a source
checkout (a ``results/`` folder beside ``pyproject.toml``) the database is
``<checkout>/results/probe.db`` and the targets ``<checkout>/targets.yaml``; elsewhere the
database lives in the platform's data directory and the targets are the packaged default list.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import platformdirs

from probe import addr
from probe.errors import InputError

APP = "probe"
ENV_PREFIX = "PROBE_"
DEFAULT_CONTROL_RESOLVER = "https://1.1.1.1/dns-query"


class SettingsError(InputError):
    """A setting cannot be used; the message names the flag, variable or file and key."""


# -- value parsers: text (flags, environment) or TOML values -> typed values --------------------
def _text(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError(f"{v!r} is not text")
    if any(ord(c) < 32 for c in v):
        raise ValueError("control characters are not allowed")
    return v


def parse_int(lo: int, hi: int) -> Callable[[Any], int]:
    def parse(v: Any) -> int:
        if isinstance(v, bool):
            raise ValueError(f"{v!r} is not a whole number")
        if isinstance(v, str):
            t = v.strip()
            if not (t.isascii() and t.lstrip("+-").isdigit()):
                raise ValueError(f"{v!r} is not a whole number")
            v = int(t)
        if not isinstance(v, int) or not lo <= v <= hi:
            raise ValueError(f"{v!r} is not a whole number from {lo} to {hi}")
        return v

    return parse


def parse_float(lo: float, hi: float) -> Callable[[Any], float]:
    def parse(v: Any) -> float:
        bad = ValueError(f"{v!r} is not a number from {lo:g} to {hi:g}")
        if isinstance(v, bool):
            raise bad
        number = v
        if isinstance(v, str):
            try:
                number = float(v.strip()) if v.strip().isascii() else math.nan
            except ValueError:
                raise bad from None
        if not isinstance(number, int | float) or not math.isfinite(number):
            raise bad
        if not lo <= number <= hi:
            raise bad
        return float(number)

    return parse


_SIZE_UNITS = {
    "": 1,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "KI": 2**10,
    "MI": 2**20,
    "GI": 2**30,
    "TI": 2**40,
}
_SIZE = re.compile(r"^([0-9]+)\s*([KMGT]I?)?B?$")


def parse_size(v: Any) -> int:
    """Bytes: ``500000000``, ``500M``, ``1G``, ``256KiB`` (SI and binary units)."""
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return v
    m = _SIZE.match(v.strip().upper()) if isinstance(v, str) and v.isascii() else None
    if m is None:
        raise ValueError(f"{v!r} is not a size (e.g. 500000000, 500M, 1G)")
    n = int(m.group(1)) * _SIZE_UNITS[m.group(2) or ""]
    if n > 2**60:
        raise ValueError(f"{v!r} is too large")
    return n


_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)?$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(v: Any) -> float:
    """Seconds: ``90``, ``90s``, ``45m``, ``6h``, ``1d``."""
    if isinstance(v, int | float) and not isinstance(v, bool):
        seconds = float(v)
    else:
        m = _DURATION.match(v.strip().lower()) if isinstance(v, str) and v.isascii() else None
        if m is None:
            raise ValueError(f"{v!r} is not a duration (e.g. 90s, 45m, 6h, 1d)")
        seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    if not math.isfinite(seconds) or not 0 < seconds <= 366 * 86400:
        raise ValueError(f"{v!r} is not a duration between 1 ms and a year")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact form parse_duration reads back: 45m, 6h, 1d, 90s, 1.5s."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{seconds!r}s"


def parse_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(v, str) and v.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{v!r} is not true or false")


def parse_choice(*choices: str) -> Callable[[Any], str]:
    def parse(v: Any) -> str:
        if v not in choices:
            raise ValueError(f"{v!r} is not one of {', '.join(choices)}")
        return str(v)

    return parse


def parse_path(v: Any) -> str:
    text = _text(v).strip()
    if not text:
        raise ValueError("empty path")
    try:
        return str(Path(text).expanduser())
    except RuntimeError:  # ~name of no such user
        raise ValueError(f"{text[:80]!r}: no such user's home directory") from None


def parse_url(v: Any) -> str:
    """An http(s) URL the probe can fetch (:func:`probe.urls.check_url`)."""
    from probe.errors import URLError
    from probe.urls import check_url

    text = _text(v).strip()
    try:
        check_url(text)
    except URLError as exc:
        raise ValueError(str(exc)) from None
    return text


def parse_ip(v: Any) -> str:
    return addr.ip_address(_text(v).strip())


def parse_resolver_text(v: Any) -> str:
    """A resolver as ``probe.measure.dns.parse_resolver`` accepts it (kept as text)."""
    from probe.measure.dns import ResolverSpecError, parse_resolver

    text = _text(v).strip()
    try:
        parse_resolver(text, what="")
    except ResolverSpecError as exc:
        raise ValueError(str(exc).removeprefix(": ")) from None
    return text


def parse_asn(v: Any) -> str:
    from probe.network import normalise_asn

    if isinstance(v, bool) or not isinstance(v, str | int):
        raise ValueError(f"{v!r} is not an AS number (e.g. AS7552)")
    return normalise_asn(v)


def parse_cc(v: Any) -> str:
    from probe.network import normalise_cc

    return normalise_cc(_text(v))


def parse_text(v: Any) -> str:
    return _text(v).strip()


def _tuple_of(one: Callable[[Any], Any], max_items: int | None = None) -> Callable[[Any], Any]:
    def parse(v: Any) -> tuple[Any, ...]:
        if isinstance(v, str):  # environment: comma-separated
            items: list[Any] = [x for x in (p.strip() for p in v.split(",")) if x]
        elif isinstance(v, list | tuple):
            items = list(v)
        else:
            raise ValueError(f"{v!r} is not a list")
        if max_items is not None and len(items) > max_items:
            raise ValueError(f"at most {max_items}")
        return tuple(one(x) for x in items)

    return parse


def _optional(one: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def parse(v: Any) -> Any:
        if v is None or (isinstance(v, str) and v.strip().lower() in ("", "none")):
            return None
        return one(v)

    return parse


# -- where the defaults live ---------------------------------------------------------------------
def checkout() -> Path | None:
    """The source checkout this package runs from, when it has a ``results/`` folder."""
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / "results").is_dir():
        return root
    return None


def default_db() -> tuple[str, str]:
    """(path, why): the checkout's results folder, else the platform's data directory."""
    root = checkout()
    if root is not None:
        return str(root / "results" / "probe.db"), "default (this checkout's results/)"
    state = os.environ.get("STATE_DIRECTORY")  # systemd's StateDirectory=
    if state:
        return str(Path(state.split(":")[0]) / "probe.db"), "default (systemd StateDirectory)"
    return (
        str(Path(platformdirs.user_data_dir(APP)) / "probe.db"),
        "default (the platform's data directory)",
    )


def default_targets() -> tuple[str, str]:
    root = checkout()
    if root is not None and (root / "targets.yaml").is_file():
        return str(root / "targets.yaml"), "default (this checkout's targets.yaml)"
    packaged = resources.files("probe") / "data" / "targets.yaml"
    return str(packaged), "default (the packaged target list)"


def default_config() -> Path:
    return Path(platformdirs.user_config_dir(APP)) / "settings.toml"


# -- the option table ----------------------------------------------------------------------------
MEASURE, DAEMON = "measure", "daemon"


@dataclass(frozen=True, slots=True)
class Option:
    """One setting: its parser, default, help, and the flag that sets it (if any)."""

    name: str
    parse: Callable[[Any], Any]
    default: Any = None
    help: str = ""
    flag: str | None = None  # "--timeout"; None: not a flag
    metavar: str | None = None
    multiple: bool = False  # a repeatable flag; a list in the file; commas in the environment
    is_flag: bool = False  # an on/off switch, setting ``flag_value`` when given
    flag_value: Any = True
    hidden: bool = False
    scope: str = MEASURE  # which commands take it as a flag

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


OPTIONS: tuple[Option, ...] = (
    Option(
        "targets",
        _optional(parse_path),
        help="Target list (YAML).",
        flag="--targets",
        metavar="FILE",
    ),
    Option("db", _optional(parse_path), help="SQLite database.", flag="--db", metavar="FILE"),
    Option(
        "only",
        _tuple_of(parse_text),
        (),
        "Measure only this target (repeatable).",
        "--only",
        "NAME",
        multiple=True,
    ),
    Option(
        "resolver",
        _optional(parse_resolver_text),
        None,
        "Resolver under test, IP[:PORT] (default: the first nameserver in /etc/resolv.conf).",
        "--resolver",
        "IP[:PORT]",
    ),
    Option(
        "control_resolver",
        parse_resolver_text,
        DEFAULT_CONTROL_RESOLVER,
        "Honest resolver: https://HOST/dns-query, tls://[NAME@]IP[:PORT] or udp://IP[:PORT].",
        "--control-resolver",
        "URL",
    ),
    Option(
        "ca_bundle",
        _optional(parse_path),
        None,
        "Extra trust anchors (PEM), added to the system's.",
        "--ca-bundle",
        "PEM",
    ),
    Option("concurrency", parse_int(1, 256), 16, "Targets measured at once.", "--concurrency", "N"),
    Option(
        "timeout",
        parse_float(0.1, 300),
        10.0,
        "Seconds allowed for each step.",
        "--timeout",
        "SECONDS",
    ),
    Option(
        "deadline",
        parse_float(1, 3600),
        90.0,
        "Seconds allowed for each target, all steps included.",
        "--deadline",
        "SECONDS",
    ),
    Option(
        "fingerprints",
        _tuple_of(parse_path),
        (),
        "Extra blockpage fingerprints in OONI's CSV format (repeatable).",
        "--fingerprints",
        "CSV",
        multiple=True,
    ),
    Option(
        "helper",
        _optional(parse_url),
        None,
        "A Web Connectivity test helper (ours or OONI's) to ask about every target.",
        "--helper",
        "URL",
    ),
    Option(
        "helper_token_file",
        _optional(parse_path),
        None,
        "A file holding the helper's bearer token.",
        "--helper-token-file",
        "FILE",
    ),
    Option(
        "helper_bulk_addresses",
        _tuple_of(parse_ip, 2),
        (),
        "The helper's addresses for the SNI A/B test (up to two; default: the helper URL's).",
        "--helper-bulk-address",
        "IP",
        multiple=True,
    ),
    Option(
        "profile",
        parse_choice("default", "mobile"),
        "default",
        "Throughput tests and budget: default (1 MiB, 8 s, 3 trials) or mobile (small tests and "
        "a tight daily budget).",
        "--profile",
        "default|mobile",
    ),
    Option(
        "max_bytes_per_day",
        _optional(parse_size),
        None,
        "Daily data cap (e.g. 200M, 1G, none); default 500M, mobile 25M.",
        "--max-bytes-per-day",
        "SIZE",
    ),
    Option(
        "max_bytes_per_month",
        _optional(parse_size),
        None,
        "Monthly data cap (e.g. 5G).",
        "--max-bytes-per-month",
        "SIZE",
    ),
    Option(
        "throughput",
        parse_bool,
        True,
        "Skip throughput tests.",
        "--no-throughput",
        is_flag=True,
        flag_value=False,
    ),
    Option(
        "throughput_bytes",
        _optional(parse_size),
        None,
        "Cap on each throughput flow (overrides the profile).",
        "--throughput-bytes",
        "SIZE",
    ),
    Option(
        "throughput_seconds",
        _optional(parse_float(0.5, 60)),
        None,
        "Time cap on each throughput flow (overrides the profile).",
        "--throughput-seconds",
        "SECONDS",
    ),
    Option(
        "throughput_trials",
        _optional(parse_int(1, 20)),
        None,
        "Trials per throughput test (overrides the profile).",
        "--throughput-trials",
        "N",
    ),
    Option(
        "allow_loopback",
        parse_bool,
        False,
        "Connect to loopback answers (tests and the lab only).",
        "--allow-loopback",
        is_flag=True,
        hidden=True,
    ),
    Option(
        "interval",
        parse_duration,
        45 * 60.0,
        "Mean gap between page rounds (e.g. 45m, 90s).",
        "--interval",
        "DURATION",
        scope=DAEMON,
    ),
    Option(
        "throughput_interval",
        parse_duration,
        6 * 3600.0,
        "Mean gap between throughput rounds (e.g. 6h).",
        "--throughput-interval",
        "DURATION",
        scope=DAEMON,
    ),
    Option(
        "log_format",
        parse_choice("text", "json"),
        "text",
        "Log lines as text (journald) or JSON (collectors).",
        "--log-format",
        "text|json",
        scope=DAEMON,
    ),
    # -- the daemon (issue 11) ---------------------------------------------------------------
    Option(
        "max_body",
        _optional(parse_size),
        None,
        "Cap on each page body read, after decompression (default 512K; mobile 96K).",
        "--max-body",
        "SIZE",
    ),
    # -- which network (issue 12): used when no test helper says it ----------------------------
    Option(
        "asn",
        _optional(parse_asn),
        None,
        "This network's AS number (e.g. AS7552), when no test helper tells it.",
        "--asn",
        "ASN",
    ),
    Option(
        "cc",
        _optional(parse_cc),
        None,
        "This network's country (e.g. VN), when no test helper tells it.",
        "--cc",
        "CC",
    ),
)
BY_NAME = {o.name: o for o in OPTIONS}


@dataclass(frozen=True, slots=True)
class Settings:
    """The effective settings; ``sources[name]`` says where each value came from."""

    targets: str
    db: str
    only: tuple[str, ...] = ()
    resolver: str | None = None
    control_resolver: str = DEFAULT_CONTROL_RESOLVER
    ca_bundle: str | None = None
    concurrency: int = 16
    timeout: float = 10.0
    deadline: float = 90.0
    fingerprints: tuple[str, ...] = ()
    helper: str | None = None
    helper_token_file: str | None = None
    helper_bulk_addresses: tuple[str, ...] = ()
    profile: str = "default"
    max_bytes_per_day: int | None = None
    max_bytes_per_month: int | None = None
    throughput: bool = True
    throughput_bytes: int | None = None
    throughput_seconds: float | None = None
    throughput_trials: int | None = None
    allow_loopback: bool = False
    interval: float = 45 * 60.0
    throughput_interval: float = 6 * 3600.0
    log_format: str = "text"
    asn: str | None = None
    cc: str | None = None
    config: str | None = None  # the settings file read, if any
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    max_body: int | None = None

    def items(self) -> list[tuple[str, Any, str]]:
        """(name, value, source) for every setting, in the table's order."""
        return [
            (o.name, getattr(self, o.name), self.sources.get(o.name, "default")) for o in OPTIONS
        ]


def _load_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError(f"{path}: no such settings file") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read ({exc})") from None
    unknown = sorted(set(doc) - set(BY_NAME))
    if unknown:
        raise SettingsError(f"{path}: {unknown[0]}: unknown setting (see 'probe config')")
    return doc


def resolve(
    flags: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    config: str | None = None,
) -> Settings:
    """The effective settings: ``flags`` (None or absent = not given) > ``env`` > the settings
    file > defaults. ``config`` is the ``--config`` flag's value."""
    flags = flags or {}
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    cfg_path: Path | None = None
    if config:
        cfg_path, cfg_source = Path(config).expanduser(), "--config"
    elif env.get(ENV_PREFIX + "CONFIG"):
        cfg_path, cfg_source = Path(env[ENV_PREFIX + "CONFIG"]).expanduser(), "PROBE_CONFIG"
    elif default_config().is_file():
        cfg_path, cfg_source = default_config(), "default"
    file_values = _load_file(cfg_path) if cfg_path is not None else {}
    for o in OPTIONS:
        given = flags.get(o.name)
        if given is not None and given != () and given is not False:
            raw = o.flag_value if o.is_flag else given
            where, src = o.flag or o.name, f"flag {o.flag}"
        elif o.env in env:
            raw, where, src = env[o.env], o.env, f"environment {o.env}"
        elif o.name in file_values:
            raw, where, src = file_values[o.name], f"{cfg_path}: {o.name}", f"file {cfg_path}"
        else:
            continue
        try:
            values[o.name] = o.parse(raw)
        except (ValueError, TypeError) as exc:
            raise SettingsError(f"{where}: {exc}") from None
        sources[o.name] = src
    for o in OPTIONS:
        if o.name not in values and o.name not in ("db", "targets"):
            values[o.name] = o.default
            sources[o.name] = "default"
    if values.get("db") is None:
        values["db"], sources["db"] = default_db()
    if values.get("targets") is None:
        values["targets"], sources["targets"] = default_targets()
    if sources["max_bytes_per_day"] == "default":  # "none", given, means no cap
        values["max_bytes_per_day"] = DAILY_CAPS[values["profile"]]
        sources["max_bytes_per_day"] = f"default ({values['profile']} profile)"
    for name, value in PROFILE_DEFAULTS.get(values["profile"], {}).items():
        if sources.get(name) == "default":
            values[name], sources[name] = value, f"default ({values['profile']} profile)"
    known = {f.name for f in fields(Settings)}
    return Settings(
        **{k: v for k, v in values.items() if k in known},
        config=str(cfg_path) if cfg_path is not None else None,
        sources={**sources, "config": cfg_source if cfg_path is not None else "none"},
    )


MOBILE_DAILY_CAP = 25 * 1000 * 1000
# Every profile has a daily cap, so data use is bounded whatever the target list: a longer list
# rotates its throughput tests over the days (least recently tested first) instead of using
# more. The default's leaves the default targets' pages (54 MB a day) and about 57 throughput
# tests a day, the mobile one's 13 MB and about 7 (README, "Data budget").
DAILY_CAPS: dict[str, int] = {"default": 500 * 1000 * 1000, "mobile": MOBILE_DAILY_CAP}

# What the mobile profile changes beyond the daily cap: fewer, smaller rounds, so that the
# default targets stay under MOBILE_DAILY_CAP a day (measured by bench/budget.py; README,
# "Data budget").
PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    "mobile": {
        "interval": 3 * 3600.0,
        "throughput_interval": 24 * 3600.0,
        "max_body": 96 * 1024,
    },
}
