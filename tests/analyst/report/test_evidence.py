"""The report's plain-words evidence (probe.analyst.report.evidence.explain) over stored golden
rows.

Every scenario is stored as the probe stores it (tests/dbs.py) and read back as the store's typed
record (Store.stored), so the sentences are tested on what the report reads.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import msgspec
import pytest

from probe.analyst.report.evidence import FAILURE_WORDS, explain
from probe.model import ControlEvidence
from probe.store import RowFilter, Store, Stored
from probe.words import translator
from tests.dbs import SCENARIOS, helper_saw_it_work, measurement


def _row(tmp_path: Path, name: str, control: ControlEvidence | None = None) -> Stored:
    store = Store.open(tmp_path / f"{name}-{len(list(tmp_path.iterdir()))}.db")
    try:
        store.save(measurement(name, "m1", control=control))
        return next(store.stored(RowFilter()))
    finally:
        store.close()


@pytest.mark.parametrize("lang", ["en", "vi"])
def test_every_scenario_has_sentences_ending_with_its_rule(tmp_path: Path, lang: str) -> None:
    for name in SCENARIOS:
        row = _row(tmp_path, name)
        out = explain(row, lang)
        assert out and all(s.strip() for s in out), name
        assert str(row.verdict.rule_id) in out[-1], name


def test_dns_failures_name_the_resolver_and_the_failure_in_words(tmp_path: Path) -> None:
    out = explain(_row(tmp_path, "dns_nxdomain"))
    assert any("gave no address for" in s and "(dns_nxdomain_error)" in s for s in out), out
    vi = explain(_row(tmp_path, "dns_nxdomain"), "vi")
    assert any("tên miền không tồn tại (NXDOMAIN)" in s for s in vi), vi
    both = explain(_row(tmp_path, "down_for_everyone_nxdomain"))
    assert any(s.startswith("The control resolver") and "either" in s for s in both), both


def test_tcp_tls_and_http_failures(tmp_path: Path) -> None:
    tcp = explain(_row(tmp_path, "tcp_refused"))
    assert any(s.startswith("Every TCP connection to") and "refused" in s for s in tcp), tcp
    tls = explain(_row(tmp_path, "tls_reset_on_sni"))
    assert any(s.startswith("The TLS handshake with") and "(RST)" in s for s in tls), tls
    http = explain(_row(tmp_path, "http_reset_on_host"))
    assert any(s.startswith("The HTTP request for") for s in http), http
    # a blocking verdict with no helper says that there is no outside view
    assert any("helper" in s for s in http), http


def test_offline_round_and_blockpage_and_diff(tmp_path: Path) -> None:
    assert any("own link was down" in s for s in explain(_row(tmp_path, "offline_round")))
    bp = explain(_row(tmp_path, "dns_blockpage_address"))
    assert any("blockpage" in s.lower() for s in bp), bp


def test_helper_evidence_is_in_words(tmp_path: Path) -> None:
    out = explain(_row(tmp_path, "dns_nxdomain", control=helper_saw_it_work("dns_nxdomain")))
    helper = [s for s in out if s.startswith("A test helper on another network")]
    assert helper and "HTTP 200" in helper[0] and "worked" in helper[0], out
    down = ControlEvidence(source="helper", failure="generic_timeout_error")
    out = explain(_row(tmp_path, "dns_nxdomain", control=down))
    assert any("could not be reached (generic_timeout_error)" in s for s in out), out


def test_every_failure_word_pair_is_filled_in_both_languages() -> None:
    for failure, en in FAILURE_WORDS.items():
        vi = translator("vi").gettext(en)
        assert en and vi and en != vi, failure


def test_a_page_of_one_byte_is_said_in_the_singular(tmp_path: Path) -> None:
    row = _row(tmp_path, "success_https")
    page = [s for s in explain(row) if " answered HTTP " in s]
    assert page and " bytes, titled " in page[0], page
    http = tuple(replace(h, body_length=1) for h in row.observations.http)
    one = msgspec.structs.replace(row, observations=replace(row.observations, http=http))
    assert any(" 1 byte, titled " in s for s in explain(one)), explain(one)
    assert any(" 1 byte, tiêu đề " in s for s in explain(one, "vi")), explain(one, "vi")
