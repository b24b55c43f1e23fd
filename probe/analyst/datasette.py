"""Datasette metadata for probe databases, shipped as ``probe/data/datasette.json``.

Contract: the shipped file describes a database named ``probe`` (``results/probe.db``): what
every table, view and column means, and canned queries ("blocked today", "throttled targets by
network"). :func:`metadata` returns it, the same description keyed by each of ``names`` instead
when given (Datasette names a database after its file: ``fleet.db`` is ``fleet``).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def metadata(names: tuple[str, ...] = ()) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(
        (resources.files("probe") / "data" / "datasette.json").read_text(encoding="utf-8")
    )
    if names:
        one = doc["databases"]["probe"]
        doc["databases"] = {name: one for name in names}
    return doc


def metadata_text(names: tuple[str, ...] = ()) -> str:
    if not names:
        return (resources.files("probe") / "data" / "datasette.json").read_text(encoding="utf-8")
    return json.dumps(metadata(names), indent=2, ensure_ascii=False) + "\n"
