"""The store's derived facts in SQL, each written once: what "network", "an anomaly" and
the throttle label mean.

Contract: constants only, SQL expressions over the ``measurements`` columns, used by the schema's
views, the filters of exports and reports, and the daemon's status; nothing here runs SQL.
"""

from __future__ import annotations

# The throughput test's label (``probe.classify.throughput``'s words for what it saw), as the
# verdicts and throughput_tests views, exports and ``probe status`` read it.
THROTTLE_LABEL_SQL = "json_extract(throughput, '$.analysis.label')"

# What "network" means in analysts' views and filters: the ASN when known, else the resolver
# under test (as ``probe events`` groups them).
NETWORK_SQL = "coalesce(probe_asn, resolver, '?')"


# A measurement with an anomaly: a blocking verdict, or a throttled throughput test.
ANOMALY = "((blocking IS NOT NULL AND blocking != 'false') OR coalesce(throttled, 0) = 1)"
