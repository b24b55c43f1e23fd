"""From settings to a round: everything a round needs, loaded and checked before it starts.

Contract: :func:`prepare` turns the settings into a :class:`RoundSetup` (targets, resolvers,
fingerprints, the helper's token, the throughput plan, the data caps), raising an
:class:`~probe.errors.InputError` that names the setting for anything unusable, before a byte
is measured or written. Pure of the network: files are read, nothing is fetched.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from probe import addr
from probe.classify.fingerprints import FingerprintSet, builtin
from probe.classify.fingerprints import load as load_fingerprint_file
from probe.config.resolver import system_resolver
from probe.config.settings import Settings, check_token_file
from probe.config.targets import TargetList, read_targets
from probe.errors import InputError
from probe.measure.config import MeasureConfig
from probe.measure.net import make_ssl_context
from probe.model import Plan
from probe.round.budget import Budget
from probe.words import N_


@dataclass(frozen=True, slots=True)
class RoundSetup:
    """Everything a round needs, resolved and checked from the settings."""

    settings: Settings
    targets: TargetList
    cfg: MeasureConfig
    fingerprints: FingerprintSet
    helper_token: str | None
    plan: Plan | None  # None: no throughput tests
    budget: Budget = field(default_factory=Budget)  # the settings' daily and monthly caps


def read_token(path: str) -> str:
    """A token file's one word (the probe's helper token, or the helper's own), refused when
    others may read it (:func:`probe.config.settings.check_token_file`)."""
    check_token_file(path, "token file")
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            N_("{path}: cannot read the token ({problem})"), path=path, problem=exc
        ) from None
    if not token or any(c.isspace() for c in token):
        raise InputError(N_("{path}: the token must be one word"), path=path)
    return token


def load_fingerprints(paths: Sequence[str]) -> FingerprintSet:
    fps = builtin()
    for p in paths:
        fps = fps + load_fingerprint_file(p)
    return fps


def throughput_plan(settings: Settings) -> Plan | None:
    """The plan the settings ask for; None when throughput is off."""
    return profile_plan(settings) if settings.throughput else None


def profile_plan(settings: Settings) -> Plan:
    """The profile's plan with the settings' overrides, whether throughput is on or off."""
    plan = Plan.profile(settings.profile)
    if settings.throughput_bytes:
        n = settings.throughput_bytes
        plan = replace(plan, max_bytes=n, ab_bytes=n)
    if settings.throughput_seconds:
        plan = replace(
            plan,
            max_seconds=settings.throughput_seconds,
            ab_seconds=min(plan.ab_seconds, settings.throughput_seconds),
        )
    if settings.throughput_trials:
        plan = replace(plan, trials=settings.throughput_trials)
    return plan


def setting_source(settings: Settings, name: str) -> str:
    """Where a setting came from, as a user would name it: ``--ca-bundle``, ``PROBE_CA_BUNDLE``
    or ``FILE: ca_bundle``."""
    src = settings.sources.get(name, "")
    for prefix in ("flag ", "environment "):
        if src.startswith(prefix):
            return src.removeprefix(prefix)
    return f"{src.removeprefix('file ')}: {name}" if src.startswith("file ") else name


def check_ca_bundle(settings: Settings) -> None:
    """The extra trust anchors load as PEM certificates, or InputError naming the setting."""
    if not settings.ca_bundle:
        return
    where = {"setting": setting_source(settings, "ca_bundle"), "path": settings.ca_bundle}
    try:
        make_ssl_context(settings.ca_bundle)
    except (ssl.SSLError, ValueError) as exc:  # SSLError first: it is an OSError too
        reason = getattr(exc, "reason", None) or exc
        raise InputError(
            N_("{setting} {path}: not a PEM file of certificates ({problem})"),
            **where,
            problem=reason,
        ) from None
    except OSError as exc:
        raise InputError(
            N_("{setting} {path}: cannot read ({problem})"), **where, problem=exc.strerror or exc
        ) from None


def prepare(settings: Settings) -> RoundSetup:
    """Check and load what the settings name; raises InputError, never half-way."""
    check_ca_bundle(settings)
    tl = read_targets(settings.targets)  # broken entries: tl.problems, for the caller to report
    if settings.only:
        tl = tl.select(settings.only)
    cfg = MeasureConfig(
        resolver=settings.resolver or system_resolver(),
        control_resolver=settings.control_resolver,
        ca_bundle=settings.ca_bundle,
        timeout=settings.timeout,
        deadline=settings.deadline,
        body_cap=settings.max_body,
        allow_loopback=settings.allow_loopback,
        stun_servers=tuple(addr.split_host_port(x) for x in settings.stun_servers),
        quic=settings.http3,
    )
    token = read_token(settings.helper_token_file) if settings.helper_token_file else None
    return RoundSetup(
        settings,
        tl,
        cfg,
        load_fingerprints(settings.fingerprints),
        token,
        throughput_plan(settings),
        Budget(settings.max_bytes_per_day, settings.max_bytes_per_month),
    )
