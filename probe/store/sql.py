"""The store's derived facts in SQL, each written once: what "network", "an anomaly" and
the throttle label mean.

Contract: constants only, SQL expressions over the ``measurements`` columns (the anomaly is
:data:`probe.words.ANOMALY_SQL`, stated there once for SQL and Python), used by the schema's
views, the filters of exports and reports, and the daemon's status; nothing here runs SQL.
"""

from __future__ import annotations

from probe import words as _words
from probe.words import ANOMALY_SQL

# The throughput test's label (``probe.classify.throughput``'s words for what it saw), as the
# verdicts and throughput_tests views, exports and ``probe status`` read it.
THROTTLE_LABEL_SQL = "json_extract(throughput, '$.analysis.label')"

# What "network" means in analysts' views and filters: the ASN when known, else the resolver
# under test (as ``probe events`` groups them).
NETWORK_SQL = "coalesce(probe_asn, resolver, '?')"


# A measurement with an anomaly, as readers see it: a verdict whose words are not accessible,
# down, can't tell or offline (probe.words, which states it once for SQL and Python).
ANOMALY = ANOMALY_SQL


# The verdict in words (probe.words.CASES, the one table every view reads), over the
# ``measurements`` columns: what the ``verdicts`` and ``daily_blocking`` views say.
VERDICT = _words.verdict_sql(label=THROTTLE_LABEL_SQL)
