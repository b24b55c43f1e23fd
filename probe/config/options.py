"""The option table: every setting's name, parser, default, help and flag, in one place.

Contract: :data:`OPTIONS` is data, and the one home of each setting's default (a value the
setting's parser would return; None where the default is computed when settings are resolved:
the paths below, the profile's caps). The CLI builds its flags from the table, so ``probe run``
and ``probe daemon`` take the same ones; ``probe init`` writes a settings file from it; and
:class:`probe.config.settings.Settings` has one field per option. Default paths are absolute,
so the probe works from any folder. When the running probe belongs to a source checkout
(:func:`find_checkout`: its package is the checkout's, or pip installed it from the checkout's
folder, as ``scripts/install`` does) the database is ``<checkout>/results/probe.db`` and the
targets ``<checkout>/targets.yaml``; under a service (systemd's ``StateDirectory``) the database
is in the service's folder; elsewhere it lives in the platform's data directory and the targets
are the packaged default list. The working directory never matters. The distribution is
:data:`DISTRIBUTION` on a package index; the command and the import package are ``probe``.
Profile policy is in :mod:`probe.config.profiles`.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from urllib.request import url2pathname

import platformdirs

from probe.config.parse import (
    optional,
    parse_age,
    parse_asn,
    parse_bool,
    parse_cc,
    parse_choice,
    parse_duration,
    parse_float,
    parse_int,
    parse_ip,
    parse_path,
    parse_size,
    parse_stun_servers,
    parse_text,
    parse_url,
    tuple_of,
)
from probe.config.resolver import parse_resolver, parse_resolver_option

APP = "probe"  # the command, the import package and the platform folders' name
# The distribution's name on a package index ("probe" there is an unrelated project).
DISTRIBUTION = "probe-censorship"
ENV_PREFIX = "PROBE_"
DEFAULT_CONTROL_RESOLVER = "https://1.1.1.1/dns-query"
# Public STUN servers run by three different operators, so that a censor blocking one does not
# leave the volunteer's public address unknown (probe.measure.whoami).
DEFAULT_STUN_SERVERS = (
    "stun.l.google.com:19302",
    "stun.cloudflare.com:3478",
    "stun.nextcloud.com:443",
)


# -- where the defaults live ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Checkout:
    """The source checkout the running probe belongs to, and how that is known."""

    path: Path
    how: str
    editable: bool  # the package is the checkout's own files (pip install -e)


def is_checkout(root: Path) -> bool:
    """A folder holding this project's source: its pyproject.toml names this distribution and
    the ``probe`` package sits beside it (an unrelated project called probe does not count)."""
    try:
        with (root / "pyproject.toml").open("rb") as fh:
            name = tomllib.load(fh).get("project", {}).get("name")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
        return False
    return name == DISTRIBUTION and (root / "probe" / "__init__.py").is_file()


def find_checkout(
    package_dir: Path, direct_url: str | None, env: Mapping[str, str]
) -> Checkout | None:
    """The checkout the probe whose package is ``package_dir`` belongs to: the package's own
    parent (an editable install, ``python -m probe`` in the tree), else the folder pip recorded
    when it installed the probe (``direct_url``, the distribution's PEP 610 ``direct_url.json``:
    ``scripts/install`` and ``pip install .``, not a wheel, an index or a VCS URL). Never the
    working directory: the same probe finds the same database from wherever it is started. A
    service (``STATE_DIRECTORY``: systemd, the Docker image) keeps its own state: no checkout."""
    if env.get("STATE_DIRECTORY"):
        return None
    root = package_dir.parent
    if is_checkout(root):
        return Checkout(root, "the probe runs from it (pip install -e, or python -m probe)", True)
    try:
        record = json.loads(direct_url) if direct_url else None
    except ValueError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("dir_info"), dict):
        return None
    url = record.get("url")
    if not isinstance(url, str) or not url.startswith("file://"):
        return None
    root = Path(url2pathname(urlsplit(url).path))
    if not is_checkout(root):
        return None  # moved or removed since, or not this project
    if record["dir_info"].get("editable"):
        return Checkout(root, "the probe was installed from it, editable (pip install -e)", True)
    return Checkout(root, "the probe was installed from it (scripts/install, pip install .)", False)


def _direct_url(package_dir: Path) -> str | None:
    """pip's record of where the distribution holding this very package came from."""
    for dist in importlib.metadata.distributions(name=DISTRIBUTION):
        try:
            holds = Path(str(dist.locate_file("probe/__init__.py"))).resolve()
            if holds == package_dir / "__init__.py":
                return dist.read_text("direct_url.json")
        except OSError:
            continue
    return None


def checkout(env: Mapping[str, str] | None = None) -> Checkout | None:
    """The source checkout the running probe belongs to (:func:`find_checkout`), if any."""
    package_dir = Path(__file__).resolve().parents[1]
    return find_checkout(package_dir, _direct_url(package_dir), os.environ if env is None else env)


def default_db(found: Checkout | Literal["look"] | None = "look") -> tuple[str, str]:
    """(path, why): a service's own folder (systemd's StateDirectory), else the checkout's
    results folder (``found``, looked up when not given), else the platform's data directory."""
    state = os.environ.get("STATE_DIRECTORY")  # systemd's StateDirectory=
    if state:
        return str(Path(state.split(":")[0]) / "probe.db"), "default (systemd StateDirectory)"
    found = checkout() if found == "look" else found
    if found is not None:
        return str(found.path / "results" / "probe.db"), "default (this checkout's results/)"
    return (
        str(Path(platformdirs.user_data_dir(APP)) / "probe.db"),
        "default (the platform's data directory)",
    )


def default_targets(found: Checkout | Literal["look"] | None = "look") -> tuple[str, str]:
    """(path, why): the checkout's targets.yaml when it has one, else the packaged list."""
    found = checkout() if found == "look" else found
    if found is not None and (found.path / "targets.yaml").is_file():
        return str(found.path / "targets.yaml"), "default (this checkout's targets.yaml)"
    packaged = resources.files("probe") / "data" / "targets.yaml"
    return str(packaged), "default (the packaged target list)"


def install_advice(extra: str) -> str:
    """How to add an extra (``analyst``) to the running probe: through the checkout it belongs
    to, else from the package index under the distribution's name."""
    found = checkout()
    if found is None:
        return f"pip install '{DISTRIBUTION}[{extra}]'"
    editable = "-e " if found.editable else ""
    if Path(sys.prefix).resolve() == found.path / ".venv":  # scripts/install's virtualenv
        return f"scripts/install {editable}'.[{extra}]' (in {found.path})"
    return f"{sys.executable} -m pip install {editable}'{found.path}[{extra}]'"


def default_config() -> Path:
    return Path(platformdirs.user_config_dir(APP)) / "settings.toml"


# -- the option table ----------------------------------------------------------------------------
MEASURE, DAEMON = "measure", "daemon"
UPLOAD = "upload"  # probe upload's flags (issue 23)


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
        optional(parse_path),
        help="Target list (YAML).",
        flag="--targets",
        metavar="FILE",
    ),
    Option("db", optional(parse_path), help="SQLite database.", flag="--db", metavar="FILE"),
    Option(
        "only",
        tuple_of(parse_text),
        (),
        "Measure only this target (repeatable).",
        "--only",
        "NAME",
        multiple=True,
    ),
    Option(
        "resolver",
        optional(parse_resolver_option),
        None,
        "Resolver under test, IP[:PORT] (default: the first nameserver in /etc/resolv.conf).",
        "--resolver",
        "IP[:PORT]",
    ),
    Option(
        "control_resolver",
        parse_resolver_option,
        parse_resolver(DEFAULT_CONTROL_RESOLVER),
        "Honest resolver: https://HOST/dns-query, tls://[NAME@]IP[:PORT] or udp://IP[:PORT].",
        "--control-resolver",
        "URL",
    ),
    Option(
        "stun_servers",
        parse_stun_servers,
        DEFAULT_STUN_SERVERS,
        "STUN server that tells the probe its public address, to scrub it (repeatable; "
        "'none': ask none). The address is kept in memory only.",
        "--stun-server",
        "HOST[:PORT]",
        multiple=True,
    ),
    Option(
        "ca_bundle",
        optional(parse_path),
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
        tuple_of(parse_path),
        (),
        "Extra blockpage fingerprints in OONI's CSV format (repeatable).",
        "--fingerprints",
        "CSV",
        multiple=True,
    ),
    Option(
        "helper",
        optional(parse_url),
        None,
        "A Web Connectivity test helper (ours or OONI's) to ask about every target.",
        "--helper",
        "URL",
    ),
    Option(
        "helper_token_file",
        optional(parse_path),
        None,
        "A file holding the helper's bearer token.",
        "--helper-token-file",
        "FILE",
    ),
    Option(
        "helper_bulk_addresses",
        tuple_of(parse_ip, 2),
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
        optional(parse_size),
        None,
        "Daily data cap (e.g. 200M, 1G, none); default 500M, mobile 25M.",
        "--max-bytes-per-day",
        "SIZE",
    ),
    Option(
        "max_bytes_per_month",
        optional(parse_size),
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
        optional(parse_size),
        None,
        "Cap on each throughput flow (overrides the profile).",
        "--throughput-bytes",
        "SIZE",
    ),
    Option(
        "throughput_seconds",
        optional(parse_float(0.5, 60)),
        None,
        "Time cap on each throughput flow (overrides the profile).",
        "--throughput-seconds",
        "SECONDS",
    ),
    Option(
        "throughput_trials",
        optional(parse_int(1, 20)),
        None,
        "Trials per throughput test (overrides the profile).",
        "--throughput-trials",
        "N",
    ),
    Option(
        "allow_loopback",
        parse_bool,
        False,
        "Measure servers on this machine (127.0.0.0/8), e.g. 'python3 -m http.server' to try "
        "the probe first (README: 'Try it on your own machine first'). Without it a loopback "
        "address is never dialled, so a DNS answer of 127.0.0.1 cannot turn a measurement "
        "onto this machine.",
        "--allow-loopback",
        is_flag=True,
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
    # -- the page body's cap ---------------------------------------------------------------
    Option(
        "max_body",
        parse_size,
        512 * 1024,
        "Cap on each page body read, after decompression (mobile: 96K).",
        "--max-body",
        "SIZE",
    ),
    # -- which network: used when no test helper says it --------------------------------------
    Option(
        "asn",
        optional(parse_asn),
        None,
        "This network's AS number (e.g. AS7552), when no test helper tells it.",
        "--asn",
        "ASN",
    ),
    Option(
        "cc",
        optional(parse_cc),
        None,
        "This network's country (e.g. VN), when no test helper tells it.",
        "--cc",
        "CC",
    ),
    # -- uploads to the collective (issue 23, probe.fleet): off until upload_url is set -------
    Option(
        "upload_url",
        optional(parse_text),
        None,
        "The collective's bucket: http(s)://HOST[:PORT]/BUCKET[/PREFIX] (S3).",
        "--upload-url",
        "URL",
        scope=UPLOAD,
    ),
    Option(
        "collective_key",
        optional(parse_text),
        None,
        "The collective's public key (base64url): batches are sealed to it.",
        "--collective-key",
        "KEY",
        scope=UPLOAD,
    ),
    Option(
        "upload_credentials",
        optional(parse_path),
        None,
        'A JSON file with write-only S3 credentials: {"access_key": ..., "secret_key": ...}.',
        "--upload-credentials",
        "FILE",
        scope=UPLOAD,
    ),
    Option(
        "upload_presigned",
        optional(parse_path),
        None,
        "A JSON file with the collective's pre-signed POST policy (instead of credentials).",
        "--upload-presigned",
        "FILE",
        scope=UPLOAD,
    ),
    Option(
        "upload_region",
        parse_text,
        "us-east-1",
        "The bucket's S3 region (signed into each request).",
        "--upload-region",
        "REGION",
        scope=UPLOAD,
    ),
    Option(
        "upload_proxy",
        optional(parse_text),
        None,
        "Upload through this proxy: socks5h://127.0.0.1:9050 (Tor), socks5://, http://.",
        "--upload-proxy",
        "URL",
        scope=UPLOAD,
    ),
    Option(
        "upload_interval",
        parse_duration,
        6 * 3600.0,
        "Mean gap between the daemon's uploads (e.g. 6h).",
        "--upload-interval",
        "DURATION",
        scope=DAEMON,
    ),
    Option(
        "upload_bodies",
        parse_bool,
        True,
        "Send the stored page bodies with the measurements.",
    ),
    Option(
        "keep_uploaded",
        optional(parse_age),
        None,
        "Delete measurements the collective holds once older than this (e.g. 30d).",
        "--keep-uploaded",
        "AGE",
        scope=UPLOAD,
    ),
)
BY_NAME = {o.name: o for o in OPTIONS}
