"""Import-time memory: keep optional heavy modules out of a long-running probe.

sqlite-utils imports numpy, when it is installed, only to map numpy scalar types to SQLite
column types. The probe never stores numpy values, and numpy costs about 12 MB of resident
memory in a daemon that runs for months, so it is hidden while sqlite-utils is imported. If
numpy is already loaded (someone else imported it), nothing changes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def without_numpy() -> Iterator[None]:
    if "numpy" in sys.modules:
        yield
        return
    sys.modules["numpy"] = None  # type: ignore[assignment]  # makes "import numpy" fail
    try:
        yield
    finally:
        if sys.modules.get("numpy") is None:
            del sys.modules["numpy"]
