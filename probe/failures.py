"""Failure vocabulary: every network failure becomes one of OONI's df-007 strings.

Contract: ``classify(exc, operation)`` never raises. It walks the exception chain (``__cause__``,
``__context__`` and exception arguments, because httpx and httpcore wrap the OS or SSL error), picks
the most specific known error, and returns a :class:`FailureInfo` with the df-007 string, the
failing operation and the raw errno / SSL verify code / DNS rcode kept beside it. An error we do not
know keeps its text as ``unknown_failure: ...``, scrubbed of IP addresses, so nothing unmapped ever
leaks a volunteer's address into the database.
"""

from __future__ import annotations

import errno as errno_mod
import re
import ssl
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

# -- the closed vocabulary: OONI df-007 strings ------------------------------------------------
CONNECTION_REFUSED = "connection_refused"
CONNECTION_RESET = "connection_reset"
CONNECTION_ABORTED = "connection_aborted"
HOST_UNREACHABLE = "host_unreachable"
NETWORK_UNREACHABLE = "network_unreachable"
NETWORK_DOWN = "network_down"
NETWORK_RESET = "network_reset"
EOF_ERROR = "eof_error"
GENERIC_TIMEOUT = "generic_timeout_error"
INTERRUPTED = "interrupted"
DNS_NXDOMAIN = "dns_nxdomain_error"
DNS_NO_ANSWER = "dns_no_answer"
DNS_REFUSED = "dns_refused_error"
DNS_SERVFAIL = "dns_servfail_error"
DNS_SERVER_MISBEHAVING = "dns_server_misbehaving"
DNS_BOGON = "dns_bogon_error"
DNS_WRONG_QUERY_ID = "dns_reply_with_wrong_query_id"
SSL_INVALID_HOSTNAME = "ssl_invalid_hostname"
SSL_UNKNOWN_AUTHORITY = "ssl_unknown_authority"
SSL_INVALID_CERTIFICATE = "ssl_invalid_certificate"
SSL_FAILED_HANDSHAKE = "ssl_failed_handshake"
HTTP_INVALID_REDIRECT_LOCATION_HOST = "http_invalid_redirect_location_host"
HTTP_REQUEST_FAILED = "http_request_failed"  # a non-successful status where one was needed
JSON_PARSE_ERROR = "json_parse_error"  # e.g. a test helper's answer that is not its JSON
QUIC_INCOMPATIBLE_VERSION = "quic_incompatible_version"  # no QUIC version both speak
UNKNOWN_PREFIX = "unknown_failure: "  # any other error, its text kept (addresses scrubbed)

DF007: frozenset[str] = frozenset(
    {
        CONNECTION_REFUSED,
        CONNECTION_RESET,
        CONNECTION_ABORTED,
        HOST_UNREACHABLE,
        NETWORK_UNREACHABLE,
        NETWORK_DOWN,
        NETWORK_RESET,
        EOF_ERROR,
        GENERIC_TIMEOUT,
        INTERRUPTED,
        DNS_NXDOMAIN,
        DNS_NO_ANSWER,
        DNS_REFUSED,
        DNS_SERVFAIL,
        DNS_SERVER_MISBEHAVING,
        DNS_BOGON,
        DNS_WRONG_QUERY_ID,
        SSL_INVALID_HOSTNAME,
        SSL_UNKNOWN_AUTHORITY,
        SSL_INVALID_CERTIFICATE,
        SSL_FAILED_HANDSHAKE,
        HTTP_INVALID_REDIRECT_LOCATION_HOST,
        HTTP_REQUEST_FAILED,
        JSON_PARSE_ERROR,
        QUIC_INCOMPATIBLE_VERSION,
    }
)

# -- two documented extensions ---------------------------------------------------------------
# OONI reports both as "unknown_failure: <Go's error text>" (e.g. "unknown_failure: stopped
# after too many redirects"); the classifier needs to tell them apart from other failures, so
# they have names here. probe.ooni.translate reads OONI's text back into them.
HTTP_TOO_MANY_REDIRECTS = "http_too_many_redirects"  # more than 10 redirects: a loop
HTTP_PROTOCOL_ERROR = "http_protocol_error"  # an HTTP reply that breaks HTTP/1.1's framing
EXTENSIONS: frozenset[str] = frozenset({HTTP_TOO_MANY_REDIRECTS, HTTP_PROTOCOL_ERROR})
# How OONI writes them: the OONI export says these, the OONI importer reads them back.
OONI_TEXT: dict[str, str] = {
    HTTP_TOO_MANY_REDIRECTS: "unknown_failure: stopped after too many redirects",
    HTTP_PROTOCOL_ERROR: "unknown_failure: http protocol error",
}


def to_ooni(failure: str | None) -> str | None:
    """A failure as OONI writes it (df-007; our two extensions as OONI's unknown_failure)."""
    return OONI_TEXT.get(failure, failure) if failure else failure


def from_ooni(failure: str | None) -> str | None:
    """A failure OONI wrote, in our vocabulary."""
    if not failure:
        return None
    return next((ours for ours, text in OONI_TEXT.items() if text == failure), failure)


VOCABULARY: frozenset[str] = DF007 | EXTENSIONS

# Operations, as OONI names them (df-008 "failed_operation").
OP_RESOLVE = "resolve"
OP_CONNECT = "connect"
OP_TLS = "tls_handshake"
OP_HTTP = "http_round_trip"
OP_READ = "read"
OP_QUIC = "quic_handshake"

ERRNO_FAILURES: dict[int, str] = {
    errno_mod.ECONNREFUSED: CONNECTION_REFUSED,
    errno_mod.ECONNRESET: CONNECTION_RESET,
    errno_mod.ECONNABORTED: CONNECTION_ABORTED,
    errno_mod.EHOSTUNREACH: HOST_UNREACHABLE,
    errno_mod.ENETUNREACH: NETWORK_UNREACHABLE,
    errno_mod.ETIMEDOUT: GENERIC_TIMEOUT,
    errno_mod.EPIPE: CONNECTION_RESET,
    errno_mod.ENETDOWN: NETWORK_DOWN,
    errno_mod.ENETRESET: NETWORK_RESET,
}

# OpenSSL X509_V_ERR_* codes carried by ssl.SSLCertVerificationError.verify_code.
SSL_VERIFY_FAILURES: dict[int, str] = {
    62: SSL_INVALID_HOSTNAME,  # X509_V_ERR_HOSTNAME_MISMATCH
    64: SSL_INVALID_HOSTNAME,  # X509_V_ERR_IP_ADDRESS_MISMATCH
    2: SSL_UNKNOWN_AUTHORITY,  # unable to get issuer certificate
    18: SSL_UNKNOWN_AUTHORITY,  # depth zero self-signed
    19: SSL_UNKNOWN_AUTHORITY,  # self-signed in chain
    20: SSL_UNKNOWN_AUTHORITY,  # unable to get local issuer certificate
    21: SSL_UNKNOWN_AUTHORITY,  # unable to verify the first certificate
    9: SSL_INVALID_CERTIFICATE,  # not yet valid
    10: SSL_INVALID_CERTIFICATE,  # expired
    23: SSL_INVALID_CERTIFICATE,  # revoked
    24: SSL_INVALID_CERTIFICATE,  # invalid CA
    26: SSL_INVALID_CERTIFICATE,  # invalid purpose
}

# The failures that say a certificate was presented but not trusted: the measuring code then
# records who presented which certificate, and the classifier reads them as possible
# interception. The one home of this list (a test pins it to SSL_VERIFY_FAILURES' values).
CERT_FAILURES: frozenset[str] = frozenset(
    {SSL_INVALID_HOSTNAME, SSL_UNKNOWN_AUTHORITY, SSL_INVALID_CERTIFICATE}
)

DNS_RCODE_FAILURES: dict[str, str] = {
    "NXDOMAIN": DNS_NXDOMAIN,
    "SERVFAIL": DNS_SERVFAIL,
    "REFUSED": DNS_REFUSED,
    "FORMERR": DNS_SERVER_MISBEHAVING,
    "NOTIMP": DNS_SERVER_MISBEHAVING,
}

_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9a-fA-F]{0,4}:){2,7}[0-9a-fA-F]{0,4}(?![\w:])")


def scrub(text: str) -> str:
    """Replace every IPv4 and IPv6 address in ``text`` with ``[scrubbed]``."""
    return _IPV6.sub("[scrubbed]", _IPV4.sub("[scrubbed]", text))


@dataclass(frozen=True, slots=True)
class FailureInfo:
    failure: str
    operation: str
    raw: str | None = None  # errno name, SSL verify code/message, or rcode

    def as_dict(self) -> dict[str, str | None]:
        return {"failure": self.failure, "operation": self.operation, "raw": self.raw}


def _walk(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        e = stack.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        for nxt in (
            e.__cause__,
            e.__context__,
            *[a for a in e.args if isinstance(a, BaseException)],
            *(e.exceptions if isinstance(e, BaseExceptionGroup) else ()),
        ):
            if nxt is not None:
                stack.append(nxt)


# What an exception type means, most specific type first. ``WRAPPER``: a generic error that
# says nothing by itself (httpx's ConnectError wraps an OSError): look at what it carries.
# ``PROTOCOL``: an HTTP framing error, used only when nothing more specific is in the chain.
# Built on first use, so that importing the vocabulary does not import the network stack.
WRAPPER = "<wrapper>"
PROTOCOL = "<protocol>"
_Row = tuple[type[BaseException], str]


@cache
def by_type() -> tuple[_Row, ...]:
    import asyncio

    import anyio
    import httpcore
    import httpx

    return (
        (ssl.SSLCertVerificationError, "<x509>"),
        (ssl.SSLEOFError, EOF_ERROR),
        (ssl.SSLZeroReturnError, EOF_ERROR),
        (ssl.SSLError, "<ssl>"),
        (ConnectionRefusedError, CONNECTION_REFUSED),
        (ConnectionResetError, CONNECTION_RESET),
        (ConnectionAbortedError, CONNECTION_ABORTED),
        (BrokenPipeError, CONNECTION_RESET),
        (TimeoutError, GENERIC_TIMEOUT),
        (OSError, "<errno>"),
        (EOFError, EOF_ERROR),
        (asyncio.CancelledError, INTERRUPTED),
        (anyio.EndOfStream, EOF_ERROR),
        (anyio.IncompleteRead, EOF_ERROR),
        (anyio.ClosedResourceError, EOF_ERROR),
        (anyio.BrokenResourceError, WRAPPER),
        (httpx.TimeoutException, GENERIC_TIMEOUT),
        (httpcore.TimeoutException, GENERIC_TIMEOUT),
        (httpx.RemoteProtocolError, PROTOCOL),
        (httpcore.RemoteProtocolError, PROTOCOL),
        (httpx.LocalProtocolError, PROTOCOL),
        (httpcore.LocalProtocolError, PROTOCOL),
        (httpx.ProxyError, WRAPPER),
        (httpcore.ProxyError, WRAPPER),
        (httpx.NetworkError, WRAPPER),  # ConnectError, ReadError, WriteError, CloseError
        (httpcore.NetworkError, WRAPPER),
        (httpx.ProtocolError, PROTOCOL),
        (httpcore.ProtocolError, PROTOCOL),
        (httpx.TransportError, WRAPPER),
        (zlib.error, PROTOCOL),  # a Content-Encoding that does not decode
        (ExceptionGroup, WRAPPER),
    )


def _by_errno(e: OSError) -> tuple[str, str | None] | None:
    if e.errno in ERRNO_FAILURES:
        return ERRNO_FAILURES[e.errno], errno_mod.errorcode.get(e.errno, str(e.errno))
    return None


def _x509(e: ssl.SSLCertVerificationError) -> tuple[str, str | None]:
    code = getattr(e, "verify_code", None)
    msg = getattr(e, "verify_message", None) or str(e)
    failure = SSL_VERIFY_FAILURES.get(code or -1)
    if failure is None:
        low = msg.lower()
        if "hostname" in low or "ip address mismatch" in low:
            failure = SSL_INVALID_HOSTNAME
        elif "issuer" in low or "self-signed" in low or "self signed" in low:
            failure = SSL_UNKNOWN_AUTHORITY
        else:
            failure = SSL_INVALID_CERTIFICATE
    return failure, scrub(f"x509:{code}:{msg}")


def _one(e: BaseException) -> tuple[str, str | None] | None:
    """(failure, raw) for one exception by its type, PROTOCOL or WRAPPER as failure for the
    generic ones, or None for a type the table does not know."""
    if isinstance(e, OSError) and not isinstance(e, ssl.SSLError) and e.errno in ERRNO_FAILURES:
        return _by_errno(e)  # the errno says more than the class (and is kept raw)
    for cls, meaning in by_type():
        if not isinstance(e, cls):
            continue
        if meaning == "<x509>":
            assert isinstance(e, ssl.SSLCertVerificationError)
            return _x509(e)
        if meaning == "<ssl>":
            reason = str(getattr(e, "reason", None) or e)
            if "UNEXPECTED_EOF" in reason.upper():
                return EOF_ERROR, f"ssl:{reason}"
            return SSL_FAILED_HANDSHAKE, scrub(f"ssl:{reason}")[:200]
        if meaning == "<errno>":
            assert isinstance(e, OSError)
            return _by_errno(e) or (WRAPPER, None)
        if meaning == PROTOCOL and "disconnected" in str(e).lower():
            return EOF_ERROR, "server_disconnected"  # closed before a response: an EOF
        raw = type(e).__name__ if meaning != PROTOCOL else scrub(str(e))[:200]
        return meaning, raw
    return None


def classify(exc: BaseException, operation: str) -> FailureInfo:
    """Map any exception to a df-007 failure by its type, most specific cause first: the chain
    (``__cause__``, ``__context__``, arguments, group members) is walked and a wrapper defers
    to what it carries; an HTTP framing error counts only when nothing more specific is there."""
    protocol: tuple[str, str | None] | None = None
    for e in _walk(exc):
        hit = _one(e)
        if hit is None or hit[0] == WRAPPER:
            continue
        if hit[0] == PROTOCOL:
            protocol = protocol or (HTTP_PROTOCOL_ERROR, hit[1])
            continue
        return FailureInfo(hit[0], operation, hit[1])
    if protocol is not None:
        return FailureInfo(protocol[0], operation, protocol[1])
    text = scrub(f"{type(exc).__name__}: {exc}".strip())
    return FailureInfo(UNKNOWN_PREFIX + text[:300], operation, None)


@cache
def network_error_types() -> tuple[type[Exception], ...]:
    """Every exception type that is a network event (and so a measurement result). Never a
    cancellation: that must propagate, or the per-target deadline could not stop a step."""
    return tuple(cls for cls, _ in by_type() if issubclass(cls, Exception))


def is_network_error(exc: BaseException) -> bool:
    """True when ``exc`` is something the network did: a step records it as its failure.
    Anything else is a bug in the probe and must propagate (never become a measurement)."""
    return isinstance(exc, network_error_types())


_NOT_NETWORK: tuple[tuple[str, str, str], ...] = (
    ("httpx", "HTTPStatusError", "raised only by raise_for_status(), never called"),
    ("httpx", "TooManyRedirects", "the probe follows redirects itself"),
    ("httpx", "DecodingError", "bodies are read raw and decoded by steps._Decoder"),
    ("httpx", "InvalidURL", "URLs are checked when loaded and when a redirect is joined"),
    ("httpx", "UnsupportedProtocol", "only http(s) URLs reach a step"),
    ("httpcore", "UnsupportedProtocol", "only http(s) URLs reach a step"),
    ("httpx", "CookieConflict", "cookies are never read"),
    ("httpx", "StreamError", "stream misuse (read twice, after close): a bug"),
    ("httpx", "RequestNotRead", "stream misuse: a bug"),
    ("httpx", "ResponseNotRead", "stream misuse: a bug"),
    ("httpx", "StreamClosed", "stream misuse: a bug"),
    ("httpx", "StreamConsumed", "stream misuse: a bug"),
    ("httpx", "HTTPError", "a base class: its network subclasses are mapped"),
    ("httpx", "RequestError", "a base class: its network subclasses are mapped"),
    ("httpcore", "ConnectionNotAvailable", "one request per connection at a time: a bug"),
    ("anyio", "BusyResourceError", "concurrent use of one stream: a bug"),
    ("anyio", "WouldBlock", "non-blocking API misuse: a bug"),
    ("anyio", "TypedAttributeLookupError", "get_extra_info misuse: a bug"),
    ("anyio", "DelimiterNotFound", "buffered-stream API, unused"),
    ("anyio", "BrokenWorkerProcess", "worker processes, unused"),
    ("anyio", "BrokenWorkerInterpreter", "worker interpreters, unused"),
    ("anyio", "NoEventLoopError", "called outside the event loop: a bug"),
    ("anyio", "RunFinishedError", "called after the event loop ended: a bug"),
    ("anyio", "ConnectionFailed", "anyio's own connect_tcp; httpcore maps it to ConnectError"),
    ("anyio", "TaskCancelled", "anyio's task API, unused"),
    ("anyio", "TaskFailed", "anyio's task API, unused"),
    ("anyio", "TaskNotFinished", "anyio's task API, unused"),
    ("anyio", "FutureAlreadyFinished", "anyio's future API, unused"),
    ("anyio", "FutureCancelled", "anyio's future API, unused"),
    ("anyio", "FutureFailed", "anyio's future API, unused"),
    ("anyio", "FutureNotFinished", "anyio's future API, unused"),
    ("ssl", "SSLWantReadError", "handled inside net.tls_handshake's loop"),
    ("ssl", "SSLWantWriteError", "handled inside net.tls_handshake's loop"),
)


def not_network_errors() -> dict[type[BaseException], str]:
    """Exception types the libraries export that are never a network event, with why: a step
    that meets one has a bug. tests/test_failures.py fails when a library type is in neither
    this table nor :func:`by_type`."""
    import importlib

    out: dict[type[BaseException], str] = {}
    for module, name, why in _NOT_NETWORK:
        cls = getattr(importlib.import_module(module), name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            out[cls] = why
    return out


def is_known(failure: str | None) -> bool:
    """True for None (success), a vocabulary string, or a scrubbed unknown_failure."""
    return failure is None or failure in VOCABULARY or failure.startswith(UNKNOWN_PREFIX)


# -- QUIC (issue 24) ---------------------------------------------------------------------------
# A QUIC connection ends with a CONNECTION_CLOSE: a transport error code, or 0x100 + a TLS alert
# for a failed handshake (RFC 9001 4.8), and a reason phrase. aioquic's certificate checks say
# why in the phrase (OpenSSL's verify messages, service_identity's name mismatch).
QUIC_CRYPTO_ERROR = 0x100
_CERT_REASONS: tuple[tuple[str, str], ...] = (
    ("doesn't match", SSL_INVALID_HOSTNAME),
    ("hostname", SSL_INVALID_HOSTNAME),
    ("ip address mismatch", SSL_INVALID_HOSTNAME),
    ("not valid yet", SSL_INVALID_CERTIFICATE),
    ("no longer valid", SSL_INVALID_CERTIFICATE),
    ("expired", SSL_INVALID_CERTIFICATE),
    ("issuer", SSL_UNKNOWN_AUTHORITY),
    ("self-signed", SSL_UNKNOWN_AUTHORITY),
    ("self signed", SSL_UNKNOWN_AUTHORITY),
)


def classify_quic_close(error_code: int, reason: str) -> FailureInfo:
    """The df-007 failure of a QUIC connection closed before its handshake completed: a TLS
    alert (certificate failures by their reason, else ``ssl_failed_handshake``), no common
    version, an idle timeout; anything else keeps its code and phrase as ``unknown_failure``.
    The raw failure is ``quic:0xCODE:phrase`` (scrubbed)."""
    raw = scrub(f"quic:0x{error_code:x}:{reason}")[:200]
    low = reason.lower()
    if QUIC_CRYPTO_ERROR <= error_code < 2 * QUIC_CRYPTO_ERROR:
        alert = error_code - QUIC_CRYPTO_ERROR
        if alert in (42, 43, 44, 45, 46, 48):  # bad/unsupported/revoked/expired/unknown/CA
            failure = next((f for text, f in _CERT_REASONS if text in low), None)
            return FailureInfo(failure or SSL_INVALID_CERTIFICATE, OP_QUIC, raw)
        return FailureInfo(SSL_FAILED_HANDSHAKE, OP_QUIC, raw)
    if "version" in low and ("common" in low or "compatible" in low):
        return FailureInfo(QUIC_INCOMPATIBLE_VERSION, OP_QUIC, raw)
    if "idle timeout" in low:
        return FailureInfo(GENERIC_TIMEOUT, OP_QUIC, raw)
    return FailureInfo(UNKNOWN_PREFIX + raw, OP_QUIC, raw)
