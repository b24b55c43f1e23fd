"""``probe prune`` against a typo (issue 21): an age without a unit is refused, ``--dry-run``
counts and deletes nothing, a terminal is asked first, a script must say ``--yes``, and ages
beyond a year (``730d``, ``2y``) are allowed. The database is one real round of the loopback
world, aged by rewriting its start times; the terminal is a real pseudo-terminal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probe.store import Store
from probe.timeutil import iso
from tests.runs import run_args, run_fresh
from tests.terminal import in_a_terminal
from tests.world import World

DAY = 86400


@pytest.fixture
def aged(tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]) -> Path:
    """One round (a page, a blockpage, a control), every row 200 days old."""
    t = tmp_path / "t.yaml"
    t.write_text(
        f"targets:\n  - name: news\n    url: {world.http('news.test')}\n"
        f"  - name: blocked\n    url: {world.http('blocked.test')}\n"
        f"controls:\n  - name: ctl\n    url: {world.https('news.test')}\n"
    )
    db = tmp_path / "m.db"
    code, _, err = run_fresh(run_args(world, t, db), capsys)
    assert code == 0, err
    store = Store.open(db)
    old = iso(datetime.now(UTC) - timedelta(days=200))
    store.db.execute("UPDATE measurements SET started_at = ?", [old])
    store.db.execute("UPDATE rounds SET started_at = ?", [old])
    assert store.db.table("bodies").count > 0
    store.close()
    return db


def _counts(db: Path) -> dict[str, int]:
    store = Store.open(db, create=False, readonly=True)
    try:
        return {t: store.db.table(t).count for t in ("measurements", "rounds", "bodies")}
    finally:
        store.close()


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("probe: error: "), err
    return lines[0]


# -- an age without a unit --------------------------------------------------------------------
@pytest.mark.parametrize("age", ["180", "180 ", "0", "1.5", "30m", "-5d", "0d", "soon"])
def test_an_age_without_a_unit_is_refused_and_nothing_is_deleted(
    aged: Path, age: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _counts(aged)
    code, out, err = run_fresh(["prune", "--db", str(aged), "--older-than", age, "--yes"], capsys)
    line = _one_error_line(err)
    assert code == 2 and out == ""
    assert "--older-than" in line and all(e in line for e in ("180d", "26w", "12h")), line
    assert _counts(aged) == before


# -- a dry run --------------------------------------------------------------------------------
@pytest.mark.parametrize("keep", [False, True])
def test_dry_run_counts_what_a_prune_then_deletes_and_deletes_nothing(
    aged: Path, keep: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _counts(aged)
    flags = ["--keep-anomalies"] if keep else []
    code, out, err = run_fresh(
        ["prune", "--db", str(aged), "--older-than", "180d", "--dry-run", *flags], capsys
    )
    assert code == 0, err
    assert _counts(aged) == before  # nothing deleted
    cutoff = (datetime.now(UTC) - timedelta(days=180)).strftime("%Y-%m-%d")
    assert out.startswith("dry run: would delete ") and f"started before {cutoff}" in out, out
    code, done, err = run_fresh(
        ["prune", "--db", str(aged), "--older-than", "180d", "--yes", *flags], capsys
    )
    assert code == 0, err
    after = _counts(aged)
    gone = {t: before[t] - after[t] for t in before}
    measurements = 2 if keep else 3  # the blockpage is an anomaly, kept with --keep-anomalies
    rounds = 0 if keep else 1
    assert gone["measurements"] == measurements and gone["rounds"] == rounds
    assert gone["bodies"] > 0 or keep  # the kept blockpage measurement names both bodies

    def many(n: int, one: str, more: str) -> str:
        return f"{n} {one if n == 1 else more}"

    expected = (
        f"{many(gone['measurements'], 'measurement', 'measurements')}, "
        f"{many(gone['rounds'], 'round', 'rounds')} and {many(gone['bodies'], 'body', 'bodies')}"
    )
    assert f"dry run: would delete {expected} started before" in out, out
    assert done.startswith(f"deleted {expected} started before"), done


def test_store_counts_a_prune_without_deleting(aged: Path) -> None:
    store = Store.open(aged)
    before = _counts(aged)
    cutoff = iso(datetime.now(UTC))
    counted = store.prune_counts(cutoff, keep_anomalies=True)
    assert _counts(aged) == before
    deleted = {"measurements": 0, "rounds": 0, "bodies": 0}
    for what, n in store.prune(cutoff, keep_anomalies=True):
        deleted[what] += n
    assert counted == deleted and deleted["measurements"] == 2
    assert store.prune_counts(cutoff, keep_anomalies=True) == {
        "measurements": 0,
        "rounds": 0,
        "bodies": 0,
    }


# -- asking first -----------------------------------------------------------------------------
def test_without_a_terminal_prune_needs_yes(aged: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A script (cron, a systemd timer) that does not say --yes deletes nothing: a careful tool
    does not delete months of evidence on a guess about who is at the other end."""
    before = _counts(aged)
    code, out, err = run_fresh(["prune", "--db", str(aged), "--older-than", "180d"], capsys)
    line = _one_error_line(err)
    assert code == 2 and "--yes" in line and "--dry-run" in line, line
    assert _counts(aged) == before
    code, out, err = run_fresh(["prune", "--db", str(aged), "--older-than", "180d", "-y"], capsys)
    assert code == 0 and out.startswith("deleted 3 measurements"), (out, err)


def _in_a_terminal(args: list[str], answer: bytes) -> str:
    """The whole screen of ``probe ARGS`` in a terminal, ``answer`` typed at the question."""
    return in_a_terminal(args, [(b"[y/N]", answer)])[1]


def test_a_terminal_is_asked_first(aged: Path) -> None:
    before = _counts(aged)
    screen = _in_a_terminal(["prune", "--db", str(aged), "--older-than", "180d"], b"n\n")
    assert "would delete 3 measurements, 1 round and" in screen, screen
    assert "Delete them?" in screen and "Nothing deleted." in screen, screen
    assert _counts(aged) == before
    screen = _in_a_terminal(["prune", "--db", str(aged), "--older-than", "180d"], b"y\n")
    assert "deleted 3 measurements, 1 round" in screen, screen
    assert _counts(aged)["measurements"] == 0


# -- ages beyond a year -----------------------------------------------------------------------
@pytest.mark.parametrize(("age", "days"), [("730d", 730), ("2y", 730), ("104w", 728), ("1Y", 365)])
def test_ages_beyond_a_year(
    aged: Path, age: str, days: int, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_fresh(
        ["prune", "--db", str(aged), "--older-than", age, "--dry-run"], capsys
    )
    assert code == 0, err
    cutoff = (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%d")
    start = "dry run: would delete 0 measurements, 0 rounds and 0 bodies started before "
    assert out.startswith(start + cutoff), out


# -- the parser -------------------------------------------------------------------------------
def parse_age(text: str) -> float:
    from probe.config.parse import parse_age as parse

    return parse(text)


UNITS = {"h": 3600, "d": DAY, "w": 7 * DAY, "y": 365 * DAY}


@given(
    n=st.integers(1, 100),
    unit=st.sampled_from(sorted(UNITS)),
    upper=st.booleans(),
    pad=st.sampled_from(["", " ", "  "]),
)
def test_parse_age_reads_every_unit(n: int, unit: str, upper: bool, pad: str) -> None:
    text = f"{pad}{n}{pad}{unit.upper() if upper else unit}{pad}"
    assert parse_age(text) == n * UNITS[unit]


@given(st.integers(0, 10**12))
def test_parse_age_refuses_a_number_without_a_unit(n: int) -> None:
    with pytest.raises(ValueError, match="no unit") as exc:
        parse_age(str(n))
    assert "\n" not in str(exc.value)


@given(st.text(max_size=20))
def test_parse_age_of_any_text_is_an_age_or_one_line(text: str) -> None:
    try:
        seconds = parse_age(text)
    except ValueError as exc:
        message = str(exc)
        assert message and "\n" not in message and "180d" in message
    else:
        # At least an hour, at most a century: datetime arithmetic cannot overflow.
        assert 3600 <= seconds <= 100 * 365 * DAY


def test_parse_age_refuses_a_century_and_more() -> None:
    assert parse_age("100y") == 100 * 365 * DAY
    for text in ("101y", "36501d", "99999999999999999999d"):
        with pytest.raises(ValueError, match="at most"):
            parse_age(text)


def test_prune_speaks_the_volunteers_language_with_its_plurals(
    aged: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The round stored 1 round: English says "1 round" (not "1 rounds"); with --lang vi the
    dry run, the refusal and the age error are Vietnamese."""
    code, out, err = run_fresh(
        ["prune", "--db", str(aged), "--older-than", "180d", "--dry-run"], capsys
    )
    assert code == 0, err
    assert "3 measurements, 1 round and " in out, out
    code, out, err = run_fresh(
        ["--lang", "vi", "prune", "--db", str(aged), "--older-than", "180d", "--dry-run"], capsys
    )
    assert code == 0, err
    assert out.startswith("chạy thử: sẽ xóa 3 phép đo, 1 vòng đo và ") and "bắt đầu trước" in out, (
        out
    )
    code, _, err = run_fresh(
        ["--lang", "vi", "prune", "--db", str(aged), "--older-than", "180"], capsys
    )
    assert code == 2 and "không có đơn vị" in err, err
