"""Verdicts that hold up (issue 9): the defects review found, each reproduced on loopback.

Every test here failed on the code before its fix. The servers behave like real ones: HTTP/1.1
keep-alive, a blockpage server on one address and the real site on another.
"""

from __future__ import annotations

import asyncio

from probe.classify import classify
from probe.model import Measurement
from tests.conftest import SITE, UNKNOWN_BLOCK, World


def test_control_fetch_has_its_own_connection(world: World) -> None:
    """The control fetch must not ride the keep-alive connection the system fetch opened to
    the blockpage's address; the address recorded is the socket's peer."""
    obs, _ = world.measure(world.http("unknownblock.test"))
    system = [h for h in obs.http if h.role == "system"]
    control = [h for h in obs.http if h.role == "control"]
    assert (system[-1].ip, system[-1].title) == (UNKNOWN_BLOCK, "Thông báo của nhà mạng")
    assert (control[-1].ip, control[-1].title) == (SITE, "Independent News Today")


def test_dns_redirect_to_an_unknown_blockpage_is_dns_blocking(world: World) -> None:
    obs, _ = world.measure(world.http("unknownblock.test"))
    v = classify(obs, network_ok=True)
    assert (v.blocking, v.accessible, v.dns_consistency) == ("dns", False, "inconsistent")
    assert v.rule_id == "dns.inconsistent.diff" and v.blockpage is None


def _round_with_helper(world: World, url: str, **cfg: object) -> Measurement:
    """One target measured by a round that asks the in-process test helper."""
    from probe.classify.fingerprints import builtin
    from probe.measure.helper_client import HelperClient
    from probe.round import run_round
    from probe.targets import Target
    from tests.test_helper import helper_server

    stored: list[Measurement] = []
    with helper_server(world) as (base, _):
        asyncio.run(
            run_round(
                [Target(name="t", url=url)],
                [],
                world.config(**cfg),
                fingerprints=builtin(),
                helper=HelperClient(base),
                on_measurement=stored.append,
            )
        )
    (m,) = stored
    return m


def test_with_a_helper_its_page_is_the_control(world: World) -> None:
    """The helper fetched the real page; the system page is an unknown blockpage that shares
    only framing headers (Content-Length) with it: not the same page."""
    m = _round_with_helper(world, world.http("unknownblock.test"))
    assert m.control is not None and m.control.http_title == "Independent News Today"
    v = m.verdict
    assert (v.blocking, v.accessible, v.evidence) == ("dns", False, "helper")
    assert v.rule_id == "dns.inconsistent.diff" and v.headers_match is True  # as OONI says


def test_a_deadline_in_the_control_chain_is_no_blocking(world: World) -> None:
    """The system page loads through an inconsistent answer; the control chain then waits on a
    server that never answers until the target's deadline. The deadline record names the chain
    it interrupted, and a control-side timeout alone never makes a blocking verdict."""
    obs, _ = world.measure(world.http("slowcontrol.test"), timeout=3, deadline=1)
    system = [h for h in obs.http if h.role == "system"]
    deadline = obs.http[-1]
    assert system[-1].status_code == 200 and system[-1].failure is None
    assert (deadline.role, deadline.failure, deadline.raw_failure) == (
        "control",
        "generic_timeout_error",
        "target deadline",
    )
    assert deadline.failed_operation == "http_round_trip"  # the step in flight, df-008
    v = classify(obs, network_ok=True)
    assert (v.blocking, v.accessible, v.rule_id) == (None, None, "dns.inconsistent.unverified")


def test_max_addresses_is_per_source(world: World) -> None:
    """Nine system addresses must not crowd out the control's: each source gets its own cap,
    so the control address is dialled and its page fetched (not labelled dns_bogon_error)."""
    obs, _ = world.measure(world.http("bigcdn.test"))
    dialled = {t.ip: t.sources for t in obs.tcp}
    assert dialled[SITE] == ("control",) and len(dialled) == 8 + 1
    control = [h for h in obs.http if h.role == "control"]
    assert (control[-1].ip, control[-1].status_code, control[-1].failure) == (SITE, 200, None)
    v = classify(obs, network_ok=True)
    assert (v.blocking, v.accessible, v.rule_id) == (False, True, "dns.inconsistent.same_page")
