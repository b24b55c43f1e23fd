"""JSON Lines: one :func:`probe.analyst.export.records.records` dict per line, UTF-8, streamed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, BinaryIO

import msgspec


def write_jsonl(recs: Iterable[dict[str, Any]], out: BinaryIO) -> int:
    encode = msgspec.json.Encoder().encode_into
    buf = bytearray()
    n = 0
    for rec in recs:
        encode(rec, buf, len(buf))
        buf += b"\n"
        n += 1
        if len(buf) > 1 << 20:
            out.write(buf)
            buf.clear()
    out.write(buf)
    return n
