"""Setting a round up from its settings: the CA bundle and the helper's token are read and checked
before a byte is written."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.runs import FAST, run_args
from tests.runs import one_line_messages as _one_line_messages
from tests.runs import run_fresh as _run
from tests.world import World


@settings(FAST, max_examples=15)
@given(pem=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_property_ca_bundle_contents(
    pem: bytes, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        p, db, ca = Path(tmp) / "t.yaml", Path(tmp) / "r.db", Path(tmp) / "ca.pem"
        p.write_text(f"targets:\n  - {{name: a, url: '{world.http('news.test')}'}}\n")
        ca.write_bytes(b"-----BEGIN CERTIFICATE-----\n" + pem + b"\n-----END CERTIFICATE-----\n")
        code, _, err = _run([*run_args(world, p, db), "--ca-bundle", str(ca)], capsys)
        _one_line_messages(code, err)
        assert code == 2 and not db.exists()
