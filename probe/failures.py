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
from collections.abc import Iterator
from dataclasses import dataclass

# -- the closed vocabulary (OONI df-007 and probe-cli netxlite) --------------------------------
CONNECTION_REFUSED = "connection_refused"
CONNECTION_RESET = "connection_reset"
CONNECTION_ABORTED = "connection_aborted"
HOST_UNREACHABLE = "host_unreachable"
NETWORK_UNREACHABLE = "network_unreachable"
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
HTTP_TOO_MANY_REDIRECTS = "http_too_many_redirects"
HTTP_PROTOCOL_ERROR = "http_protocol_error"
UNKNOWN_PREFIX = "unknown_failure: "

VOCABULARY: frozenset[str] = frozenset(
    {
        CONNECTION_REFUSED,
        CONNECTION_RESET,
        CONNECTION_ABORTED,
        HOST_UNREACHABLE,
        NETWORK_UNREACHABLE,
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
        HTTP_TOO_MANY_REDIRECTS,
        HTTP_PROTOCOL_ERROR,
    }
)

# Operations, as OONI names them (df-008 "failed_operation").
OP_RESOLVE = "resolve"
OP_CONNECT = "connect"
OP_TLS = "tls_handshake"
OP_HTTP = "http_round_trip"
OP_READ = "read"

ERRNO_FAILURES: dict[int, str] = {
    errno_mod.ECONNREFUSED: CONNECTION_REFUSED,
    errno_mod.ECONNRESET: CONNECTION_RESET,
    errno_mod.ECONNABORTED: CONNECTION_ABORTED,
    errno_mod.EHOSTUNREACH: HOST_UNREACHABLE,
    errno_mod.ENETUNREACH: NETWORK_UNREACHABLE,
    errno_mod.ETIMEDOUT: GENERIC_TIMEOUT,
    errno_mod.EPIPE: CONNECTION_RESET,
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
        ):
            if nxt is not None:
                stack.append(nxt)


def _one(e: BaseException) -> tuple[str, str | None] | None:
    """Map a single exception (not its chain) to (failure, raw); most specific checks first."""
    if isinstance(e, ssl.SSLCertVerificationError):
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
        return failure, f"x509:{code}:{msg}"
    if isinstance(e, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return EOF_ERROR, "ssl_eof"
    if isinstance(e, OSError) and e.errno in ERRNO_FAILURES:
        return ERRNO_FAILURES[e.errno], errno_mod.errorcode.get(e.errno, str(e.errno))
    if isinstance(e, TimeoutError):
        return GENERIC_TIMEOUT, "timeout"
    if isinstance(e, EOFError):
        return EOF_ERROR, "eof"
    if isinstance(e, ConnectionResetError):
        return CONNECTION_RESET, "ECONNRESET"
    if isinstance(e, ConnectionRefusedError):
        return CONNECTION_REFUSED, "ECONNREFUSED"
    if isinstance(e, ssl.SSLError):
        reason = getattr(e, "reason", None) or str(e)
        if "UNEXPECTED_EOF" in str(reason).upper():
            return EOF_ERROR, f"ssl:{reason}"
        return SSL_FAILED_HANDSHAKE, scrub(f"ssl:{reason}")
    name = type(e).__name__
    if name in ("EndOfStream", "IncompleteRead", "ClosedResourceError"):
        return EOF_ERROR, name
    if name in ("ConnectTimeout", "ReadTimeout", "WriteTimeout", "PoolTimeout", "TimeoutException"):
        return GENERIC_TIMEOUT, name
    if name == "RemoteProtocolError" and "disconnected" in str(e).lower():
        return EOF_ERROR, "server_disconnected"
    if name == "CancelledError":
        return INTERRUPTED, name
    return None


# Generic httpx/httpcore wrappers say nothing by themselves: look beneath them first.
_WRAPPERS = {
    "ConnectError",
    "ReadError",
    "WriteError",
    "NetworkError",
    "TransportError",
    "BrokenResourceError",
    "OSError",
    "ExceptionGroup",
}


def classify(exc: BaseException, operation: str) -> FailureInfo:
    """Map any exception to a df-007 failure, most specific cause first."""
    chain = list(_walk(exc))
    # Specific causes (errno, SSL verify, EOF) win over the wrappers that carry them.
    for e in chain:
        if type(e).__name__ in _WRAPPERS and not (isinstance(e, OSError) and e.errno):
            continue
        hit = _one(e)
        if hit is not None:
            return FailureInfo(hit[0], operation, hit[1])
    for e in chain:
        if type(e).__name__ == "RemoteProtocolError" or type(e).__name__ == "LocalProtocolError":
            return FailureInfo(HTTP_PROTOCOL_ERROR, operation, scrub(str(e))[:200])
    text = scrub(f"{type(exc).__name__}: {exc}".strip())
    return FailureInfo(UNKNOWN_PREFIX + text[:300], operation, None)


def is_known(failure: str | None) -> bool:
    """True for None (success), a vocabulary string, or a scrubbed unknown_failure."""
    return failure is None or failure in VOCABULARY or failure.startswith(UNKNOWN_PREFIX)
