"""Fixtures of the analyst's tests: the local timestamp authority (tests/servers/tsa.py) and its
PKI, for the tests of RFC 3161 timestamps and of ``probe merge --timestamp``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers.tsa import LocalTSA, Pki, local_tsa, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tsa(pki: Pki) -> Iterator[LocalTSA]:
    with local_tsa(pki) as t:
        yield t
