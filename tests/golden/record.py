"""Record golden scenarios: the real measuring code in the loopback world, the way a round runs
it (measured, scrubbed, classified), with or without the in-process test helper.

Usage: ``python -m tests.golden.record [NAME ...]`` (rewrites ``tests/golden/scenarios/*.json``,
or only the named scenarios).

Each scenario is a name, a URL in the loopback world, the round's ``network_ok``, whether the
test helper is asked (``"down"``: a helper that cannot be reached), the measuring options, a
fingerprint file passed in beside the built-in set (``fingerprints``, a file under
``tests/golden/fingerprints``, named in the recording so the replay loads it too), and the
verdict we expect, ``rule_id`` always among it. The expectation is
written here, by hand, never copied from the classifier's output: ``tests/test_golden.py``
replays the recorded observations through the classifier and compares, and
``tests/test_golden_live.py`` records everything again and fails when a stored recording is
stale.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from probe.classify.fingerprints import FingerprintSet, builtin, load
from probe.config.resolver import parse_resolver
from probe.config.targets import Target
from probe.measure.helper_client import HelperClient
from probe.measure.net import Shared
from probe.model import Measurement, control_to_json, observations_to_json
from probe.privacy import Scrubber
from probe.round import measure_target
from tests.world import World, make_world

HERE = Path(__file__).parent / "scenarios"
FINGERPRINTS = Path(__file__).parent / "fingerprints"
BODY_KEPT = 4096  # fingerprints need the text, not 64 KiB of it


@dataclass(frozen=True)
class Golden:
    url: Callable[[World], str]
    expected: dict[str, Any]  # always with rule_id
    network_ok: bool | None = True
    helper: bool | Literal["down"] = False
    opts: dict[str, Any] = field(default_factory=dict)
    world_opts: Callable[[World], dict[str, Any]] | None = None  # options naming the world's parts
    fingerprints: str | None = None  # a file in FINGERPRINTS, added to the built-in set


def fingerprints_of(name: str | None) -> FingerprintSet:
    """The set a scenario is measured and replayed with: the built-in one, plus its file."""
    return builtin() if name is None else builtin() + load(FINGERPRINTS / name)


def _system_resolver_as_control(w: World) -> dict[str, Any]:
    # The volunteer's control resolver sits behind the same censor: it tells the same lie.
    return {"control_resolver": parse_resolver(w.system_dns.address)}


def _http(host: str, path: str = "/") -> Callable[[World], str]:
    return lambda w: w.http(host, path)


def _https(host: str, path: str = "/") -> Callable[[World], str]:
    return lambda w: w.https(host, path)


SCENARIOS: dict[str, Golden] = {
    # -- local evidence: the control resolver, the control fetch, the round's controls -------
    "success_http": Golden(
        _http("news.test"),
        dict(
            blocking=False,
            accessible=True,
            dns_consistency="consistent",
            rule_id="http.success.local",
            evidence="no control",
        ),
    ),
    "success_https": Golden(
        _https("news.test"),
        dict(blocking=False, accessible=True, rule_id="https.success", evidence="local"),
    ),
    "dns_nxdomain": Golden(
        _http("nxblocked.test"),
        dict(
            blocking="dns",
            accessible=False,
            failing_step="dns",
            failure="dns_nxdomain_error",
            dns_consistency="inconsistent",
            rule_id="dns.failure",
        ),
    ),
    "dns_servfail": Golden(
        _http("servfail.test"),
        dict(blocking="dns", accessible=False, failure="dns_servfail_error", rule_id="dns.failure"),
    ),
    "dns_timeout": Golden(
        _http("silent.test"),
        dict(
            blocking="dns",
            accessible=False,
            failure="generic_timeout_error",
            rule_id="dns.failure",
        ),
    ),
    "dns_loopback": Golden(
        _http("loopback.test"),
        dict(
            blocking="dns",
            accessible=False,
            dns_consistency="inconsistent",
            failure="dns_bogon_error",
            rule_id="dns.inconsistent.failure",
        ),
        opts={"allow_loopback": False, "allow_networks": ("127.0.0.10/32",)},
    ),
    "dns_loopback_no_control": Golden(
        # The same local answer with no control resolver to compare: cannot tell.
        _http("loopback.test"),
        dict(
            blocking=None,
            accessible=None,
            failing_step="dns",
            failure="dns_bogon_error",
            rule_id="dns.bogon.unknown",
        ),
        opts={
            "allow_loopback": False,
            "allow_networks": ("127.0.0.10/32",),
            "control_resolver": None,
        },
    ),
    "dns_loopback_control_agrees": Golden(
        # The control resolver gives the same local address: the name's own setting.
        _http("loopback.test"),
        dict(
            blocking=False,
            accessible=False,
            dns_consistency="consistent",
            failing_step="dns",
            rule_id="down.local_address",
        ),
        opts={"allow_loopback": False, "allow_networks": ("127.0.0.10/32",)},
        world_opts=_system_resolver_as_control,
    ),
    "dns_blockpage_address": Golden(
        _http("blocked.test"),
        dict(
            blocking="dns",
            accessible=False,
            rule_id="blockpage.http",
            blockpage="probe.vn_http_blocked_vi",
        ),
    ),
    "dns_unknown_blockpage": Golden(
        _http("unknownblock.test"),
        dict(
            blocking="dns",
            accessible=False,
            dns_consistency="inconsistent",
            rule_id="dns.inconsistent.diff",
            blockpage=None,
        ),
    ),
    "dns_lie_proxy_real_site": Golden(
        _http("proxied.test"),
        dict(
            blocking=False,
            accessible=True,
            dns_consistency="inconsistent",
            rule_id="dns.inconsistent.same_page",
        ),
    ),
    "dns_lie_proxy_real_site_https": Golden(
        _https("proxied.test"),
        dict(blocking=False, accessible=True, rule_id="https.success"),
    ),
    "dns_inconsistent_unverifiable": Golden(
        _http("cdn.test"),
        dict(blocking=None, accessible=None, rule_id="dns.inconsistent.unverified"),
    ),
    "cdn_many_addresses": Golden(
        _http("bigcdn.test"),
        dict(blocking=False, accessible=True, rule_id="dns.inconsistent.same_page"),
    ),
    "control_chain_cut_by_deadline": Golden(
        _http("slowcontrol.test"),
        dict(blocking=None, accessible=None, rule_id="dns.inconsistent.unverified"),
        opts={"timeout": 3.0, "deadline": 1.0},
    ),
    "tcp_refused": Golden(
        _http("refused.test"),
        dict(
            blocking="tcp_ip",
            accessible=False,
            failing_step="tcp",
            failure="connection_refused",
            rule_id="tcp.blocked",
        ),
    ),
    "tcp_timeout": Golden(
        _https("hole.test"),
        dict(
            blocking="tcp_ip",
            accessible=False,
            failing_step="tcp",
            failure="generic_timeout_error",
            rule_id="tcp.blocked",
        ),
    ),
    "tls_reset_on_sni": Golden(
        _https("tls-reset.test"),
        dict(
            blocking="http-failure",
            accessible=False,
            failing_step="tls",
            failure="connection_reset",
            rule_id="http.failure",
        ),
    ),
    "tls_eof": Golden(
        _https("eof.test"),
        dict(
            blocking="http-failure",
            accessible=False,
            failing_step="tls",
            failure="eof_error",
            rule_id="http.failure",
        ),
    ),
    "http_reset_on_host": Golden(
        _http("reset.test"),
        dict(
            blocking="http-failure",
            accessible=False,
            failing_step="http",
            failure="connection_reset",
            rule_id="http.failure",
        ),
    ),
    "http_eof": Golden(
        _http("eof.test"),
        dict(
            blocking="http-failure", accessible=False, failure="eof_error", rule_id="http.failure"
        ),
    ),
    "blockpage_injection_consistent_dns": Golden(
        _http("injected.test"),
        dict(
            blocking="http-diff",
            accessible=False,
            dns_consistency="consistent",
            blockpage="probe.vn_http_blocked_vi",
            rule_id="blockpage.http",
        ),
    ),
    "down_for_everyone_nxdomain": Golden(
        _http("down.test"),
        dict(
            blocking=False,
            accessible=False,
            dns_consistency="consistent",
            rule_id="dns.down_for_everyone",
        ),
    ),
    "bad_certificate_wrong_name": Golden(
        _https("wrongname.test"),
        dict(
            blocking=False,
            accessible=False,
            failure="ssl_invalid_hostname",
            rule_id="down.bad_certificate",
        ),
    ),
    "redirect_into_reset_host": Golden(
        _http("news.test", "/to-reset"),
        dict(
            blocking="http-failure",
            accessible=False,
            failure="connection_reset",
            rule_id="http.failure",
        ),
    ),
    "redirect_into_nxdomain": Golden(
        _http("news.test", "/to-nx"),
        dict(blocking="dns", accessible=False, rule_id="dns.redirect_hop"),
    ),
    "redirect_loop": Golden(
        _http("redirect.test", "/hop0"),
        dict(blocking=False, accessible=False, rule_id="down.redirect_loop"),
    ),
    "redirect_broken_location": Golden(
        _http("news.test", "/broken"),
        dict(
            blocking="http-failure",
            accessible=False,
            failure="http_invalid_redirect_location_host",
            rule_id="http.failure",
        ),
    ),
    "redirect_to_unresolvable_name": Golden(
        _http("news.test", "/to-nowhere-at-all"),
        dict(blocking=False, accessible=False, failing_step="dns", rule_id="down.redirect_dns"),
    ),
    "redirect_to_private_literal": Golden(
        _http("news.test", "/to-metadata"),
        dict(
            blocking=False,
            accessible=True,
            rule_id="http.success.local",
            evidence="no control",
        ),
    ),
    "answers_for_another_name": Golden(
        _http("spoofed.test"),
        dict(blocking="dns", accessible=False, failure="dns_no_answer", rule_id="dns.failure"),
    ),
    "large_body": Golden(
        _http("big.test", "/large"),
        dict(blocking=False, accessible=True, rule_id="http.success.local"),
    ),
    "gzip_bomb": Golden(
        _http("bomb.test", "/bomb"),
        dict(blocking=False, accessible=True, rule_id="http.success.local"),
    ),
    "idn_host": Golden(
        lambda w: f"http://bücher.test:{w.http_port}/",
        dict(blocking=False, accessible=True, rule_id="http.success.local"),
    ),
    "echoes_the_volunteers_address": Golden(
        _http("echo.test"),
        dict(blocking=False, accessible=True, rule_id="http.success.local"),
    ),
    "offline_round": Golden(
        _http("reset.test"),
        dict(blocking=None, accessible=None, rule_id="offline", offline=True),
        network_ok=False,
    ),
    "no_controls_configured": Golden(
        _http("news.test"),
        dict(blocking=False, accessible=True, rule_id="http.success.local"),
        network_ok=None,
    ),
    "dns_blockpage_address_fingerprint_file": Golden(
        _http("unknownblock.test"),
        dict(
            blocking="dns",
            accessible=False,
            dns_consistency="inconsistent",
            rule_id="blockpage.dns",
            blockpage="golden.isp_dns_blockpage",
        ),
        fingerprints="isp_dns.csv",
    ),
    "dns_servfail_no_control": Golden(
        _http("servfail.test"),
        dict(
            blocking=None,
            accessible=None,
            failure="dns_servfail_error",
            dns_consistency=None,
            evidence="none",
            rule_id="dns.failure.unknown",
        ),
        opts={"control_resolver": None},
    ),
    "success_http_no_control": Golden(
        _http("news.test"),
        dict(
            blocking=None,
            accessible=None,
            dns_consistency=None,
            evidence="none",
            rule_id="undetermined",
        ),
        opts={"control_resolver": None},
    ),
    "bad_certificate_no_control": Golden(
        _https("wrongname.test"),
        dict(
            blocking="http-failure",
            accessible=False,
            failure="ssl_invalid_hostname",
            dns_consistency=None,
            rule_id="http.failure",
        ),
        opts={"control_resolver": None},
    ),
    "dns_lie_proxy_then_reset_https": Golden(
        _https("proxied.test", "/to-reset"),
        dict(
            blocking="http-failure",
            accessible=False,
            dns_consistency="inconsistent",
            failure="connection_reset",
            rule_id="http.failure",
        ),
    ),
    # -- with the test helper's view (ControlEvidence) ------------------------------------------
    "helper_success_http": Golden(
        _http("news.test"),
        dict(blocking=False, accessible=True, rule_id="http.same_page", evidence="helper"),
        helper=True,
    ),
    "helper_unknown_blockpage": Golden(
        _http("unknownblock.test"),
        dict(
            blocking="dns",
            accessible=False,
            rule_id="dns.inconsistent.diff",
            evidence="helper",
            headers_match=True,  # as OONI computes it; framing headers decide nothing
        ),
        helper=True,
    ),
    "helper_down_for_everyone_tcp": Golden(
        _http("refused.test"),
        dict(
            blocking=False,
            accessible=False,
            failure="connection_refused",
            rule_id="down.helper_failed_too",
            evidence="helper",
        ),
        helper=True,
    ),
    "helper_site_resets_everyone": Golden(
        _http("reset.test"),
        dict(
            blocking=False,
            accessible=False,
            failure="connection_reset",
            rule_id="down.helper_failed_too",
            evidence="helper",
        ),
        helper=True,
    ),
    "helper_dns_nxdomain": Golden(
        _http("nxblocked.test"),
        dict(
            blocking="dns",
            accessible=False,
            failure="dns_nxdomain_error",
            rule_id="dns.failure",
            evidence="helper",
        ),
        helper=True,
    ),
    "helper_large_file": Golden(
        _http("big.test", "/large"),
        dict(
            blocking=False,
            accessible=True,
            rule_id="http.same_page",
            evidence="helper",
            body_length_match=True,  # the declared length of the capped body
        ),
        helper=True,
    ),
    "helper_http_diff_control_resolver_lies_too": Golden(
        _http("unknownblock.test"),
        dict(
            blocking="http-diff",
            accessible=False,
            dns_consistency="consistent",
            rule_id="http.diff",
            evidence="helper",
            blockpage=None,
        ),
        helper=True,
        world_opts=_system_resolver_as_control,
    ),
    "helper_down": Golden(
        _http("news.test"),
        dict(
            blocking=None,
            accessible=None,
            dns_consistency="consistent",
            rule_id="http.no_control",
        ),
        helper="down",  # nothing listens where the helper should be
    ),
    "helper_tls_unknown_authority": Golden(
        _https("news.test"),
        dict(
            blocking="http-failure",
            accessible=False,
            dns_consistency="consistent",
            failing_step="tls",
            failure="ssl_unknown_authority",
            rule_id="http.failure",
            evidence="helper",
        ),
        helper=True,
        # The probe trusts only the system store, as when an interceptor's certificate is
        # refused; the helper verifies the site's real certificate.
        opts={"ca_bundle": None},
    ),
}


def ports(w: World) -> dict[str, int]:
    """The world's port numbers, which differ at every start: named in the recording."""
    return {
        "http": w.http_port,
        "https": w.https_port,
        "dns": w.system_dns.port,
        "control_dns": w.control_dns.port,
        "doh": int(w.doh_url.rsplit(":", 1)[1].split("/")[0]),
    }


async def _measure(w: World, name: str, g: Golden, helper_url: str | None) -> Measurement:
    opts = {**g.opts, **(g.world_opts(w) if g.world_opts else {})}
    shared = Shared.create(w.config(**opts))
    if g.helper == "down":
        helper_url = _closed_port_url()
    helper = HelperClient(helper_url) if g.helper and helper_url else None
    try:
        return await measure_target(
            shared,
            helper,
            Target(name=name, url=g.url(w)),
            round_id="golden",
            device_id=None,
            fingerprints=fingerprints_of(g.fingerprints),
            network_ok=g.network_ok,
            scrubber=Scrubber(shared.local_addresses),
        )
    finally:
        await shared.aclose()
        if helper is not None:
            await helper.aclose()


def _closed_port_url() -> str:
    """A helper that is down: a loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def record_one(w: World, name: str, helper_url: str | None) -> tuple[dict[str, Any], Measurement]:
    """One scenario measured as a round would: its golden document and the Measurement."""
    g = SCENARIOS[name]
    if g.helper is True and helper_url is None:
        raise ValueError(f"{name} needs the test helper")
    m = asyncio.run(_measure(w, name, g, helper_url))
    obs = observations_to_json(m.observations, with_bodies=True)
    for h in obs["http"]:
        if h.get("body"):
            h["body"] = h["body"][:BODY_KEPT]
    doc = {
        "name": name,
        "url": m.url,
        "network_ok": g.network_ok,
        "ports": ports(w),
        "expected": g.expected,
        **({"fingerprints": g.fingerprints} if g.fingerprints else {}),
        "observations": obs,
        "control": control_to_json(m.control),
    }
    return doc, m


@contextmanager
def helper_for(w: World) -> Iterator[str]:
    from tests.servers.helper import helper_server

    with helper_server(w) as (base, _):
        yield base


def record(w: World, out: Path = HERE, names: list[str] | None = None) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with helper_for(w) as base:
        for name in names or SCENARIOS:
            doc, _ = record_one(w, name, base)
            path = out / f"{name}.json"
            path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            written.append(str(path))
    return written


_VOLATILE = {"t0", "t", "bytes", "certificates"}


def normalised(doc: dict[str, Any]) -> Any:
    """A recording without what differs from run to run: timings, byte counts, certificates
    (trustme makes new ones at every start), Date headers and the world's port numbers (named
    instead)."""
    names = {str(v): k for k, v in doc.get("ports", {}).items()}
    pattern = re.compile(r":(\d{2,5})\b")

    def walk(value: Any) -> Any:
        if isinstance(value, list) and len(value) == 2 and value[0] in ("Date", "date"):
            return [value[0], "<date>"]  # a header pair: the server's clock
        if isinstance(value, dict):
            return {
                walk(k): "<date>" if k.lower() == "date" else walk(v)
                for k, v in value.items()
                if k not in _VOLATILE and k != "port"
            }
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, str):
            return pattern.sub(lambda m: f":<{names.get(m.group(1), m.group(1))}>", value)
        return value

    as_json = json.loads(json.dumps(doc))  # tuples and lists alike
    return walk({k: v for k, v in as_json.items() if k != "ports"})


def main(names: list[str]) -> int:
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"no such scenario: {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory() as tmp, make_world(Path(tmp)) as w:
        if not names:
            for old in HERE.glob("*.json"):
                old.unlink()
        for p in record(w, names=names or None):
            print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
