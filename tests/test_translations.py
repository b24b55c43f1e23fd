"""The translation catalogs (probe/locale) against the code that uses them.

Every message Babel extracts from the package (with the repository's babel.cfg) has a
Vietnamese translation that is neither empty nor fuzzy, and the catalog holds nothing the code
no longer says; each translation keeps its message's named fields; the committed probe.mo is
what Babel compiles from the probe.po beside it; plural forms follow each language's rule
(English two, Vietnamese one); the .mo is shipped as package data.
"""

from __future__ import annotations

import io
import string
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from probe import words as V

ROOT = Path(__file__).resolve().parent.parent
PO = V.LOCALES / "vi" / "LC_MESSAGES" / f"{V.DOMAIN}.po"
MO = PO.with_suffix(".mo")
REGEN = "run the workflow in probe/words.py's docstring (pybabel extract, update, compile)"


def _catalog() -> Catalog:
    with PO.open("rb") as f:
        return read_po(f, locale="vi", domain=V.DOMAIN)


def _extracted() -> set[str | tuple[str, ...]]:
    with (ROOT / "babel.cfg").open(encoding="utf-8") as f:
        method_map, options_map = parse_mapping_cfg(f)
    return {m[2] for m in extract_from_dir(str(ROOT), method_map, options_map)}


def _key(msgid: str | tuple[str, ...]) -> str:
    return msgid[0] if isinstance(msgid, tuple) else msgid


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_every_message_has_a_vietnamese_translation_and_none_is_stale() -> None:
    catalog = _catalog()
    extracted = _extracted()
    assert len(extracted) > 80  # the verdicts, the evidence, the report's and plots' labels
    missing = []
    for msgid in extracted:
        m = catalog.get(_key(msgid))
        if m is None or m.fuzzy or m.id != msgid:
            missing.append(msgid)
            continue
        forms = m.string if isinstance(m.string, tuple) else (m.string,)
        if not all(forms):
            missing.append(msgid)
    assert not missing, f"no (or a fuzzy, or another plural's) translation: {missing}; {REGEN}"
    stale = {m.id for m in catalog if m.id and _key(m.id) not in {_key(e) for e in extracted}}
    assert not stale, f"in the catalog but no longer in the code: {stale}; {REGEN}"
    assert not catalog.obsolete, f"obsolete entries left in {PO.name}: {list(catalog.obsolete)}"


def test_every_translation_keeps_its_named_fields() -> None:
    for m in _catalog():
        if not m.id:
            continue
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        forms = m.string if isinstance(m.string, tuple) else (m.string,)
        want = set().union(*(_fields(i) for i in ids))
        for form in forms:
            assert _fields(form) == want, (m.id, form)


def test_the_committed_mo_is_the_po_compiled() -> None:
    compiled = io.BytesIO()
    write_mo(compiled, _catalog(), use_fuzzy=False)
    assert MO.read_bytes() == compiled.getvalue(), f"{MO.name} is stale: pybabel compile"


def test_plural_forms_in_both_languages() -> None:
    catalog = _catalog()
    assert catalog.plural_forms == "nplurals=1; plural=0;"
    for m in catalog:
        if isinstance(m.id, tuple):
            assert isinstance(m.string, tuple) and len(m.string) == 1, m.id
    en, vi = V.translator("en").ngettext, V.translator("vi").ngettext
    one, many = "{n} measurement", "{n} measurements"
    assert en(one, many, 1) == one and en(one, many, 0) == many and en(one, many, 2) == many
    assert vi(one, many, 1) == vi(one, many, 2) == vi(one, many, 21) == "{n} phép đo"


def test_a_language_without_a_catalog_is_refused() -> None:
    with pytest.raises(ValueError, match="lang"):
        V.translator("fr")
    assert V.translator("vi").gettext(V.BLOCKED_DNS) == "bị chặn (DNS)"
    assert V.translator("en").gettext(V.BLOCKED_DNS) == V.BLOCKED_DNS


@pytest.mark.parametrize(
    ("env", "want"),
    [
        ({"LANG": "vi_VN.UTF-8"}, "vi"),
        ({"LANG": "en_GB.UTF-8", "LC_ALL": "vi_VN.UTF-8"}, "vi"),
        ({"LANG": "vi_VN.UTF-8", "LC_ALL": "C"}, "en"),
        ({"LANGUAGE": "fr:vi", "LANG": "fr_FR.UTF-8"}, "vi"),
        ({"LANG": "fr_FR.UTF-8"}, "en"),
        ({}, "en"),
    ],
)
def test_the_language_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], want: str
) -> None:
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert V.language() == want


def test_the_compiled_catalog_is_package_data() -> None:
    with (ROOT / "pyproject.toml").open("rb") as f:
        patterns = tomllib.load(f)["tool"]["setuptools"]["package-data"]["probe"]
    shipped = MO.relative_to(ROOT / "probe").as_posix()
    assert any(fnmatch(shipped, p) for p in patterns), (shipped, patterns)
