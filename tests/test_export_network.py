"""``--network`` (export and report): ``137``, ``as137`` and ``AS137`` all mean AS137 (issue 21);
a resolver, the network of a measurement without an AS number, may be given as it is exported
or as the resolver flags take it; anything else is one line naming --network, exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probe.cli import _row_filter
from probe.store import Store
from tests.dbs import measurement
from tests.runs import run_fresh


@pytest.fixture(scope="module")
def networks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("net") / "n.db"
    s = Store.open(db)
    s.save(measurement("success_http", "a", probe_asn="AS137", target="on-137"))
    s.save(measurement("success_http", "b", probe_asn="AS7552", target="on-7552"))
    s.save(
        measurement("success_http", "c", probe_asn=None, resolver="udp://192.0.2.53:53", target="r")
    )
    s.close()
    return db


def _exported(db: Path, capsys: pytest.CaptureFixture[str], *networks: str) -> list[str]:
    args = ["export", "--db", str(db)]
    for n in networks:
        args += ["--network", n]
    code, out, err = run_fresh(args, capsys)
    assert code == 0, err
    return [json.loads(line)["target"] for line in out.splitlines()]


@pytest.mark.parametrize("form", ["137", "as137", "AS137", "As137", " AS137 ", "AS0137"])
def test_every_form_of_an_as_number_means_that_network(
    networks: Path, form: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _exported(networks, capsys, form) == ["on-137"]


def test_several_networks_and_a_resolver(
    networks: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _exported(networks, capsys, "137", "as7552") == ["on-137", "on-7552"]
    assert _exported(networks, capsys, "udp://192.0.2.53:53") == ["r"]
    assert _exported(networks, capsys, "192.0.2.53") == ["r"]  # as --resolver reads it


@pytest.mark.parametrize(
    "bad", ["", "AS", "as-137", "AS137x", "viettel", "0", "AS0", "4294967296", "1.2.3"]
)
def test_a_bad_network_is_one_line_and_exit_2(
    networks: Path, bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_fresh(["export", "--db", str(networks), "--network", bad], capsys)
    assert code == 2 and out == "", err
    (line,) = err.splitlines()
    assert line.startswith("probe: error: --network: ") and "AS7552" in line, line


def _filter(*networks: str) -> tuple[str, ...]:
    flags = {
        "since": None,
        "until": None,
        "target_names": (),
        "categories": (),
        "networks": networks,
        "blocked": False,
        "throttled": False,
    }
    return tuple(_row_filter(flags).networks)


@given(
    n=st.integers(1, 2**32 - 1),
    prefix=st.sampled_from(["", "as", "AS", "As", "aS"]),
    zeros=st.integers(0, 2),
    pad=st.sampled_from(["", " ", "\t"]),
)
def test_as_numbers_in_any_form(n: int, prefix: str, zeros: int, pad: str) -> None:
    digits = "0" * zeros + str(n)
    if len(digits) > 10:
        digits = str(n)
    assert _filter(f"{pad}{prefix}{digits}{pad}") == (f"AS{n}",)


@given(st.text(max_size=30))
def test_any_text_is_a_network_or_one_line(text: str) -> None:
    from probe.cli import UsageInputError

    try:
        (value,) = _filter(text)
    except UsageInputError as exc:
        message = exc.format_message()
        assert message.startswith("--network: ") and "\n" not in message
    else:
        assert value.startswith(("AS", "udp://", "tls://", "https://")) or value == "?"
