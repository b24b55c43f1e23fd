"""The schema, by migrations (m001..m010): tables, their indexes and the views analysts read.

Contract: ``migrations`` (sqlite-utils ``Migrations``) holds every step in order; each runs once,
inside the store's write transaction (``Store.open``), and none is ever edited once released: a
change is a new migration. The views (``verdicts``, the step views over the one record of
observations, ``throughput_tests``, ``daily_blocking``) explain the data to sqlite3 and Datasette.
"""

from __future__ import annotations

import json

from probe import words
from probe.failures import scrub
from probe.store._lazy import without_numpy
from probe.store.sql import NETWORK_SQL, THROTTLE_LABEL_SQL, VERDICT
from probe.timeutil import utc_now

with without_numpy():
    from sqlite_utils import Database, Migrations

migrations = Migrations("probe")


@migrations()
def m001_initial(db: Database) -> None:
    db.table("meta").create({"key": str, "value": str}, pk="key")
    db.table("rounds").create(
        {
            "id": str,
            "device_id": str,
            "started_at": str,
            "finished_at": str,
            "targets": int,
            "network_ok": int,
            "bytes_used": int,
            "software": str,
        },
        pk="id",
    )
    db.table("measurements").create(
        {
            "id": str,
            "round_id": str,
            "device_id": str,
            "source": str,
            "target": str,
            "url": str,
            "category": str,
            "is_control": int,
            "started_at": str,
            "runtime": float,
            "resolver": str,
            "control_resolver": str,
            "probe_asn": str,
            "probe_cc": str,
            "software": str,
            "network_ok": int,
            "blocking": str,
            "accessible": int,
            "throttled": int,
            "dns_consistency": str,
            "failing_step": str,
            "failure": str,
            "blockpage": str,
            "evidence": str,
            "offline": int,
            "body_proportion": float,
            "body_length_match": int,
            "status_code_match": int,
            "headers_match": int,
            "title_match": int,
            "rule_id": str,
            "rules_version": str,
            "bytes_used": int,
            "observations": str,
            "control": str,
            "extra": str,
        },
        pk="id",
        not_null={"target", "url", "started_at"},
    )
    db.table("measurements").create_index(["started_at"])
    db.table("measurements").create_index(["target", "started_at"])
    db.table("dns_queries").create(
        {
            "measurement_id": str,
            "seq": int,
            "hostname": str,
            "query_type": str,
            "resolver": str,
            "resolver_address": str,
            "engine": str,
            "answers": str,
            "rcode": str,
            "failure": str,
            "raw_failure": str,
            "t0": float,
            "t": float,
            "depth": int,
            "bytes": int,
        },
        pk=("measurement_id", "seq"),
        foreign_keys=[("measurement_id", "measurements", "id")],
    )
    db.table("tcp_connects").create(
        {
            "measurement_id": str,
            "seq": int,
            "ip": str,
            "port": int,
            "sources": str,
            "failure": str,
            "raw_failure": str,
            "t0": float,
            "t": float,
            "depth": int,
        },
        pk=("measurement_id", "seq"),
        foreign_keys=[("measurement_id", "measurements", "id")],
    )
    db.table("tls_handshakes").create(
        {
            "measurement_id": str,
            "seq": int,
            "ip": str,
            "port": int,
            "server_name": str,
            "sources": str,
            "tls_version": str,
            "cipher_suite": str,
            "negotiated_protocol": str,
            "certificates": str,
            "failure": str,
            "raw_failure": str,
            "t0": float,
            "t": float,
            "depth": int,
            "bytes": int,
        },
        pk=("measurement_id", "seq"),
        foreign_keys=[("measurement_id", "measurements", "id")],
    )
    db.table("http_requests").create(
        {
            "measurement_id": str,
            "seq": int,
            "url": str,
            "role": str,
            "ip": str,
            "port": int,
            "depth": int,
            "status_code": int,
            "headers": str,
            "title": str,
            "body_length": int,
            "body_sha256": str,
            "body_truncated": int,
            "location": str,
            "failure": str,
            "raw_failure": str,
            "failed_operation": str,
            "t0": float,
            "t": float,
            "bytes": int,
        },
        pk=("measurement_id", "seq"),
        foreign_keys=[("measurement_id", "measurements", "id")],
    )
    db.table("bodies").create(
        {"sha256": str, "length": int, "stored": int, "data": bytes}, pk="sha256"
    )
    for table in ("dns_queries", "tcp_connects", "tls_handshakes", "http_requests"):
        db.table(table).create_index(["measurement_id"])
    db.create_view(
        "verdicts",
        """
        SELECT id, started_at, target, url, category, blocking, accessible, throttled,
               failing_step, failure, dns_consistency, blockpage, evidence, rule_id,
               rules_version, bytes_used
        FROM measurements WHERE is_control = 0 ORDER BY started_at""",
    )


@migrations()
def m002_throughput(db: Database) -> None:
    """Throughput tests: the flows, samples and analysis of each test, beside the verdict."""
    db.table("measurements").add_column("throughput", str)
    db.execute("DROP VIEW verdicts")
    db.create_view(
        "verdicts",
        f"""
        SELECT id, started_at, target, url, category, blocking, accessible, throttled,
               failing_step, failure, dns_consistency, blockpage, evidence, rule_id,
               rules_version, bytes_used,
               {THROTTLE_LABEL_SQL} AS throttle_label,
               json_extract(throughput, '$.analysis.ratio') AS throughput_ratio
        FROM measurements WHERE is_control = 0 ORDER BY started_at""",
    )


_STEP_VIEWS = {
    "dns_queries": (
        "dns",
        "hostname query_type resolver resolver_address engine answers rcode failure "
        "raw_failure t0 t depth bytes",
    ),
    "tcp_connects": ("tcp", "ip port sources failure raw_failure t0 t depth"),
    "tls_handshakes": (
        "tls",
        "ip port server_name sources tls_version cipher_suite negotiated_protocol certificates "
        "failure raw_failure t0 t depth bytes",
    ),
    "http_requests": (
        "http",
        "url role ip port depth status_code headers title body_length body_sha256 "
        "body_truncated location failure raw_failure failed_operation t0 t bytes",
    ),
}


def _step_view_sql(section: str, columns: str) -> str:
    cols = ",\n".join(f"  json_extract(step.value, '$.{c}') AS {c}" for c in columns.split())
    return (
        "SELECT m.id AS measurement_id, CAST(step.key AS INTEGER) AS seq,\n"
        f"{cols}\nFROM measurements AS m, json_each(m.observations, '$.{section}') AS step"
    )


@migrations()
def m003_one_record_of_observations(db: Database) -> None:
    """One representation of the observations: the ``observations`` JSON column. The step
    tables become views over it (same names and columns), so the two can never disagree. Header
    values of older rows are scrubbed of addresses here, as their step rows were (Location
    kept: it is evidence); new rows are scrubbed of the volunteer's own addresses before they
    are classified and stored (``probe.privacy``)."""
    for row in list(db.query("SELECT id, observations FROM measurements")):
        try:
            obs = json.loads(row["observations"] or "{}")
        except ValueError:
            continue
        changed = False
        for h in obs.get("http", []) if isinstance(obs, dict) else []:
            headers = h.get("headers") or []
            new = [[k, v if str(k).lower() == "location" else scrub(str(v))] for k, v in headers]
            if new != headers:
                h["headers"], changed = new, True
        if changed:
            db.execute(
                "UPDATE measurements SET observations = ? WHERE id = ?",
                [json.dumps(obs, ensure_ascii=False), row["id"]],
            )
    for view, (section, columns) in _STEP_VIEWS.items():
        db.execute(f"DROP TABLE IF EXISTS {view}")
        db.create_view(view, _step_view_sql(section, columns))


@migrations()
def m004_daemon_state(db: Database) -> None:
    """The daemon (issue 11): each round's ``kind`` (run, pages, throughput), ``status`` (ok,
    offline, interrupted: cut short by a crash or a stop, closed on the next start; budget:
    skipped past a data cap) and the writer's ``pid``; the ``daemon`` table holds one row, the
    running daemon's heartbeat and schedule, for ``probe status``; an index for rounds."""
    rounds = db.table("rounds")
    for column in ("kind", "status", "note"):
        rounds.add_column(column, str)
    rounds.add_column("pid", int)
    db.table("daemon").create(
        {
            "id": str,
            "pid": int,
            "started_at": str,
            "heartbeat_at": str,
            "stopped_at": str,
            "interval": float,
            "throughput_interval": float,
            "backoff": float,
            "next_pages_at": str,
            "next_throughput_at": str,
            "state": str,
            "last_error": str,
            "max_bytes_per_day": int,
            "max_bytes_per_month": int,
        },
        pk="id",
    )
    db.table("measurements").create_index(["round_id"])
    # Covers the data budget's sums (bytes used today, this month) without reading the rows.
    db.table("measurements").create_index(["started_at", "source", "bytes_used"])
    rounds.create_index(["started_at"])


@migrations()
def m005_analyst_views(db: Database) -> None:
    """Views for analysts (Datasette, sqlite3): one row per analysed throughput test (what
    ``probe events`` reads), and the blocking rate per target, day and network."""
    db.create_view(
        "throughput_tests",
        f"""
        SELECT id AS measurement_id, started_at, target, category, {NETWORK_SQL} AS network,
               probe_asn, probe_cc, throttled,
               json_extract(throughput, '$.analysis.ratio') AS ratio,
               json_extract(throughput, '$.analysis.bps') AS bps,
               json_extract(throughput, '$.analysis.control_bps') AS control_bps,
               json_extract(throughput, '$.analysis.p_value') AS p_value,
               {THROTTLE_LABEL_SQL} AS label,
               json_extract(throughput, '$.analysis.mechanism') AS mechanism,
               json_extract(throughput, '$.bytes_used') AS bytes_used
        FROM measurements
        WHERE json_extract(throughput, '$.analysis.ratio') IS NOT NULL
        ORDER BY started_at""",
        replace=True,
    )
    db.create_view(
        "daily_blocking",
        f"""
        SELECT substr(started_at, 1, 10) AS day, target, {NETWORK_SQL} AS network,
               count(*) AS measurements,
               sum(blocking IS NOT NULL AND blocking != 'false') AS blocked,
               sum(blocking = 'false' AND accessible = 1) AS accessible,
               sum(blocking IS NULL) AS cant_tell,
               round(1.0 * sum(blocking IS NOT NULL AND blocking != 'false')
                     / nullif(sum(blocking IS NOT NULL), 0), 4) AS blocking_rate
        FROM measurements WHERE is_control = 0
        GROUP BY day, target, network ORDER BY day, target, network""",
        replace=True,
    )


@migrations()
def m006_throughput_objects(db: Database) -> None:
    """Each target's throughput object, as discovery chose it from the target's page (issue 12):
    reused while it answers 200 with the same size, found again otherwise. ``url`` NULL: none
    found (looked for again a day later)."""
    db.table("throughput_objects").create(
        {
            "target": str,
            "site_url": str,
            "url": str,
            "size": int,
            "content_type": str,
            "found_at": str,
            "why": str,
        },
        pk="target",
    )


@migrations()
def m007_networks(db: Database) -> None:
    """Which network each measurement and round came from (the ASN, country and the AS's name,
    from the test helper or the settings; never the address), what kind of resolver was under
    test ("isp", "public", "local", "other"), and every change of network between rounds."""
    for column in ("network_name", "resolver_kind"):
        db.table("measurements").add_column(column, str)
    for column in ("probe_asn", "probe_cc", "network_name", "resolver_kind", "network_source"):
        db.table("rounds").add_column(column, str)
    db.table("network_changes").create(
        {
            "round_id": str,
            "at": str,
            "old_asn": str,
            "old_cc": str,
            "old_name": str,
            "new_asn": str,
            "new_cc": str,
            "new_name": str,
        },
        pk="round_id",
    )


@migrations()
def m008_public_address(db: Database) -> None:
    """How each round knew the volunteer's public address, so that it could be scrubbed: the
    methods that answered ("stun", "dns", "helper", comma-separated) or "unknown", when none did
    and every address literal that might be public was masked (probe.privacy). Never the
    address."""
    db.table("rounds").add_column("public_address", str)


@migrations()
def m009_one_verdict(db: Database) -> None:
    """The views say the verdict as every other view does (probe.words.CASES, issue 21):
    ``verdicts`` gains ``verdict`` (the words); ``daily_blocking`` counts as blocked only what
    the words call blocked (an anomaly without a control's view is counted in ``anomalies``),
    ``offline`` apart from ``cant_tell``, and the rate over measurements with a verdict."""
    db.execute("DROP VIEW verdicts")
    db.create_view(
        "verdicts",
        f"""
        SELECT id, started_at, target, url, category, {VERDICT} AS verdict,
               blocking, accessible, throttled,
               failing_step, failure, dns_consistency, blockpage, evidence, rule_id,
               rules_version, bytes_used,
               {THROTTLE_LABEL_SQL} AS throttle_label,
               json_extract(throughput, '$.analysis.ratio') AS throughput_ratio
        FROM measurements WHERE is_control = 0 ORDER BY started_at""",
    )
    judged = f"verdict NOT IN ({words.sql_text(words.CANT_TELL)}, {words.sql_text(words.OFFLINE)})"
    accessible = (
        f"({words.sql_text(words.ACCESSIBLE)}, {words.sql_text(words.ACCESSIBLE_NO_CONTROL)})"
    )
    db.create_view(
        "daily_blocking",
        f"""
        SELECT day, target, network,
               count(*) AS measurements,
               sum({words.blocked_sql("verdict")}) AS blocked,
               sum({words.anomaly_sql("verdict")}) AS anomalies,
               sum(verdict IN {accessible}) AS accessible,
               sum(verdict = {words.sql_text(words.CANT_TELL)}) AS cant_tell,
               sum(verdict = {words.sql_text(words.OFFLINE)}) AS offline,
               round(1.0 * sum({words.blocked_sql("verdict")})
                     / nullif(sum({judged}), 0), 4) AS blocking_rate
        FROM (SELECT substr(started_at, 1, 10) AS day, target, {NETWORK_SQL} AS network,
                     {VERDICT} AS verdict
              FROM measurements WHERE is_control = 0)
        GROUP BY day, target, network ORDER BY day, target, network""",
        replace=True,
    )


@migrations()
def m010_chain(db: Database) -> None:
    """Tamper evidence (issue 22, ``probe.evidence``): each measurement saved from now on
    carries its device's public key (``device_key``), the SHA-256 of its record
    (``record_hash``, over the fields ``probe.evidence.canonical`` lists, ``body_digests``
    binding its stored bodies), its place in its device's chain (``seq`` from 1, ``chain_prev``
    the measurement before it) and ``chain_hash``, SHA-256(previous chain hash || record hash).
    ``chain_heads`` holds the device's signed statements of its chain's head, one per round
    (``label`` the round id) and one per UTC day (``label`` the day). The measurements stored
    before this migration stay as they were, unchained: their ids are listed in
    ``unchained_measurements`` and, when there were any, ``meta`` says when the chain began
    (``chain_since``) and how many were left out (``chain_unchained``), so ``probe verify``
    lists them apart from any failure. No later migration may rewrite a hashed column of a
    chained row."""
    m = db.table("measurements")
    for column in ("device_key", "chain_prev", "record_hash", "chain_hash", "body_digests"):
        m.add_column(column, str)
    m.add_column("seq", int)
    m.create_index(["device_key", "seq"], unique=True)
    db.table("rounds").add_column("device_key", str)
    db.execute("CREATE TABLE unchained_measurements (id TEXT PRIMARY KEY) WITHOUT ROWID")
    db.execute("INSERT INTO unchained_measurements (id) SELECT id FROM measurements")
    unchained = db.execute("SELECT count(*) FROM unchained_measurements").fetchone()[0]
    db.table("chain_heads").create(
        {
            "device_key": str,
            "kind": str,
            "label": str,
            "seq": int,
            "chain_hash": str,
            "at": str,
            "statement": str,
            "signature": str,
        },
        pk=("device_key", "kind", "label"),
    )
    if unchained:  # a new database is chained from its first measurement: nothing to say
        db.table("meta").insert_all(
            [
                {"key": "chain_since", "value": utc_now()},
                {"key": "chain_unchained", "value": str(unchained)},
            ],
            replace=True,
        )


@migrations()
def m012_outbox(db: Database) -> None:
    """Store and forward to the collective (issue 23, ``probe.fleet``): ``outbox`` holds one
    row per batch made (``digest`` the content address of the sealed object, ``object_key``
    its key in the bucket, ``device_key`` and ``first_seq``..``last_seq`` the stretch of the
    device's chain it carries, ``prev`` the device's batch before it, ``count`` measurements,
    ``bytes`` the object's size, ``made_at``), its sealed bytes (``data``) until the store
    acknowledges it (``acked_at``; ``data`` is then emptied), ``attempts``, and the last
    failure (``last_error``, a df-007 string). ``outbox_heads`` lists the signed chain heads
    (``chain_heads``' key and ``seq``) a batch carried (``digest``): a head signed or re-signed
    after its measurements' batch was made travels with the next one. ``upload_log`` counts the
    bytes each attempt put on the wire (``at``, ``bytes``) for the data budget."""
    db.table("outbox").create(
        {
            "digest": str,
            "object_key": str,
            "device_key": str,
            "prev": str,
            "first_seq": int,
            "last_seq": int,
            "count": int,
            "bytes": int,
            "made_at": str,
            "acked_at": str,
            "attempts": int,
            "last_error": str,
            "data": bytes,
        },
        pk="digest",
        not_null={"object_key", "device_key", "first_seq", "last_seq", "made_at"},
    )
    db.table("outbox").create_index(["device_key", "last_seq"], unique=True)
    db.table("outbox_heads").create(
        {"device_key": str, "kind": str, "label": str, "seq": int, "digest": str},
        pk=("device_key", "kind", "label", "seq"),
    )
    db.table("upload_log").create({"at": str, "bytes": int})
    db.table("upload_log").create_index(["at"])
