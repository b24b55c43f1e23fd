"""``probe init``'s settings file reads back through resolve() to the values it was given."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from probe.config.init import settings_file
from probe.config.settings import resolve


@given(st.integers(1, 366 * 86400 * 1000).map(lambda ms: ms / 1000))
def test_a_written_interval_reads_back(seconds: float) -> None:
    # Writes to a fresh temporary directory (Hypothesis runs this many times).
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "settings.toml"
        path.write_text(settings_file({"interval": seconds}), encoding="utf-8")
        assert resolve({}, env={}, config=str(path)).interval == seconds


def test_a_resolver_is_written_as_its_text(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(settings_file({"resolver": "192.0.2.1"}), encoding="utf-8")
    assert 'resolver = "udp://192.0.2.1:53"' in path.read_text(encoding="utf-8")
    assert str(resolve({}, env={}, config=str(path)).resolver) == "udp://192.0.2.1:53"
