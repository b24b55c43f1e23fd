"""The project's exception types, all in one tree, as httpx's ``_exceptions.py`` keeps its.

Contract: every exception the probe raises on purpose is defined here, so a reader sees at once
what can go wrong and what each kind means to its caller. A network failure is never one of
them: the measuring code returns it as a result (a df-007 failure string on the step record).

The tree::

    ProbeError                    anything probe raises on purpose
    ├── InputError (ValueError)   bad input: the CLI prints "probe: error: <one line>", exit 2;
    │   │                         the daemon logs it and keeps what it had
    │   ├── SettingsError         a flag, variable or settings-file key (probe.config)
    │   ├── ResolverSpecError     a resolver spec (udp://, tls://, https://)
    │   ├── TargetsError          a targets file: file, line and field
    │   ├── FingerprintError      a blockpage-fingerprint file: file, line and field
    │   ├── StoreError            a database that cannot be used: the file and the cause
    │   ├── ExportError           an export's flags or destination
    │   ├── MergeError            a database given to ``probe merge``
    │   ├── TimestampError        an RFC 3161 timestamp the analyst asked for: a TSA that fails
    │   │                         or a token that does not verify (probe.analyst.timestamp)
    │   ├── DaemonRunning         another daemon holds the database's lock
    │   ├── UnsafePath            a symbolic link where the probe's own file belongs
    │   ├── AsnDbError            the helper's IP-to-ASN table: file and line
    │   └── ServeError            the helper cannot start: the flag and the cause
    ├── ParseError (ValueError)   outside text one parser rejects; its caller turns it into an
    │   │                         InputError naming where the text came from, or a result
    │   ├── URLError              not a URL the probe can measure
    │   ├── AddressError          not a usable host, port or endpoint
    │   ├── OONIFormatError       not an OONI Web Connectivity measurement
    │   ├── LineProblem           why one line of an OONI file is skipped
    │   └── BadRequest            a malformed control request to the test helper
    └── ProtocolError             a peer broke its protocol inside our own client or server:
        ├── DoHStatusError        a DoH server answered with an HTTP error status
        └── TooLarge              a request to the helper larger than its cap

Every message is one line and names the file, line, field, flag or variable at fault. A message
is written as a message id (English, marked ``N_`` for the catalog) with named fields, e.g.
``TargetsError(N_("{where}: url: {problem}"), where="targets.yaml:3", problem=exc)``: ``str()``
is the English line, :meth:`ProbeError.translated` the line in a volunteer's language (a field
that is itself a ProbeError is translated too). A message given as plain text stays as given.
One exception type lives outside the tree, by click's design: ``probe.cli.UsageInputError``, a
``click.ClickException`` for bad input the command line itself finds (exit 2, like InputError).
"""

from __future__ import annotations

from collections.abc import Callable


class ProbeError(Exception):
    """Anything the probe raises on purpose (never a network failure: those are results).

    ``ProbeError(template, **fields)``: ``template`` is the English message id, its ``{name}``
    placeholders filled from ``fields``; without fields the message is taken as written."""

    def __init__(self, template: object = "", *args: object, **fields: object) -> None:
        text = str(template)
        super().__init__(text.format_map(fields) if fields else text, *args)
        self.template = text
        self.fields = fields

    def translated(self, gettext: Callable[[str], str]) -> str:
        """The message through ``gettext`` (a catalog's), its ProbeError fields translated too;
        the English line when the translation does not fit the fields."""
        fields = {
            k: v.translated(gettext) if isinstance(v, ProbeError) else v
            for k, v in self.fields.items()
        }
        if not fields:
            return gettext(self.template) if self.template else str(self)
        try:
            return gettext(self.template).format_map(fields)
        except (KeyError, IndexError, ValueError):
            return str(self)


# -- bad input: exit status 2 ---------------------------------------------------------------
class InputError(ProbeError, ValueError):
    """Bad input; the message is one line and names what is wrong and where."""


class SettingsError(InputError):
    """A setting cannot be used; the message names the flag, variable or file and key."""


class ResolverSpecError(InputError):
    """A resolver given on the command line or in config cannot be used."""


class TargetsError(InputError):
    """A targets file is unusable; the message names file, line and field."""


class FingerprintError(InputError):
    """A fingerprint file cannot be used; the message names file, line and field."""


class StoreError(InputError):
    """The database cannot be used; the message names the file."""


class ExportError(InputError):
    """An export cannot be written as asked; the message names the flag or the destination."""


class MergeError(InputError):
    """A database given to ``probe merge`` cannot be merged; the message names the file."""


class TimestampError(InputError):
    """A timestamp cannot be obtained from a TSA, or a token does not verify; the message names
    the TSA's URL, the database and head, or the file, and the cause."""


class DaemonRunning(InputError):
    """Another daemon holds the database's lock."""


class UnsafePath(InputError):
    """A symbolic link (or another thing) where the probe would create its own file: refused,
    never followed; the message names the path."""


class AsnDbError(InputError):
    """An IP-to-ASN table cannot be used; the message names the file and line."""


class ServeError(InputError):
    """The helper cannot start: the message names the flag and the cause."""


# -- outside text a parser rejects --------------------------------------------------------------
class ParseError(ProbeError, ValueError):
    """Text one parser rejects; the caller says where it came from."""


class BadValue(ParseError):
    """A value (a flag's, a variable's, a settings key's) that one of probe.config's parsers
    rejects; the caller names the field."""


class URLError(ParseError):
    """Not a URL the probe can measure; the message says why."""


class AddressError(ParseError):
    """Text that is not a usable host, port or endpoint; the message says why."""


class OONIFormatError(ParseError):
    """Not an OONI Web Connectivity measurement (or not one this importer reads)."""


class LineProblem(ParseError):
    """Why one line (or the one document) of an OONI file is skipped."""


class BadRequest(ParseError):
    """The control request is malformed; the message says which field."""


# -- a peer broke its protocol ------------------------------------------------------------------
class ProtocolError(ProbeError):
    """A peer broke its protocol inside our own client or server."""


class DoHStatusError(ProtocolError):
    """A DoH server answered with an HTTP status other than 200."""

    def __init__(self, status: int) -> None:
        super().__init__(f"DoH server answered HTTP {status}")
        self.status = status


class TooLarge(ProtocolError):
    """A request to the helper is larger than its cap."""
