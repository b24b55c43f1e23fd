"""One SeaweedFS for the fleet's tests (tests/servers/s3.py), write-once: started once for
the session (each test's probe writes under its own device key)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers.s3 import S3, seaweedfs


@pytest.fixture(scope="session")
def bucket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs"), write_once=True) as server:
        yield server
