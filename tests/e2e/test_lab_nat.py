"""Behind a home router's NAT (issue 20): the translated address is stored nowhere, evidence is.

The lab's router (``Lab(nat=True)``, tests/lab/README.md) translates the probe's 192.168.77.2 to
198.51.100.23, so the servers, the helpers and the STUN server see only that address, one the
probe's own sockets never show it. The mirror (tests/lab/mirror.py) echoes it in every form and
place; the blockpage scenarios stay. Three conditions, each one ``probe run`` over every lab
scenario, the mirror and a redirect to the blockpage's address:

- ``helper``: the test helper answers (its HMAC lets the probe recognise the address), and
  the lab's STUN server (``PROBE_STUN_SERVERS``) tells it too;
- ``no_helper``: no helper configured; only STUN tells the probe its address;
- ``unreachable``: helper and STUN configured, the router blocks both (and the lab's control
  resolver offers no "whoami"): the address is unknown, and the probe masks conservatively.

Then the database file, its WAL, every export format the CLI offers and the HTML report are
searched for the translated address in every form the mirror echoes, as UTF-8 and as UTF-16
(:func:`findings`): under every condition no form may be found (with the address unknown,
conservative masking takes them all, bare numbers included). Blockpage addresses must be kept,
and every verdict must be the one the same run gets in a lab without the router.

Needs root, network namespaces and coturn; elsewhere it skips with one line, under CI=true it
fails.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from probe.analyst.export import FORMATS
from tests.lab import BLOCKPAGE, HELPER, HOME_IP, NAT_PUBLIC, Lab, lab_for_tests, sh
from tests.lab import MIRROR as MIRROR_IP
from tests.lab.mirror import forms
from tests.lab.scenarios import CONTROLS, SCENARIOS

pytestmark = pytest.mark.lab

MIRROR = {
    "mirror-http": "http://mirror.lab/",
    "mirror-https": "https://mirror.lab/",
    "mirror-redirect": "http://mirror.lab/go",
    "mirror-utf16": "http://mirror.lab/utf16",
}
TO_BLOCKPAGE = "redirect_to_blockpage_address"  # a Location naming the blockpage's address
TARGETS = {s.name: s.url for s in SCENARIOS} | {TO_BLOCKPAGE: "http://news.lab/to-blockpage"}
TARGETS |= MIRROR
FORMS = forms(NAT_PUBLIC)
CASE_SENSITIVE = {"base64", "base64_json"}  # every other form is found in any case


@dataclass(frozen=True)
class Condition:
    name: str
    helper: bool  # --helper given
    unreachable: bool = False  # helper and STUN blocked (by the router; without it, the ISP)


CONDITIONS = [
    Condition("helper", helper=True),
    Condition("no_helper", helper=False),
    Condition("unreachable", helper=True, unreachable=True),
]


# -- what the probe keeps ------------------------------------------------------------------------
@dataclass
class Run:
    condition: Condition
    records: list[dict[str, Any]]
    artefacts: dict[str, bytes] = field(default_factory=dict)  # name -> bytes, searched
    db: Path = Path()

    def by_target(self) -> dict[str, dict[str, Any]]:
        return {r["target"]: r for r in self.records}


def _zlib_streams(raw: bytes) -> bytes:
    """Every zlib stream (bodies are stored compressed) that starts somewhere in ``raw``,
    decompressed: rows of live pages, and whatever freed pages still hold."""
    out = []
    view = memoryview(raw)
    at = raw.find(b"\x78\x9c")
    while at != -1:
        d = zlib.decompressobj()
        got = []
        with contextlib.suppress(zlib.error):
            for i in range(at, len(raw), 4096):
                got.append(d.decompress(view[i : i + 4096]))
                if d.eof or sum(map(len, got)) > 4 << 20:
                    break
        if got and got[0]:
            out.append(b"".join(got))
        at = raw.find(b"\x78\x9c", at + 1)
    return b"\n".join(out)


def _rows(db: Path) -> bytes:
    """Every row of every table, as text, compressed blobs decompressed."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        lines = list(con.iterdump())
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for t in tables:
            for row in con.execute(f'SELECT * FROM "{t}"'):
                for v in row:
                    if isinstance(v, bytes):
                        with contextlib.suppress(zlib.error):
                            lines.append(zlib.decompress(v).decode("utf-8", "replace"))
    finally:
        con.close()
    return "\n".join(lines).encode()


@contextlib.contextmanager
def reader_held(db: Path) -> Iterator[None]:
    """An analyst's reader (Datasette, sqlite3) open on the database during the run: the probe
    is not its last connection, so its WAL stays on disk to be searched."""
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("SELECT count(*) FROM sqlite_master").fetchone()
    try:
        yield
    finally:
        con.close()


def measure(lab: Lab, c: Condition) -> Run:
    """One ``probe run`` over TARGETS under condition ``c``; in the NAT lab, every artefact."""
    nat = lab.router is not None
    name = f"{c.name}-{'nat' if nat else 'plain'}"
    args = ["--helper", lab.helper] if c.helper else []
    # The probe's coming setting (issue 20); the lab without the router has no STUN server.
    env = {"PROBE_STUN_SERVERS": lab.stun or ""}
    blocked: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if c.unreachable:
        blocked = lab.helper_and_stun_blocked() if nat else lab.helper_blocked()
    db = lab.tmp / f"{name}.db"
    if not nat:
        with blocked:
            return Run(c, lab.run_targets(TARGETS, CONTROLS, name, *args, env=env), db=db)
    with reader_held(db), blocked:
        if c.unreachable:
            assert lab.stun_binding() is None
        recs = lab.run_targets(TARGETS, CONTROLS, name, *args, env=env)
        run = Run(c, recs, db=db)
        for suffix in ("", "-wal"):
            path = Path(f"{db}{suffix}")
            run.artefacts[f"database{suffix}"] = path.read_bytes() if path.exists() else b""
    raw = run.artefacts["database"] + run.artefacts["database-wal"]
    run.artefacts["database (zlib streams)"] = _zlib_streams(raw)
    run.artefacts["database (rows)"] = _rows(db)
    for fmt in FORMATS:
        out = lab.tmp / f"{name}.{fmt}"
        r = lab.probe("export", "--db", str(db), "--format", fmt, "-o", str(out))
        assert r.returncode == 0, r.stderr
        run.artefacts[f"export {fmt}"] = _read_export(out)
    report = lab.tmp / f"{name}.html"
    r = lab.probe("report", "--db", str(db), "-o", str(report))
    assert r.returncode == 0, r.stderr
    run.artefacts["report"] = report.read_bytes()
    return run


def _read_export(out: Path) -> bytes:
    if not out.is_dir():
        return out.read_bytes()
    import pyarrow.parquet as pq  # parquet: a folder of files; their bytes and their rows

    parts = []
    for f in sorted(out.rglob("*")):
        if f.is_file():
            parts.append(f.read_bytes())
            if f.suffix == ".parquet":
                rows = pq.read_table(f).to_pylist()
                parts.append(json.dumps(rows, default=str, ensure_ascii=False).encode())
    return b"\n".join(parts)


def findings(address_forms: dict[str, str], artefacts: dict[str, bytes]) -> dict[str, list[str]]:
    """For each form of an address, where it was found: the artefacts holding its text as
    UTF-8 or as UTF-16 (either byte order), any case unless the form is case-sensitive."""
    low = {name: data.lower() for name, data in artefacts.items()}
    out: dict[str, list[str]] = {}
    for form, text in address_forms.items():
        exact = form in CASE_SENSITIVE
        needles = {
            enc: (text if exact else text.lower()).encode(enc)
            for enc in ("utf-8", "utf-16-le", "utf-16-be")
        }
        out[form] = [
            f"{name} ({enc})"
            for name, data in artefacts.items()
            for enc, needle in needles.items()
            if needle in (data if exact else low[name])
        ]
    return out


def figures(run: Run) -> str:
    found = findings(FORMS, run.artefacts)
    leaked = sorted(f for f, where in found.items() if where)
    sizes = ", ".join(f"{k} {len(v)} B" for k, v in run.artefacts.items())
    return (
        f"{run.condition.name}: {len(FORMS)} forms checked in {len(run.artefacts)} artefacts "
        f"({sizes}); {len(leaked)} found: {', '.join(leaked) or 'none'}"
    )


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from lab_for_tests(nat=True)


class Runs:
    """Each condition measured once, when a test first asks for it."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.done: dict[str, Run] = {}

    def __getitem__(self, name: str) -> Run:
        if name not in self.done:
            run = measure(self.lab, next(c for c in CONDITIONS if c.name == name))
            if run.artefacts:
                print(figures(run))  # shown with -rP, or -s
            self.done[name] = run
        return self.done[name]


@pytest.fixture(scope="module")
def runs(lab: Lab) -> Runs:
    return Runs(lab)


@pytest.fixture(scope="module")
def plain() -> Iterator[Runs]:
    """The same runs in a lab without the router: the verdicts the NAT must not change."""
    for plain_lab in lab_for_tests():
        yield Runs(plain_lab)


def verdict(r: dict[str, Any]) -> tuple[Any, ...]:
    return (
        r["blocking"],
        r["accessible"],
        r["failing_step"],
        r["failure"],
        r["rule_id"],
        r["blockpage"],
    )


# -- the topology --------------------------------------------------------------------------------
def test_servers_and_stun_see_only_the_translated_address(lab: Lab) -> None:
    own = sh("ip", "-4", "-o", "addr", "show", ns=lab.client).stdout
    assert HOME_IP in own and NAT_PUBLIC not in own
    assert lab.seen_by_servers() == NAT_PUBLIC
    assert lab.stun_binding() == NAT_PUBLIC
    with lab.helper_and_stun_blocked():
        assert lab.stun_binding() is None
        r = sh(
            "python3",
            "-c",
            f"import socket; socket.create_connection(({HELPER!r}, 443), 3)",
            ns=lab.client,
            check=False,
        )
        assert "ConnectionRefusedError" in r.stderr
    assert lab.stun_binding() == NAT_PUBLIC


def _fetch(lab: Lab, path: str) -> tuple[str, bytes]:
    """The mirror's answer to the client, unprocessed: its header lines and its body bytes."""
    code = (
        "import http.client\n"
        f"c = http.client.HTTPConnection({MIRROR_IP!r}, 80, timeout=5)\n"
        f"c.request('GET', {path!r}, headers={{'Host': 'mirror.lab'}})\n"
        "r = c.getresponse()\n"
        "head = ''.join(f'{k}: {v}\\n' for k, v in r.getheaders())\n"
        "print(head.encode('latin-1').hex(), r.read().hex() or '-')"
    )
    head, body = sh("python3", "-c", code, ns=lab.client).stdout.split()
    return bytes.fromhex(head).decode("latin-1"), bytes.fromhex(body.strip("-"))


def test_the_mirror_echoes_every_form_and_the_search_finds_each(lab: Lab) -> None:
    """The live control for the search below: every form of the address the mirror sees is
    in its answer (the page in UTF-8, the same page in UTF-16, the redirect's Location)."""
    head, body = _fetch(lab, "/")
    found = findings(FORMS, {"page": body})
    assert [f for f, where in found.items() if where != ["page (utf-8)"]] == []
    _, utf16 = _fetch(lab, "/utf16")
    assert all("page (utf-16-le)" in w for w in findings(FORMS, {"page": utf16}).values())
    for header in ("X-Client-IP", "X-Real-IP", "X-Forwarded-For"):
        assert f"{header}: {NAT_PUBLIC}" in head
    for form in ("dashed", "base64", "base64_json"):
        assert FORMS[form] in "".join(v for v in head.splitlines() if v.startswith("Set-Cookie"))
    go, _ = _fetch(lab, "/go")
    (location,) = [v for v in go.splitlines() if v.startswith("Location: ")]
    for form in ("dotted", "dashed", "url_encoded", "double_url_encoded"):
        assert FORMS[form] in location, (form, location)


def test_no_namespace_has_a_route_out(lab: Lab) -> None:
    for ns in lab.namespaces:
        routes = sh("ip", "route", "show", ns=ns).stdout
        assert "default" not in routes, f"{ns} has a default route: {routes}"


def test_the_helper_sees_the_translated_address(runs: Runs) -> None:
    """Its IP-to-ASN table names 198.51.100.0/24 LAB-FIBRE: that network on every record."""
    assert {(r["probe_asn"], r["probe_cc"]) for r in runs["helper"].records} == {("AS64502", "VN")}


@pytest.mark.parametrize(
    ("condition", "methods"),
    [("helper", {"helper", "stun"}), ("no_helper", {"stun"}), ("unreachable", {"unknown"})],
)
def test_the_round_says_how_it_learnt_the_address(
    runs: Runs, condition: str, methods: set[str]
) -> None:
    """rounds.public_address: the methods that told the probe its address (the lab's coturn
    is the STUN that answers), or "unknown"; never the address."""
    con = sqlite3.connect(f"file:{runs[condition].db}?mode=ro", uri=True)
    try:
        (got,) = con.execute("SELECT public_address FROM rounds").fetchone()
    finally:
        con.close()
    assert set(got.split(",")) == methods, got


def test_unreachable_means_the_helper_never_answered(runs: Runs) -> None:
    recs = [r for r in runs["unreachable"].records if r["target"] not in CONTROLS]
    assert {(r["probe_asn"], r["evidence"]) for r in recs} <= {(None, "local"), (None, "none")}
    assert {r["control"]["failure"] for r in recs} == {"connection_refused"}


# -- the address nowhere -------------------------------------------------------------------------
@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("condition", [c.name for c in CONDITIONS])
def test_the_translated_address_is_stored_nowhere(runs: Runs, condition: str, form: str) -> None:
    run = runs[condition]
    where = findings({form: FORMS[form]}, run.artefacts)[form]
    assert not where, f"{form} ({FORMS[form]!r}) in {', '.join(where)}; {figures(run)}"


@pytest.mark.parametrize("condition", [c.name for c in CONDITIONS])
def test_the_mirror_was_measured(runs: Runs, condition: str) -> None:
    """The search means something only if the echoes reached the probe."""
    recs = runs[condition].by_target()
    for name in MIRROR:
        final = recs[name]["http"][-1]
        assert final["status_code"] == 200 and final["body_length"] > 700, (name, final)
    assert [h["status_code"] for h in recs["mirror-redirect"]["http"]][:2] == [302, 200]


# -- evidence and verdicts kept ------------------------------------------------------------------
@pytest.mark.parametrize("condition", [c.name for c in CONDITIONS])
def test_blockpage_addresses_are_kept(runs: Runs, condition: str) -> None:
    """The ISP resolver's blockpage answer and a Location naming the blockpage's address are
    evidence: in the database and the export; the blockpages are fingerprinted. (The probe
    records a redirect to an address literal and does not follow it.)"""
    run = runs[condition]
    con = sqlite3.connect(f"file:{run.db}?mode=ro", uri=True)
    try:
        answers = con.execute(
            "SELECT q.answers FROM dns_queries q JOIN measurements m ON m.id = q.measurement_id"
            " WHERE m.target = 'dns_blockpage_address' AND q.resolver = 'system'"
        ).fetchall()
        locations = con.execute(
            "SELECT h.location FROM http_requests h JOIN measurements m"
            " ON m.id = h.measurement_id WHERE m.target = ? AND h.role = 'system'",
            [TO_BLOCKPAGE],
        ).fetchall()
    finally:
        con.close()
    assert any(f'"{BLOCKPAGE}"' in (a or "") for (a,) in answers), answers
    assert (f"http://{BLOCKPAGE}/",) in locations, locations
    recs = run.by_target()
    for name in ("dns_blockpage_address", "blockpage_injection_consistent_dns"):
        assert recs[name]["blockpage"] == "probe.vn_http_blocked_vi", (name, recs[name])
    jsonl = run.artefacts["export jsonl"].decode()
    assert f"http://{BLOCKPAGE}/" in jsonl and f'"{BLOCKPAGE}"' in jsonl


@pytest.mark.parametrize("condition", [c.name for c in CONDITIONS])
def test_verdicts_are_those_without_the_nat(runs: Runs, plain: Runs, condition: str) -> None:
    nat, without = runs[condition].by_target(), plain[condition].by_target()
    assert set(nat) == set(without)
    changed = {
        t: (verdict(without[t]), verdict(nat[t]))
        for t in nat
        if verdict(nat[t]) != verdict(without[t])
    }
    assert not changed, f"{condition}: {len(changed)} of {len(nat)} verdicts changed: {changed}"


@pytest.mark.parametrize("condition", ["helper", "no_helper"])
def test_the_scenarios_keep_their_pinned_verdicts(runs: Runs, condition: str) -> None:
    """tests/lab/scenarios.py's expectations hold behind the router too."""
    recs = runs[condition].by_target()
    wrong = {
        s.name: (r["blocking"], r["accessible"], r["failing_step"], r["failure"], r["rule_id"])
        for s in SCENARIOS
        if (r := recs[s.name])
        and (r["blocking"], r["accessible"], r["failing_step"], r["failure"])
        != (s.blocking, s.accessible, s.failing_step, s.failure)
    }
    assert not wrong, f"{condition}: {len(wrong)} of {len(SCENARIOS)} differ: {wrong}"
