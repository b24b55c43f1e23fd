"""Record the HTTP/3 golden scenarios: ``python -m tests.classify.quic_golden``.

Each scenario is measured for real in the loopback HTTP/3 world (tests/h3world.py): the TCP
chain, then the QUIC steps; the recording keeps the observations, any control evidence and the
verdict we expect, written here by hand. tests/classify/test_quic.py replays them.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from probe.measure.net import Shared
from probe.measure.throughput import Download, run_test
from probe.model import (
    ControlEndpoint,
    ControlEvidence,
    Plan,
    ThroughputRecord,
    control_to_json,
    observations_to_json,
    throughput_to_json,
)
from tests.h3world import H3World, make_h3_world

HERE = Path(__file__).parent / "quic_golden"

# name -> (host, expected QUIC verdict, the helper's QUIC handshakes (ok) or None); the names
# in HELPER_AB also get the SNI A/B against the helper's QUIC listener (behind the censor)
HELPER_AB = {"quic_sni_blocked_told_by_the_helper", "udp_dropped_helper_ab_passes"}
SCENARIOS: dict[str, tuple[str, dict[str, Any], bool | None]] = {
    "quic_sni_blocked_told_by_the_helper": (
        "snidrop.test",
        {"quic": "sni_blocked", "quic_rule": "quic.sni_blocked.helper"},
        None,
    ),
    "udp_dropped_helper_ab_passes": (
        "hole.test",
        {"quic": "blocked", "quic_rule": "quic.blocked"},
        None,
    ),
    "h3_ok": ("h3.test", {"quic": "ok", "quic_rule": "quic.ok"}, None),
    "h3_ok_by_https_record": ("rr.test", {"quic": "ok", "quic_rule": "quic.ok"}, None),
    "udp_rejected_tcp_works": (
        "refused.test",
        {"quic": "blocked", "quic_rule": "quic.blocked"},
        None,
    ),
    "udp_dropped_tcp_works": ("hole.test", {"quic": "blocked", "quic_rule": "quic.blocked"}, None),
    "quic_sni_blocked": (
        "sni.test",
        {"quic": "sni_blocked", "quic_rule": "quic.sni_blocked"},
        None,
    ),
    "quic_and_tcp_dropped": (
        "dead.test",
        {"quic": "both_blocked", "quic_rule": "quic.both_blocked", "blocking": "tcp_ip"},
        None,
    ),
    "quic_bad_certificate": (
        "badcert.test",
        {"quic": "failure", "quic_rule": "quic.handshake_failure"},
        None,
    ),
    "quic_down_for_the_helper_too": (
        "hole.test",
        {"quic": "down", "quic_rule": "quic.down_for_everyone"},
        False,
    ),
    "quic_throttled": ("big.test", {"quic": "slower", "quic_rule": "quic.slower.page"}, None),
    "h3_not_advertised": ("none.test", {"quic": None, "quic_rule": None}, None),
    "quic_slower_by_throughput": (
        "big.test",
        {"quic": "slower", "quic_rule": "quic.slower.throughput"},
        None,
    ),
    # the page's HTTP/3 GET is slower, but the object comes as fast over both: not slower
    "quic_as_fast_by_throughput": ("big.test", {"quic": "ok", "quic_rule": "quic.ok"}, None),
}
# names whose recording adds a throughput test: the site's /tp beside the control's (h3.test),
# with the object over HTTP/3 too (probe.measure.h3flow), its flows kept under "throughput"
THROUGHPUT = {"quic_slower_by_throughput": "/tp", "quic_as_fast_by_throughput": "/even"}
TP_PLAN = Plan(max_bytes=8 * 1024 * 1024, max_seconds=3.5, trials=3)


def _control(obs: Any, helper_quic: bool | None) -> ControlEvidence | None:
    if helper_quic is None:
        return None
    eps = {f"{h.ip}:{h.port}": ControlEndpoint(helper_quic) for h in obs.quic.handshakes}
    return ControlEvidence(
        dns_addrs=tuple(a for q in obs.dns if q.resolver == "system" for a in q.addrs),
        tcp_connect={f"{t.ip}:{t.port}": ControlEndpoint(t.ok) for t in obs.tcp},
        http_status_code=200,
        quic_handshake=eps,
        http3_failure=None if helper_quic else "generic_timeout_error",
    )


def _throughput(w: H3World, host: str, path: str) -> ThroughputRecord:
    async def go() -> ThroughputRecord:
        shared = Shared.create(w.config())
        try:
            res = await run_test(
                shared,
                Download(f"https://{host}:{w.port}{path}"),
                Download(f"https://h3.test:{w.port}/tp"),
                TP_PLAN,
                h3_port=w.port,
            )
        finally:
            await shared.aclose()
        return ThroughputRecord(plan=TP_PLAN, flows=tuple(res.flows), bytes_used=res.bytes_used)

    return asyncio.run(go())


def record(only: list[str]) -> None:
    from dataclasses import replace

    with tempfile.TemporaryDirectory() as tmp, make_h3_world(Path(tmp)) as w:
        for name, (host, expected, helper_quic) in SCENARIOS.items():
            if only and name not in only:
                continue
            obs, q = w.measure(host, w.helper if name in HELPER_AB else None, timeout=1.0)
            obs = replace(obs, quic=q)
            doc = {
                "name": name,
                "url": w.url(host),
                "network_ok": True,
                "expected": expected,
                "observations": observations_to_json(obs),
                "control": control_to_json(_control(obs, helper_quic)),
            }
            if name in THROUGHPUT:
                doc["throughput"] = throughput_to_json(_throughput(w, host, THROUGHPUT[name]))
            path = HERE / f"{name}.json"
            path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            print(path)


if __name__ == "__main__":
    record(sys.argv[1:])
