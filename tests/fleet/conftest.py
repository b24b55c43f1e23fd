"""One SeaweedFS for the fleet's tests (tests/servers/s3.py): started once per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers.s3 import S3, seaweedfs


@pytest.fixture(scope="module")
def bucket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server
