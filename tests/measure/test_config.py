"""The measuring policy (probe.measure.config): an address denied is skipped even when allowed."""

from __future__ import annotations

from probe.config.resolver import parse_resolver
from probe.measure.config import MeasureConfig, skip_address
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
