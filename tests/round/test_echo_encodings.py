"""Issue 20 end to end: a loopback server echoes the volunteer's public addresses (an IPv4 and
an IPv6 one, behind NAT, known to the probe only through the helper's HMAC recognisers) in one
encoding at a time, in a header, a Set-Cookie, the title and the body; a real round stores the
page in a real SQLite database; the database file, its WAL, the decompressed bodies and every
export format then hold neither address in any form (:func:`tests.encodings.holds` reads every
encoding, independently of the scrubber).
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from probe.model import Measurement
from probe.store import Store
from tests.encodings import RENDERINGS, holds, readings
from tests.world import World

ECHO_HOST = "127.0.0.120"  # none of the world's addresses
MINE = ("198.51.100.23", "2001:db8:5ca1::23")  # the volunteer's public addresses
NONCE = b"e" * 32


def echo(forms: list[str]) -> Callable[[BaseHTTPRequestHandler], None]:
    """A page echoing ``forms`` (the first in the header and the title, each in a cookie and
    in the body), as a "what is my IP" page does."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        body = (
            f"<html><head><title>Your address is {forms[0]}</title></head><body>"
            + "".join(f"<p>seen as {f}</p>" for f in forms)
            + "</body></html>"
        ).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("X-Your-IP", forms[0])
        for i, f in enumerate(forms):
            handler.send_header("Set-Cookie", f"ip{i}={f}; Path=/")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return route


def _round(
    world: World,
    tmp_path: Path,
    route: Callable[[BaseHTTPRequestHandler], None],
    *,
    helper: str = "knows",
) -> tuple[Measurement, dict[str, str]]:
    """One real round of one target served by ``route``, stored in ``tmp_path/p.db``, and
    everything the probe then keeps (:func:`_everything_kept`). The helper's recognisers
    claim the volunteer's addresses (``knows``), claim none (``blind``: nothing is scrubbed),
    or there is no helper (``none``: no STUN server either in the loopback world, so the
    round scrubs conservatively)."""
    from probe.classify.fingerprints import builtin
    from probe.config.targets import Target
    from probe.network import addr_hmac, recogniser
    from probe.round import run_round
    from probe.store import Store
    from tests.servers.http import Site, WebServer

    server = WebServer(Site({"/": route}), ECHO_HOST)
    store = Store.open(tmp_path / "p.db")
    stored: list[Measurement] = []

    def save(m: Measurement) -> None:
        store.save(m)
        stored.append(m)

    try:
        asyncio.run(
            run_round(
                [Target(name="echo", url=f"http://{ECHO_HOST}:{server.port}/")],
                [],
                world.config(),
                fingerprints=builtin(),
                on_measurement=save,
                recognisers={
                    "knows": [recogniser(NONCE, addr_hmac(NONCE, a)) for a in MINE],
                    "blind": [lambda ip: False],
                    "none": [],
                }[helper],
            )
        )
        kept = _everything_kept(store, tmp_path)
    finally:
        server.close()
        store.close()
    (m,) = stored
    return m, kept


def _everything_kept(store: Store, tmp_path: Path) -> dict[str, str]:
    """Every text the probe keeps or exports, by where it comes from: the database file and
    its WAL (raw bytes, read while the store is open, before a checkpoint folds the WAL in),
    each stored body decompressed, a dump of every table, and each export format (Parquet
    read back as rows)."""
    import pyarrow.parquet as pq

    from probe.analyst.export import FORMATS, export
    from probe.store import RowFilter

    kept = {p.name: p.read_bytes().decode("latin-1") for p in tmp_path.glob("p.db*")}
    for i, row in enumerate(store.db.query("SELECT data FROM bodies")):
        kept[f"body {i}"] = zlib.decompress(row["data"]).decode("utf-8", "replace")
    kept["dump"] = "\n".join(store.db.iterdump())
    for fmt in FORMATS:
        out = tmp_path / f"export.{fmt}"
        export(store, RowFilter(), fmt, str(out))
        if fmt == "parquet":
            files = sorted(out.rglob("*.parquet"))
            rows = [r for f in files for r in pq.read_table(f).to_pylist()]
            kept[fmt] = json.dumps(rows, default=str, ensure_ascii=False)
        else:
            kept[fmt] = out.read_text(encoding="utf-8")
    return kept


@pytest.mark.parametrize("encoding", sorted(RENDERINGS))
def test_an_echoed_address_is_kept_in_no_encoding(
    world: World, tmp_path: Path, encoding: str
) -> None:
    forms = [f for a in MINE for f in RENDERINGS[encoding](a)]
    for a in MINE:  # the oracle sees what the server sends
        assert all(holds(a, f) for f in RENDERINGS[encoding](a)), a
    m, kept = _round(world, tmp_path, echo(forms))
    page = m.observations.http[-1]
    assert page.status_code == 200 and page.title == "Your address is [scrubbed]"
    assert page.header("x-your-ip") == "[scrubbed]"
    assert set(kept) >= {"p.db", "p.db-wal", "body 0", "dump", "jsonl", "csv", "ooni", "parquet"}
    for where, text in kept.items():
        for a in MINE:
            assert holds(a, text) == [], (where, a)


def echo_utf16(encoding: str, content_type: str) -> Callable[[BaseHTTPRequestHandler], None]:
    """A page sent as UTF-16 (``encoding``: with a byte-order mark, or none), the addresses
    in its title and body, plainly in a header and a cookie (a header holds no NUL)."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        body = (
            f"<html><head><title>Your address is {MINE[0]}</title></head><body>"
            + "".join(f"<p>seen as {a}</p>" for a in MINE)
            + "</body></html>"
        ).encode(encoding)
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("X-Your-IP", MINE[0])
        handler.send_header("Set-Cookie", f"ip={MINE[1]}; Path=/")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return route


@pytest.mark.parametrize(
    ("encoding", "content_type"),
    [
        ("utf-16", "text/html"),  # little-endian with a BOM, read as UTF-8: NULs between
        ("utf-16-be", "text/html; charset=iso-8859-1"),  # NULs before
        ("utf-16-be", "text/html; charset=utf-16"),  # no BOM: read as little-endian, swapped
        ("utf-32", "text/html"),
    ],
)
def test_an_address_in_a_utf16_body_is_kept_nowhere(
    world: World, tmp_path: Path, encoding: str, content_type: str
) -> None:
    m, kept = _round(world, tmp_path, echo_utf16(encoding, content_type))
    page = m.observations.http[-1]
    assert page.status_code == 200 and page.header("x-your-ip") == "[scrubbed]"
    assert page.body is not None and any("[scrubbed]" in r for r in readings(page.body))
    assert set(kept) >= {"p.db", "p.db-wal", "body 0", "dump", "jsonl", "csv", "ooni", "parquet"}
    for where, text in kept.items():
        for a in MINE:
            assert holds(a, text) == [], (where, a)


@pytest.mark.parametrize(
    "route",
    [
        echo([f for a in MINE for f in RENDERINGS["base64"](a)]),
        echo_utf16("utf-16-be", "text/html; charset=utf-16"),
    ],
    ids=["base64", "utf-16"],
)
def test_the_search_finds_an_address_no_one_scrubbed(
    world: World, tmp_path: Path, route: Callable[[BaseHTTPRequestHandler], None]
) -> None:
    """The checks above are not vacuous: with a helper that recognises neither address the
    same round keeps them, and the search finds them in the WAL, the body, the dump and each
    export."""
    _, kept = _round(world, tmp_path, route, helper="blind")
    for where in ("p.db-wal", "dump", "body 0", "jsonl", "csv", "ooni", "parquet"):
        for a in MINE:
            assert holds(a, kept[where]), (where, a)


@pytest.mark.parametrize("encoding", sorted(RENDERINGS))
def test_without_a_helper_an_echoed_address_is_kept_in_no_encoding(
    world: World, tmp_path: Path, encoding: str
) -> None:
    forms = [f for a in MINE for f in RENDERINGS[encoding](a)]
    _, kept = _round(world, tmp_path, echo(forms), helper="none")
    assert all(holds(a, text) == [] for text in kept.values() for a in MINE)
