"""The SNI A/B legs against a helper that requires its token (issue 20: the helper runs with a
token by default): the probe sends it on every /bulk leg, inside TLS, so the censor sees only
the SNI. Against the real helper on loopback over HTTPS."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import trustme

from probe.measure.helper_client import HelperClient
from probe.measure.net import Shared
from probe.measure.throughput import run_test
from probe.model import Plan
from tests.servers.helper import helper_server
from tests.world import World

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[tuple[str, str], str]:
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    d = Path(tmp_path_factory.mktemp("bulk-tls"))
    leaf.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
    leaf.private_key_pem.write_to_path(str(d / "key.pem"))
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    return (str(d / "cert.pem"), str(d / "key.pem")), str(d / "ca.pem")


@pytest.mark.parametrize("token", [TOKEN, None])
def test_the_ab_legs_carry_the_helpers_token(
    world: World, tls: tuple[tuple[str, str], str], token: str | None
) -> None:
    files, ca = tls
    plan = Plan(ab_bytes=64 * 1024, ab_seconds=2.0, ab_only_trials=1)
    with helper_server(world, tls=files, token=TOKEN) as (base, _):
        client = HelperClient(base, token=token, ca_bundle=ca)
        bulk = client.bulk()
        assert bulk is not None

        async def go() -> list[tuple[str, str | None, str | None]]:
            shared = Shared.create(world.config())
            try:
                r = await run_test(shared, None, None, plan, helper=bulk, site_host="news.test")
            finally:
                await shared.aclose()
                await client.aclose()
            return [(f.role, f.failure, f.raw_failure) for f in r.flows]

        legs = asyncio.run(go())
    assert [role for role, _, _ in legs] == ["ab_neutral", "ab_target", "ab_neutral2"]
    if token is None:  # the helper refuses a probe without it
        assert {(f, raw) for _, f, raw in legs} == {("http_request_failed", "status:401")}
    else:
        assert all(f is None for _, f, _ in legs), legs
