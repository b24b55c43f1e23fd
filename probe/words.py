"""A verdict in words, and the one translation mechanism for every word probe shows a person.

Contract, translation: English is the message id; other languages (Vietnamese first) are GNU
gettext catalogs, ``probe/locale/<lang>/LC_MESSAGES/probe.po``, read at run time by the standard
library's :mod:`gettext` from the compiled ``probe.mo`` beside it (no dependency a volunteer's
Raspberry Pi must install). :func:`translator` gives a language's ``gettext`` and ``ngettext``
(plural forms by the catalog's own ``Plural-Forms``: English two, Vietnamese one); a language
without a catalog raises ValueError, and a catalog that is missing from the package raises
OSError rather than falling back to English unnoticed. :func:`language` reads the language from
the environment (``LANGUAGE``, ``LC_ALL``, ``LC_MESSAGES``, ``LANG``, as gettext does); the
CLI's global ``--lang`` (``probe --lang vi status``) overrides it, and the CLI tells each library
function its language as a ``lang`` argument (no process-wide state below the CLI). Modules
keep English only, marked for extraction: ``N_("...")`` where a message is defined and
translated later, or a call of ``_``/``gettext``/``ngettext`` where it is shown (Babel's
default keywords: an alias of another name is not extracted). Wherever a count is shown, it goes
through ``ngettext`` ("1 measurement", "2 measurements"; one form in Vietnamese). Placeholders are
named ``{}`` fields (str.format), so a translation may put them in another order.

Workflow (Babel, a test dependency only; the mapping is ``babel.cfg``)::

    pybabel extract -F babel.cfg --no-location --add-comments=TRANSLATORS: -o /tmp/probe.pot .
    pybabel update -i /tmp/probe.pot -d probe/locale -D probe --no-fuzzy-matching \
        --ignore-pot-creation-date
    (translate probe/locale/vi/LC_MESSAGES/probe.po)
    pybabel compile -d probe/locale -D probe

The compiled ``probe.mo`` is committed beside its ``.po``, as Django commits its catalogs: an
install from a checkout, an editable install, ``python -m probe`` and a wheel built without
Babel all find the catalog, and no build step is needed on the Pi. tests/test_translations.py
keeps the two in step: it compiles the ``.po`` with Babel and fails when the committed ``.mo``
differs, and fails when an extracted message has no (or only a fuzzy) translation.

Contract, verdicts: :func:`words` is pure. From a verdict's stored fields (``blocking`` and
``accessible`` with OONI Web Connectivity's meaning, ``evidence``, ``offline``, ``throttled``,
and optionally the matched ``blockpage`` fingerprint and the throttling ``label``) it returns one
of a closed set of phrases (:data:`VERDICTS`), the same in every export, report and terminal
table:

- ``blocked (dns)`` where the rules say the resolver under test failed or lied against a control;
- ``blocked (tcp_ip)`` and ``blocked (tls/http failure)`` only when a test helper saw the same
  step succeed from elsewhere; from local evidence alone (a site that refuses everyone looks the
  same) they are ``anomaly (tcp_ip)`` and ``anomaly (tls/http failure)``;
- ``blockpage`` only when a known blockpage fingerprint matched; a page that merely differs
  from the control's is ``anomaly (http-diff)``;
- ``accessible`` rests on a comparison (a helper's view, the control's page, verified TLS);
  where the page was compared with nothing (evidence ``no control``: rule http.success.local)
  it is ``accessible (no control)``, as a transparent proxy's unknown blockpage would read;
- ``throttled`` only when the throughput test was significant and not left unattributed
  (``target_slow_unattributed``, which a slow server also produces, is ``anomaly (slow)``);
- ``down`` (down for everyone), ``can't tell`` and ``offline`` say what they say.

:func:`is_anomaly` says which of them an analyst should look at (everything but accessible,
down, can't tell and offline).

Contract, one verdict: :data:`CASES` is the one table of the verdict, ordered, first match
wins, over a stored row's verdict fields and its throughput analysis's label. :func:`words`
evaluates it in Python; :func:`verdict_sql` compiles the same table to a SQL ``CASE`` over the
``measurements`` columns (plain SQL: sqlite3, Datasette and DuckDB), and :data:`ANOMALY_SQL`,
:func:`anomaly_sql` and :func:`blocked_sql` test its words. Every view (the terminal, ``probe
status``, ``probe events``, every export, the report, the store's filters and Datasette's
canned queries) derives its verdict from this table, so they agree; tests/test_words.py and
tests/analyst/test_one_verdict.py hold them together. A significant throughput test is
evidence of its own: where the page's rules cannot tell, it is ``throttled`` (or ``anomaly
(slow)``), not ``can't tell``. :data:`BLOCKED` is what the words call blocked.
"""

from __future__ import annotations

import gettext
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from probe.model import NO_CONTROL

DOMAIN = "probe"
LOCALES = Path(__file__).parent / "locale"
LANGS = ("en", "vi")  # English is the message id; every other one has a catalog in LOCALES


def N_(message: str) -> str:
    """Mark ``message`` for extraction where it is defined; it is translated where shown."""
    return message


@cache
def translator(lang: str) -> gettext.NullTranslations:
    """``lang``'s translations: ``.gettext(message)`` and ``.ngettext(singular, plural, n)``."""
    if lang not in LANGS:
        raise ValueError(f"lang: {lang!r} is not one of {', '.join(LANGS)}")
    if lang == "en":
        return gettext.NullTranslations()  # the ids are English, with English's two plural forms
    return gettext.translation(DOMAIN, LOCALES, languages=[lang])


def language() -> str:
    """The language the environment asks for, where probe has it; English otherwise."""
    found = gettext.find(DOMAIN, LOCALES)  # LANGUAGE, LC_ALL, LC_MESSAGES, LANG, normalised
    lang = Path(found).parent.parent.name if found else "en"
    return lang if lang in LANGS else "en"


ACCESSIBLE = N_("accessible")
ACCESSIBLE_NO_CONTROL = N_("accessible (no control)")
BLOCKED_DNS = N_("blocked (dns)")
BLOCKED_TCP_IP = N_("blocked (tcp_ip)")
BLOCKED_TLS_HTTP = N_("blocked (tls/http failure)")
BLOCKPAGE = N_("blockpage")
ANOMALY_DNS = N_("anomaly (dns)")
ANOMALY_TCP_IP = N_("anomaly (tcp_ip)")
ANOMALY_TLS_HTTP = N_("anomaly (tls/http failure)")
ANOMALY_HTTP_DIFF = N_("anomaly (http-diff)")
ANOMALY_SLOW = N_("anomaly (slow)")
ANOMALY = N_("anomaly")
THROTTLED = N_("throttled")
DOWN = N_("down")
CANT_TELL = N_("can't tell")
OFFLINE = N_("offline")

# The closed set, in the order of severity in reports (worst first).
VERDICTS = (
    BLOCKPAGE,
    BLOCKED_DNS,
    BLOCKED_TCP_IP,
    BLOCKED_TLS_HTTP,
    THROTTLED,
    ANOMALY_DNS,
    ANOMALY_TCP_IP,
    ANOMALY_TLS_HTTP,
    ANOMALY_HTTP_DIFF,
    ANOMALY_SLOW,
    ANOMALY,
    DOWN,
    CANT_TELL,
    OFFLINE,
    ACCESSIBLE_NO_CONTROL,
    ACCESSIBLE,
)
NOT_ANOMALIES = frozenset({ACCESSIBLE, ACCESSIBLE_NO_CONTROL, DOWN, CANT_TELL, OFFLINE})


Column = Literal["blocking", "accessible", "evidence", "offline", "throttled", "blockpage", "label"]


@dataclass(frozen=True, slots=True)
class Test:
    """One test of a stored verdict field, as SQL and as Python: ``set`` (true or a name: not
    0, ``''`` or NULL), ``empty`` (NULL or ``''``), ``not_blocked`` (``blocking`` false or
    ``"false"``) or ``is`` (equal to one of ``values``). ``label`` is the throughput test's
    label (:data:`probe.store.sql.THROTTLE_LABEL_SQL` in SQL)."""

    column: Column
    kind: Literal["set", "empty", "not_blocked", "is"]
    values: tuple[str, ...] = ()

    def sql(self, columns: dict[str, str]) -> str:
        c = columns.get(self.column, self.column)
        if self.kind == "set":
            return f"coalesce({c}, 0) NOT IN (0, '', '0')"
        if self.kind == "empty":
            return f"coalesce({c}, '') = ''"
        if self.kind == "not_blocked":
            return f"{c} = 'false'"
        return f"{c} IN ({', '.join(sql_text(v) for v in self.values)})"

    def holds(self, fields: dict[str, Any]) -> bool:
        v = fields[self.column]
        if self.kind == "set":
            return bool(v) and v != "0"
        if self.kind == "empty":
            return v is None or v == ""
        if self.kind == "not_blocked":
            return v is False or v == "false"
        return v in self.values


def sql_text(s: str) -> str:
    """``s`` as a SQL string literal."""
    return "'" + s.replace("'", "''") + "'"


_NOT_BLOCKED, _CANT_TELL = Test("blocking", "not_blocked"), Test("blocking", "empty")
_THROTTLED, _SLOW = Test("throttled", "set"), Test("label", "is", ("target_slow_unattributed",))

# THE verdict, over a stored row's verdict fields and its throughput analysis's label: ordered,
# first match wins. :func:`words` evaluates it in Python, :func:`verdict_sql` compiles it to one
# SQL ``CASE`` (the store's ANOMALY, Datasette's queries), so every view says the same. A
# significant throughput test is evidence of its own (it compares the target with a control
# measured at the same moment): a page verdict that cannot tell does not hide it.
CASES: tuple[tuple[tuple[Test, ...], str], ...] = (
    ((Test("offline", "set"),), OFFLINE),  # the volunteer's own link was down
    ((_NOT_BLOCKED, _THROTTLED, _SLOW), ANOMALY_SLOW),  # throughput is judged on pages that loaded
    ((_NOT_BLOCKED, _THROTTLED), THROTTLED),
    (
        (_NOT_BLOCKED, Test("accessible", "set"), Test("evidence", "is", (NO_CONTROL,))),
        ACCESSIBLE_NO_CONTROL,
    ),
    ((_NOT_BLOCKED, Test("accessible", "set")), ACCESSIBLE),
    ((_NOT_BLOCKED,), DOWN),
    ((_CANT_TELL, _THROTTLED, _SLOW), ANOMALY_SLOW),  # the page cannot tell; the throughput can
    ((_CANT_TELL, _THROTTLED), THROTTLED),
    ((_CANT_TELL,), CANT_TELL),
    ((Test("blockpage", "set"),), BLOCKPAGE),
    # The dns rules need a control's answer (a control resolver or the helper's) to differ.
    ((Test("blocking", "is", ("dns",)), Test("evidence", "is", ("helper", "local"))), BLOCKED_DNS),
    ((Test("blocking", "is", ("dns",)),), ANOMALY_DNS),
    # TCP and TLS/HTTP failures are blocking only where a helper saw the same step succeed.
    ((Test("blocking", "is", ("tcp_ip",)), Test("evidence", "is", ("helper",))), BLOCKED_TCP_IP),
    ((Test("blocking", "is", ("tcp_ip",)),), ANOMALY_TCP_IP),
    (
        (Test("blocking", "is", ("http-failure",)), Test("evidence", "is", ("helper",))),
        BLOCKED_TLS_HTTP,
    ),
    ((Test("blocking", "is", ("http-failure",)),), ANOMALY_TLS_HTTP),
    ((Test("blocking", "is", ("http-diff",)),), ANOMALY_HTTP_DIFF),
)
OTHERWISE = ANOMALY  # a blocking kind these rules do not know

# What the words call blocked (Datasette's "blocked today", the report's "blocked"): a
# blockpage, or a block a control's view confirms. ``anomaly (...)`` is not blocked.
BLOCKED = frozenset({BLOCKPAGE, BLOCKED_DNS, BLOCKED_TCP_IP, BLOCKED_TLS_HTTP})


def _english(
    blocking: Any,
    accessible: Any,
    evidence: str | None,
    offline: Any,
    throttled: Any,
    blockpage: str | None,
    throttle_label: str | None,
) -> str:
    fields = {
        "blocking": blocking,
        "accessible": accessible,
        "evidence": evidence,
        "offline": offline,
        "throttled": throttled,
        "blockpage": blockpage,
        "label": throttle_label,
    }
    for tests, verdict in CASES:
        if all(t.holds(fields) for t in tests):
            return verdict
    return OTHERWISE


def words(
    blocking: Any,
    accessible: Any,
    evidence: str | None = None,
    offline: Any = False,
    throttled: Any = None,
    *,
    blockpage: str | None = None,
    throttle_label: str | None = None,
    lang: str = "en",
) -> str:
    """The verdict in words (:data:`CASES`). ``blocking`` may be as stored (``"false"``) or as
    exported (``False``); booleans may be 0/1."""
    en = _english(blocking, accessible, evidence, offline, throttled, blockpage, throttle_label)
    return translator(lang).gettext(en)


def of(v: Any, *, throttle_label: str | None = None, lang: str = "en") -> str:
    """:func:`words` for anything with a verdict's attributes (a :class:`probe.model.Verdict`)."""
    return words(
        v.blocking,
        v.accessible,
        v.evidence,
        v.offline,
        v.throttled,
        blockpage=v.blockpage,
        throttle_label=throttle_label,
        lang=lang,
    )


def translate(english: str, lang: str) -> str:
    """``english`` (a message id, such as a verdict) in ``lang``."""
    return translator(lang).gettext(english)


def is_anomaly(english: str) -> bool:
    """Is the verdict ``english`` (one of :data:`VERDICTS`) an anomaly?"""
    return english not in NOT_ANOMALIES


def is_blocked(english: str) -> bool:
    """Do the words ``english`` (one of :data:`VERDICTS`) say blocked (:data:`BLOCKED`)?"""
    return english in BLOCKED


def anomalous(blocking: Any, offline: Any, throttled: Any) -> bool:
    """Is a verdict with these fields (as stored, ``"false"`` and 0/1, or as exported) an
    anomaly? ``is_anomaly(words(...))``: whether it is does not depend on the other fields."""
    return is_anomaly(_english(blocking, None, None, offline, throttled, None, None))


def is_anomalous(v: Any) -> bool:
    """:func:`anomalous` for anything with a verdict's attributes (a
    :class:`probe.model.Verdict`)."""
    return anomalous(v.blocking, v.offline, v.throttled)


def _in(words_: frozenset[str] | tuple[str, ...]) -> str:
    return f"({', '.join(sql_text(w) for w in sorted(words_))})"


def verdict_sql(label: str = "json_extract(throughput, '$.analysis.label')", **columns: str) -> str:
    """:data:`CASES` as one SQL ``CASE`` expression giving the English words, over the
    ``measurements`` columns (``label``: the throughput label's expression; ``columns``: other
    names for the verdict columns, such as ``blocking="m.blocking"``)."""
    names = {"label": label, **columns}
    whens = "\n".join(
        f"  WHEN {' AND '.join(t.sql(names) for t in tests)} THEN {sql_text(verdict)}"
        for tests, verdict in CASES
    )
    return f"(CASE\n{whens}\n  ELSE {sql_text(OTHERWISE)} END)"


def blocked_sql(verdict: str) -> str:
    """SQL: is ``verdict`` (an expression giving the words) blocked (:data:`BLOCKED`)?"""
    return f"{verdict} IN {_in(BLOCKED)}"


def anomaly_sql(verdict: str) -> str:
    """SQL: is ``verdict`` (an expression giving the words) an anomaly?"""
    return f"{verdict} NOT IN {_in(NOT_ANOMALIES)}"


# The anomaly over the ``measurements`` columns: 1 for an anomaly, else 0 (the label never
# decides it: throttled and anomaly (slow) are both anomalies).
ANOMALY_SQL = f"({anomaly_sql(verdict_sql(label='NULL'))})"
