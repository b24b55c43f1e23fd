"""Parquet: a Hive-partitioned dataset (``date=YYYY-MM-DD/``) that DuckDB, Spark, Polars and
BigQuery read as it is, with a schema that stays stable across versions.

Contract: :func:`write_dataset` writes the selected measurements, oldest first, into
``DIR/date=YYYY-MM-DD/part-0.parquet`` (zstd), one row group per batch, and renames the folder
into place only when it is complete. :data:`SCHEMA` is the files' schema, version
:data:`SCHEMA_VERSION` (also in each file's metadata as ``probe.schema``): flat verdict columns
(``verdict`` in English words, ``blocking`` as stored: ``"false"``, ``"dns"``, ``"tcp_ip"``,
``"http-failure"``, ``"http-diff"`` or null; booleans; ``started_at`` a UTC timestamp) and the
steps as nested lists of structs (``dns``, ``tcp``, ``tls``, ``http``; headers as
``{name, value}`` structs, since BigQuery has no list of lists); the helper's answer
(``control``), the full throughput test and OONI's verdict (``ooni_verdict``, imported rows
only) as JSON text. ``date`` is the partition (in the folder names, not in the files). Columns are
only ever added at the end; :func:`schema_text` is the documented form, and a test keeps the two
equal. The steps are parsed from SQLite's JSON text by Arrow's own JSON reader (C++), so the
export keeps pace with ``sqlite3 -csv``; memory holds one batch.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import suppress
from itertools import groupby
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
import pyarrow.parquet as pq

from probe import words as verdicts
from probe.analyst.export.causes import CauseIndex, cause_index
from probe.analyst.export.files import new_folder
from probe.analyst.export.records import throughput_record
from probe.errors import ExportError
from probe.store import RowFilter, Store
from probe.store.reads import STORED_FLAT
from probe.words import N_

SCHEMA_VERSION = "3"
BATCH = 4096  # rows per read and per row group: memory stays near 100 MB

_str, _f64, _i64, _i32, _bool = pa.string(), pa.float64(), pa.int64(), pa.int32(), pa.bool_()
# Every step ends with its failure, its times and its depth in the redirect chain (and, but
# for a TCP connect, the bytes it moved).
_STEP_END: list[tuple[str, pa.DataType]] = [
    ("failure", _str),
    ("raw_failure", _str),
    ("t0", _f64),
    ("t", _f64),
    ("depth", _i32),
    ("bytes", _i64),
]
ANSWER = pa.struct([("type", _str), ("value", _str), ("ttl", _i64)])
DNS = pa.struct(
    [
        ("hostname", _str),
        ("query_type", _str),
        ("resolver", _str),
        ("resolver_address", _str),
        ("engine", _str),
        ("answers", pa.list_(ANSWER)),
        ("rcode", _str),
        *_STEP_END,
    ]
)
TCP = pa.struct(
    [
        ("ip", _str),
        ("port", _i32),
        ("sources", pa.list_(_str)),
        *_STEP_END[:-1],  # no bytes: a connect moves none
    ]
)
CERTIFICATE = pa.struct(
    [
        ("subject", _str),
        ("issuer", _str),
        ("not_before", _str),
        ("not_after", _str),
        ("san", pa.list_(_str)),
        ("sha256", _str),
    ]
)
TLS = pa.struct(
    [
        ("ip", _str),
        ("port", _i32),
        ("server_name", _str),
        ("sources", pa.list_(_str)),
        ("tls_version", _str),
        ("cipher_suite", _str),
        ("negotiated_protocol", _str),
        ("certificates", pa.list_(CERTIFICATE)),
        *_STEP_END,
    ]
)
HEADER = pa.struct([("name", _str), ("value", _str)])


def _http(headers: pa.DataType) -> pa.StructType:
    return pa.struct(
        [
            ("url", _str),
            ("role", _str),
            ("ip", _str),
            ("port", _i32),
            ("depth", _i32),
            ("status_code", _i32),
            ("headers", headers),
            ("title", _str),
            ("body_length", _i64),
            ("body_sha256", _str),
            ("body_truncated", _bool),
            ("location", _str),
            ("failure", _str),
            ("raw_failure", _str),
            ("failed_operation", _str),
            ("t0", _f64),
            ("t", _f64),
            ("bytes", _i64),
        ]
    )


HTTP = _http(pa.list_(HEADER))
_HTTP_AS_STORED = _http(pa.list_(pa.list_(_str)))  # headers as [[name, value], ...]

FLAT: list[tuple[str, pa.DataType]] = [
    ("id", _str),
    ("started_at", pa.timestamp("ms", tz="UTC")),
    ("target", _str),
    ("url", _str),
    ("category", _str),
    ("is_control", _bool),
    ("verdict", _str),
    ("blocking", _str),
    ("accessible", _bool),
    ("throttled", _bool),
    ("offline", _bool),
    ("failing_step", _str),
    ("failure", _str),
    ("dns_consistency", _str),
    ("blockpage", _str),
    ("evidence", _str),
    ("rule_id", _str),
    ("rules_version", _str),
    ("network_ok", _bool),
    ("body_proportion", _f64),
    ("body_length_match", _bool),
    ("status_code_match", _bool),
    ("headers_match", _bool),
    ("title_match", _bool),
    ("throughput_ratio", _f64),
    ("throughput_bps", _f64),
    ("throughput_control_bps", _f64),
    ("throughput_p_value", _f64),
    ("throttle_label", _str),
    ("throttle_mechanism", _str),
    ("network", _str),
    ("probe_asn", _str),
    ("probe_cc", _str),
    ("resolver", _str),
    ("control_resolver", _str),
    ("device_id", _str),
    ("round_id", _str),
    ("source", _str),
    ("software", _str),
    ("runtime", _f64),
    ("bytes_used", _i64),
]
NESTED: list[tuple[str, pa.DataType]] = [
    ("dns", pa.list_(DNS)),
    ("tcp", pa.list_(TCP)),
    ("tls", pa.list_(TLS)),
    ("http", pa.list_(HTTP)),
    ("control", _str),
    ("throughput", _str),
    ("ooni_verdict", _str),
]
# Added in schema 2, at the end as every later column will be: which network, which resolver.
ADDED: list[tuple[str, pa.DataType]] = [
    ("network_name", _str),
    ("resolver_kind", _str),
    # Schema 3 (issue 25): where the target's object was served from, and the slowdown's cause.
    ("target_class", _str),
    ("edge_asn", _str),
    ("edge_cc", _str),
    ("edge_on_net", _bool),
    ("edge_rtt_ms", _f64),
    ("edge_pop", _str),
    ("slowdown_cause", _str),
    # Schema 3 too (issue 24): the HTTP/3 verdict, and the QUIC steps as JSON text.
    ("quic", _str),
    ("quic_rule", _str),
    ("http3", _str),
]
# Computed from the throughput test's target edge (probe.measure.edge.target_edge) and the
# cause index, not read from a column.
_EDGE_KEYS = {"edge_asn": "asn", "edge_cc": "cc", "edge_on_net": "on_net"}
_EDGE_KEYS |= {"edge_rtt_ms": "rtt_ms", "edge_pop": "pop"}
SCHEMA = pa.schema(FLAT + NESTED + ADDED, metadata={"probe.schema": SCHEMA_VERSION})
_STEPS = pa.schema(
    [
        ("dns", pa.list_(DNS)),
        ("tcp", pa.list_(TCP)),
        ("tls", pa.list_(TLS)),
        ("http", pa.list_(_HTTP_AS_STORED)),
    ]
)
_COMPUTED = {
    "verdict",
    "http3",  # sliced out of the stored observations
    "throughput_ratio",
    "throughput_bps",
    "throughput_control_bps",
    "throughput_p_value",
    "throttle_label",
    "throttle_mechanism",
    "target_class",
    "slowdown_cause",
    *_EDGE_KEYS,
}
# What it reads, in bulk: the store's flat columns (its one declaration, STORED_FLAT), then the
# JSON ones and OONI's verdict (EXPORT_COLUMNS); every column of the schema that is not computed
# is among them (tests/test_export_columns.py).
_READ = [*STORED_FLAT, "observations", "control", "throughput", "ooni_verdict"]


def schema_text() -> str:
    """The schema as documented (docs/analysts.md), one column per line."""
    return "\n".join(f"{f.name}: {f.type}" for f in SCHEMA) + "\n"


def _headers_as_structs(http: pa.ListArray) -> pa.ListArray:
    """list<struct<..., headers: list<list<string>>>> -> the same with {name, value} headers,
    column-wise (no Python per row)."""
    items = http.flatten()
    headers = items.field("headers")
    pairs = headers.flatten()
    if len(pairs) and pc.min(pc.list_value_length(pairs)).as_py() < 2:
        raise ExportError(N_("a stored HTTP header is not a [name, value] pair"))
    named = pa.StructArray.from_arrays(
        [pc.list_element(pairs, 0), pc.list_element(pairs, 1)], fields=list(HEADER)
    )
    offsets = pc.subtract(headers.offsets, headers.offsets[0])
    new_headers = pa.ListArray.from_arrays(offsets, named, mask=headers.is_null())
    fields = [items.field(f.name) for f in _HTTP_AS_STORED]
    fields[_HTTP_AS_STORED.get_field_index("headers")] = new_headers
    new_items = pa.StructArray.from_arrays(fields, fields=list(HTTP), mask=items.is_null())
    outer = pc.subtract(http.offsets, http.offsets[0])
    return pa.ListArray.from_arrays(outer, new_items, mask=http.is_null())


def _steps(observations: list[str]) -> pa.Table:
    data = "\n".join(observations).encode("utf-8")
    longest = max((len(o) for o in observations), default=0)
    table = pj.read_json(
        io.BytesIO(data),
        read_options=pj.ReadOptions(block_size=max(4 << 20, 2 * longest + 2)),
        parse_options=pj.ParseOptions(
            explicit_schema=_STEPS, unexpected_field_behavior="ignore", newlines_in_values=False
        ),
    )
    if table.num_rows != len(observations):
        raise ExportError(N_("the stored observations hold a raw newline: not one JSON per row"))
    return table.combine_chunks()


def _times(values: list[str]) -> pa.Array:
    try:
        return pa.array(values, _str).cast(pa.timestamp("ms", tz="UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise ExportError(
            N_("started_at: a value is not a UTC time ({value}...)"), value=repr(values[0])
        ) from None


def _target_edge(rec: dict[str, Any]) -> dict[str, Any]:
    return next((e for e in rec.get("edges") or () if "target" in e.get("roles", ())), {})


def _batch(rows: list[tuple[Any, ...]], causes: CauseIndex | None = None) -> pa.Table:
    at = {c: i for i, c in enumerate(_READ)}
    cols = list(zip(*rows, strict=True))
    analyses = []
    for r, raw in zip(rows, cols[at["throughput"]], strict=True):
        cause = (
            causes.cause(r[at["target"]], r[at["network"]], r[at["started_at"]])
            if causes is not None and raw
            else None
        )
        rec = throughput_record(raw, cause) if raw else None
        analyses.append(rec or {})
    arrays: list[pa.Array] = []
    for name, typ in FLAT:
        if name == "started_at":
            arrays.append(_times(list(cols[at[name]])))
        elif name == "verdict":
            arrays.append(
                pa.array(
                    [
                        verdicts.words(
                            r[at["blocking"]],
                            r[at["accessible"]],
                            r[at["evidence"]],
                            r[at["offline"]],
                            r[at["throttled"]],
                            blockpage=r[at["blockpage"]],
                            throttle_label=a.get("label"),
                        )
                        for r, a in zip(rows, analyses, strict=True)
                    ],
                    _str,
                )
            )
        elif name.startswith(("throughput_", "throttle_")):
            key = {
                "throughput_ratio": "ratio",
                "throughput_bps": "bps",
                "throughput_control_bps": "control_bps",
                "throughput_p_value": "p_value",
                "throttle_label": "label",
                "throttle_mechanism": "mechanism",
            }[name]
            arrays.append(pa.array([a.get(key) for a in analyses], typ))
        elif typ == _bool:
            arrays.append(pa.array(cols[at[name]], pa.int64()).cast(_bool))
        else:
            arrays.append(pa.array(cols[at[name]], typ))
    steps = _steps(list(cols[at["observations"]]))
    arrays += [steps.column("dns").chunk(0), steps.column("tcp").chunk(0)]
    arrays += [steps.column("tls").chunk(0), _headers_as_structs(steps.column("http").chunk(0))]
    controls = [None if c in (None, "null") else c for c in cols[at["control"]]]
    arrays.append(pa.array(controls, _str))
    arrays.append(pa.array(cols[at["throughput"]], _str))
    arrays.append(pa.array(cols[at["ooni_verdict"]], _str))
    edges = [_target_edge(a) for a in analyses]
    for name, typ in ADDED:
        if name in _EDGE_KEYS:
            arrays.append(pa.array([e.get(_EDGE_KEYS[name]) for e in edges], typ))
        elif name == "target_class":
            arrays.append(pa.array([a.get("target_class") for a in analyses], typ))
        elif name == "slowdown_cause":
            arrays.append(pa.array([a.get("cause") for a in analyses], typ))
        elif name == "http3":
            arrays.append(pa.array([_http3(o) for o in cols[at["observations"]]], typ))
        else:
            arrays.append(pa.array(cols[at[name]], typ))
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


class _QUIC(msgspec.Struct):
    quic: msgspec.Raw = msgspec.Raw(b"null")


_quic_of = msgspec.json.Decoder(_QUIC).decode


def _http3(observations: str) -> str | None:
    """The observations' ``quic`` section as JSON text (None when QUIC was not measured)."""
    raw = bytes(_quic_of(observations).quic)
    return None if raw == b"null" else raw.decode("utf-8")


def _tables(store: Store, f: RowFilter) -> Iterator[tuple[str, pa.Table]]:
    """(day, table) runs of one day each, oldest first."""
    causes = cause_index(store)
    for rows in store.stream(f, _READ, batch=BATCH):
        start = _READ.index("started_at")
        for day, run in groupby(rows, key=lambda r: str(r[start])[:10]):
            yield day, _batch(list(run), causes)


def write_dataset(store: Store, f: RowFilter, output: str) -> int:
    """Write the dataset folder ``output``; returns the number of measurements."""
    with suppress(pa.ArrowNotImplementedError, AttributeError):
        pa.jemalloc_set_decay_ms(0)  # give freed batches back at once: RSS flat, not high-water
    n = 0
    with new_folder(output) as tmp:
        writer: pq.ParquetWriter | None = None
        current = None
        try:
            for day, table in _tables(store, f):
                if day != current:
                    if writer is not None:
                        writer.close()
                    part = Path(tmp) / f"date={day}"
                    part.mkdir()
                    writer = pq.ParquetWriter(part / "part-0.parquet", SCHEMA, compression="zstd")
                    current = day
                assert writer is not None
                writer.write_table(table)
                n += table.num_rows
        finally:
            if writer is not None:
                writer.close()
    return n
