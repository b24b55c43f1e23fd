"""The failure vocabulary: real exceptions from real sockets mapped to df-007 strings."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from typing import Any

import httpx
import pytest

from probe import failures
from tests import servers as S


def _httpx_error(url: str, **kw: object) -> BaseException:
    async def go() -> BaseException:
        async with httpx.AsyncClient(trust_env=False, **kw) as c:  # type: ignore[arg-type]
            try:
                await c.get(url)
            except Exception as exc:
                return exc
        raise AssertionError("no error")

    return asyncio.run(go())


def test_httpx_chain_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exc = _httpx_error(f"http://127.0.0.1:{port}/")
    info = failures.classify(exc, failures.OP_CONNECT)
    assert (info.failure, info.raw) == (failures.CONNECTION_REFUSED, "ECONNREFUSED")


@pytest.mark.parametrize(
    ("mode", "failure"), [("rst", failures.CONNECTION_RESET), ("eof", failures.EOF_ERROR)]
)
def test_httpx_chain_reset_and_eof(mode: str, failure: str) -> None:
    srv = S.TCPServer(mode, "127.0.0.1")
    try:
        exc = _httpx_error(f"http://127.0.0.1:{srv.port}/")
        assert failures.classify(exc, failures.OP_HTTP).failure == failure
        exc = _httpx_error(f"https://127.0.0.1:{srv.port}/")
        assert failures.classify(exc, failures.OP_TLS).failure == failure
    finally:
        srv.close()


def test_httpx_read_timeout() -> None:
    srv = S.TCPServer("hang", "127.0.0.1")
    try:
        exc = _httpx_error(f"http://127.0.0.1:{srv.port}/", timeout=0.3)
        assert failures.classify(exc, failures.OP_HTTP).failure == failures.GENERIC_TIMEOUT
    finally:
        srv.close()


@pytest.mark.parametrize(
    ("code", "failure"),
    [
        (62, failures.SSL_INVALID_HOSTNAME),
        (20, failures.SSL_UNKNOWN_AUTHORITY),
        (18, failures.SSL_UNKNOWN_AUTHORITY),
        (10, failures.SSL_INVALID_CERTIFICATE),
    ],
)
def test_every_ssl_verify_code_row(code: int, failure: str) -> None:
    e = ssl.SSLCertVerificationError(1, "certificate verify failed")
    e.verify_code = code
    e.verify_message = "x"
    assert failures.classify(e, failures.OP_TLS).failure == failure


def test_every_mapped_errno_has_a_row() -> None:
    for num, failure in failures.ERRNO_FAILURES.items():
        info = failures.classify(OSError(num, "x"), failures.OP_CONNECT)
        assert info.failure == failure and info.raw == errno.errorcode[num]
        assert failure in failures.VOCABULARY


def test_every_rcode_maps_into_the_vocabulary() -> None:
    assert set(failures.DNS_RCODE_FAILURES.values()) <= failures.VOCABULARY


def test_unknown_error_keeps_text_scrubbed() -> None:
    info = failures.classify(
        RuntimeError("boom talking to 203.0.113.9 and 2001:db8::1"), failures.OP_HTTP
    )
    assert info.failure.startswith(failures.UNKNOWN_PREFIX)
    assert "203.0.113.9" not in info.failure and "2001:db8::1" not in info.failure
    assert "[scrubbed]" in info.failure and failures.is_known(info.failure)


def test_scrub_ipv4_and_ipv6() -> None:
    assert (
        failures.scrub("from 10.1.2.3:443 via fe80::1 ok")
        == "from [scrubbed]:443 via [scrubbed] ok"
    )
    assert failures.scrub("version 1.2.3") == "version 1.2.3"


def test_classify_never_raises_on_odd_exceptions() -> None:
    class Weird(Exception):
        def __str__(self) -> str:
            return "weird"

    assert failures.classify(Weird(), "x").failure == "unknown_failure: Weird: weird"
    assert failures.classify(asyncio.CancelledError(), "x").failure == failures.INTERRUPTED


def _exception_types(module: object) -> list[type[BaseException]]:
    import inspect

    return [
        c for _, c in inspect.getmembers(module, inspect.isclass) if issubclass(c, BaseException)
    ]


@pytest.mark.parametrize("module", ["httpx", "httpcore", "anyio", "ssl"])
def test_every_library_exception_type_is_mapped_or_explained(module: str) -> None:
    """Failures are mapped by type (issue 9, item 9): every exception type these libraries
    export is either a row of the table (a network event, so a measurement result) or listed
    with the reason it can never come from the network (a bug, which must propagate)."""
    import importlib

    mapped = failures.network_error_types()
    explained = failures.not_network_errors()
    missing = [
        c.__qualname__
        for c in _exception_types(importlib.import_module(module))
        if not issubclass(c, mapped) and c not in explained
    ]
    assert missing == [], f"{module}: map these in probe/failures.py: {missing}"


def test_a_bug_in_a_step_propagates() -> None:
    """A programming error is never a network event: it must not become a measurement."""
    assert not failures.is_network_error(TypeError("bad argument"))
    assert not failures.is_network_error(KeyError("x"))
    assert failures.is_network_error(ConnectionResetError(errno.ECONNRESET, "reset"))
    assert failures.is_network_error(httpx.ReadTimeout("slow"))
    assert not failures.is_network_error(asyncio.CancelledError())  # cancellation propagates


def test_every_failure_string_written_by_the_code_is_in_the_vocabulary() -> None:
    """Scan the package: a literal given as ``failure=`` (or assigned to ``failure``) is a
    vocabulary string or an unknown_failure; issue 9 item 10 found control_malformed,
    http_status_N, no_usable_address and control_missing written this way."""
    import ast
    from pathlib import Path

    root = Path(failures.__file__).parent
    values = {
        name: getattr(failures, name)
        for name in dir(failures)
        if name.isupper() and isinstance(getattr(failures, name), str)
    }
    bad: list[str] = []
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found: list[ast.expr] = [
            n.value for n in ast.walk(tree) if isinstance(n, ast.keyword) and n.arg == "failure"
        ]
        found += [
            n.value
            for n in ast.walk(tree)
            if isinstance(n, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "failure" for t in n.targets)
        ]
        for value in found:
            literal = value.value if isinstance(value, ast.Constant) else None
            if isinstance(value, ast.JoinedStr):
                bad.append(f"{path.name}:{value.lineno}: f-string")
            elif isinstance(literal, str) and not failures.is_known(literal):
                bad.append(f"{path.name}:{value.lineno}: {literal!r}")
    assert bad == [], bad
    assert set(values.values()) >= failures.VOCABULARY


def test_failure_strings_outside_df007_are_the_documented_extensions() -> None:
    assert (
        failures.VOCABULARY - failures.DF007
        == failures.EXTENSIONS
        == {
            "http_too_many_redirects",
            "http_protocol_error",
        }
    )


def test_a_bad_content_encoding_is_a_protocol_error() -> None:
    import zlib

    info = failures.classify(zlib.error("incorrect header check"), failures.OP_READ)
    assert info.failure == failures.HTTP_PROTOCOL_ERROR


# -- small tables, as literals ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ours", "oonis"),
    [
        (None, None),
        ("", ""),
        ("connection_reset", "connection_reset"),
        ("http_too_many_redirects", "unknown_failure: stopped after too many redirects"),
        ("http_protocol_error", "unknown_failure: http protocol error"),
    ],
)
def test_to_ooni_and_back(ours: str | None, oonis: str | None) -> None:
    assert failures.to_ooni(ours) == oonis
    assert failures.from_ooni(oonis) == (ours or None)


@pytest.mark.parametrize(
    ("failure", "known"),
    [
        (None, True),
        ("generic_timeout_error", True),
        ("http_protocol_error", True),
        ("unknown_failure: [scrubbed] went away", True),
        ("timeout", False),
        ("", False),
    ],
)
def test_is_known(failure: str | None, known: bool) -> None:
    assert failures.is_known(failure) is known


def test_an_errno_outside_the_table_is_no_df007_failure() -> None:
    info = failures.classify(OSError(errno.EPERM, "Operation not permitted"), failures.OP_CONNECT)
    assert info.failure.startswith("unknown_failure") and info.failure != "connection_refused"
    refused = failures.classify(ConnectionRefusedError(errno.ECONNREFUSED, "x"), "connect")
    assert (refused.failure, refused.raw) == ("connection_refused", "ECONNREFUSED")


def test_not_network_errors_are_exception_types_with_a_reason() -> None:
    table = failures.not_network_errors()
    assert table and all(isinstance(k, type) and issubclass(k, BaseException) for k in table)
    assert all(isinstance(why, str) and why for why in table.values())


def _ssl_error(reason: str | None, text: str) -> ssl.SSLError:
    e = ssl.SSLError(1, text)
    e.reason = reason  # type: ignore[misc]  # set by OpenSSL on a real one
    return e


@pytest.mark.parametrize(
    ("reason", "text", "failure", "raw"),
    [
        ("UNEXPECTED_EOF_WHILE_READING", "x", "eof_error", "ssl:UNEXPECTED_EOF_WHILE_READING"),
        ("unexpected_eof_while_reading", "x", "eof_error", "ssl:unexpected_eof_while_reading"),
        ("WRONG_VERSION_NUMBER", "x", "ssl_failed_handshake", "ssl:WRONG_VERSION_NUMBER"),
        # no reason: the text says it
        (None, "handshake failure", "ssl_failed_handshake", "ssl:handshake failure"),
    ],
)
def test_ssl_errors_by_reason(reason: str | None, text: str, failure: str, raw: str) -> None:
    info = failures.classify(_ssl_error(reason, text), failures.OP_TLS)
    assert (info.failure, info.raw) == (failure, raw)


def test_ssl_raw_text_is_scrubbed_and_capped() -> None:
    info = failures.classify(_ssl_error("X" * 300 + " 203.0.113.5", "x"), failures.OP_TLS)
    assert info.failure == "ssl_failed_handshake" and info.raw is not None
    assert len(info.raw) == 200 and info.raw.startswith("ssl:XXX")
    info = failures.classify(_ssl_error("BAD 203.0.113.5", "x"), failures.OP_TLS)
    assert info.raw == "ssl:BAD [scrubbed]"


@pytest.mark.parametrize(
    ("exc", "failure", "raw"),
    [
        (
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            "eof_error",
            "server_disconnected",
        ),
        (
            httpx.RemoteProtocolError("illegal header line"),
            "http_protocol_error",
            "illegal header line",
        ),
        (httpx.ConnectTimeout("t"), "generic_timeout_error", "ConnectTimeout"),
    ],
)
def test_http_errors_raw(exc: BaseException, failure: str, raw: str) -> None:
    info = failures.classify(exc, failures.OP_HTTP)
    assert (info.failure, info.raw) == (failure, raw)


def test_a_cycle_in_the_exception_chain_ends() -> None:
    a, b = RuntimeError("a"), RuntimeError("b")
    a.__context__, b.__context__ = b, a
    info = failures.classify(a, failures.OP_HTTP)
    assert info.failure.startswith("unknown_failure")


def test_cert_failures_are_the_verify_codes_failures() -> None:
    """One list of 'a certificate was presented but not trusted', used by the TLS step (to
    record the presented chain) and the classifier (to suspect interception)."""
    assert frozenset(failures.SSL_VERIFY_FAILURES.values()) == failures.CERT_FAILURES
    assert failures.CERT_FAILURES <= failures.DF007


def _cert_error(code: object = ..., message: object = ..., text: str = "verify failed") -> Any:
    e = ssl.SSLCertVerificationError(1, text)
    if code is not ...:
        e.verify_code = code
    if message is not ...:
        e.verify_message = message
    return e


@pytest.mark.parametrize(
    ("message", "failure"),
    [
        ("Hostname mismatch, certificate is not valid for 'a.example'.", "ssl_invalid_hostname"),
        ("IP address mismatch, certificate is not valid for '::1'.", "ssl_invalid_hostname"),
        ("unable to get local issuer certificate", "ssl_unknown_authority"),
        ("self-signed certificate", "ssl_unknown_authority"),
        ("self signed certificate in certificate chain", "ssl_unknown_authority"),
        ("certificate has a bad signature", "ssl_invalid_certificate"),
    ],
)
def test_a_verify_code_outside_the_table_is_read_from_its_message(
    message: str, failure: str
) -> None:
    info = failures.classify(_cert_error(code=50, message=message), failures.OP_TLS)
    assert (info.failure, info.raw) == (failure, failures.scrub(f"x509:50:{message}"))


def test_a_certificate_error_without_code_or_message_is_read_from_its_text() -> None:
    # Raised by hand (not by OpenSSL): neither attribute exists, and str(e) is all there is.
    e = _cert_error(text="hostname 'a.example' doesn't match")
    info = failures.classify(e, failures.OP_TLS)
    assert info.failure == "ssl_invalid_hostname"
    assert info.raw == f"x509:None:{e}" and "a.example" in info.raw
    info = failures.classify(_cert_error(message=None, text="odd"), failures.OP_TLS)
    assert (info.failure, info.raw) == ("ssl_invalid_certificate", "x509:None:odd")


def test_the_message_names_the_raw_failure_not_the_generic_text() -> None:
    info = failures.classify(_cert_error(code=62, message="Hostname mismatch"), failures.OP_TLS)
    assert info.raw == "x509:62:Hostname mismatch"


def test_a_library_without_one_of_the_named_types_is_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An older or newer httpx/anyio may lack a name the table lists: it is left out, not a crash.
    table = (*failures._NOT_NETWORK, ("ssl", "NoSuchErrorInThisVersion", "absent"))
    monkeypatch.setattr(failures, "_NOT_NETWORK", table)
    found = failures.not_network_errors()
    assert ssl.SSLWantReadError in found and len(found) == len(table) - 1


def test_an_ssl_error_raised_by_hand_has_no_reason_and_is_read_from_its_text() -> None:
    # ssl.SSLError("...") made in Python code carries no ``reason`` attribute at all.
    e = ssl.SSLError("handshake went wrong")
    assert not hasattr(e, "reason")
    info = failures.classify(e, failures.OP_TLS)
    assert (info.failure, info.operation) == ("ssl_failed_handshake", failures.OP_TLS)
    assert info.raw == failures.scrub(f"ssl:{e}")


def test_a_wrapper_defers_to_the_errno_it_carries_whatever_comes_first() -> None:
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "refused")
    wrapper = httpx.ConnectError("all attempts failed")
    wrapper.__cause__ = refused
    info = failures.classify(wrapper, failures.OP_CONNECT)
    assert (info.failure, info.operation) == ("connection_refused", failures.OP_CONNECT)


def test_the_members_of_an_exception_group_are_looked_into() -> None:
    group = ExceptionGroup("happy eyeballs", [ConnectionRefusedError(errno.ECONNREFUSED, "no")])
    assert failures.classify(group, failures.OP_CONNECT).failure == "connection_refused"


def test_a_protocol_error_keeps_its_operation_and_at_most_200_characters_of_text() -> None:
    info = failures.classify(httpx.RemoteProtocolError("x" * 500), failures.OP_HTTP)
    assert (info.failure, info.operation) == ("http_protocol_error", failures.OP_HTTP)
    assert info.raw == "x" * 200


def test_an_unknown_error_keeps_its_operation_no_raw_and_300_characters_of_text() -> None:
    class Strange(Exception):
        pass

    info = failures.classify(Strange("y" * 500), failures.OP_HTTP)
    assert info.operation == failures.OP_HTTP and info.raw is None
    assert info.failure == failures.UNKNOWN_PREFIX + ("Strange: " + "y" * 500)[:300]


def test_a_protocol_error_counts_only_when_nothing_more_specific_is_carried() -> None:
    framing = httpx.RemoteProtocolError("illegal header line")
    framing.__cause__ = ConnectionResetError(errno.ECONNRESET, "reset")
    assert failures.classify(framing, failures.OP_HTTP).failure == "connection_reset"
