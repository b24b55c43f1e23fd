"""The fleet road in the censorship lab (issue 23): three probe daemons, each with its own
database and device key, measure censored sites and upload on their own schedule to a real
SeaweedFS (the lab's one door to it, tests/lab/fleet.py); one daemon is killed with SIGKILL
mid-upload, the store goes away and comes back while the others run; a last ``probe upload``
sends what waits, ``probe fleet ingest`` reads the bucket into a dataset, and the dataset holds
every measurement of every probe once, with the verdicts its own database gives.

Needs root and network namespaces (skips elsewhere; fails under CI=true, as test_lab does).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from probe.fleet import batch
from tests.e2e.test_lab_daemon import LabDaemon, Lines
from tests.lab import REPO, Lab, lab_for_tests
from tests.lab.fleet import STALL, STORE, Door
from tests.runs import run_fresh
from tests.servers import s3 as S

pytestmark = pytest.mark.lab

PRIVATE, PUBLIC = batch.collective_keypair()
# Each probe its own censored sites (and so its own verdicts) beside one that loads, its own
# kinds of test: Hanoi throughput tests too (small ones), Saigon HTTP/3 too.
CONTROL = {"name": "control-site", "url": "https://control.lab/"}
SMALL_THROUGHPUT = ["--throughput-interval", "1s", "--throughput-bytes", "64K"]
SMALL_THROUGHPUT += ["--throughput-seconds", "1", "--throughput-trials", "1"]
PROBES: dict[str, tuple[list[dict[str, str]], list[dict[str, str]], list[str]]] = {
    "hanoi": (
        [
            {"name": "news", "url": "https://news.lab/", "throughput_url": "https://news.lab/tp"},
            {"name": "rst", "url": "http://tcprst.lab/"},
        ],
        [{**CONTROL, "throughput_url": "https://control.lab/tp"}],
        [*SMALL_THROUGHPUT, "--no-http3"],
    ),
    "hue": (
        [
            {"name": "nx", "url": "http://dnsnx.lab/"},
            {"name": "tls", "url": "https://tlsblocked.lab/"},
        ],
        [CONTROL],
        ["--no-throughput", "--no-http3"],
    ),
    "saigon": (
        [
            {"name": "http", "url": "http://httpblocked.lab/"},
            {"name": "inj", "url": "http://injected.lab/"},
            {"name": "h3", "url": "https://h3reject.lab/"},  # its UDP/443 refused (ICMP)
        ],
        [CONTROL],
        ["--no-throughput"],
    ),
}
KILLED = "hue"  # uploads through the stalling relay, killed while its batch is in flight
UPLOAD = re.compile(r"upload: (\d+) batches sent \((\d+) measurements, \d+ bytes\), (\d+) waiting")


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from lab_for_tests()


def uploads(lines: Lines) -> list[tuple[int, int, str]]:
    """(batches sent, batches waiting, the failure or "") of each upload the daemon logged."""
    out = []
    for x in lines:
        msg = str(x.get("msg", ""))
        if m := UPLOAD.match(msg):
            out.append((int(m[1]), int(m[3]), msg[m.end() :].strip(" ()")))
    return out


def sent(lines: Lines) -> int:
    """The uploads that sent something."""
    return sum(1 for n, _, _ in uploads(lines) if n > 0)


def failed(lines: Lines) -> int:
    """The uploads that sent nothing and said why."""
    return sum(1 for n, _, why in uploads(lines) if n == 0 and why)


def kill(daemons: Iterable[LabDaemon]) -> None:
    for d in daemons:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(10)


def cli(*args: str, ns: str | None = None, env: dict[str, str] | None = None) -> Any:
    """``python -m probe ARGS`` (in namespace ``ns``), started: the caller waits."""
    return subprocess.Popen(
        [*(["ip", "netns", "exec", ns] if ns else []), sys.executable, "-m", "probe", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def done(*procs: Any, timeout: float = 60) -> list[str]:
    """Each one's output, once it ended well (each killed if one did not)."""
    out = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=timeout)
            assert p.returncode == 0, (p.args, stderr)
            out.append(stdout)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    return out


def differences(got: list[str], want: list[str]) -> list[tuple[str, str, Any, Any]]:
    """(id, field, the dataset's, the database's) where two exports differ."""
    a = {r["id"]: r for r in map(json.loads, got)}
    b = {r["id"]: r for r in map(json.loads, want)}
    return [
        (i, k, a[i].get(k), b[i].get(k))
        for i in sorted(a.keys() & b.keys())
        for k in sorted(a[i].keys() | b[i].keys())
        if a[i].get(k) != b[i].get(k)
    ] + [(i, "(missing)", i in a, i in b) for i in sorted(a.keys() ^ b.keys())]


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(f"file:{db}?mode=rw", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_three_daemons_a_kill_and_the_store_away_reach_the_dataset_whole(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "writer.json"
    creds.write_text(json.dumps({"access_key": S.WRITER[0], "secret_key": S.WRITER[1]}))
    daemons: dict[str, LabDaemon] = {}
    for name, (targets, controls, flags) in PROBES.items():
        cfg = tmp_path / f"{name}.toml"
        cfg.write_text(
            f'upload_url = "http://{STALL if name == KILLED else STORE}/{S.BUCKET}"\n'
            f'collective_key = "{PUBLIC}"\nupload_credentials = "{creds}"\n'
        )
        extra = ["--config", str(cfg), "--interval", "1s", "--upload-interval", "2s", *flags]
        daemons[name] = LabDaemon(lab, name, targets, *extra)
        daemons[name].write_targets(targets, controls)
    killed = daemons[KILLED]
    others = [d for name, d in daemons.items() if name != KILLED]
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(1) as pool:
        # The store starts while the daemons do (their first uploads may find it not there).
        weed = S.seaweedfs(tmp_path / "weed", write_once=True)
        starting = pool.submit(weed.__enter__)
        stack.callback(lambda: starting.exception() or weed.__exit__(None, None, None))
        stack.callback(kill, daemons.values())
        for d in daemons.values():
            d.start()
        store = starting.result()
        relay = S.Relay(store.ports["s3"], "stall_response")  # the store has it; no answer
        stack.callback(relay.close)
        stall = Door(lab.servers, STALL, 80, relay.port)
        stack.callback(stall.close)
        doors = {"store": Door(lab.servers, STORE, 80, store.ports["s3"])}
        stack.callback(lambda: doors["store"].close())

        # The killed one's first batch reached the store whole, its answer held: SIGKILL.
        assert relay.stalled.wait(60), killed.log.read_text()[-3000:]
        assert killed.proc is not None
        killed.proc.send_signal(signal.SIGKILL)
        assert killed.proc.wait(10) == -signal.SIGKILL
        [(device,)] = rows(killed.db, "SELECT DISTINCT device_key FROM measurements")
        in_flight = store.objects(f"batches/{device}/")
        assert len(in_flight) == 1, in_flight

        # The others upload, then the store goes away (its door too: connections refused)
        # while they measure and try; it comes back on the same data.
        for d in others:
            d.wait_for(lambda ls: any(n > 0 for n, _, _ in uploads(ls)), timeout=60)
        doors["store"].close()
        store.stop()
        restarting = pool.submit(store.start)
        for d in others:
            n = failed(d.lines())
            d.wait_for(lambda ls, n=n: failed(ls) > n, timeout=60)
        restarting.result()
        doors["store"] = Door(lab.servers, STORE, 80, store.ports["s3"])
        for d in others:
            n = sent(d.lines())
            d.wait_for(lambda ls, n=n: sent(ls) > n, timeout=60)
        for d in others:
            assert d.stop()[0] == 0, d.log.read_text()[-3000:]
            assert not [x for x in d.lines() if x.get("level") == "error"], d.log.read_text()[
                -6000:
            ]

        # What waits (the killed one's unanswered batch among it), sent now, once.
        final = [
            cli("upload", "--config", str(tmp_path / f"{n}.toml"), "--db", str(d.db),
                "--upload-url", f"http://{STORE}/{S.BUCKET}", ns=lab.client)
            for n, d in daemons.items()
        ]  # fmt: skip
        said = dict(zip(daemons, done(*final), strict=True))
        assert re.match(r"\d+ batches made, [1-9]\d* sent", said[KILLED]), said
        bucket = store.objects("batches/")
        assert in_flight == {k: bucket[k] for k in in_flight}  # the same bytes, the same key

        # The analysts' side: the real CLI, on the store's own address (root namespace).
        key = tmp_path / "collective.key"
        key.write_text(PRIVATE + "\n")
        ds = tmp_path / "dataset"
        admin = {"AWS_ACCESS_KEY_ID": S.ADMIN[0], "AWS_SECRET_ACCESS_KEY": S.ADMIN[1]}
        ingest = ["fleet", "ingest", f"s3://{S.BUCKET}/batches", str(ds), "--key", str(key),
                  "--endpoint", store.endpoint]  # fmt: skip
        [report] = done(cli(*ingest, env=admin))
        for k, v in admin.items():
            monkeypatch.setenv(k, v)
        code, again, err = run_fresh(ingest, capsys)  # once more: nothing new, nothing twice
        assert code == 0, err

    # Per device: what its database holds is what the bucket holds, once.
    devices = {}
    for name, d in daemons.items():
        [(device,)] = rows(d.db, "SELECT DISTINCT device_key FROM measurements")
        devices[device] = name
        n = len(rows(d.db, "SELECT id FROM measurements"))
        assert n >= (3 if d is killed else 6), name  # a round of three sites, or two
        outbox = rows(d.db, "SELECT digest, acked_at FROM outbox")
        assert outbox and all(acked for _, acked in outbox), name
        assert sorted(k for k in bucket if k.startswith(f"batches/{device}/")) == sorted(
            f"batches/{device}/{digest}.pbatch" for digest, _ in outbox
        ), name
    assert len(devices) == 3
    lines = report.splitlines()
    total = sum(len(rows(d.db, "SELECT id FROM measurements")) for d in daemons.values())
    assert lines[0] == (
        f"s3://{S.BUCKET}/batches: {len(bucket)} batches ingested (0 read before), {total} "
        "measurements added, 0 already there, 0 quarantined, 0 batches rejected"
    ), report
    assert not [x for x in lines if x.startswith("device ")], report  # no gap, no fork
    assert lines[-1] == f"{ds}: {total} measurements from 3 devices, {len(bucket)} batches"
    assert again.splitlines()[0].startswith(
        f"s3://{S.BUCKET}/batches: 0 batches ingested ({len(bucket)} read before), 0 "
        "measurements added"
    ), again

    # The dataset's counts per device are each database's.
    from probe.analyst.fleet import query

    per_device = "count(*), count(DISTINCT id), count(DISTINCT seq), min(seq), max(seq)"
    got = (
        query.connect(ds)
        .execute(f"SELECT device_key, {per_device} FROM measurements GROUP BY device_key")
        .fetchall()
    )
    want = [
        (device, *rows(daemons[name].db, f"SELECT {per_device} FROM measurements")[0])
        for device, name in devices.items()
    ]
    assert sorted(got) == sorted(want)

    # The verdicts and every exported field: the dataset's export is the three databases'.
    exports = []
    for db in (ds, *(d.db for d in daemons.values())):
        code, out, err = run_fresh(["export", "--db", str(db), "--format", "jsonl"], capsys)
        assert code == 0, err
        exports.append(out.splitlines())
    from_ds, from_dbs = exports[0], [line for e in exports[1:] for line in e]
    assert len(from_ds) == total
    assert sorted(from_ds) == sorted(from_dbs), differences(from_ds, from_dbs)
    records = [json.loads(line) for line in from_ds]
    verdicts = {r["blocking"] for r in records if not r.get("is_control")}
    assert {False, "dns", "tcp_ip", "http-failure", "http-diff"} <= verdicts, verdicts
    assert any(r["throughput"] and r["throughput"]["ratio"] for r in records), "no throughput"
    assert any(r["target"] == "h3" and r["quic"] == "blocked" for r in records), "no HTTP/3"
