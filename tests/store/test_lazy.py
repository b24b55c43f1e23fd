"""probe.store._lazy: numpy hidden while the store imports what it needs, left alone once loaded."""

from __future__ import annotations

import pytest


# -- import-time memory -------------------------------------------------------------------------
def test_without_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from probe.store._lazy import without_numpy

    monkeypatch.delitem(sys.modules, "numpy", raising=False)
    with without_numpy(), pytest.raises(ImportError):
        import numpy  # noqa: F401
    assert "numpy" not in sys.modules  # hidden only while inside
    sentinel = object()
    monkeypatch.setitem(sys.modules, "numpy", sentinel)
    with without_numpy():
        assert sys.modules["numpy"] is sentinel  # already loaded: left alone
    assert sys.modules["numpy"] is sentinel
