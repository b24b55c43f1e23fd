"""A varied database for the export tests that pin output: every golden scenario on a few days,
with and without a helper's answer (one that saw the site work, one that could not be reached),
controls, throughput tests (analysed, throttled, skipped, with flows and samples), imported rows
carrying OONI's own verdict, and the m007 network columns. Deterministic: the same rows, ids and
numbers on every run, so an export of it can be compared byte for byte."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from probe.model import (
    Flow,
    HelperSpeed,
    Measurement,
    Plan,
    Sample,
    ThroughputAnalysis,
    ThroughputObject,
    ThroughputRecord,
)
from probe.store import Store
from tests.dbs import HELPER_DOWN, SCENARIOS, helper_saw_it_work, measurement

LABELS = ("sni_targeted", "ip_targeted", "target_slow_unattributed", None)


def throughput_test(i: int) -> ThroughputRecord:
    """A deterministic throughput test: the ``i``-th of a cycle of analysed, throttled and
    skipped ones."""
    if i % 5 == 4:
        return ThroughputRecord(
            skipped=("data_cap", "no_object")[i % 2], plan=Plan.profile("mobile")
        )
    ratio = round(0.1 + 0.07 * (i % 9), 3)
    throttled = None if i % 7 == 3 else ratio < 0.5
    flows = tuple(
        Flow(
            role=role,
            url=f"https://site{i}.test/obj.bin",
            ip="192.0.2.10" if role == "target" else "198.51.100.7",
            trial=trial,
            start=0.5 * trial,
            ttfb=0.05 + 0.01 * trial,
            duration=2.0,
            bytes=1_000_000 - trial,
            wire_bytes=1_010_000,
            samples=tuple(
                Sample(t=0.25 * k, bytes=250_000 * k, rtt_us=40_000 + k, min_rtt_us=39_000)
                for k in range(1, 4)
            ),
            failure="connection_reset" if (i + trial) % 11 == 0 else None,
        )
        for trial in range(2)
        for role in ("target", "control")
    )
    label = LABELS[i % len(LABELS)] if throttled else None
    return ThroughputRecord(
        url=f"https://site{i}.test/obj.bin",
        control_url="https://control.test/obj.bin",
        control="control-site",
        plan=Plan.profile("default"),
        tests_in_round=3,
        helper_speed=HelperSpeed(bps=9e6, bytes=4_000_000, seconds=0.44) if i % 2 else None,
        flows=flows,
        bytes_used=4_040_000,
        analysis=ThroughputAnalysis(
            throttled=throttled,
            label=label,
            mechanism="shaper" if throttled else None,
            bps=8e6 * ratio,
            control_bps=8e6,
            ratio=ratio,
            p_value=0.001 if throttled else 0.4,
            p_raw=0.0004 if throttled else 0.2,
            tests_in_round=3,
            burst_bytes=65536 if i % 3 == 0 else None,
            ab={"ab_neutral": 7.5e6, "ab_target": 8e6 * ratio} if i % 2 == 0 else {},
            helper_bps=9e6 if i % 2 else None,
            basis="trials",
        ),
        object=ThroughputObject(url=f"https://site{i}.test/obj.bin", size=1_048_576),
        discovery="pinned",
    )


def varied(n_days: int = 6) -> list[Measurement]:
    """``len(SCENARIOS) * n_days`` measurements (246 for six days), each its own mix."""
    out = []
    for day in range(n_days):
        for i, name in enumerate(SCENARIOS):
            k = day * len(SCENARIOS) + i
            at = f"2026-11-{day + 1:02d}T{2 + i % 20:02d}:{k % 60:02d}:00.000Z"
            control = (None, helper_saw_it_work(name), HELPER_DOWN)[k % 3]
            m = measurement(
                name,
                f"202611{day + 1:02d}T{k:06d}Z_dev-{k % 3}",
                started_at=at,
                control=control,
                device_id=f"dev-{k % 3}",
                probe_asn=("AS7552", "AS45899", None)[k % 3],
                probe_cc=("VN", "VN", None)[k % 3],
                network_name=("Viettel", None, None)[k % 3],
                resolver_kind=("isp", "public", None)[k % 3],
                resolver="udp://192.0.2.53:53" if k % 4 else None,
                control_resolver="tls://1.1.1.1:853" if k % 2 else None,
                is_control=k % 9 == 0,
                category=("NEWS", "GRP", None, "HUMR")[k % 4],
                runtime=round(1.5 + 0.1 * (k % 17), 2),
            )
            if m.verdict.blocking is False or k % 4 == 1:  # throughput is judged on pages that load
                tp = throughput_test(k)
                throttled = tp.analysis.throttled if tp.analysis else None
                m = replace(m, throughput=tp, verdict=replace(m.verdict, throttled=throttled))
            if k % 10 == 7:  # imported from OONI: its verdict beside ours
                m = replace(
                    m,
                    source="ooni",
                    software="ooniprobe-cli/3.22.0",
                    extra={"ooni_verdict": {"blocking": "dns", "accessible": False}},
                )
            out.append(m)
    return out


def varied_db(path: Path, n_days: int = 6) -> Path:
    store = Store.open(path)
    try:
        for m in varied(n_days):
            store.save(m)
    finally:
        store.close()
    return path
