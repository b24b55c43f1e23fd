"""The configuration and the measuring layers do not import each other (issue 19): config is
parsed without the network stack, and the measuring code is told its configuration as values
(probe.measure.config, probe.model.ResolverSpec), never reading settings itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "probe"

# The one known crossing, kept while probe.round still imports the resolver parser from
# probe.measure.dns: a lazy shim there (issue 19). Delete this row with the shim.
ALLOWED = {
    ("measure/dns.py", "probe.config"),
    ("measure/dns.py", "probe.config.resolver"),
    ("measure/dns.py", "probe.config.resolver.parse_resolver"),
}


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


@pytest.mark.parametrize(("layer", "forbidden"), [("config", "measure"), ("measure", "config")])
def test_layers_do_not_cross(layer: str, forbidden: str) -> None:
    crossings = sorted(
        (str(p.relative_to(PACKAGE)), name)
        for p in (PACKAGE / layer).rglob("*.py")
        for name in _imports(p)
        if (name == f"probe.{forbidden}" or name.startswith(f"probe.{forbidden}."))
        and (str(p.relative_to(PACKAGE)), name) not in ALLOWED
    )
    assert crossings == []
