"""A verdict in words, English and Vietnamese, that says no more than the evidence does.

Contract: :func:`words` is pure. From a verdict's stored fields (``blocking`` and
``accessible`` with OONI Web Connectivity's meaning, ``evidence``, ``offline``, ``throttled``,
and optionally the matched ``blockpage`` fingerprint and the throttling ``label``) it returns one
of a closed set of phrases (:data:`WORDS`), the same in every export, report and terminal table:

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
"""

from __future__ import annotations

from typing import Any

from probe.model import NO_CONTROL

ACCESSIBLE = "accessible"
ACCESSIBLE_NO_CONTROL = "accessible (no control)"
BLOCKED_DNS = "blocked (dns)"
BLOCKED_TCP_IP = "blocked (tcp_ip)"
BLOCKED_TLS_HTTP = "blocked (tls/http failure)"
BLOCKPAGE = "blockpage"
ANOMALY_DNS = "anomaly (dns)"
ANOMALY_TCP_IP = "anomaly (tcp_ip)"
ANOMALY_TLS_HTTP = "anomaly (tls/http failure)"
ANOMALY_HTTP_DIFF = "anomaly (http-diff)"
ANOMALY_SLOW = "anomaly (slow)"
ANOMALY = "anomaly"
THROTTLED = "throttled"
DOWN = "down"
CANT_TELL = "can't tell"
OFFLINE = "offline"

# English -> Vietnamese; the order is the order of severity in reports (worst first).
WORDS: dict[str, str] = {
    BLOCKPAGE: "trang chặn",
    BLOCKED_DNS: "bị chặn (DNS)",
    BLOCKED_TCP_IP: "bị chặn (TCP/IP)",
    BLOCKED_TLS_HTTP: "bị chặn (lỗi TLS/HTTP)",
    THROTTLED: "bị bóp băng thông",
    ANOMALY_DNS: "bất thường (DNS)",
    ANOMALY_TCP_IP: "bất thường (TCP/IP)",
    ANOMALY_TLS_HTTP: "bất thường (lỗi TLS/HTTP)",
    ANOMALY_HTTP_DIFF: "bất thường (trang khác)",
    ANOMALY_SLOW: "bất thường (chậm)",
    ANOMALY: "bất thường",
    DOWN: "trang web không hoạt động",
    CANT_TELL: "không xác định được",
    OFFLINE: "mất kết nối",
    ACCESSIBLE_NO_CONTROL: "truy cập được (không có đối chứng)",
    ACCESSIBLE: "truy cập được",
}
LANGS = ("en", "vi")
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
    if lang == "vi":
        return WORDS[en]
    if lang != "en":
        raise ValueError(f"lang: {lang!r} is not one of {', '.join(LANGS)}")
    return en


def of(v: Any, *, lang: str = "en") -> str:
    """:func:`words` for anything with a verdict's attributes (a :class:`probe.model.Verdict`)."""
    return words(
        v.blocking,
        v.accessible,
        v.evidence,
        v.offline,
        v.throttled,
        blockpage=v.blockpage,
        lang=lang,
    )


def translate(english: str, lang: str) -> str:
    return WORDS[english] if lang == "vi" else english


def is_anomaly(english: str) -> bool:
    return english not in NOT_ANOMALIES
