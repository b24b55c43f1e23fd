"""One round: measure the controls, then every target, classify each, store each whole.

Contract: ``run_round`` measures the control sites first (they decide whether the volunteer's
own link works: when none loads, the round is offline and no target gets a blocking verdict),
then the targets with bounded concurrency. Each measurement is classified and handed to
``on_measurement`` (the store writes it in one transaction) as soon as it completes, so a killed
round keeps everything finished before the kill. Network failures never raise.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import msgspec

from probe import __version__
from probe.classify import classify
from probe.classify.fingerprints import FingerprintSet
from probe.classify.throughput import analyse, looks_slow
from probe.control import HelperClient
from probe.measure.runner import MeasureConfig, Shared, TargetMeasurer
from probe.measure.throughput import HelperBulk, Plan, run_test
from probe.model import ControlEvidence, Measurement, Observations
from probe.targets import Target

SOFTWARE = f"probe/{__version__}"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_measurement_id(started: datetime | None = None) -> str:
    """Stable, globally unique, time-ordered: ``YYYYMMDDTHHMMSSZ_<uuid4 hex>``."""
    t = started or datetime.now(UTC)
    return f"{t.strftime('%Y%m%dT%H%M%SZ')}_{uuid.uuid4().hex}"


@dataclass(slots=True)
class RoundResult:
    id: str
    started_at: str
    finished_at: str = ""
    network_ok: bool | None = None
    measurements: list[Measurement] = field(default_factory=list)
    bytes_used: int = 0


def _endpoints(url: str, addrs: list[str]) -> list[str]:
    """What the helper should also try: every address we were given, on the URL's port."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return [f"[{a}]:{port}" if ":" in a else f"{a}:{port}" for a in addrs]


async def _measure(
    shared: Shared,
    helper: HelperClient | None,
    target: Target,
    *,
    round_id: str,
    device_id: str | None,
    fingerprints: FingerprintSet,
    network_ok: bool | None,
) -> Measurement:
    started = datetime.now(UTC)
    measurer = TargetMeasurer(shared, target.url)
    task = asyncio.create_task(measurer.run())
    control: ControlEvidence | None = None
    if helper is not None:
        # Ask the helper as soon as our own DNS answers are known, while we go on measuring.
        await measurer.first_hop_ready.wait()
        system, ctl = measurer.first_hop
        control = await helper.query(target.url, _endpoints(target.url, [*system, *ctl]))
    obs, used, runtime = await task
    verdict = classify(obs, control=control, fingerprints=fingerprints, network_ok=network_ok)
    return Measurement(
        id=new_measurement_id(started),
        target=target.name,
        url=target.url,
        started_at=started.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        observations=obs,
        verdict=verdict,
        runtime=round(runtime, 4),
        round_id=round_id,
        device_id=device_id,
        category=target.category,
        is_control=target.is_control,
        resolver=shared.cfg.resolver.address,
        control_resolver=(
            shared.cfg.control_resolver.address if shared.cfg.control_resolver else None
        ),
        network_ok=network_ok,
        control=control,
        bytes_used=used,
        software=SOFTWARE,
    )


@dataclass(frozen=True, slots=True)
class ThroughputOptions:
    """Throughput tests: the plan per test, the daily data cap, and the helper's bulk endpoint."""

    plan: Plan
    max_bytes_per_day: int | None = None
    bytes_used_today: Callable[[], int] = lambda: 0
    bulk: HelperBulk | None = None


async def _throughput(
    shared: Shared,
    m: Measurement,
    target: Target,
    control: Target,
    opts: ThroughputOptions,
    tests_in_round: int,
) -> Measurement:
    """Add a throughput test to a finished page measurement (tests run one at a time)."""
    assert target.throughput_url and control.throughput_url
    cap = opts.max_bytes_per_day
    if cap is not None and opts.bytes_used_today() + opts.plan.worst_case_bytes > cap:
        doc: dict[str, Any] = {"skipped": "data_cap", "analysis": None}
        return replace(m, throughput=doc)
    res = await run_test(
        shared,
        target.throughput_url,
        control.throughput_url,
        opts.plan,
        helper=opts.bulk,
        suspicious=looks_slow,
    )
    analysis = (
        None
        if res.skipped
        else analyse(res.flows, tests_in_round=tests_in_round, helper_speed=res.helper_speed)
    )
    doc = {
        "skipped": res.skipped,
        "url": target.throughput_url,
        "control_url": control.throughput_url,
        "control": control.name,
        "plan": msgspec.to_builtins(opts.plan),
        "tests_in_round": tests_in_round,
        "helper_speed": res.helper_speed,
        "flows": msgspec.to_builtins(res.flows),
        "bytes_used": res.bytes_used,
        "analysis": analysis,
    }
    throttled = None if analysis is None else analysis["throttled"]
    return replace(
        m,
        throughput=doc,
        bytes_used=m.bytes_used + res.bytes_used,
        verdict=replace(m.verdict, throttled=throttled),
    )


async def run_round(
    targets: Sequence[Target],
    controls: Sequence[Target],
    cfg: MeasureConfig,
    *,
    fingerprints: FingerprintSet,
    concurrency: int = 16,
    device_id: str | None = None,
    on_measurement: Callable[[Measurement], None] = lambda m: None,
    helper: HelperClient | None = None,
    throughput: ThroughputOptions | None = None,
) -> RoundResult:
    """One round; ``helper`` (a test helper client) adds a control vantage to every target;
    ``throughput`` adds throttling tests for targets with a ``throughput_url``, run one at a
    time after every page was measured, so they do not compete with each other or the pages."""
    result = RoundResult(id=str(uuid.uuid4()), started_at=utc_now())
    shared = Shared.create(cfg)
    sem = asyncio.Semaphore(max(1, concurrency))
    tp_control = next((c for c in controls if c.throughput_url), None)
    tp_targets = (
        {t.name for t in targets if t.throughput_url}
        if (throughput is not None and tp_control is not None)
        else set()
    )
    held: list[tuple[Target, Measurement]] = []

    def finish(m: Measurement) -> None:
        on_measurement(m)
        # Keep the verdict for the summary, not the observations: a long round stays small.
        result.measurements.append(replace(m, observations=Observations(m.url)))
        result.bytes_used += m.bytes_used

    async def one(t: Target, network_ok: bool | None) -> Measurement:
        async with sem:
            m = await _measure(
                shared,
                helper,
                t,
                round_id=result.id,
                device_id=device_id,
                fingerprints=fingerprints,
                network_ok=network_ok,
            )
        if t.name in tp_targets and network_ok is not False:
            held.append((t, m))
        else:
            finish(m)
        return m

    try:
        done = await asyncio.gather(*(one(c, None) for c in controls))
        if done:
            # Any control that loaded a page proves the link works.
            result.network_ok = any(_system_ok(m) for m in done)
        await asyncio.gather(*(one(t, result.network_ok) for t in targets))
        for t, m in held:
            assert throughput is not None and tp_control is not None
            finish(await _throughput(shared, m, t, tp_control, throughput, len(held)))
    finally:
        await shared.aclose()
        if helper is not None:
            await helper.aclose()
    result.finished_at = utc_now()
    return result


def _system_ok(m: Measurement) -> bool:
    system = [h for h in m.observations.http if h.role == "system"]
    return bool(system) and system[-1].failure is None
