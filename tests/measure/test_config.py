"""The measuring policy (probe.measure.config): an address denied is skipped even when allowed."""

from __future__ import annotations

import pytest

from probe.config.resolver import parse_resolver
from probe.measure.config import MeasureConfig, refuse_redirect_to, skip_address
from tests.world import BODY_CAP, SITE


# -- the helper never dials its own addresses ---------------------------------------------------
def test_skip_address_refuses_denied_even_when_allowed() -> None:
    cfg = MeasureConfig(
        resolver=parse_resolver("127.0.0.1"),
        control_resolver=None,
        timeout=1.5,
        deadline=10,
        body_cap=BODY_CAP,
        public_only=True,
        allow_networks=("127.0.0.0/8",),
        deny_addrs=frozenset({SITE}),
    )
    assert skip_address(SITE, cfg) is True
    assert skip_address("127.0.0.11", cfg) is False
    assert skip_address("10.0.0.1", cfg) is True  # not global, not allowed
    assert skip_address("not an address", cfg) is True


def _cfg(**kw: object) -> MeasureConfig:
    base: dict[str, object] = dict(
        resolver=parse_resolver("127.0.0.1"), control_resolver=None, timeout=1.5, deadline=10
    )
    return MeasureConfig(body_cap=BODY_CAP, **{**base, **kw})  # type: ignore[arg-type]


PROBE, LAB, HELPER = (
    _cfg(),
    _cfg(allow_loopback=True, allow_networks=("10.9.0.0/16",)),
    _cfg(public_only=True, allow_networks=("192.0.2.0/24",)),
)


@pytest.mark.parametrize(
    ("ip", "probe", "lab", "helper"),
    [
        ("93.184.216.34", False, False, False),  # a public address: dialled by all
        ("2606:2800:220:1::1", False, False, False),
        ("127.0.0.1", True, False, True),  # loopback: the volunteer's own machine
        ("127.8.9.10", True, False, True),
        ("::1", True, True, True),  # allow_loopback allows 127.0.0.0/8 only
        ("10.0.0.1", False, False, True),  # private: a probe dials it, the helper never
        ("10.9.1.2", False, False, True),  # in the lab's network
        ("192.0.2.7", False, False, False),  # in the helper's allowed network
        ("169.254.1.1", False, False, True),
        ("0.0.0.0", True, True, True),  # unspecified
        ("::", True, True, True),
        ("224.0.0.1", True, True, True),  # multicast: never, allowed or not
        ("ff02::1", True, True, True),
        ("not-an-ip", True, True, True),
    ],
)
def test_skip_address_by_policy(ip: str, probe: bool, lab: bool, helper: bool) -> None:
    assert (skip_address(ip, PROBE), skip_address(ip, LAB), skip_address(ip, HELPER)) == (
        probe,
        lab,
        helper,
    )


def test_multicast_in_an_allowed_network_is_still_skipped() -> None:
    cfg = _cfg(allow_networks=("224.0.0.0/4",), allow_loopback=True)
    assert skip_address("224.0.0.9", cfg) is True
    assert skip_address("0.0.0.0", _cfg(allow_networks=("0.0.0.0/8",))) is True


@pytest.mark.parametrize(
    ("host", "probe", "lab"),
    [
        ("news.example", False, False),  # a name: resolved and judged by its answers
        ("93.184.216.34", False, False),
        ("[2606:2800:220:1::1]", False, False),
        ("127.0.0.1", True, False),
        ("[::1]", True, True),
        ("10.9.1.2", True, False),  # the lab's network
        ("10.0.0.1", True, True),
        ("192.168.1.1", True, True),
        ("100.64.0.1", True, True),  # carrier-grade NAT
        ("224.0.0.1", True, True),
    ],
)
def test_refuse_redirect_to_literal_addresses_off_the_internet(
    host: str, probe: bool, lab: bool
) -> None:
    assert (refuse_redirect_to(host, PROBE), refuse_redirect_to(host, LAB)) == (probe, lab)
