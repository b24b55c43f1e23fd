"""Record golden scenarios: run the real measuring code in the loopback world, keep what it saw.

Usage: ``python -m tests.golden.record`` (rewrites ``tests/golden/scenarios/*.json``).

Each scenario is a name, a URL in the loopback world, the round's ``network_ok`` and the verdict
we expect. The expectation is written here, by hand, never copied from the classifier's output:
``tests/test_golden.py`` replays the recorded observations through the classifier and compares.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from probe.model import observations_to_json
from tests.conftest import World, make_world

HERE = Path(__file__).parent / "scenarios"

# name: (how to build the URL, measure options, network_ok, expected verdict fields)
SCENARIOS: dict[str, tuple[Any, dict[str, Any], bool | None, dict[str, Any]]] = {
    "success_http": (
        lambda w: w.http("news.test"),
        {},
        True,
        dict(blocking=False, accessible=True, dns_consistency="consistent"),
    ),
    "success_https": (
        lambda w: w.https("news.test"),
        {},
        True,
        dict(blocking=False, accessible=True, rule_id="https.success"),
    ),
    "dns_nxdomain": (
        lambda w: w.http("nxblocked.test"),
        {},
        True,
        dict(
            blocking="dns",
            accessible=False,
            failing_step="dns",
            failure="dns_nxdomain_error",
            dns_consistency="inconsistent",
        ),
    ),
    "dns_servfail": (
        lambda w: w.http("servfail.test"),
        {},
        True,
        dict(blocking="dns", accessible=False, failure="dns_servfail_error"),
    ),
    "dns_timeout": (
        lambda w: w.http("silent.test"),
        {},
        True,
        dict(blocking="dns", accessible=False, failure="generic_timeout_error"),
    ),
    "dns_loopback": (
        lambda w: w.http("loopback.test"),
        {"allow_loopback": False},
        True,
        dict(blocking="dns", accessible=False, dns_consistency="inconsistent"),
    ),
    "dns_blockpage_address": (
        lambda w: w.http("blocked.test"),
        {},
        True,
        dict(
            blocking="dns",
            accessible=False,
            rule_id="blockpage.http",
            blockpage="probe.vn_http_blocked_vi",
        ),
    ),
    "dns_lie_proxy_real_site": (
        lambda w: w.http("proxied.test"),
        {},
        True,
        dict(
            blocking=False,
            accessible=True,
            dns_consistency="inconsistent",
            rule_id="dns.inconsistent.same_page",
        ),
    ),
    "dns_lie_proxy_real_site_https": (
        lambda w: w.https("proxied.test"),
        {},
        True,
        dict(blocking=False, accessible=True),
    ),
    "dns_inconsistent_unverifiable": (
        lambda w: w.http("cdn.test"),
        {},
        True,
        dict(blocking=None, accessible=None, rule_id="dns.inconsistent.unverified"),
    ),
    "tcp_refused": (
        lambda w: w.http("refused.test"),
        {},
        True,
        dict(blocking="tcp_ip", accessible=False, failing_step="tcp", failure="connection_refused"),
    ),
    "tcp_timeout": (
        lambda w: w.https("hole.test"),
        {},
        True,
        dict(
            blocking="tcp_ip", accessible=False, failing_step="tcp", failure="generic_timeout_error"
        ),
    ),
    "tls_reset_on_sni": (
        lambda w: w.https("tls-reset.test"),
        {},
        True,
        dict(
            blocking="http-failure",
            accessible=False,
            failing_step="tls",
            failure="connection_reset",
        ),
    ),
    "tls_eof": (
        lambda w: w.https("eof.test"),
        {},
        True,
        dict(blocking="http-failure", accessible=False, failing_step="tls", failure="eof_error"),
    ),
    "http_reset_on_host": (
        lambda w: w.http("reset.test"),
        {},
        True,
        dict(
            blocking="http-failure",
            accessible=False,
            failing_step="http",
            failure="connection_reset",
        ),
    ),
    "http_eof": (
        lambda w: w.http("eof.test"),
        {},
        True,
        dict(blocking="http-failure", accessible=False, failure="eof_error"),
    ),
    "blockpage_injection_consistent_dns": (
        lambda w: w.http("injected.test"),
        {},
        True,
        dict(
            blocking="http-diff",
            accessible=False,
            dns_consistency="consistent",
            blockpage="probe.vn_http_blocked_vi",
        ),
    ),
    "down_for_everyone_nxdomain": (
        lambda w: w.http("down.test"),
        {},
        True,
        dict(blocking=False, accessible=False, dns_consistency="consistent"),
    ),
    "bad_certificate_wrong_name": (
        lambda w: w.https("wrongname.test"),
        {},
        True,
        dict(blocking=False, accessible=False, failure="ssl_invalid_hostname"),
    ),
    "redirect_into_reset_host": (
        lambda w: w.http("news.test", "/to-reset"),
        {},
        True,
        dict(blocking="http-failure", accessible=False, failure="connection_reset"),
    ),
    "redirect_into_nxdomain": (
        lambda w: w.http("news.test", "/to-nx"),
        {},
        True,
        dict(blocking="dns", accessible=False, rule_id="dns.redirect_hop"),
    ),
    "redirect_loop": (
        lambda w: w.http("redirect.test", "/hop0"),
        {},
        True,
        dict(blocking=False, accessible=False, rule_id="down.redirect_loop"),
    ),
    "redirect_broken_location": (
        lambda w: w.http("news.test", "/broken"),
        {},
        True,
        dict(
            blocking="http-failure", accessible=False, failure="http_invalid_redirect_location_host"
        ),
    ),
    "large_body": (
        lambda w: w.http("big.test", "/large"),
        {},
        True,
        dict(blocking=False, accessible=True),
    ),
    "gzip_bomb": (
        lambda w: w.http("bomb.test", "/bomb"),
        {},
        True,
        dict(blocking=False, accessible=True),
    ),
    "idn_host": (
        lambda w: f"http://bücher.test:{w.http_port}/",
        {},
        True,
        dict(blocking=False, accessible=True),
    ),
    "offline_round": (
        lambda w: w.http("reset.test"),
        {},
        False,
        dict(blocking=None, accessible=None, rule_id="offline", offline=True),
    ),
    "no_controls_configured": (
        lambda w: w.http("news.test"),
        {},
        None,
        dict(blocking=False, accessible=True),
    ),
}


def record(w: World, out: Path = HERE) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (url_of, opts, network_ok, expected) in SCENARIOS.items():
        url = url_of(w)
        obs, _ = w.measure(url, **opts)
        data = observations_to_json(obs, with_bodies=True)
        for h in data["http"]:  # fingerprints need the text, not 64 KiB of it
            if h.get("body"):
                h["body"] = h["body"][:4096]
        doc = {
            "name": name,
            "url": url,
            "network_ok": network_ok,
            "expected": expected,
            "observations": data,
        }
        path = out / f"{name}.json"
        path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(str(path))
    return written


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp, make_world(Path(tmp)) as w:
        for p in record(w):
            print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
