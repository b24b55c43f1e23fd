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

Contract, anomalies: that is the one definition of an anomaly. :data:`ANOMALY_CASES` states it
over a verdict's stored fields (``blocking``, ``offline``, ``throttled``), ordered, first match
wins; :func:`anomalous` evaluates it in Python (stored or exported values), :func:`is_anomalous`
for a :class:`~probe.model.Verdict`, and :data:`ANOMALY_SQL` is the same table as a SQL ``CASE``
expression over the ``measurements`` columns (plain SQL: sqlite3, Datasette and DuckDB read the
views and filters built with it). tests/test_words.py holds the three and the words together.
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


def _english(
    blocking: Any,
    accessible: Any,
    evidence: str | None,
    offline: Any,
    throttled: Any,
    blockpage: str | None,
    throttle_label: str | None,
) -> str:
    if offline:
        return OFFLINE
    helper = evidence == "helper"
    if blocking is None or blocking == "":
        return CANT_TELL
    if blocking is False or blocking == "false":
        if throttled:  # throughput is judged on pages that loaded
            return ANOMALY_SLOW if throttle_label == "target_slow_unattributed" else THROTTLED
        if accessible:
            return ACCESSIBLE_NO_CONTROL if evidence == NO_CONTROL else ACCESSIBLE
        return DOWN
    if blockpage:
        return BLOCKPAGE
    if blocking == "dns":
        # The dns rules need a control's answer (a control resolver or the helper's) to differ.
        return BLOCKED_DNS if evidence in ("helper", "local") else ANOMALY_DNS
    if blocking == "tcp_ip":
        return BLOCKED_TCP_IP if helper else ANOMALY_TCP_IP
    if blocking == "http-failure":
        return BLOCKED_TLS_HTTP if helper else ANOMALY_TLS_HTTP
    if blocking == "http-diff":
        return ANOMALY_HTTP_DIFF
    return ANOMALY


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
    """The verdict in words. ``blocking`` may be as stored (``"false"``) or as exported
    (``False``); booleans may be 0/1."""
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


@dataclass(frozen=True, slots=True)
class Test:
    """One test of a stored verdict field, as SQL and as Python: ``set`` (true: 1, not 0 or
    NULL), ``empty`` (NULL or ``''``) or ``not_blocked`` (``blocking`` ``"false"``)."""

    column: Literal["blocking", "offline", "throttled"]
    kind: Literal["set", "empty", "not_blocked"]

    def sql(self) -> str:
        c = self.column
        if self.kind == "set":
            return f"coalesce({c}, 0) != 0"
        if self.kind == "empty":
            return f"coalesce({c}, '') = ''"
        return f"{c} = 'false'"

    def holds(self, fields: dict[str, Any]) -> bool:
        v = fields[self.column]
        if self.kind == "set":
            return bool(v)
        if self.kind == "empty":
            return v is None or v == ""
        return v is False or v == "false"


# An anomaly, over the stored verdict fields: the order of :func:`words`, first match wins.
ANOMALY_CASES: tuple[tuple[tuple[Test, ...], bool], ...] = (
    ((Test("offline", "set"),), False),  # offline: the volunteer's own link was down
    ((Test("blocking", "empty"),), False),  # can't tell, even when throttled
    ((Test("blocking", "not_blocked"), Test("throttled", "set")), True),  # throttled, slow
    ((Test("blocking", "not_blocked"),), False),  # accessible, down
)
ANOMALY_OTHERWISE = True  # a blocking verdict: blocked, blockpage, anomaly (...)


def anomalous(blocking: Any, offline: Any, throttled: Any) -> bool:
    """Is a verdict with these fields (as stored, ``"false"`` and 0/1, or as exported) an
    anomaly? The same answer as ``is_anomaly(words(...))`` and :data:`ANOMALY_SQL`."""
    fields = {"blocking": blocking, "offline": offline, "throttled": throttled}
    for tests, answer in ANOMALY_CASES:
        if all(t.holds(fields) for t in tests):
            return answer
    return ANOMALY_OTHERWISE


def is_anomalous(v: Any) -> bool:
    """:func:`anomalous` for anything with a verdict's attributes (a
    :class:`probe.model.Verdict`)."""
    return anomalous(v.blocking, v.offline, v.throttled)


def _anomaly_sql() -> str:
    whens = " ".join(
        f"WHEN {' AND '.join(t.sql() for t in tests)} THEN {int(answer)}"
        for tests, answer in ANOMALY_CASES
    )
    return f"(CASE {whens} ELSE {int(ANOMALY_OTHERWISE)} END)"


# The same definition over the ``measurements`` columns: 1 for an anomaly, else 0.
ANOMALY_SQL = _anomaly_sql()
