"""The evidence behind a verdict, in plain words (English and Vietnamese), for the report.

Contract: :func:`explain` is pure. From a stored measurement row (its verdict columns, the
observations and the control evidence) it returns sentences a journalist can follow: which step
failed and how (the df-007 failure in words, the raw string beside it), what the control saw
(the control resolver's answers, the page fetched through a control address, or a test helper's
view), the blockpage fingerprint or HTTP differences, the throughput against a control, and the
rule and rules version that decided. It states what was observed and never more: a failure
without a helper's view is said to be seen from this network only.
"""

from __future__ import annotations

from typing import Any

import msgspec

from probe import failures
from probe.classify import RULES

_RULE_WHY = {r.id: r.why for r in RULES}

FAILURE_WORDS: dict[str, tuple[str, str]] = {
    failures.DNS_NXDOMAIN: (
        "the name does not exist (NXDOMAIN)",
        "tên miền không tồn tại (NXDOMAIN)",
    ),
    failures.DNS_NO_ANSWER: ("no address in the answer", "câu trả lời không có địa chỉ"),
    failures.DNS_SERVFAIL: ("the resolver failed (SERVFAIL)", "máy chủ DNS báo lỗi (SERVFAIL)"),
    failures.DNS_REFUSED: ("the resolver refused (REFUSED)", "máy chủ DNS từ chối (REFUSED)"),
    failures.DNS_BOGON: (
        "a private or loopback address, which leads nowhere",
        "một địa chỉ nội bộ hoặc loopback, không dẫn tới đâu",
    ),
    failures.GENERIC_TIMEOUT: ("no answer in time (timeout)", "hết thời gian chờ (timeout)"),
    failures.CONNECTION_RESET: (
        "the connection was reset (RST)",
        "kết nối bị ngắt đột ngột (RST)",
    ),
    failures.CONNECTION_REFUSED: ("the connection was refused", "kết nối bị từ chối"),
    failures.EOF_ERROR: (
        "the connection was closed in the middle",
        "kết nối bị đóng giữa chừng",
    ),
    failures.SSL_INVALID_HOSTNAME: (
        "the certificate is for another name",
        "chứng chỉ dành cho một tên miền khác",
    ),
    failures.SSL_UNKNOWN_AUTHORITY: (
        "the certificate is signed by an unknown authority",
        "chứng chỉ do một bên không được tin cậy ký",
    ),
    failures.SSL_INVALID_CERTIFICATE: ("the certificate is invalid", "chứng chỉ không hợp lệ"),
    failures.HTTP_TOO_MANY_REDIRECTS: ("redirects without end", "chuyển hướng không dứt"),
    failures.HTTP_INVALID_REDIRECT_LOCATION_HOST: (
        "a redirect to an invalid address",
        "chuyển hướng tới một địa chỉ không hợp lệ",
    ),
    failures.HOST_UNREACHABLE: ("the host is unreachable", "không tới được máy chủ"),
    failures.NETWORK_UNREACHABLE: ("the network is unreachable", "không tới được mạng"),
}

_T = {
    "dns_fail": (
        "The resolver under test ({resolver}) gave no address for {host}: {failure}.",
        "Máy chủ DNS đang kiểm tra ({resolver}) không trả về địa chỉ cho {host}: {failure}.",
    ),
    "dns_answer": (
        "The resolver under test ({resolver}) answered {host} with {answers}.",
        "Máy chủ DNS đang kiểm tra ({resolver}) trả lời {host} bằng {answers}.",
    ),
    "ctl_answer": (
        "The control resolver ({resolver}) answered {answers}.",
        "Máy chủ DNS đối chứng ({resolver}) trả lời {answers}.",
    ),
    "ctl_fail": (
        "The control resolver ({resolver}) gave no address either: {failure}.",
        "Máy chủ DNS đối chứng ({resolver}) cũng không trả về địa chỉ: {failure}.",
    ),
    "tcp_fail": (
        "Every TCP connection to {endpoints} failed: {failure}.",
        "Mọi kết nối TCP tới {endpoints} đều thất bại: {failure}.",
    ),
    "tls_fail": (
        "The TLS handshake with {server} at {endpoint} failed: {failure}.",
        "Bắt tay TLS với {server} tại {endpoint} thất bại: {failure}.",
    ),
    "http_fail": (
        "The HTTP request for {url} failed: {failure}.",
        "Yêu cầu HTTP tới {url} thất bại: {failure}.",
    ),
    "http_page": (
        "{url} answered HTTP {status}, {length} bytes, titled “{title}”.",
        "{url} trả về HTTP {status}, {length} byte, tiêu đề “{title}”.",
    ),
    "ctl_page": (
        "Fetched through the control resolver's address, the page was HTTP {status}, "
        "{length} bytes, titled “{title}”.",
        "Tải qua địa chỉ của máy chủ DNS đối chứng, trang trả về HTTP {status}, {length} byte, "
        "tiêu đề “{title}”.",
    ),
    "helper": (
        "A test helper on another network measured the same URL: DNS {dns}; TCP {tcp}; "
        "HTTP {http}.",
        "Một máy trợ giúp kiểm tra ở mạng khác đo cùng URL: DNS {dns}; TCP {tcp}; HTTP {http}.",
    ),
    "helper_down": (
        "The test helper could not be reached ({failure}): there is no outside view to compare.",
        "Không liên lạc được với máy trợ giúp kiểm tra ({failure}): không có góc nhìn từ bên "
        "ngoài để so sánh.",
    ),
    "no_helper": (
        "No test helper was asked: this is what this network showed, not a comparison with "
        "another vantage point.",
        "Không có máy trợ giúp kiểm tra: đây là những gì mạng này cho thấy, chưa so sánh với "
        "một điểm đo khác.",
    ),
    "blockpage": (
        "The answer matched the known blockpage fingerprint {name}.",
        "Câu trả lời khớp với mẫu trang chặn đã biết {name}.",
    ),
    "diff": (
        "The page differed from the control's: status {status}, body length {length} "
        "(proportion {proportion}), title {title}.",
        "Trang khác với trang đối chứng: mã trạng thái {status}, độ dài {length} "
        "(tỉ lệ {proportion}), tiêu đề {title}.",
    ),
    "throughput": (
        "Throughput was {ratio:.0%} of a control site's measured at the same moment "
        "(p = {p}; {label}).",
        "Tốc độ tải bằng {ratio:.0%} tốc độ của trang đối chứng đo cùng lúc (p = {p}; {label}).",
    ),
    "offline": (
        "The round's control sites failed too: the volunteer's own link was down.",
        "Các trang đối chứng của lượt đo cũng thất bại: đường truyền của tình nguyện viên bị mất.",
    ),
    "rule": (
        "Decided by rule {rule} (rules {version}): {why}.",
        "Quyết định bởi quy tắc {rule} (bộ quy tắc {version}): {why}.",
    ),
    "same": ("same", "giống"),
    "different": ("different", "khác"),
    "unknown": ("not compared", "không so sánh"),
    "ok": ("worked", "thành công"),
    "nothing": ("none", "không có"),
}

_decode = msgspec.json.Decoder()


def t(key: str, lang: str, **kw: Any) -> str:
    return _T[key][lang == "vi"].format(**kw)


def failure_words(failure: str | None, lang: str) -> str:
    if not failure:
        return t("nothing", lang)
    words = FAILURE_WORDS.get(failure)
    return f"{words[lang == 'vi']} ({failure})" if words else failure


def _answers(queries: list[dict[str, Any]]) -> list[str]:
    return sorted(
        {a["value"] for q in queries for a in q.get("answers") or [] if a["type"] in ("A", "AAAA")}
    )


def _match(v: Any, lang: str) -> str:
    return t("unknown", lang) if v is None else t("same" if v else "different", lang)


def explain(row: dict[str, Any], lang: str = "en") -> list[str]:
    """Plain sentences for one stored measurement row (``observations`` and ``control`` as
    stored, JSON text or bytes)."""
    obs = _decode.decode(row["observations"]) if row.get("observations") else {}
    control = _decode.decode(row["control"]) if row.get("control") else None
    out: list[str] = []
    if row.get("offline"):
        out.append(t("offline", lang))
    step, failure = row.get("failing_step"), row.get("failure")
    dns0 = [q for q in obs.get("dns") or [] if q.get("depth", 0) == 0]
    system = [q for q in dns0 if q.get("resolver") == "system"]
    ctl = [q for q in dns0 if q.get("resolver") == "control"]
    host = system[0]["hostname"] if system else (ctl[0]["hostname"] if ctl else "")
    sys_answers, ctl_answers = _answers(system), _answers(ctl)
    if system:
        resolver = system[0].get("resolver_address") or ""
        if sys_answers:
            out.append(
                t("dns_answer", lang, resolver=resolver, host=host, answers=", ".join(sys_answers))
            )
        else:
            fail = next((q.get("failure") for q in system if q.get("failure")), None)
            out.append(
                t("dns_fail", lang, resolver=resolver, host=host, failure=failure_words(fail, lang))
            )
    if ctl:
        resolver = ctl[0].get("resolver_address") or ""
        if ctl_answers:
            out.append(t("ctl_answer", lang, resolver=resolver, answers=", ".join(ctl_answers)))
        else:
            fail = next((q.get("failure") for q in ctl if q.get("failure")), None)
            out.append(t("ctl_fail", lang, resolver=resolver, failure=failure_words(fail, lang)))
    http = obs.get("http") or []
    final = next((h for h in reversed(http) if h.get("role") == "system"), None)
    if step == "tcp":
        tcp0 = [c for c in obs.get("tcp") or [] if "system" in (c.get("sources") or [])]
        eps = ", ".join(f"{c['ip']}:{c['port']}" for c in tcp0) or "?"
        out.append(t("tcp_fail", lang, endpoints=eps, failure=failure_words(failure, lang)))
    elif step == "tls":
        hs = next((h for h in obs.get("tls") or [] if h.get("failure")), None)
        server = hs.get("server_name") if hs else host
        endpoint = f"{hs['ip']}:{hs['port']}" if hs else "?"
        out.append(
            t(
                "tls_fail",
                lang,
                server=server,
                endpoint=endpoint,
                failure=failure_words(failure, lang),
            )
        )
    elif step == "http" and final is not None:
        out.append(t("http_fail", lang, url=final.get("url"), failure=failure_words(failure, lang)))
    elif final is not None and final.get("status_code"):
        out.append(
            t(
                "http_page",
                lang,
                url=final.get("url"),
                status=final.get("status_code"),
                length=final.get("body_length"),
                title=final.get("title") or "",
            )
        )
    ctl_page = next((h for h in reversed(http) if h.get("role") == "control"), None)
    if ctl_page is not None and ctl_page.get("status_code") and control is None:
        out.append(
            t(
                "ctl_page",
                lang,
                status=ctl_page.get("status_code"),
                length=ctl_page.get("body_length"),
                title=ctl_page.get("title") or "",
            )
        )
    if row.get("blockpage"):
        out.append(t("blockpage", lang, name=row["blockpage"]))
    if row.get("blocking") == "http-diff":
        prop = row.get("body_proportion")
        out.append(
            t(
                "diff",
                lang,
                status=_match(row.get("status_code_match"), lang),
                length=_match(row.get("body_length_match"), lang),
                proportion="?" if prop is None else f"{prop:.2f}",
                title=_match(row.get("title_match"), lang),
            )
        )
    if control is not None and control.get("failure"):
        out.append(t("helper_down", lang, failure=control["failure"]))
    elif control is not None:
        tcp_ok = [ep for ep, e in (control.get("tcp_connect") or {}).items() if e.get("ok")]
        http_part = (
            f"HTTP {control['http_status_code']}"
            if control.get("http_status_code")
            else failure_words(control.get("http_failure"), lang)
        )
        out.append(
            t(
                "helper",
                lang,
                dns=", ".join(control.get("dns_addrs") or [])
                or failure_words(control.get("dns_failure"), lang),
                tcp=(t("ok", lang) + ": " + ", ".join(tcp_ok)) if tcp_ok else t("nothing", lang),
                http=http_part,
            )
        )
    elif row.get("blocking") not in (None, "false", False):
        out.append(t("no_helper", lang))
    tp = _decode.decode(row["throughput"]) if row.get("throughput") else None
    analysis = (tp or {}).get("analysis") or {}
    if analysis.get("ratio") is not None and row.get("throttled"):
        p = analysis.get("p_value")
        out.append(
            t(
                "throughput",
                lang,
                ratio=analysis["ratio"],
                p="?" if p is None else f"{p:.2g}",
                label=analysis.get("label") or "?",
            )
        )
    rule = row.get("rule_id") or "?"
    out.append(
        t(
            "rule",
            lang,
            rule=rule,
            version=row.get("rules_version") or "?",
            why=_RULE_WHY.get(rule, "?"),
        )
    )
    return out
