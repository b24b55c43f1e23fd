"""The command line: a thin skin over the library (parse, call one function, format).

Exit status: 0 whatever the network did; 2 on bad input (targets file, flags, database), with
one line ``probe: error: ...`` naming the file, line or field; 1 on an internal error.

Every line a person reads is in the invocation's language (``--lang``, else the environment),
click's own usage errors too ("No such option", "Missing argument"...): click looks them up
with :func:`gettext.gettext` in the process's text domain, in the language the environment
names, so :func:`main` makes probe's catalog that domain and names the language in
``LANGUAGE`` while the command runs, and restores both after. The click messages translated
are listed in :func:`click_messages` (so Babel extracts them into probe's catalog, and a test
notices when a click upgrade rewords one). Help texts stay English.
"""

from __future__ import annotations

import asyncio
import gettext
import os
import shutil
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import yaml

from probe import __version__
from probe.analyst.export import FORMATS
from probe.analyst.export.files import write_whole
from probe.analyst.fleet import is_dataset
from probe.classify.fingerprints import FingerprintSet
from probe.config import settings as settings_mod
from probe.config.options import (
    BY_NAME,
    DAEMON,
    MEASURE,
    OPTIONS,
    UPLOAD,
    default_config,
    install_advice,
)
from probe.config.parse import format_duration, parse_duration
from probe.config.resolver import parse_resolver, system_resolver
from probe.config.settings import Settings
from probe.config.targets import (
    Target,
    TargetList,
    import_citizenlab_csv,
    load_targets,
    read_targets,
)
from probe.errors import InputError, ProbeError, TargetsError
from probe.privacy import UNKNOWN_ADDRESS_NOTE
from probe.round import load_fingerprints, read_token
from probe.store import Store
from probe.words import DOMAIN, LANGS, LOCALES, N_, language, translator

F = TypeVar("F", bound=Callable[..., Any])
NO_HELPER_NOTE = N_(
    "no test helper (--helper): 'accessible (no control)' verdicts cannot see a transparent "
    "proxy's unknown blockpage, and throttling by SNI cannot be told from other throttling."
)

# The language of this invocation's messages: ``--lang``, else the environment (LANGUAGE,
# LC_ALL, LC_MESSAGES, LANG). Set by :func:`cli` (and :func:`main`, for errors before it runs);
# library functions are told it as a value.
_lang = "en"


def _use(lang: str) -> None:
    global _lang
    _lang = lang


def _(message: str) -> str:
    """``message`` (English, the message id) in this invocation's language."""
    return translator(_lang).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The form of a message with a count ``n``, in this invocation's language."""
    return translator(_lang).ngettext(singular, plural, n)


class UsageInputError(click.ClickException):
    """Bad input found by the CLI itself: one line, exit status 2."""

    exit_code = 2


def fail(message: str) -> NoReturn:
    """Bad input: ``message`` (already in the invocation's language) as one line, exit 2."""
    raise UsageInputError(message)


class FilePath(click.Path):
    """``click.Path(dir_okay=False, ...)`` whose messages name it in the invocation's language
    ("Tệp '...' không tồn tại."): click names a path type when it is made, at import, before
    the language is known, so it is named again when a value is checked."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(dir_okay=False, **kwargs)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        self.name = gettext.gettext("file")  # click's own word, from the text domain it uses
        return super().convert(value, param, ctx)


def db_option(f: F) -> F:
    """``--db`` (default: the settings' database) and ``--config``."""
    f = click.option(
        "--db",
        "db_path",
        metavar="FILE",
        help="SQLite database (default: the settings' db; see 'probe config').",
    )(f)
    return config_option(f)


def resolve_db(db_path: str | None, config_path: str | None) -> str:
    return load_settings({"db": db_path}, config_path).db


def fingerprints_option(f: F) -> F:
    return click.option(
        "--fingerprints",
        "fingerprint_paths",
        multiple=True,
        type=FilePath(),
        help="Extra blockpage fingerprints in OONI's CSV format (repeatable).",
    )(f)


def _fingerprints(paths: tuple[str, ...]) -> FingerprintSet:
    return load_fingerprints(paths)


def _open_store(path: str, *, create: bool = True, readonly: bool = False) -> Store:
    return Store.open(path, create=create, readonly=readonly)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="probe")
@click.option(
    "--lang",
    type=click.Choice(LANGS),
    help="Language of messages, tables and the consent text (default: from LANGUAGE, LC_ALL, "
    "LC_MESSAGES or LANG, e.g. LANG=vi_VN.UTF-8; else English).",
)
def cli(lang: str | None) -> None:
    """Measure network interference (DNS, TCP, TLS, HTTP) and keep the evidence in SQLite.

    \b
    Example:
      probe run                      # measure targets.yaml once, store in results/probe.db
      probe export --format jsonl -o out.jsonl
      probe --lang vi status         # in Vietnamese (as LANG=vi_VN.UTF-8 does)
    """
    _use(lang or language())


def settings_options(*scopes: str) -> Callable[[F], F]:
    """The settings' flags (from :data:`probe.config.options.OPTIONS`) for commands of these
    scopes, plus ``--config``; defined once, so ``run`` and ``daemon`` take the same ones."""

    def decorate(f: F) -> F:
        for o in reversed(OPTIONS):
            if o.flag is None or o.scope not in scopes:
                continue
            default = o.default
            shown = "" if o.is_flag or default in (None, ()) else f" [default: {_show(o, default)}]"
            if o.is_flag:
                f = click.option(o.flag, o.name, is_flag=True, hidden=o.hidden, help=o.help)(f)
            else:
                f = click.option(
                    o.flag,
                    o.name,
                    multiple=o.multiple,
                    metavar=o.metavar,
                    hidden=o.hidden,
                    help=o.help + shown,
                )(f)
        return config_option(f)

    return decorate


def _show(option: Any, value: Any) -> str:
    if option.parse is parse_duration:
        return format_duration(value)
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def config_option(f: F) -> F:
    return click.option(
        "--config",
        "config_path",
        metavar="FILE",
        help="Settings file (TOML; default: settings.toml in the platform's config directory).",
    )(f)


def load_settings(flags: dict[str, Any], config_path: str | None) -> Settings:
    return settings_mod.resolve(flags, config=config_path)


@cli.command()
@settings_options(MEASURE)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary table.")
def run(config_path: str | None, quiet: bool, **flags: Any) -> None:
    """Measure every target once, classify each, and store the results.

    \b
    Example:
      probe run --only facebook --resolver 192.168.1.1 --db results/probe.db
    """
    from probe.round import offline_reason, prepare, run_once
    from probe.round import progress as report

    settings = load_settings(flags, config_path)
    setup = prepare(settings)
    # Broken entries are reported now, the usable ones measured anyway, and exit status 2 at
    # the end says the list needs fixing.
    report_broken(settings.targets, setup.targets)
    if not setup.targets.targets:
        fail_if_broken(settings.targets, setup.targets)
    store = _open_store(settings.db)
    if not settings.helper:
        click.echo(_("probe: note: {note}").format(note=_(NO_HELPER_NOTE)), err=True)
    total = len(setup.targets.targets) + len(setup.targets.controls)
    with report.Progress(total, enabled=not quiet, lang=_lang) as progress:
        result = asyncio.run(run_once(setup, store, on_measurement=progress.advance))
    if not quiet:
        report.summary(result, lang=_lang)
    if result.offline_reason:
        controls = [m for m in result.rows if m.is_control]
        reason = offline_reason(controls, lang=_lang) if controls else result.offline_reason
        click.echo(_("probe: {reason}").format(reason=reason), err=True)
    if not result.address_known_by:
        click.echo(_("probe: note: {note}").format(note=_(UNKNOWN_ADDRESS_NOTE)), err=True)
    click.echo(
        ngettext(
            "{n} measurement stored in {db} ({bytes} bytes used)",
            "{n} measurements stored in {db} ({bytes} bytes used)",
            result.count,
        ).format(n=result.count, db=settings.db, bytes=result.bytes_used),
        err=True,
    )
    if result.internal_errors:
        click.echo(
            ngettext(
                "probe: {n} target failed in the probe's own code (recorded as "
                "unknown_failure; the log has the traceback)",
                "probe: {n} targets failed in the probe's own code (recorded as "
                "unknown_failure; the log has the tracebacks)",
                result.internal_errors,
            ).format(n=result.internal_errors),
            err=True,
        )
    fail_if_broken(settings.targets, setup.targets)


@cli.command("config")
@settings_options(MEASURE, DAEMON)
@click.option("--json", "as_json", is_flag=True, help="One JSON object: value and source.")
def config_cmd(config_path: str | None, as_json: bool, **flags: Any) -> None:
    """Print the effective settings and where each value came from.

    \b
    Example:
      probe config                   # flags > PROBE_* variables > settings file > defaults

    The default database and targets file are a source checkout's (its results/probe.db and
    targets.yaml) when this probe runs from one or was installed from one (scripts/install);
    the checkout line says which and how that is known.
    """
    import json

    settings = load_settings(flags, config_path)
    rows = [
        *settings.items(),
        ("config", settings.config, settings.sources.get("config", "")),
        ("checkout", settings.checkout, settings.sources.get("checkout", "")),
    ]
    if as_json:
        click.echo(json.dumps({k: {"value": v, "source": src} for k, v, src in rows}))
        return
    width = max(len(row[0]) for row in rows)
    for k, v, src in rows:
        option = BY_NAME.get(k)
        if isinstance(v, tuple):
            shown: Any = ",".join(map(str, v))
        elif option is not None and v is not None:
            shown = _show(option, v)
        else:
            shown = v
        click.echo(f"{k.ljust(width)}  {'' if shown is None else shown}  ({src})")


@cli.group()
def helper() -> None:
    """Run a Web Connectivity test helper (a control vantage for probes)."""


@helper.command("serve")
@click.option(
    "--listen",
    default="127.0.0.1:8080",
    show_default=True,
    metavar="ADDR:PORT",
    help="Where to listen; under socket activation (systemd) the socket passed instead.",
)
@click.option(
    "--upstream",
    metavar="IP[:PORT]",
    help="Resolver for the helper's own lookups and its DoH endpoint "
    "(default: the first nameserver in /etc/resolv.conf).",
)
@click.option(
    "--token-file",
    type=FilePath(exists=True),
    help="Require this bearer token (a file holding one word). Default: the credential "
    "'token' in $CREDENTIALS_DIRECTORY (systemd's LoadCredential=), if there is one.",
)
@click.option(
    "--max-in-flight",
    default=32,
    show_default=True,
    type=click.IntRange(1, 4096),
    help="Control requests answered at once; 503 past it.",
)
@click.option(
    "--max-bulk",
    default=32,
    show_default=True,
    type=click.IntRange(1, 4096),
    help="/bulk streams at once, apart from the control requests; 503 past it.",
)
@click.option(
    "--max-bulk-per-client",
    default=4,
    show_default=True,
    type=click.IntRange(1, 4096),
    help="/bulk streams at once from one client address; 503 past it.",
)
@click.option(
    "--allow-network",
    "allow_networks",
    multiple=True,
    metavar="CIDR",
    help="Measure addresses in this private network anyway (labs only).",
)
@click.option(
    "--tls-cert",
    type=FilePath(exists=True),
    help="Certificate chain (PEM). Default: the credential 'tls-cert', if there is one.",
)
@click.option(
    "--tls-key",
    type=FilePath(exists=True),
    help="Its private key (PEM). Default: the credential 'tls-key', if there is one.",
)
@click.option(
    "--ca-bundle",
    type=FilePath(exists=True),
    help="Extra trust anchors (PEM) for the sites it measures.",
)
@click.option(
    "--asn-db",
    "asn_dbs",
    multiple=True,
    type=FilePath(),
    help="IP-to-ASN table to tell probes their network (iptoasn TSV, or a MaxMind .mmdb; "
    "repeatable: the first to know a field wins). Addresses are never sent nor logged.",
)
def helper_serve(
    listen: str,
    upstream: str | None,
    token_file: str | None,
    max_in_flight: int,
    max_bulk: int,
    max_bulk_per_client: int,
    allow_networks: tuple[str, ...],
    tls_cert: str | None,
    tls_key: str | None,
    ca_bundle: str | None,
    asn_dbs: tuple[str, ...],
) -> None:
    """Serve the test helper protocol (POST /), DoH (/dns-query), the SNI A/B bulk endpoint
    and, with --asn-db, each probe's network (POST /network). Exposed to the internet, give it
    a token: without one anyone may use it.

    \b
    Example:
      probe helper serve --listen 0.0.0.0:8443 --tls-cert cert.pem --tls-key key.pem \\
        --token-file token --asn-db ip2asn-combined.tsv.gz
    """
    import ipaddress

    from probe.helper.server import credential, serve

    token_file = token_file or credential("token")
    tls_cert = tls_cert or credential("tls-cert")
    tls_key = tls_key or credential("tls-key")

    host, _colon, port = listen.rpartition(":")
    host = host.strip("[]")
    if not port.isdigit() or not 0 < int(port) < 65536 or not host:
        fail(_("--listen: {value} is not ADDR:PORT").format(value=repr(listen)))
    spec = parse_resolver(upstream, what="--upstream") if upstream else system_resolver()
    try:
        ipaddress.ip_address(host)
        for net in allow_networks:
            ipaddress.ip_network(net, strict=False)
    except ValueError as exc:
        fail(_("--listen/--allow-network: {problem}").format(problem=exc))
    if bool(tls_cert) != bool(tls_key):
        fail(_("--tls-cert and --tls-key go together"))
    token = read_token(token_file) if token_file else None
    from probe.helper.asn import load as load_asn

    asn_table = load_asn(asn_dbs) if asn_dbs else None
    serve(
        host,
        int(port),
        spec,
        token=token,
        max_in_flight=max_in_flight,
        max_bulk=max_bulk,
        max_bulk_per_client=max_bulk_per_client,
        allow_networks=allow_networks,
        tls_cert=tls_cert,
        tls_key=tls_key,
        ca_bundle=ca_bundle,
        asn_table=asn_table,
    )


@cli.group()
def targets() -> None:
    """Work with target lists."""


@targets.command("check")
@click.argument("path", default="targets.yaml", type=FilePath())
def targets_check(path: str) -> None:
    """Validate a target list: every broken entry is reported (FILE:LINE: field: reason).

    \b
    Example:
      probe targets check targets.yaml
    """
    tl = read_targets(path)
    report_broken(path, tl)
    fail_if_broken(path, tl)
    click.echo(
        _("{path}: {targets}, {controls}: OK").format(
            path=path,
            targets=ngettext("{n} target", "{n} targets", len(tl.targets)).format(
                n=len(tl.targets)
            ),
            controls=_controls(len(tl.controls)),
        )
    )
    if not tl.controls:
        click.echo(
            _(
                "probe: warning: {path} has no controls: without them an offline round cannot "
                "be told from blocking (add a 'controls:' list, e.g. the default one)"
            ).format(path=path),
            err=True,
        )


def report_broken(path: str, tl: TargetList) -> None:
    """One ``probe: error:`` line per broken entry of a target list, in the invocation's
    language."""
    for problem in tl.problems:
        message = problem.translated(_)
        click.echo(_("probe: error: {message}").format(message=message), err=True)
    if tl.broken > len(tl.problems):
        more = _("{path}: {n} more").format(path=path, n=tl.broken - len(tl.problems))
        click.echo(_("probe: error: {message}").format(message=more), err=True)


def fail_if_broken(path: str, tl: TargetList) -> None:
    """Exit status 2 when the list has a broken entry (after the usable ones were used)."""
    if tl.broken:
        raise TargetsError(
            N_(
                "{path}: {broken} broken entries ({targets} targets and {controls} controls usable)"
            ),
            path=path,
            broken=tl.broken,
            targets=len(tl.targets),
            controls=len(tl.controls),
        )


@targets.command("import")
@click.argument("csv_path", type=FilePath())
@click.option(
    "--targets",
    "targets_path",
    type=FilePath(),
    help="Existing target list: URLs already in it are skipped.",
)
@click.option(
    "-o",
    "--output",
    type=FilePath(),
    help="Write a complete targets file here (default: entries to stdout).",
)
def targets_import(csv_path: str, targets_path: str | None, output: str | None) -> None:
    """Turn a Citizen Lab test-list CSV into targets.yaml entries.

    \b
    Example:
      probe targets import vn.csv --targets targets.yaml > more-targets.yaml
    """
    existing = load_targets(targets_path) if targets_path else None
    if output:
        # A complete file: the entries and controls (the list's own, else the default ones).
        controls = existing.controls if existing and existing.controls else _default_controls()
        seen = TargetList(existing.targets if existing else (), controls)
        entries, skipped = import_citizenlab_csv(csv_path, seen)
        doc = {"targets": entries, "controls": [_entry_of(c) for c in controls]}
        text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
        write_whole(output, text, check=load_targets)  # a list that loads, or nothing
        click.echo(
            _("{entries} and {controls} written").format(
                entries=_entries(len(entries)), controls=_controls(len(controls))
            ),
            err=True,
        )
    else:
        entries, skipped = import_citizenlab_csv(csv_path, existing)
        text = yaml.safe_dump({"targets": entries}, allow_unicode=True, sort_keys=False)
        click.echo(text, nl=False)
    click.echo(
        _("{entries} from {path}, {duplicates} skipped").format(
            entries=_entries(len(entries)),
            path=csv_path,
            duplicates=ngettext("{n} duplicate", "{n} duplicates", skipped).format(n=skipped),
        ),
        err=True,
    )


def _controls(n: int) -> str:
    return ngettext("{n} control", "{n} controls", n).format(n=n)


def _entries(n: int) -> str:
    return ngettext("{n} entry", "{n} entries", n).format(n=n)


def _default_controls() -> tuple[Target, ...]:
    from importlib import resources

    with resources.as_file(resources.files("probe") / "data" / "targets.yaml") as path:
        return load_targets(path).controls


def _entry_of(t: Target) -> dict[str, Any]:
    fields = ("name", "url", "category", "throughput_url", "tags", "notes", "interval")
    entry = {f: getattr(t, f) for f in fields if getattr(t, f) not in (None, ())}
    if t.target_class is not None:  # targets.yaml's name for it (a keyword in Python)
        entry["class"] = t.target_class
    return entry


@cli.command()
@db_option
@click.option("--target", "target_names", multiple=True, metavar="NAME", help="Only this target.")
@click.option("--open", "only_open", is_flag=True, help="Only events still open.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "jsonl"]),
    default="table",
    show_default=True,
    help="jsonl: one JSON object per event, one a line.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object, for scripts: {db, count, events: [...]}.",
)
@click.option(
    "--why",
    is_flag=True,
    help="Slowdowns of each site's own rate instead, each with its cause and basis.",
)
def events(
    db_path: str | None,
    config_path: str | None,
    target_names: tuple[str, ...],
    only_open: bool,
    fmt: str,
    as_json: bool,
    why: bool = False,
) -> None:
    """List throttling events: where a target fell well below its own throughput history.

    \b
    Example:
      probe events --db results/probe.db --open
      probe events --json | jq '.events[] | select(.closed_at == null)'
      probe events --why             # each slowdown's cause, in a sentence
    """
    import json

    from probe.classify.events import find_events

    if as_json and fmt != "table":
        fail(_("--json and --format {format}: choose one").format(format=fmt))
    db = resolve_db(db_path, config_path)
    if is_dataset(db):  # a fleet dataset (probe fleet ingest), read with DuckDB
        if why:
            fail(_("--why reads a probe database, not a fleet dataset: {db}").format(db=db))
        _need_analyst("probe events over a fleet dataset", ("duckdb",))
        from probe.analyst.fleet.query import throughput_tests

        tests = throughput_tests(db, target_names)
    else:
        store = _open_store(db, create=False, readonly=True)
        if why:
            _why(db, store, target_names, only_open, fmt, as_json)
            return
        tests = store.throughput_tests(target_names)
    found = [e for e in find_events(tests) if e.open or not only_open]
    if as_json:
        listed = [e.as_dict() for e in found]
        click.echo(json.dumps({"db": db, "count": len(listed), "events": listed}))
        return
    if fmt == "jsonl":
        for e in found:
            click.echo(json.dumps(e.as_dict()))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=ngettext("{n} throttling event", "{n} throttling events", len(found)).format(
            n=len(found)
        )
    )
    for col in ("target", "network", "opened", "closed", "tests", "ratio", "baseline", "label"):
        table.add_column(col)
    for e in found:
        d = e.as_dict()
        table.add_row(
            d["target"],
            d["network"],
            d["opened_at"],
            d["closed_at"] or "OPEN",
            str(d["tests"]),
            f"{d['median_ratio']:.3f}",
            "" if d["baseline_ratio"] is None else f"{d['baseline_ratio']:.3f}",
            d["label"] or "",
        )
    Console().print(table)


def _why(
    db: str, store: Store, target_names: tuple[str, ...], only_open: bool, fmt: str, as_json: bool
) -> None:
    """``probe events --why``: every slowdown with its cause (probe.classify.attribution),
    judged against every target's tests (the others are its controls), in words."""
    import json

    from probe.analyst.report.causes import basis, sentence
    from probe.classify.attribution import attribute

    wanted = set(target_names)
    found = [
        e
        for e in attribute(store.edge_tests())
        if (not wanted or e.target in wanted) and (e.open or not only_open)
    ]
    listed = [e.as_dict() | {"sentence": sentence(e, _lang)} for e in found]
    if as_json:
        click.echo(json.dumps({"db": db, "count": len(listed), "slowdowns": listed}))
        return
    if fmt == "jsonl":
        for d in listed:
            click.echo(json.dumps(d))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=ngettext("{n} slowdown", "{n} slowdowns", len(found)).format(n=len(found)))
    for col in ("target", "network", "opened", "closed", "cause", "why"):
        table.add_column(col)
    for e in found:
        table.add_row(
            e.target,
            e.network,
            e.opened_at,
            e.closed_at or "OPEN",
            e.cause or "",
            f"{sentence(e, _lang)} ({basis(e, _lang)})",
        )
    Console().print(table)


@cli.command("import")
@db_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["ooni"]),
    required=True,
    help="ooni: Web Connectivity measurements (JSONL, .gz, or one JSON document).",
)
@fingerprints_option
@click.argument("files", nargs=-1, required=True, type=FilePath())
def import_(
    db_path: str | None,
    config_path: str | None,
    fmt: str,
    fingerprint_paths: tuple[str, ...],
    files: tuple[str, ...],
) -> None:
    """Import measurements from elsewhere, classified by our rules (theirs kept beside).

    \b
    Example:
      probe import --format ooni 2026-11-01_VN_webconnectivity.jsonl.gz --db results/ooni.db
    """
    from probe.ooni.importer import import_ooni

    paths = [Path(f) for f in files]
    for p in paths:
        if not p.is_file():
            fail(_("{path}: no such file").format(path=p))
    fps = _fingerprints(fingerprint_paths)
    store = _open_store(resolve_db(db_path, config_path))
    where = files[0] if len(files) == 1 else _("input")
    try:
        report = import_ooni(store, paths, fps)
    except (OSError, EOFError, UnicodeDecodeError) as exc:  # unreadable or truncated gzip
        fail(_("{path}: cannot read ({problem})").format(path=where, problem=exc))
    if not report.imported and not report.duplicates:
        # The English line is pinned as it was ("in 1 records"); Vietnamese has one form.
        if report.skipped:
            message = _(
                "{path}: no valid OONI measurement in {read} records (first: {problem})"
            ).format(path=where, read=report.read, problem=report.skipped[0].translated(_))
        else:
            message = _("{path}: no valid OONI measurement in {read} records").format(
                path=where, read=report.read
            )
        fail(message)
    for line in report.skipped:
        click.echo(_("probe: skipped {line}").format(line=line.translated(_)), err=True)
    click.echo(
        _(
            "{imported} imported, {duplicates} already there, {skipped} skipped, "
            "from {read} records"
        ).format(
            imported=report.imported,
            duplicates=report.duplicates,
            skipped=len(report.skipped),
            read=report.read,
        )
    )


@cli.command()
@db_option
@fingerprints_option
def reclassify(
    db_path: str | None, config_path: str | None, fingerprint_paths: tuple[str, ...]
) -> None:
    """Re-run the current rules over every stored measurement.

    \b
    Example:
      probe reclassify --db results/probe.db --fingerprints fingerprints_http.csv
    """
    from probe.store.reclassify import reclassify as run_reclassify

    fps = _fingerprints(fingerprint_paths)
    store = _open_store(resolve_db(db_path, config_path), create=False)
    total, changed = run_reclassify(store, fps)
    click.echo(
        _("{measurements} reclassified, {verdicts} changed").format(
            measurements=ngettext("{n} measurement", "{n} measurements", total).format(n=total),
            verdicts=ngettext("{n} verdict", "{n} verdicts", changed).format(n=changed),
        )
    )


# -- the daemon and its companions --------------------------------------------------------------
@cli.command()
@settings_options(MEASURE, DAEMON)
def daemon(config_path: str | None, **flags: Any) -> int:
    """Measure on a schedule until stopped: random gaps around --interval, a data budget,
    one daemon per database. SIGTERM/SIGINT stop it, SIGHUP reloads settings and targets.

    \b
    Example:
      probe daemon --interval 45m --max-bytes-per-day 200M
    """
    from probe.daemon.daemon import run as run_daemon

    return run_daemon(flags, config_path, lang=_lang)


@cli.command()
@db_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
def status(db_path: str | None, config_path: str | None, as_json: bool) -> int:
    """Is the daemon measuring? Last and next round, data used, anomalies, throttling.

    Exit status 0: healthy; 3: no daemon runs on this database; 4: it runs, but its last
    round is older than twice its interval; 5: it runs, but its last round found this
    machine offline (no control site loaded). Times are shown in local time and in UTC.
    A --db that names no file is bad input (exit status 2).

    \b
    Example:
      probe status --db /var/lib/probe/probe.db --json
    """
    import json

    from probe.daemon.status import render
    from probe.daemon.status import status as daemon_status

    db = resolve_db(db_path, config_path)
    if not Path(db).exists():
        if db_path is not None:  # named by hand: a typo, not a daemon that never started
            fail(_("--db: {path}: no such file (is it the right path?)").format(path=db))
        if as_json:
            click.echo(json.dumps({"db": db, "running": False, "health": "not running", "exit": 3}))
        else:
            click.echo(_("daemon     not running (no database at {db})").format(db=db))
        return 3
    store = _open_store(db, create=False, readonly=True)
    doc = daemon_status(store)
    if as_json:
        click.echo(json.dumps(doc))
    else:
        for line in render(doc, lang=_lang):
            click.echo(line)
    return int(doc["exit"])


@cli.command()
@settings_options(MEASURE, DAEMON)
@click.option("--yes", is_flag=True, help="Agree without questions (for scripts).")
@click.option("--force", is_flag=True, help="Replace an existing settings file.")
def init(config_path: str | None, yes: bool, force: bool, **flags: Any) -> int:
    """First contact: what the probe does and risks, then a commented settings file.

    In a terminal it asks what to decide before agreeing (unless a flag says it): is the
    connection metered (then the mobile profile and data caps), and a test helper's URL and
    token, if you have one (the token is not shown as you type; it is kept in a private
    file, helper-token, beside the settings file). With --yes it asks nothing: flags given
    here (e.g. --profile mobile, --helper URL) are written as set values; every other setting
    is written commented out, with its default. --config /etc/probe/settings.toml is the
    file the systemd service (deploy/probe.service) reads.

    \b
    Example:
      probe init --profile mobile --yes
      sudo probe init --config /etc/probe/settings.toml
    """
    from probe.config import init as init_mod
    from probe.config.parse import parse_size, parse_url

    where = config_path or os.environ.get("PROBE_CONFIG")
    path = Path(where).expanduser() if where else default_config()
    service = init_mod.is_service(path)
    # Check every flag given, as any command does, without reading the file to be written.
    env = {k: v for k, v in os.environ.items() if k != "PROBE_CONFIG"}
    if service:  # the service's environment is the unit's, not this shell's
        env = {k: v for k, v in env.items() if not k.startswith("PROBE_")}
    settings = settings_mod.resolve(flags, env=env, config=os.devnull)
    if path.exists() and not force:
        fail(_("{path}: a settings file is already there (--force replaces it)").format(path=path))
    db = settings.db
    if service and flags.get("db") is None:
        db = init_mod.SERVICE_DB  # systemd's StateDirectory=probe
    width = min(shutil.get_terminal_size().columns, 100)  # COLUMNS, else the terminal
    click.echo(init_mod.consent(db, path, lang=_lang, width=width))
    given = {k: v for k, v in flags.items() if v not in (None, (), False)}
    token: str | None = None
    if not yes:
        if not sys.stdin.isatty():
            fail(_("consent is asked in a terminal; pass --yes to agree from a script"))

        def wrapped(question: str) -> str:  # the terminal would break it mid-word
            room = max(width - 12, 20)  # for " [y/N]: " or " [25M]: "
            return "\n".join(textwrap.wrap(question, room, break_on_hyphens=False))

        def ask(question: str, parse: Callable[[str], Any], default: str = "") -> str:
            while True:
                answer = click.prompt(
                    wrapped(question), default=default, show_default=bool(default)
                )
                try:
                    parse(answer)
                except (ValueError, InputError) as exc:
                    message = exc.translated(_) if isinstance(exc, ProbeError) else str(exc)
                    click.echo(_("probe: error: {message}").format(message=message), err=True)
                    continue
                return str(answer).strip()

        if "profile" not in given:
            metered = _(
                "Is this connection metered (mobile data, or a monthly allowance you pay by)?"
            )
            if click.confirm(wrapped(metered), default=False):
                given["profile"] = "mobile"
                if "max_bytes_per_day" not in given:
                    given["max_bytes_per_day"] = ask(
                        _("Daily data cap (e.g. 25M, 100M)"), parse_size, "25M"
                    )
                if "max_bytes_per_month" not in given:
                    monthly = ask(
                        _("Monthly data cap (e.g. 500M, 2G; none: no monthly cap)"),
                        lambda v: v.strip().lower() == "none" or parse_size(v),
                        "none",
                    )
                    if monthly.lower() != "none":
                        given["max_bytes_per_month"] = monthly
        if "helper" not in given:
            url = ask(
                _("Test helper URL, if you were given one (empty: none)"),
                lambda v: v.strip() == "" or parse_url(v),
            )
            if url:
                given["helper"] = url
                if "helper_token_file" not in given:
                    token = click.prompt(
                        wrapped(_("The helper's token (not shown; empty: none)")),
                        default="",
                        show_default=False,
                        hide_input=True,
                    ).strip()
        agree = wrapped(_("Do you understand this and want to go on?"))
        if not click.confirm(agree, default=False):
            click.echo(_("Nothing written."), err=True)
            return 1
    # The device key first: a key that cannot be made (a file there that is no key, a folder
    # not ours) refuses before the settings are written.
    from probe.evidence.keys import ensure_key, key_path

    key_file = key_path(Path(db).expanduser())
    kept = key_file.exists()
    key = ensure_key(key_file)
    if token:
        given["helper_token_file"] = str(init_mod.write_token(path.parent, token))
    text = init_mod.settings_file(given)
    write_whole(path, text)
    if service:
        init_mod.share_with_service(path)
    load_settings({}, str(path))  # the file we wrote reads back
    click.echo(_("Settings written to {path}.").format(path=path))
    click.echo(
        (
            _("Device key kept: {path} (its public key, which names this probe: {key})")
            if kept
            else _("Device key made: {path} (its public key, which names this probe: {key})")
        ).format(path=key_file, key=key.public)
    )
    if service:
        # DynamicUser=yes: the service's user does not exist yet; systemd hands the
        # StateDirectory, key included, to it at each start (a recursive chown).
        click.echo(
            _(
                "systemd gives the key to the service's own user when the service starts; "
                "until then it is private to you."
            )
        )
    if service:
        click.echo(
            _(
                "Next, start the service (it reads this file and stores in {db}):\n"
                "  cp deploy/probe.service /etc/systemd/system/ && systemctl enable --now probe\n"
                "Then check it with: probe status --db {db}"
            ).format(db=db)
        )
        if token:
            click.echo(
                _(
                    "The service reads the token through its drop-in: "
                    "deploy/probe.service.d/helper-token.conf (see its first lines)."
                )
            )
    else:
        start = (
            "probe daemon"
            if path == default_config() and not config_path
            else (f"probe daemon --config {path}")
        )
        click.echo(
            _("Start measuring with: {command} (it stores in {db})").format(command=start, db=db)
        )
    return 0


@cli.command()
@db_option
@click.option(
    "--older-than",
    "older_than",
    required=True,
    metavar="AGE",
    help="Delete measurements started longer ago than this: 12h, 180d, 26w, 2y (y = 365d). "
    "A number without a unit is refused.",
)
@click.option("--keep-anomalies", is_flag=True, help="Keep measurements with an anomaly.")
@click.option("--vacuum", is_flag=True, help="Give the freed space back to the file system.")
@click.option("--dry-run", is_flag=True, help="Show what would be deleted; delete nothing.")
@click.option(
    "--yes",
    "-y",
    is_flag=True,
    help="Delete without asking. Needed without a terminal (cron, a systemd timer).",
)
def prune(
    db_path: str | None,
    config_path: str | None,
    older_than: str,
    keep_anomalies: bool,
    vacuum: bool,
    dry_run: bool,
    yes: bool,
) -> int:
    """Delete old measurements (and bodies no measurement uses any more), in short batches
    that a running daemon hardly notices.

    It says first what it would delete (measurements, rounds, bodies, and the cut-off). In a
    terminal it then asks; without one (cron, a systemd timer) it deletes only with --yes, and
    otherwise deletes nothing and exits with status 2, since evidence deleted is gone for good.

    \b
    Example:
      probe prune --older-than 180d --dry-run
      probe prune --older-than 180d --keep-anomalies --vacuum
      probe prune --older-than 2y --yes          # in a systemd timer
    """
    import time
    from datetime import UTC, datetime, timedelta

    from probe.config.parse import parse_age
    from probe.errors import BadValue
    from probe.timeutil import iso

    try:
        seconds = parse_age(older_than)
    except BadValue as exc:
        fail("--older-than: " + exc.translated(_))
    before = iso(datetime.now(UTC) - timedelta(seconds=seconds))
    store = _open_store(resolve_db(db_path, config_path), create=False)
    planned = store.prune_counts(before, keep_anomalies=keep_anomalies)

    def said(counts: dict[str, int]) -> str:
        return _("{measurements}, {rounds} and {bodies} started before {before}").format(
            measurements=ngettext(
                "{n} measurement", "{n} measurements", counts["measurements"]
            ).format(n=counts["measurements"]),
            rounds=ngettext("{n} round", "{n} rounds", counts["rounds"]).format(n=counts["rounds"]),
            bodies=ngettext("{n} body", "{n} bodies", counts["bodies"]).format(n=counts["bodies"]),
            before=before,
        )

    if dry_run:
        click.echo(_("dry run: would delete {what}").format(what=said(planned)))
        return 0
    if not yes:
        if not sys.stdin.isatty():
            fail(
                _(
                    "prune asks in a terminal; pass --yes to delete from a script "
                    "(--dry-run shows what would go)"
                )
            )
        click.echo(_("probe prune would delete {what}, for good").format(what=said(planned)))
        if any(planned.values()) and not click.confirm(_("Delete them?"), default=False):
            click.echo(_("Nothing deleted."), err=True)
            return 1
    counts = {"measurements": 0, "rounds": 0, "bodies": 0}
    for what, n in store.prune(before, keep_anomalies=keep_anomalies):
        counts[what] += n
        time.sleep(0.02)  # let a daemon's write in between two batches
    if vacuum:
        store.vacuum()
    done = _("deleted {what}").format(what=said(counts))
    click.echo(done + (_(", vacuumed") if vacuum else ""))
    return 0


@cli.command()
@db_option
@click.option("--yes", is_flag=True, help="Remove without asking (for scripts).")
def wipe(db_path: str | None, config_path: str | None, yes: bool) -> int:
    """Remove everything the probe holds on this machine: the database with its -wal, -shm and
    lock, and the settings file (the probe's own folders too, once empty). Nothing else.

    \b
    Example:
      systemctl disable --now probe && probe wipe
    """
    from probe.daemon import wipe as wiping

    settings = load_settings({"db": db_path}, config_path)
    found = wiping.plan(settings.db, settings.config)
    for line in found.left:
        click.echo(_("probe: left {what}").format(what=line.translated(_)), err=True)
    if found.empty:
        click.echo(
            _("nothing to remove (no probe files at {db} or a settings file)").format(
                db=settings.db
            )
        )
        return 0
    click.echo(_("probe wipe removes, for good:"))
    for p in found.files:
        click.echo(f"  {p}")
    if not yes:
        if not sys.stdin.isatty():
            fail(_("wipe asks in a terminal; pass --yes to remove from a script"))
        if not click.confirm(_("Remove these files?"), default=False):
            click.echo(_("Nothing removed."), err=True)
            return 1
    for p in wiping.remove(found):
        click.echo(_("removed {path}").format(path=p))
    return 0


# click >= 8.2 raises this for a group given no command (older versions print the help).
_NO_ARGS_IS_HELP: type[click.UsageError] = getattr(
    click.exceptions, "NoArgsIsHelpError", type("_Never", (click.UsageError,), {})
)


def click_messages() -> list[tuple[str, ...]]:
    """click's own messages that probe's catalog translates, exactly as click writes them: each
    ``(msgid,)``, or ``(singular, plural)`` for click's ``ngettext``. The calls below are only
    marks, for Babel to extract them into probe's catalog (click ships no catalog of its own);
    tests/test_errors_vi_cli.py checks each is still one of the installed click's strings."""

    def _(msgid: str) -> tuple[str, ...]:
        return (msgid,)

    def ngettext(singular: str, plural: str, n: int) -> tuple[str, ...]:
        return (singular, plural)

    return [
        _("No such option {name!r}."),
        # TRANSLATORS: click fills {possibility} and {possibilities} with the same text (the
        # quoted names, joined by ", "); the one Vietnamese form shows one and hides the other
        # with ":.0" (an empty width), so that both fields are kept.
        ngettext("Did you mean {possibility}?", "(Did you mean one of: {possibilities}?)", 2),
        _("No such command {name!r}."),
        _("Missing command."),
        # TRANSLATORS: followed by the argument's or option's name and a full stop.
        _("Missing argument"),
        _("Missing option"),
        _("Missing parameter"),
        _("Missing parameter: {param_name}"),
        _("Choose from:\n\t{choices}"),
        _("Invalid value for {param_hint}: {message}"),
        _("Invalid value: {message}"),
        ngettext(
            "Got unexpected extra argument ({args})", "Got unexpected extra arguments ({args})", 2
        ),
        ngettext(
            "Option {name!r} requires an argument.",
            "Option {name!r} requires {nargs} arguments.",
            2,
        ),
        _("Option {name!r} does not take a value."),
        _("Argument {name!r} takes {nargs} values."),
        # TRANSLATORS: click fills {choice} and {choices} with the same text (the quoted
        # choices, joined by ", "); hide one with ":.0", as in "Did you mean".
        ngettext("{value!r} is not {choice}.", "{value!r} is not one of {choices}.", 2),
        # TRANSLATORS: {number_type} is click's English name of the type: integer, float,
        # integer range, float range.
        _("{value!r} is not a valid {number_type}."),
        _("{value} is not in the range {range}."),
        # TRANSLATORS: "file" as click names a path that must be a file, at the start of the
        # next messages ({name}); click capitalises each of its words.
        _("file"),
        _("{name} {filename!r} does not exist."),
        _("{name} {filename!r} is a directory."),
        _("{name} {filename!r} is not readable."),
    ]


def _lang_in(args: Sequence[str]) -> str | None:
    """The global ``--lang`` in ``args`` (before the command's name), if it is one of LANGS:
    click reports a usage error while it parses, before :func:`cli` sees the option."""
    rest = iter(args)
    for arg in rest:
        if arg == "--lang":
            value = next(rest, None)
        elif arg.startswith("--lang="):
            value = arg.partition("=")[2]
        elif arg.startswith("-") and arg != "--":
            continue  # --version, --help: no value
        else:
            return None  # the command's name: its options are its own (report's --lang)
        return value if value in LANGS else None
    return None


@contextmanager
def _click_speaks(lang: str) -> Iterator[None]:
    """click's messages in ``lang`` while the block runs: probe's catalog as the process's
    text domain, and ``lang`` as ``LANGUAGE`` (what click's gettext reads); both restored."""
    domain, before = gettext.textdomain(), os.environ.get("LANGUAGE")
    gettext.bindtextdomain(DOMAIN, LOCALES)
    gettext.textdomain(DOMAIN)
    os.environ["LANGUAGE"] = lang  # "en": no catalog, so click's own English
    try:
        yield
    finally:
        gettext.textdomain(domain)
        if before is None:
            os.environ.pop("LANGUAGE", None)
        else:
            os.environ["LANGUAGE"] = before


def main(argv: list[str] | None = None) -> int:
    """Entry point: one-line errors, exit 2 for bad input and 1 for internal errors; a command
    may return its own status (``probe status``: 3, 4)."""
    args = sys.argv[1:] if argv is None else argv
    _use(_lang_in(args) or language())  # for an error before cli() reads --lang
    with _click_speaks(_lang):
        return _main(args)


def _main(args: list[str]) -> int:
    try:
        code = cli.main(args=args, prog_name="probe", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo(_("probe: interrupted"), err=True)
        return 130
    except InputError as exc:
        message = exc.translated(translator(_lang).gettext).replace("\n", " ")
        click.echo(_("probe: error: {message}").format(message=message), err=True)
        return 2
    except _NO_ARGS_IS_HELP as exc:
        # Bare "probe", "probe targets", "probe helper": their help, as --help prints it. A
        # request for orientation, not an error: exit status 0.
        click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
        return 0
    except click.ClickException as exc:
        message = exc.format_message().replace("\n", " ")
        click.echo(_("probe: error: {message}").format(message=message), err=True)
        return 2 if isinstance(exc, UsageInputError | click.UsageError) else exc.exit_code
    except KeyboardInterrupt:
        click.echo(_("probe: interrupted"), err=True)
        return 130
    except Exception as exc:  # an internal error: say so plainly
        if os.environ.get("PROBE_DEBUG"):
            raise
        click.echo(
            _("probe: internal error: {kind}: {message}").format(
                kind=type(exc).__name__, message=exc
            ),
            err=True,
        )
        return 1
    return code if isinstance(code, int) else 0


# -- analysts: export, report, merge, Datasette -------------------------------------------------
def filter_options(f: F) -> F:
    """The filters every export and the report take: time, target, category, network, verdict."""
    for decorator in reversed(
        [
            click.option("--since", metavar="T", help="Only measurements started at or after T."),
            click.option("--until", metavar="T", help="Only measurements started before T."),
            click.option(
                "--target", "target_names", multiple=True, metavar="NAME", help="Only this target."
            ),
            click.option(
                "--category",
                "categories",
                multiple=True,
                metavar="CODE",
                help="Only this category.",
            ),
            click.option(
                "--network",
                "networks",
                multiple=True,
                metavar="ASN",
                help="Only this network: an AS number (AS7552, as7552 or 7552), or for a "
                "measurement without one its resolver under test (udp://IP:PORT).",
            ),
            click.option("--blocked", is_flag=True, help="Only blocked (or anomalous) ones."),
            click.option("--throttled", is_flag=True, help="Only throttled ones."),
        ]
    ):
        f = decorator(f)
    return f


def _row_filter(flags: dict[str, Any]) -> Any:
    import re

    from probe.analyst.export import RowFilter, parse_time
    from probe.errors import ResolverSpecError
    from probe.network import normalise_asn

    def network(text: str) -> str:
        """A --network value as NETWORK_SQL holds it: ``137``, ``as137``, ``AS137`` -> AS137;
        a resolver (a measurement without an AS number) as ``--resolver`` reads it, or as
        exported; ``?`` for neither known."""
        value = text.strip()
        try:
            if re.fullmatch(r"(?i:as)?[0-9]+", value):
                return normalise_asn(value)
            if value == "?":
                return value
            try:
                return parse_resolver(value, what="--network").address
            except ResolverSpecError:
                if value.startswith(("udp://", "tls://", "https://")):
                    return value  # as exported (a scrubbed address reads back as itself)
                raise
        except ValueError:
            fail(
                _(
                    "--network: {value} is neither an AS number (AS7552, as7552 or 7552) nor a "
                    "resolver (udp://IP:PORT, tls://IP:PORT, https://HOST/PATH)"
                ).format(value=repr(text[:40]))
            )

    return RowFilter(
        since=parse_time(flags["since"], "--since") if flags["since"] else None,
        until=parse_time(flags["until"], "--until") if flags["until"] else None,
        targets=tuple(flags["target_names"]),
        categories=tuple(flags["categories"]),
        networks=tuple(network(n) for n in flags["networks"]),
        blocked=flags["blocked"],
        throttled=flags["throttled"],
    )


@cli.command()
@db_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="jsonl",
    show_default=True,
    help="ooni: OONI Web Connectivity measurements; parquet: a dataset folder (probe[analyst]).",
)
@click.option(
    "-o", "--output", metavar="PATH", help="File, or folder for parquet (default: stdout)."
)
@click.option("--excel", is_flag=True, help="CSV: start with a byte-order mark for Excel.")
@filter_options
def export(
    db_path: str | None,
    config_path: str | None,
    fmt: str,
    output: str | None,
    excel: bool,
    **flags: Any,
) -> None:
    """Export one record per measurement (JSON Lines, CSV, OONI's format or Parquet).

    \b
    Example:
      probe export --db results/probe.db --format csv --since 2026-11-01 -o nov.csv
      probe export --format parquet -o dataset/ --blocked --network AS7552
    """
    from probe.analyst.export import export as run_export

    f = _row_filter(flags)
    if fmt == "parquet":
        _need_analyst("probe export --format parquet", ("pyarrow",))
    db = resolve_db(db_path, config_path)
    if is_dataset(db):  # a fleet dataset (probe fleet ingest), read with DuckDB
        _need_analyst("probe export from a fleet dataset", ("duckdb",))
        from probe.analyst.fleet.query import export as export_dataset

        n = export_dataset(db, f, fmt, output, excel=excel)
    else:
        store = _open_store(db, create=False, readonly=True)
        n = run_export(store, f, fmt, output, excel=excel)
    click.echo(
        ngettext("{n} measurement exported", "{n} measurements exported", n).format(n=n), err=True
    )


def _need_analyst(what: str, modules: tuple[str, ...] = ("matplotlib",)) -> None:
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        # From a checkout its own install command; else the index's name ("probe" there is not us).
        advice = install_advice("analyst")
        fail(
            _("{what} needs the analyst extra: {advice} (no {module})").format(
                what=what, advice=advice, module=missing[0]
            )
        )


@cli.command()
@db_option
@click.option("-o", "--output", required=True, metavar="FILE", help="The HTML file to write.")
@click.option(
    "--lang",
    type=click.Choice(["en", "vi"]),
    default=None,
    help="Labels (default: probe --lang, else LANG and the like).",
)
@click.option("--png", "png_dir", metavar="DIR", help="Also write each plot as a PNG here.")
@filter_options
def report(
    db_path: str | None,
    config_path: str | None,
    output: str,
    lang: str | None,
    png_dir: str | None,
    **flags: Any,
) -> None:
    """Write one self-contained HTML report: timelines, throughput, DNS answers, evidence.

    \b
    Example:
      probe report --db results/probe.db -o report.html --since 2026-11-01 --lang vi
    """
    _need_analyst("probe report")
    from probe.analyst.report.html import write_report

    f = _row_filter(flags)
    db = resolve_db(db_path, config_path)
    if is_dataset(db):  # a fleet dataset (probe fleet ingest), read with DuckDB
        _need_analyst("probe report over a fleet dataset", ("duckdb",))
        from probe.analyst.fleet.query import reads

        store = reads(db)
    else:
        store = _open_store(db, create=False, readonly=True)
    summary = write_report(store, f, output, lang=lang or _lang, png_dir=png_dir)
    click.echo(summary, err=True)


@cli.command()
@click.argument("sources", nargs=-1, required=True, metavar="DB...")
@click.option("-o", "--output", required=True, metavar="FILE", help="The merged database.")
@click.option(
    "--timestamp",
    "tsa_url",
    metavar="URL",
    help="Then ask this RFC 3161 timestamp authority to stamp the signed chain heads merged.",
)
@click.option(
    "--tsa-ca",
    metavar="FILE",
    help="The TSA's root certificate(s), PEM: each token is verified against them.",
)
def merge(sources: tuple[str, ...], output: str, tsa_url: str | None, tsa_ca: str | None) -> None:
    """Merge probe databases (several volunteers') into one; merging twice adds nothing.
    With --timestamp, the analyst (never a volunteer's probe) then obtains a timestamp of
    every signed chain head not stamped by that authority yet; probe verify shows them.

    \b
    Example:
      probe merge hanoi.db saigon.db -o fleet.db
      probe merge hanoi.db -o fleet.db --timestamp https://tsa.example/tsr --tsa-ca tsa.pem
    """
    from probe.analyst.merge import merge as run_merge

    roots = None
    if tsa_url is not None:
        from probe.analyst.timestamp import load_roots

        if tsa_ca is None:
            raise UsageInputError(_("--timestamp needs --tsa-ca FILE, the TSA's root certificate"))
        roots = load_roots(tsa_ca)
    for line in run_merge(list(sources), output):
        click.echo(line)
    if tsa_url is not None and roots is not None:
        from probe.analyst.timestamp import timestamp_heads

        stamped = timestamp_heads(output, tsa_url, roots)
        click.echo(
            ngettext(
                "{path}: {n} signed head timestamped by {url}",
                "{path}: {n} signed heads timestamped by {url}",
                len(stamped),
            ).format(path=output, n=len(stamped), url=tsa_url)
        )


@cli.command()
@click.argument("database", metavar="DB", type=click.Path(dir_okay=False), required=False)
@click.option("--bundle", metavar="FILE", help="Check an evidence bundle instead (probe evidence).")
@click.option(
    "--tsa-ca",
    metavar="FILE",
    help="Check each timestamp (probe merge --timestamp) against these TSA root certificates.",
)
def verify(database: str | None, bundle: str | None, tsa_ca: str | None) -> int:
    """Check that a probe database is whole: every measurement's hash, every link of its
    chain, every body and every signed head. One line per problem, naming the measurement
    and what happened to it (altered, removed, inserted, reordered, body swapped); exit
    status 0 when whole, 1 when not. Opens the database read-only and changes nothing.

    \b
    Example:
      probe verify results/probe.db
      probe verify --bundle evidence.zip
    """
    if (database is None) == (bundle is None):
        raise UsageInputError(_("give a database (DB) or --bundle FILE, one of them"))
    roots = None
    if tsa_ca is not None:
        from probe.analyst.timestamp import load_roots

        roots = load_roots(tsa_ca)
    if bundle is not None:
        from probe.analyst.bundle import verify as verify_bundle

        t = translator(_lang)
        code, lines = verify_bundle(bundle, t.gettext, t.ngettext, roots)
        for line in lines:
            click.echo(line)
        return code
    assert database is not None  # one of the two, as checked above
    from probe.analyst.verify import Summary
    from probe.analyst.verify import verify as run_verify

    summary = Summary()
    gettext = translator(_lang).gettext
    for problem in run_verify(database, summary, roots):
        click.echo(problem.line(gettext))
    chains = len([d for d in summary.chains.values() if d.measurements])
    counted = {
        "path": database,
        "measurements": ngettext(
            "{n} measurement", "{n} measurements", summary.measurements
        ).format(n=summary.measurements),
        "chains": ngettext("{n} chain", "{n} chains", chains).format(n=chains),
    }
    if summary.problems:
        click.echo(
            ngettext(
                "{path}: not whole: {n} problem, in {measurements}",
                "{path}: not whole: {n} problems, in {measurements}",
                summary.problems,
            ).format(n=summary.problems, **counted)
        )
    else:
        click.echo(
            _(
                "{path}: whole: {measurements} in {chains}; every hash, link and signature holds"
            ).format(**counted)
        )
    for d in summary.chains.values():
        click.echo(
            _("device {key}: seq 1..{last}, {heads} signed heads, the last at {at}").format(
                key=d.key, last=d.last_seq, heads=d.heads, at=d.last_signed or "-"
            )
        )
        if d.last_seq > d.signed_seq:
            first = d.signed_seq + 1
            where = str(first) if first == d.last_seq else f"{first}..{d.last_seq}"
            click.echo(
                _(
                    "device {key}: seq {where} linked after its last signed head, not yet signed"
                ).format(key=d.key, where=where)
            )
    if summary.pruned:
        click.echo(
            ngettext(
                "{n} measurement pruned from {chains}, as its device recorded and signed",
                "{n} measurements pruned from {chains}, as their devices recorded and signed",
                summary.pruned,
            ).format(
                n=summary.pruned,
                chains=ngettext("{n} chain", "{n} chains", summary.pruned_chains).format(
                    n=summary.pruned_chains
                ),
            )
        )
    if summary.unchained:
        click.echo(
            ngettext(
                "{n} measurement stored before the chain began (unchained, not checked)",
                "{n} measurements stored before the chain began (unchained, not checked)",
                summary.unchained,
            ).format(n=summary.unchained)
        )
    if summary.unverified:
        click.echo(
            ngettext(
                "{n} measurement merged from a source whose chain did not verify there "
                "(unverified_measurements, chain_problems)",
                "{n} measurements merged from sources whose chains did not verify there "
                "(unverified_measurements, chain_problems)",
                summary.unverified,
            ).format(n=summary.unverified)
        )
    if summary.timestamps:
        stamped = ngettext(
            "{n} signed head timestamped", "{n} signed heads timestamped", summary.timestamps
        ).format(n=summary.timestamps)
        if summary.timestamps_bad:
            click.echo(
                ngettext("{stamped}; {n} does not hold", "{stamped}; {n} do not hold",
                         summary.timestamps_bad).format(stamped=stamped, n=summary.timestamps_bad)
            )  # fmt: skip
        elif summary.timestamps_checked:
            click.echo(_("{stamped}; every timestamp holds").format(stamped=stamped))
        else:
            click.echo(
                _("{stamped}; not checked (give --tsa-ca FILE, the TSA's root)").format(
                    stamped=stamped
                )
            )
    return 1 if summary.problems else 0


@cli.command()
@db_option
@click.option("--id", "ids", multiple=True, metavar="ID", help="This measurement (repeatable).")
@click.option(
    "--target", "target_names", multiple=True, metavar="NAME", help="This target's measurements."
)
@click.option("--since", metavar="T", help="Only measurements started at or after T.")
@click.option("--until", metavar="T", help="Only measurements started before T.")
@click.option("-o", "--output", required=True, metavar="FILE", help="The bundle (a zip) to write.")
def evidence(
    db_path: str | None,
    config_path: str | None,
    ids: tuple[str, ...],
    target_names: tuple[str, ...],
    since: str | None,
    until: str | None,
    output: str,
) -> int:
    """Write a self-contained evidence bundle of chosen measurements: their records and page
    contents, the links of their chain up to a signed head, the heads and the device's public
    key, the verdicts, a summary in English and Vietnamese, and a verifier that needs only the
    bundle (Python, cryptography, rfc8785). Never the volunteer's address, paths or settings.

    \b
    Example:
      probe evidence --db results/probe.db --target news --since 2026-12-01 -o evidence.zip
      probe evidence --id 01JE5Z... --id 01JE60... -o two.zip
    """
    from probe.analyst.bundle import NotWhole, write
    from probe.analyst.export import RowFilter, parse_time

    row_filter = None
    if target_names or since or until:
        row_filter = RowFilter(
            since=parse_time(since, "--since") if since else None,
            until=parse_time(until, "--until") if until else None,
            targets=target_names,
        )
    elif not ids:
        raise UsageInputError(_("choose measurements: --id, --target, --since or --until"))
    try:
        written = write(resolve_db(db_path, config_path), output, ids=ids, row_filter=row_filter)
    except NotWhole as exc:
        gettext = translator(_lang).gettext
        for problem in exc.problems:
            click.echo(problem.line(gettext))
        click.echo(
            _("{path}: not written: the chain does not hold there (probe verify DB)").format(
                path=output
            ),
            err=True,
        )
        return 1
    click.echo(
        ngettext(
            "{path}: {n} measurement bundled, with its chain and signed heads",
            "{path}: {n} measurements bundled, with their chain and signed heads",
            written.measurements,
        ).format(path=written.path, n=written.measurements)
    )
    return 0


@cli.command("datasette-metadata")
@click.argument("databases", nargs=-1, metavar="[DB...]")
def datasette_metadata(databases: tuple[str, ...]) -> None:
    """Print Datasette metadata for probe databases: descriptions, views, canned queries.

    \b
    Example:
      probe datasette-metadata fleet.db > metadata.json && datasette fleet.db -m metadata.json
    """
    from probe.analyst.datasette import metadata_text

    click.echo(metadata_text(tuple(Path(d).stem for d in databases)), nl=False)


# -- throughput discovery -----------------------------------------------------------------------
@targets.command("discover")
@settings_options(MEASURE)
def targets_discover(config_path: str | None, **flags: Any) -> None:
    """Show the object each target's throughput test would download, and why.

    Fetches every target's page (through the resolver under test, as a round does), looks for
    the site's own resources and checks their sizes; stores nothing. Targets with no object
    get the SNI A/B test with a test helper. Pin a choice with throughput_url in targets.yaml.

    \b
    Example:
      probe targets discover --targets targets.yaml --profile mobile
    """
    from probe.round import discover_objects

    settings = load_settings(flags, config_path)
    for name, obj, why in asyncio.run(discover_objects(settings)):
        if obj is None:
            click.echo(_("{name}: none found (the SNI A/B test, with a helper)").format(name=name))
        elif obj.size is None:
            click.echo(f"{name}: {obj.url}")
        elif obj.repeat > 1:
            click.echo(
                _("{name}: {url} ({size} bytes, fetched {repeat} times a flow)").format(
                    name=name, url=obj.url, size=obj.size, repeat=obj.repeat
                )
            )
        else:
            click.echo(
                _("{name}: {url} ({size} bytes)").format(name=name, url=obj.url, size=obj.size)
            )
        click.echo(f"    {why}")


@cli.command()
@click.option("--db", "db", metavar="FILE", help="SQLite database (default: the settings' db).")
@settings_options(UPLOAD)
def upload(config_path: str | None, **flags: Any) -> None:
    """Send new measurements to the collective's bucket: batches sealed to its key, signed
    by this probe's, kept until the store acknowledges them (a failed upload waits for the
    next run). Set upload_url, collective_key and upload_credentials (or upload_presigned)
    in the settings; the daemon uploads on its own schedule (upload_interval).

    \b
    Example:
      probe upload --upload-url https://s3.example.org/fleet --upload-proxy socks5h://127.0.0.1:9050
    """
    from probe.fleet import upload as fleet_upload

    settings = load_settings(flags, config_path)
    if settings.upload_url is None:
        fail(_("upload_url: not set (see 'probe upload --help')"))
    r = fleet_upload.run(settings)
    assert r is not None
    click.echo(
        _(
            "{made} batches made, {sent} sent ({n} measurements, {bytes} bytes), {waiting} waiting"
        ).format(made=r.made, sent=r.sent, n=r.measurements, bytes=r.bytes, waiting=r.waiting)
    )
    if r.failure is not None:
        click.echo(_("the store did not take a batch: {failure}").format(failure=r.failure))
    if r.budget is not None:
        click.echo(_("waiting for the data budget: {why}").format(why=r.budget))
    if r.pruned:
        click.echo(_("{n} uploaded measurements deleted here (keep_uploaded)").format(n=r.pruned))


@cli.group()
def fleet() -> None:
    """The collective's side of the fleet road: keys, and batches into a Parquet dataset."""


@fleet.command("keygen")
@click.argument("key_file", metavar="KEYFILE")
def fleet_keygen(key_file: str) -> None:
    """Make the collective's key pair: the private key to KEYFILE (never overwritten), the
    public one to KEYFILE.pub, which the probes seal their batches to.

    \b
    Example:
      probe fleet keygen collective.key    # then hand out collective.key.pub
    """
    from probe.analyst.fleet.ingest import keygen

    click.echo(keygen(key_file))


@fleet.command("ingest")
@click.argument("source", metavar="SOURCE")
@click.argument("dataset", metavar="DATASET")
@click.option(
    "--key", "key_file", required=True, metavar="KEYFILE", help="The collective's private key."
)
@click.option(
    "--endpoint",
    metavar="URL",
    help="The S3 store of an s3://BUCKET/PREFIX source (keys from AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY).",
)
@click.option(
    "--max-batch-bytes",
    default=64 * 1024 * 1024,
    show_default=True,
    type=click.IntRange(min=1024),
    help="A larger batch object is refused unread.",
)
@click.option("--no-compact", is_flag=True, help="Leave small files as they are.")
@click.option(
    "--publish",
    metavar="s3://BUCKET/PREFIX",
    help="Then mirror the dataset's files there (at --endpoint), for ClickHouse or Spark.",
)
def fleet_ingest(
    source: str, dataset: str, key_file: str, endpoint: str | None, max_batch_bytes: int,
    no_compact: bool, publish: str | None,
) -> None:  # fmt: skip
    """Read new batches from SOURCE (a folder, or s3://BUCKET/PREFIX) into the Parquet
    dataset DATASET (a folder): opened with the collective's key, signatures and chains
    checked, every record validated as probe merge does, de-duplicated; hostile batches
    refused with their reason. Running it again reads only new batches.

    \b
    Example:
      probe fleet ingest s3://fleet/batches fleet-dataset --key collective.key \\
          --endpoint https://s3.example.org
      probe events --db fleet-dataset
    """
    _need_analyst("probe fleet ingest", ("pyarrow", "duckdb"))
    from probe.analyst.fleet.dataset import Dataset
    from probe.analyst.fleet.ingest import ingest, load_private_key, open_source

    private = load_private_key(key_file)
    src = open_source(source, endpoint=endpoint)
    ds = Dataset.open(dataset)
    try:
        report = ingest(
            src, ds, collective_private_key=private, max_bytes=max_batch_bytes,
            compact=not no_compact,
        )  # fmt: skip
        for line in report.lines(source, dataset, ds.counts()):
            click.echo(line)
        if publish is not None:
            from probe.analyst.fleet.ingest import publish as publish_dataset

            put, removed = publish_dataset(ds, publish, endpoint=endpoint)
            click.echo(
                _("{target}: {put} files put, {removed} removed").format(
                    target=publish, put=put, removed=removed
                )
            )
    finally:
        ds.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
