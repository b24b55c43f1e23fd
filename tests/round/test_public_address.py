"""The volunteer's public address when no test helper tells it (issue 20): learned from STUN and
scrubbed in every form, or, when no method answers, every address literal that may be public
masked conservatively while the measurement's own evidence is kept; the round records which,
and ``probe run`` and ``probe status`` say so in one line. Against the loopback world's echo
server, which echoes PUBLIC_ADDRESS (the address a NAT would show) everywhere."""

from __future__ import annotations

import asyncio
import zlib
from pathlib import Path

import pytest

from probe.analyst.export import records, write
from probe.classify.fingerprints import builtin
from probe.config.targets import Target
from probe.privacy import UNKNOWN_ADDRESS_NOTE
from probe.round import run_round
from probe.round.run import RoundResult
from probe.store import Store
from tests.runs import run_args, run_cli
from tests.servers.http import all_forms, echo_forms
from tests.servers.stun import StunServer
from tests.world import PUBLIC_ADDRESS, World

OTHER_PUBLIC = "198.51.100.1"  # the echo server's X-Forwarded-For names it beside the client


def _round(world: World, store: Store, **cfg: object) -> RoundResult:
    urls = {
        "page": world.http("echo.test"),
        "redirect": world.http("echo.test", "/go"),
        "tls": world.https("echo.test"),
        "news": world.http("news.test"),
    }
    return asyncio.run(
        run_round(
            [Target(name=k, url=u) for k, u in urls.items()],
            [Target(name="ctl", url=world.http("news.test"), is_control=True)],
            world.config(**cfg),
            fingerprints=builtin(),
            on_measurement=store.save,
        )
    )


def _everything(store: Store, tmp: Path) -> list[str]:
    """The database's dump, its bodies decompressed, every file of it (WAL included) and the
    JSONL export, as text."""
    out = tmp / "out.jsonl"
    write(records(store), "jsonl", str(out))
    texts = [out.read_text(encoding="utf-8"), "\n".join(store.db.iterdump())]
    texts += [
        zlib.decompress(r["data"]).decode() for r in store.db.query("SELECT data FROM bodies")
    ]
    texts += [p.read_bytes().decode("latin-1") for p in tmp.glob("p.db*")]
    return [t.lower() for t in texts]


def test_no_helper_no_stun_the_echoed_address_is_masked_and_evidence_kept(
    world: World, tmp_path: Path
) -> None:
    """The finding: with no helper (the default) the echoed address was stored in clear."""
    store = Store.open(tmp_path / "p.db")
    result = _round(world, store)
    assert result.address_known_by == ()
    assert result.count == 5
    texts = _everything(store, tmp_path)
    rows = list(store.rows())
    store.close()
    literal_forms = [f.lower() for f in echo_forms(PUBLIC_ADDRESS)[:5]]  # dotted, dashed, ...
    found = {f for f in literal_forms for t in texts if f in t}
    assert not found, f"{len(found)} of {len(literal_forms)} forms stored: {sorted(found)}"
    assert not any(OTHER_PUBLIC in t for t in texts)  # unknown, possibly ours: masked too
    # The measurement's own evidence stays: the answers and addresses dialled.
    assert any("127.0.0.33" in t for t in texts)
    assert {r["target"]: r["accessible"] for r in rows}["news"] == 1


def test_a_stun_answer_scrubs_every_form_and_other_addresses_stay(
    world: World, tmp_path: Path
) -> None:
    stun = StunServer(PUBLIC_ADDRESS)
    store = Store.open(tmp_path / "p.db")
    try:
        result = _round(world, store, stun_servers=(("127.0.0.1", stun.port),))
    finally:
        stun.close()
    assert result.address_known_by == ("stun",)
    texts = _everything(store, tmp_path)
    store.close()
    found = {f for f in all_forms(PUBLIC_ADDRESS) for t in texts if f in t}
    assert not found, f"{len(found)} of {len(all_forms(PUBLIC_ADDRESS))} forms stored: {found}"
    # Known, the address is scrubbed exactly: another address is evidence and stays.
    assert any(OTHER_PUBLIC in t for t in texts)


@pytest.mark.parametrize("stun", [False, True])
def test_run_and_status_say_when_the_address_was_unknown(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], stun: bool
) -> None:
    targets = tmp_path / "t.yaml"
    targets.write_text(
        f"targets:\n  - {{name: echo, url: '{world.http('echo.test')}'}}\n"
        f"controls:\n  - {{name: ctl, url: '{world.http('news.test')}'}}\n",
        encoding="utf-8",
    )
    db = tmp_path / "p.db"
    server = StunServer(PUBLIC_ADDRESS)
    extra = ["--stun-server", server.address] if stun else []
    try:
        code, _, err = run_cli(run_args(world, targets, db, *extra), capsys)
    finally:
        server.close()
    assert code == 0, err
    assert (UNKNOWN_ADDRESS_NOTE in err) is not stun
    store = Store.open(db)
    rows = list(store.db.query("SELECT public_address FROM rounds"))
    store.close()
    assert [r["public_address"] for r in rows] == ["stun" if stun else "unknown"]
    code, out, _ = run_cli(["status", "--db", str(db)], capsys)
    lines = [line for line in out.splitlines() if UNKNOWN_ADDRESS_NOTE in line]
    assert len(lines) == (0 if stun else 1), out
