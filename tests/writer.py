"""A writer process for the concurrency tests: ``python -m tests.writer DB TAG N [READER]``,
or ``python -m tests.writer probe ARGS...``: ``probe ARGS`` exactly as the CLI runs it, printing
each measurement's id on stdout once ``Store.save`` returned for it (what a test that kills the
process needs to know: which measurements finished).

Opens the probe's store, saves N measurements (each with a body, as real ones have) one at a
time through ``Store.save`` and prints each id on stdout once its save returned, so a test
knows which measurements a writer finished even when it kills the writer mid-way. The last
line is ``done``. With READER, it instead holds a read transaction open for N seconds (a slow
export), printing ``reading`` when its snapshot is taken.
"""

from __future__ import annotations

import sqlite3
import sys
import time

from probe.classify import classify
from probe.model import HTTPTransaction, Measurement, Observations
from probe.store import Store


def measurement(tag: str, i: int) -> Measurement:
    url = f"http://{tag}.example/{i}"
    body = f"<html><title>{tag} {i}</title>" + "x" * 2000 + "</html>"
    http = HTTPTransaction(
        url, status_code=200, body=body, body_sha256=f"{tag}-{i:08d}", body_length=len(body)
    )
    obs = Observations(url, http=(http,))
    return Measurement(
        id=f"{tag}-{i:08d}",
        target=f"{tag}-{i}",
        url=url,
        started_at="2026-11-29T00:00:00.000Z",
        observations=obs,
        verdict=classify(obs),
        bytes_used=100,
    )


def probe_cli(argv: list[str]) -> int:
    from probe import cli

    real = Store.save

    def save(self: Store, m: Measurement) -> None:
        real(self, m)
        print(m.id, flush=True)

    Store.save = save  # type: ignore[method-assign]
    return cli.main(argv)


def main(argv: list[str]) -> int:
    if argv[0] == "probe":
        return probe_cli(argv[1:])
    db, tag, n = argv[0], argv[1], int(argv[2])
    if len(argv) > 3:  # a reader such as Datasette: its own connection, a long transaction
        con = sqlite3.connect(db)
        con.execute("BEGIN")
        con.execute("SELECT count(*) FROM measurements").fetchall()
        print("reading", flush=True)
        time.sleep(n)
        con.rollback()
        return 0
    store = Store.open(db)
    for i in range(n):
        store.save(measurement(tag, i))
        print(f"{tag}-{i:08d}", flush=True)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
