"""Datasette metadata for probe databases, shipped as ``probe/data/datasette.json``.

Contract: the shipped file describes a database named ``probe`` (``results/probe.db``): what
every table, view and column means, and canned queries ("blocked today", "throttled targets by
network"). :func:`metadata` returns it, the same description keyed by each of ``names`` instead
when given (Datasette names a database after its file: ``fleet.db`` is ``fleet``).

The canned queries' SQL is generated (:data:`QUERIES`) from the one verdict table,
:data:`probe.words.CASES`, compiled by :func:`probe.words.verdict_sql`: "blocked today" lists
only what the words call blocked (:data:`probe.words.BLOCKED`: an ``anomaly (tcp_ip)`` without
a control's view is not), "throttled targets" counts only what they call throttled. The shipped
file holds the same text, so ``datasette -m probe/data/datasette.json`` agrees too
(tests/analyst/test_one_verdict.py fails when they drift; ``python -m probe.analyst.datasette``
rewrites the file).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from probe import words as V
from probe.store.sql import NETWORK_SQL, THROTTLE_LABEL_SQL

_VERDICT = V.verdict_sql(label=THROTTLE_LABEL_SQL)
_THROTTLED = f"verdict = {V.sql_text(V.THROTTLED)}"

QUERIES: dict[str, dict[str, str]] = {
    "blocked_today": {
        "title": "Blocked today",
        "description": "Every target measurement since midnight UTC that the verdict's words "
        "call blocked (a blockpage, or a block a control's view confirms; an anomaly is not "
        "blocked), newest first, with the failing step, the failure and the rule that decided.",
        "sql": "SELECT started_at, target, category, network, verdict, blocking, failing_step,\n"
        "       failure, blockpage, evidence, rule_id, rules_version, id\n"
        f"FROM (SELECT *, {NETWORK_SQL} AS network,\n"
        f"             {_VERDICT} AS verdict\n"
        "      FROM measurements\n"
        "      WHERE is_control = 0 AND started_at >= date('now'))\n"
        f"WHERE {V.blocked_sql('verdict')}\n"
        "ORDER BY started_at DESC",
    },
    "throttled_targets_by_network": {
        "title": "Throttled targets by network",
        "description": "Per network and target: analysed throughput tests, how many the "
        "verdict's words call throttled (a slow server, anomaly (slow), is not), the mean "
        "ratio, the labels seen, and the last throttled test.",
        "sql": f"SELECT network, target, count(*) AS tests, sum({_THROTTLED}) AS throttled,\n"
        "       round(avg(ratio), 3) AS mean_ratio, group_concat(DISTINCT label) AS labels,\n"
        f"       max(CASE WHEN {_THROTTLED} THEN started_at END) AS last_throttled\n"
        f"FROM (SELECT started_at, target, {NETWORK_SQL} AS network,\n"
        "             json_extract(throughput, '$.analysis.ratio') AS ratio,\n"
        f"             {THROTTLE_LABEL_SQL} AS label,\n"
        f"             {_VERDICT} AS verdict\n"
        "      FROM measurements\n"
        "      WHERE is_control = 0 AND json_extract(throughput, '$.analysis.ratio') IS NOT NULL)\n"
        "GROUP BY network, target\n"
        f"HAVING sum({_THROTTLED}) > 0\n"
        "ORDER BY throttled DESC, network, target",
    },
}


def metadata(names: tuple[str, ...] = ()) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(
        (resources.files("probe") / "data" / "datasette.json").read_text(encoding="utf-8")
    )
    doc["databases"]["probe"]["queries"] = QUERIES  # the one table's SQL, whatever the file says
    if names:
        one = doc["databases"]["probe"]
        doc["databases"] = {name: one for name in names}
    return doc


def metadata_text(names: tuple[str, ...] = ()) -> str:
    if not names:
        return (resources.files("probe") / "data" / "datasette.json").read_text(encoding="utf-8")
    return json.dumps(metadata(names), indent=2, ensure_ascii=False) + "\n"


def generated() -> str:
    """The shipped file's text with :data:`QUERIES` in it."""
    doc = json.loads(
        (resources.files("probe") / "data" / "datasette.json").read_text(encoding="utf-8")
    )
    doc["databases"]["probe"]["queries"] = QUERIES
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":  # rewrite the shipped file after a change of the verdict table
    target = Path(__file__).parent.parent / "data" / "datasette.json"
    target.write_text(generated(), encoding="utf-8")
