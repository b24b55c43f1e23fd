"""The round's rooms: each module of ``probe/round/`` one concept, imports among them one way.

A circle among them (type-only imports included: they are a dependency a reader must follow
too) fails here, as does a public name that ``probe.round`` stops offering."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import probe.round

ROUND = Path(probe.round.__file__).parent


def _imports(path: Path) -> set[str]:
    """The sibling modules ``path`` imports, at any depth (under TYPE_CHECKING, in functions)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("probe.round."):
                out.add(node.module.removeprefix("probe.round.").split(".")[0])
            elif node.module == "probe.round":
                out.update(a.name for a in node.names if (ROUND / f"{a.name}.py").exists())
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("probe.round."):
                    out.add(a.name.removeprefix("probe.round.").split(".")[0])
    return out


def test_the_round_s_modules_import_each_other_without_a_circle() -> None:
    graph = {p.stem: _imports(p) for p in ROUND.glob("*.py") if p.stem != "__init__"}
    assert {"target", "throughput", "run", "setup", "record", "discover"} <= set(graph)
    order = list(graphlib.TopologicalSorter(graph).static_order())  # CycleError on a circle
    assert order.index("target") < order.index("run") < order.index("record")


def test_the_public_face_keeps_its_names() -> None:
    for name in ("prepare", "run_once", "run_round", "measure_target", "ThroughputOptions"):
        assert name in probe.round.__all__ and hasattr(probe.round, name)
    assert all(hasattr(probe.round, n) for n in probe.round.__all__)
