"""Test databases built from the golden scenarios (recorded observations), never from live runs.

``measurement(name, ...)`` replays one scenario through the classifier into a
:class:`~probe.model.Measurement`; ``golden_db(path, days=...)`` stores every scenario once a day
for ``days`` days, each with a helper's control answer where one is given, so exports, merges and
reports have every verdict to show.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from probe.classify import classify
from probe.model import ControlEvidence, Measurement, observations_from_json
from probe.store import Store

GOLDEN = Path(__file__).parent / "golden" / "scenarios"
SCENARIOS = sorted(p.stem for p in GOLDEN.glob("*.json"))


def scenario(name: str) -> dict[str, Any]:
    return json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def measurement(
    name: str,
    mid: str,
    *,
    started_at: str = "2026-11-29T00:00:00.000Z",
    control: ControlEvidence | None = None,
    **fields: Any,
) -> Measurement:
    doc = scenario(name)
    obs = observations_from_json(doc["observations"])
    m = Measurement(
        id=mid,
        target=name,
        url=doc["url"],
        started_at=started_at,
        observations=obs,
        verdict=classify(obs, control=control, network_ok=doc["network_ok"]),
        network_ok=doc["network_ok"],
        control=control,
        bytes_used=1234,
        category="NEWS",
        round_id=f"round-{started_at[:10]}",
        device_id="dev-1",
        software="probe/0.1.0",
    )
    return replace(m, **fields)


def golden_db(path: Path, *, days: int = 2, device_id: str = "dev-1", **fields: Any) -> Path:
    """Every golden scenario, once a day at 02:00 UTC from 2026-11-01, stored at ``path``."""
    store = Store.open(path)
    try:
        for day in range(days):
            at = f"2026-11-{day + 1:02d}T02:00:00.000Z"
            for i, name in enumerate(SCENARIOS):
                mid = f"202611{day + 1:02d}T020000Z_{device_id}_{i:03d}"
                store.save(measurement(name, mid, started_at=at, device_id=device_id, **fields))
    finally:
        store.close()
    return path


def helper_saw_it_work(name: str) -> ControlEvidence:
    """A test helper's answer for a scenario's URL: from elsewhere, the site works (its
    addresses are the control resolver's, every endpoint connects, the page is the real one)."""
    from probe.model import ControlEndpoint

    doc = scenario(name)
    obs = doc["observations"]
    addrs = [a["value"] for q in obs["dns"] if q["resolver"] == "control" for a in q["answers"]]
    eps = {f"{c['ip']}:{c['port']}": ControlEndpoint(True) for c in obs["tcp"]}
    return ControlEvidence(
        source="helper",
        dns_addrs=tuple(a for a in addrs if a[0].isdigit()),
        tcp_connect=eps,
        tls_handshake={k: ControlEndpoint(True, None, "news.test") for k in eps}
        if doc["url"].startswith("https")
        else {},
        http_status_code=200,
        http_body_length=2431,
        http_title="Independent News Today",
        http_headers={"Content-Type": "text/html; charset=utf-8", "X-News-Site": "1"},
    )


HELPER_DOWN = ControlEvidence(source="helper", failure="connection_reset")


# The documented example (docs/analysts.md): two networks, three days, four measurements a day
# per target and network, each a golden scenario. An outlet blocked by DNS on AS7552 all along
# and on AS45899 from the second day; Facebook's TLS handshake reset on AS7552 for two days;
# Wikipedia fine, but for one round where the volunteer's own link was down.
_OK, _NX, _RST = "success_https", "dns_nxdomain", "tls_reset_on_sni"
EXAMPLE_PLAN = {
    ("rfa-vietnamese", "NEWS", "AS7552"): [[_NX] * 4, [_NX] * 4, [_NX] * 4],
    ("rfa-vietnamese", "NEWS", "AS45899"): [[_OK] * 4, [_OK, _NX, _NX, _NX], [_NX] * 4],
    ("facebook", "GRP", "AS7552"): [[_RST, _RST, _OK, _RST], [_RST] * 4, [_OK] * 4],
    ("facebook", "GRP", "AS45899"): [[_OK] * 4, [_OK] * 4, [_OK] * 4],
    ("wikipedia", "CULTR", "AS7552"): [[_OK] * 4, [_OK, "offline_round", _OK, _OK], [_OK] * 4],
    ("wikipedia", "CULTR", "AS45899"): [[_OK] * 4, [_OK] * 4, [_OK] * 4],
}


def example_fleet(path: Path) -> Path:
    """The fleet of :data:`EXAMPLE_PLAN`, one device per network, in one database."""
    store = Store.open(path)
    for (target, category, asn), days in EXAMPLE_PLAN.items():
        for day, names in enumerate(days):
            for hour, name in zip((2, 8, 14, 20), names, strict=True):
                at = f"2026-11-{day + 1:02d}T{hour:02d}:00:00.000Z"
                store.save(
                    measurement(
                        name,
                        f"2026110{day + 1}T{hour:02d}0000Z_{asn}_{target}",
                        started_at=at,
                        target=target,
                        category=category,
                        probe_asn=asn,
                        probe_cc="VN",
                        device_id=f"dev-{asn}",
                    )
                )
    store.close()
    return path


def report_fleet(path: Path) -> Path:
    """:func:`example_fleet` plus throughput tests: Facebook on AS7552 falls to a tenth of the
    control's on the second day (a throttling event) and recovers on the third."""
    example_fleet(path)
    store = Store.open(path)
    for day in range(3):
        for hour in (1, 7, 13, 19):
            for asn in ("AS7552", "AS45899"):
                slow = asn == "AS7552" and day == 1
                ratio = 0.1 + 0.01 * hour if slow else 0.9 + 0.005 * hour
                m = measurement(
                    "success_https",
                    f"2026110{day + 1}T{hour:02d}3000Z_{asn}_tp",
                    started_at=f"2026-11-{day + 1:02d}T{hour:02d}:30:00.000Z",
                    target="facebook",
                    category="GRP",
                    probe_asn=asn,
                    probe_cc="VN",
                    device_id=f"dev-{asn}",
                )
                analysis = {
                    "ratio": ratio,
                    "bps": 8e6 * ratio,
                    "control_bps": 8e6,
                    "p_value": 0.001 if slow else 0.6,
                    "label": "sni_targeted" if slow else None,
                    "throttled": slow,
                }
                store.save(
                    replace(
                        m,
                        verdict=replace(m.verdict, throttled=slow),
                        throughput={"analysis": analysis, "bytes_used": 2_000_000},
                    )
                )
    store.close()
    return path
