"""Settings: one object for every command, each value with the place it came from.

Contract: :func:`resolve` merges, highest first, command-line flags, environment variables
(``PROBE_<NAME>``, e.g. ``PROBE_MAX_BYTES_PER_DAY``), the settings file (TOML; ``--config`` or
``PROBE_CONFIG``, else ``settings.toml`` in the platform's config directory when it exists) and
the defaults (:data:`~probe.config.options.OPTIONS`, then the profile's,
:mod:`probe.config.profiles`), and returns a frozen :class:`Settings` whose ``sources`` say
where each value came from. The default database and targets are the source checkout's when the
probe belongs to one (``Settings.checkout``, and how that is known in its source:
:func:`probe.config.options.find_checkout`). Every value goes through its option's one parser
whatever its origin, so a flag, a variable and a file entry are held to the same rules; a bad
one raises :class:`SettingsError` naming the flag, variable or file and key. Resolvers are
parsed here, once: ``Settings.resolver`` and ``control_resolver`` are
:class:`~probe.model.ResolverSpec`. The helper's token file must be private
(:func:`check_token_file`: no access for group or others), or resolving fails there too.

The names other packages import from here (the option table, the value parsers, the default
paths, the profile policy) are re-exported from their homes: :mod:`probe.config.parse`,
:mod:`probe.config.options`, :mod:`probe.config.profiles`, :mod:`probe.config.resolver`.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probe.config import options as _options
from probe.config.options import (
    BY_NAME,
    ENV_PREFIX,
    OPTIONS,
    default_config,
    default_db,
    default_targets,
)
from probe.config.profiles import apply_profile
from probe.errors import SettingsError
from probe.model import ResolverSpec
from probe.words import N_

__all__ = ["Settings", "SettingsError", "resolve"]


@dataclass(frozen=True, slots=True)
class Settings:
    """The effective settings; ``sources[name]`` says where each value came from. One field per
    option of :data:`OPTIONS` and no defaults here: :func:`resolve` fills every field, from the
    option table's defaults when nothing else gives one (a test pins the two together)."""

    targets: str
    db: str
    only: tuple[str, ...]
    resolver: ResolverSpec | None  # None: the system's (probe.config.resolver.system_resolver)
    control_resolver: ResolverSpec
    stun_servers: tuple[str, ...]  # HOST:PORT; () asks none
    ca_bundle: str | None
    concurrency: int
    timeout: float
    deadline: float
    fingerprints: tuple[str, ...]
    helper: str | None
    helper_token_file: str | None
    helper_bulk_addresses: tuple[str, ...]
    profile: str
    max_bytes_per_day: int | None
    max_bytes_per_month: int | None
    throughput: bool
    throughput_bytes: int | None
    throughput_seconds: float | None
    throughput_trials: int | None
    allow_loopback: bool
    interval: float
    throughput_interval: float
    log_format: str
    max_body: int
    asn: str | None
    cc: str | None
    upload_url: str | None
    collective_key: str | None
    upload_credentials: str | None
    upload_presigned: str | None
    upload_region: str
    upload_proxy: str | None
    upload_interval: float
    upload_bodies: bool
    keep_uploaded: float | None
    config: str | None = None  # the settings file read, if any
    # The source checkout the probe belongs to (its results/ and targets.yaml are the default
    # paths), if any; sources["checkout"] says how it is known, or why there is none.
    checkout: str | None = None
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def items(self) -> list[tuple[str, Any, str]]:
        """(name, value, source) for every setting, in the table's order; a value as a
        settings file would hold it (a resolver as its URL), so it can be shown or dumped."""
        return [
            (o.name, _shown(getattr(self, o.name)), self.sources.get(o.name, "default"))
            for o in OPTIONS
        ]


def _shown(value: Any) -> Any:
    return str(value) if isinstance(value, ResolverSpec) else value


def _load_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError(N_("{path}: no such settings file"), path=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(N_("{path}: {problem}"), path=path, problem=exc) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(N_("{path}: cannot read ({problem})"), path=path, problem=exc) from None
    unknown = sorted(set(doc) - set(BY_NAME))
    if unknown:
        raise SettingsError(
            N_("{path}: {key}: unknown setting (see 'probe config')"), path=path, key=unknown[0]
        )
    return doc


def check_token_file(path: str, where: str) -> None:
    """The helper's token file must be private to its user, as ssh wants a private key: any
    access for its group or others is a :class:`SettingsError` naming the file and the fix. A
    file that cannot be read at all is left to its reader, which says so."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return
    if mode & 0o077:
        raise SettingsError(
            N_(
                "{where}: {path}: the helper's token is open to others (mode {mode}); make it "
                "private: chmod 600 {path}"
            ),
            where=where,
            path=path,
            mode=f"{mode:04o}",
        )


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
    wheres: dict[str, str] = {}
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
            raise SettingsError(N_("{where}: {problem}"), where=where, problem=exc) from None
        sources[o.name] = src
        wheres[o.name] = where
    if values.get("helper_token_file"):
        check_token_file(values["helper_token_file"], wheres["helper_token_file"])
    for o in OPTIONS:
        if o.name not in values and o.name not in ("db", "targets"):
            values[o.name] = o.default
            sources[o.name] = "default"
    found = _options.checkout(env)
    if values.get("db") is None:
        values["db"], sources["db"] = default_db(found)
    if values.get("targets") is None:
        values["targets"], sources["targets"] = default_targets(found)
    apply_profile(values, sources)
    return Settings(
        **values,
        config=str(cfg_path) if cfg_path is not None else None,
        checkout=str(found.path) if found is not None else None,
        sources={
            **sources,
            "config": cfg_source if cfg_path is not None else "none",
            "checkout": found.how if found is not None else _no_checkout(env),
        },
    )


def _no_checkout(env: Mapping[str, str]) -> str:
    if env.get("STATE_DIRECTORY"):
        return "none: a service keeps its own state (systemd StateDirectory)"
    return "none: not installed from a source checkout"
