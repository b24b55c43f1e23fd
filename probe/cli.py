"""The command line: a thin skin over the library (parse, call one function, format).

Exit status: 0 whatever the network did; 2 on bad input (targets file, flags, database), with
one line ``probe: error: ...`` naming the file, line or field; 1 on an internal error.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import yaml

from probe import __version__
from probe.classify.fingerprints import FingerprintError, FingerprintSet, builtin
from probe.classify.fingerprints import load as load_fingerprints
from probe.export import ExportError, parse_time, records
from probe.export import write as write_export
from probe.measure.dns import ResolverSpecError, parse_resolver, system_resolver
from probe.store import Store, StoreError
from probe.targets import TargetsError, import_citizenlab_csv, load_targets

DEFAULT_CONTROL_RESOLVER = "https://1.1.1.1/dns-query"
DEFAULT_DB = "results/probe.db"
F = TypeVar("F", bound=Callable[..., Any])


class InputError(click.ClickException):
    """Bad input: one line, exit status 2."""

    exit_code = 2


def fail(message: str) -> NoReturn:
    raise InputError(message)


def db_option(f: F) -> F:
    return click.option(
        "--db",
        "db_path",
        default=DEFAULT_DB,
        show_default=True,
        type=click.Path(dir_okay=False),
        help="SQLite database.",
    )(f)


def fingerprints_option(f: F) -> F:
    return click.option(
        "--fingerprints",
        "fingerprint_paths",
        multiple=True,
        type=click.Path(dir_okay=False),
        help="Extra blockpage fingerprints in OONI's CSV format (repeatable).",
    )(f)


def _fingerprints(paths: tuple[str, ...]) -> FingerprintSet:
    fps = builtin()
    for p in paths:
        try:
            fps = fps + load_fingerprints(p)
        except FingerprintError as exc:
            fail(str(exc))
    return fps


def _open_store(path: str, *, create: bool = True) -> Store:
    try:
        return Store.open(path, create=create)
    except StoreError as exc:
        fail(str(exc))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="probe")
def cli() -> None:
    """Measure network interference (DNS, TCP, TLS, HTTP) and keep the evidence in SQLite.

    \b
    Example:
      probe run                      # measure targets.yaml once, store in results/probe.db
      probe export --format jsonl -o out.jsonl
    """


@cli.command()
@click.option(
    "--targets",
    "targets_path",
    default="targets.yaml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Target list (YAML).",
)
@db_option
@click.option(
    "--only", multiple=True, metavar="NAME", help="Measure only this target (repeatable)."
)
@click.option(
    "--resolver",
    metavar="IP[:PORT]",
    help="Resolver under test (default: the first nameserver in /etc/resolv.conf).",
)
@click.option(
    "--control-resolver",
    default=DEFAULT_CONTROL_RESOLVER,
    show_default=True,
    metavar="URL",
    help="Honest resolver: https://HOST/dns-query, tls://IP[:PORT] or udp://IP[:PORT].",
)
@click.option(
    "--ca-bundle",
    type=click.Path(exists=True, dir_okay=False),
    help="Extra trust anchors (PEM), added to the system's.",
)
@click.option("--concurrency", default=16, show_default=True, type=click.IntRange(1, 256))
@click.option(
    "--timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0.1, 300),
    help="Seconds allowed for each step.",
)
@click.option(
    "--deadline",
    default=90.0,
    show_default=True,
    type=click.FloatRange(1, 3600),
    help="Seconds allowed for each target, all steps included.",
)
@fingerprints_option
@click.option(
    "--helper",
    "helper_url",
    metavar="URL",
    help="A Web Connectivity test helper (ours or OONI's) to ask about every target.",
)
@click.option(
    "--helper-token-file",
    type=click.Path(exists=True, dir_okay=False),
    help="A file holding the helper's bearer token.",
)
@click.option(
    "--helper-bulk-address",
    "bulk_addresses",
    multiple=True,
    metavar="IP",
    help="The helper's addresses for the SNI A/B test (up to two; default: the helper URL's).",
)
@click.option(
    "--profile",
    type=click.Choice(["default", "mobile"]),
    default="default",
    show_default=True,
    help="Throughput tests: default (1 MiB, 8 s, 3 trials) or mobile (256 KiB, 4 s, 2 trials, "
    "50 MB a day unless --max-bytes-per-day says otherwise).",
)
@click.option(
    "--max-bytes-per-day",
    metavar="BYTES",
    help="Daily data cap (e.g. 200M, 1G), checked before each throughput test starts.",
)
@click.option("--no-throughput", is_flag=True, help="Skip throughput tests this round.")
@click.option("--throughput-bytes", metavar="BYTES", help="Cap on each flow (overrides profile).")
@click.option(
    "--throughput-seconds",
    type=click.FloatRange(0.5, 60),
    help="Time cap on each flow (overrides the profile).",
)
@click.option(
    "--throughput-trials", type=click.IntRange(1, 20), help="Trials per test (overrides profile)."
)
@click.option(
    "--allow-loopback",
    is_flag=True,
    hidden=True,
    help="Connect to loopback answers (tests and the lab only).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary table.")
def run(
    targets_path: str,
    db_path: str,
    only: tuple[str, ...],
    resolver: str | None,
    control_resolver: str,
    ca_bundle: str | None,
    concurrency: int,
    timeout: float,
    deadline: float,
    fingerprint_paths: tuple[str, ...],
    helper_url: str | None,
    helper_token_file: str | None,
    bulk_addresses: tuple[str, ...],
    profile: str,
    max_bytes_per_day: str | None,
    no_throughput: bool,
    throughput_bytes: str | None,
    throughput_seconds: float | None,
    throughput_trials: int | None,
    allow_loopback: bool,
    quiet: bool,
) -> None:
    """Measure every target once, classify each, and store the results.

    \b
    Example:
      probe run --only facebook --resolver 192.168.1.1 --db results/probe.db
    """
    from probe import report
    from probe.control import HelperClient
    from probe.measure.runner import MeasureConfig
    from probe.measure.throughput import Plan
    from probe.round import ThroughputOptions, run_round

    try:
        tl = load_targets(targets_path)
        if only:
            tl = tl.select(only)
        spec = parse_resolver(resolver) if resolver else system_resolver()
        control = parse_resolver(control_resolver, what="--control-resolver")
    except (TargetsError, ResolverSpecError) as exc:
        fail(str(exc))
    fps = _fingerprints(fingerprint_paths)
    helper = None
    if helper_url:
        if not helper_url.startswith(("https://", "http://")):
            fail(f"--helper: {helper_url!r} must be an http(s):// URL")
        token = _read_token(helper_token_file) if helper_token_file else None
        helper = HelperClient(helper_url, token=token, ca_bundle=ca_bundle)
    cap = _parse_bytes(max_bytes_per_day, "--max-bytes-per-day") if max_bytes_per_day else None
    if cap is None and profile == "mobile":
        cap = 50 * 1000 * 1000
    if len(bulk_addresses) > 2:
        fail("--helper-bulk-address: at most two")
    store = _open_store(db_path)
    tp = None
    if not no_throughput:
        today = datetime.now(UTC).strftime("%Y-%m-%dT00:00:00.000Z")
        bulk = helper.bulk(bulk_addresses) if helper is not None else None
        plan = Plan.profile(profile)
        if throughput_bytes:
            n = _parse_bytes(throughput_bytes, "--throughput-bytes")
            plan = replace(plan, max_bytes=n, ab_bytes=n)
        if throughput_seconds:
            plan = replace(
                plan,
                max_seconds=throughput_seconds,
                ab_seconds=min(plan.ab_seconds, throughput_seconds),
            )
        if throughput_trials:
            plan = replace(plan, trials=throughput_trials)
        tp = ThroughputOptions(plan, cap, lambda: store.bytes_used_since(today), bulk)
    cfg = MeasureConfig(
        resolver=spec,
        control_resolver=control,
        ca_bundle=ca_bundle,
        timeout=timeout,
        deadline=deadline,
        allow_loopback=allow_loopback,
    )
    total = len(tl.targets) + len(tl.controls)
    with report.Progress(total, enabled=not quiet) as progress:

        def save(m: Any) -> None:
            store.save(m)
            progress.advance(m)

        result = asyncio.run(
            run_round(
                tl.targets,
                tl.controls,
                cfg,
                fingerprints=fps,
                concurrency=concurrency,
                device_id=store.device_id,
                on_measurement=save,
                helper=helper,
                throughput=tp,
            )
        )
    store.save_round(
        {
            "id": result.id,
            "device_id": store.device_id,
            "started_at": result.started_at,
            "finished_at": result.finished_at,
            "targets": len(result.measurements),
            "network_ok": None if result.network_ok is None else int(result.network_ok),
            "bytes_used": result.bytes_used,
            "software": f"probe/{__version__}",
        }
    )
    if not quiet:
        report.summary(result)
    click.echo(
        f"{len(result.measurements)} measurements stored in {db_path} "
        f"({result.bytes_used} bytes used)",
        err=True,
    )


def _parse_bytes(text: str, flag: str) -> int:
    units = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "KI": 2**10, "MI": 2**20, "GI": 2**30}
    t = text.strip().upper().removesuffix("B")
    num = t.rstrip("KMGI")
    unit = t[len(num) :]
    if not num.isdigit() or unit not in units:
        fail(f"{flag}: {text!r} is not a size (e.g. 500000000, 500M, 1G)")
    return int(num) * units[unit]


def _read_token(path: str) -> str:
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{path}: cannot read the token ({exc})")
    if not token or any(c.isspace() for c in token):
        fail(f"{path}: the token must be one word")
    return token


@cli.group()
def helper() -> None:
    """Run a Web Connectivity test helper (a control vantage for probes)."""


@helper.command("serve")
@click.option("--listen", default="127.0.0.1:8080", show_default=True, metavar="ADDR:PORT")
@click.option(
    "--upstream",
    metavar="IP[:PORT]",
    help="Resolver for the helper's own lookups and its DoH endpoint "
    "(default: the first nameserver in /etc/resolv.conf).",
)
@click.option(
    "--token-file",
    type=click.Path(exists=True, dir_okay=False),
    help="Require this bearer token (a file holding one word).",
)
@click.option(
    "--max-in-flight",
    default=32,
    show_default=True,
    type=click.IntRange(1, 4096),
    help="Requests measured at once; 503 past it.",
)
@click.option(
    "--allow-network",
    "allow_networks",
    multiple=True,
    metavar="CIDR",
    help="Measure addresses in this private network anyway (labs only).",
)
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False))
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--ca-bundle",
    type=click.Path(exists=True, dir_okay=False),
    help="Extra trust anchors (PEM) for the sites it measures.",
)
def helper_serve(
    listen: str,
    upstream: str | None,
    token_file: str | None,
    max_in_flight: int,
    allow_networks: tuple[str, ...],
    tls_cert: str | None,
    tls_key: str | None,
    ca_bundle: str | None,
) -> None:
    """Serve the test helper protocol (POST /) and DoH (/dns-query).

    \b
    Example:
      probe helper serve --listen 0.0.0.0:8443 --tls-cert cert.pem --tls-key key.pem
    """
    import ipaddress

    from probe.helper.server import serve

    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if not port.isdigit() or not 0 < int(port) < 65536 or not host:
        fail(f"--listen: {listen!r} is not ADDR:PORT")
    try:
        ipaddress.ip_address(host)
        spec = parse_resolver(upstream, what="--upstream") if upstream else system_resolver()
        for net in allow_networks:
            ipaddress.ip_network(net, strict=False)
    except ResolverSpecError as exc:
        fail(str(exc))
    except ValueError as exc:
        fail(f"--listen/--allow-network: {exc}")
    if bool(tls_cert) != bool(tls_key):
        fail("--tls-cert and --tls-key go together")
    token = _read_token(token_file) if token_file else None
    serve(
        host,
        int(port),
        spec,
        token=token,
        max_in_flight=max_in_flight,
        allow_networks=allow_networks,
        tls_cert=tls_cert,
        tls_key=tls_key,
        ca_bundle=ca_bundle,
    )


@cli.group()
def targets() -> None:
    """Work with target lists."""


@targets.command("check")
@click.argument("path", default="targets.yaml", type=click.Path(dir_okay=False))
def targets_check(path: str) -> None:
    """Validate a target list.

    \b
    Example:
      probe targets check targets.yaml
    """
    try:
        tl = load_targets(path)
    except TargetsError as exc:
        fail(str(exc))
    click.echo(f"{path}: {len(tl.targets)} targets, {len(tl.controls)} controls: OK")


@targets.command("import")
@click.argument("csv_path", type=click.Path(dir_okay=False))
@click.option(
    "--targets",
    "targets_path",
    type=click.Path(dir_okay=False),
    help="Existing target list: URLs already in it are skipped.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Write a complete targets file here (default: entries to stdout).",
)
def targets_import(csv_path: str, targets_path: str | None, output: str | None) -> None:
    """Turn a Citizen Lab test-list CSV into targets.yaml entries.

    \b
    Example:
      probe targets import vn.csv --targets targets.yaml > more-targets.yaml
    """
    try:
        existing = load_targets(targets_path) if targets_path else None
        entries, skipped = import_citizenlab_csv(csv_path, existing)
    except TargetsError as exc:
        fail(str(exc))
    text = yaml.safe_dump({"targets": entries}, allow_unicode=True, sort_keys=False)
    if output:
        tmp = Path(output).with_name(f".{Path(output).name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, output)
    else:
        click.echo(text, nl=False)
    click.echo(f"{len(entries)} entries from {csv_path}, {skipped} duplicates skipped", err=True)


@cli.command()
@db_option
@click.option(
    "--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="File (default: stdout).")
@click.option("--since", metavar="T", help="Only measurements started at or after T (ISO-8601).")
@click.option("--until", metavar="T", help="Only measurements started before T (ISO-8601).")
@click.option(
    "--target", "target_names", multiple=True, metavar="NAME", help="Only this target (repeatable)."
)
def export(
    db_path: str,
    fmt: str,
    output: str | None,
    since: str | None,
    until: str | None,
    target_names: tuple[str, ...],
) -> None:
    """Export one record per measurement (JSON Lines or CSV).

    \b
    Example:
      probe export --db results/probe.db --format csv --since 2026-11-01 -o nov.csv
    """
    try:
        lo = parse_time(since, "--since") if since else None
        hi = parse_time(until, "--until") if until else None
    except ExportError as exc:
        fail(str(exc))
    store = _open_store(db_path, create=False)
    n = write_export(records(store, since=lo, until=hi, targets=target_names), fmt, output)
    click.echo(f"{n} measurements exported", err=True)


@cli.command()
@db_option
@click.option("--target", "target_names", multiple=True, metavar="NAME", help="Only this target.")
@click.option("--open", "only_open", is_flag=True, help="Only events still open.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "jsonl"]), default="table", show_default=True
)
def events(db_path: str, target_names: tuple[str, ...], only_open: bool, fmt: str) -> None:
    """List throttling events: where a target fell well below its own throughput history.

    \b
    Example:
      probe events --db results/probe.db --open
    """
    import json

    from probe.events import find_events

    store = _open_store(db_path, create=False)
    found = [
        e for e in find_events(store.throughput_tests(target_names)) if e.open or not only_open
    ]
    if fmt == "jsonl":
        for e in found:
            click.echo(json.dumps(e.as_dict()))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(found)} throttling events")
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
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def import_(
    db_path: str, fmt: str, fingerprint_paths: tuple[str, ...], files: tuple[str, ...]
) -> None:
    """Import measurements from elsewhere, classified by our rules (theirs kept beside).

    \b
    Example:
      probe import --format ooni 2026-11-01_VN_webconnectivity.jsonl.gz --db results/ooni.db
    """
    from probe.importer import import_ooni

    paths = [Path(f) for f in files]
    for p in paths:
        if not p.is_file():
            fail(f"{p}: no such file")
    fps = _fingerprints(fingerprint_paths)
    store = _open_store(db_path)
    try:
        report = import_ooni(store, paths, fps)
    except (OSError, EOFError, UnicodeDecodeError) as exc:  # unreadable or truncated gzip
        fail(f"{files[0] if len(files) == 1 else 'input'}: cannot read ({exc})")
    for line in report.skipped:
        click.echo(f"probe: skipped {line}", err=True)
    click.echo(
        f"{report.imported} imported, {report.duplicates} already there, "
        f"{len(report.skipped)} skipped, from {report.read} records"
    )


@cli.command()
@db_option
@fingerprints_option
def reclassify(db_path: str, fingerprint_paths: tuple[str, ...]) -> None:
    """Re-run the current rules over every stored measurement.

    \b
    Example:
      probe reclassify --db results/probe.db --fingerprints fingerprints_http.csv
    """
    from probe.reclassify import reclassify as run_reclassify

    fps = _fingerprints(fingerprint_paths)
    store = _open_store(db_path, create=False)
    total, changed = run_reclassify(store, fps)
    click.echo(f"{total} measurements reclassified, {changed} verdicts changed")


def main(argv: list[str] | None = None) -> int:
    """Entry point: one-line errors, exit 2 for bad input and 1 for internal errors."""
    try:
        cli.main(args=argv, prog_name="probe", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("probe: interrupted", err=True)
        return 130
    except click.ClickException as exc:
        message = exc.format_message().replace("\n", " ")
        click.echo(f"probe: error: {message}", err=True)
        return 2 if isinstance(exc, InputError | click.UsageError) else exc.exit_code
    except KeyboardInterrupt:
        click.echo("probe: interrupted", err=True)
        return 130
    except Exception as exc:  # an internal error: say so plainly
        if os.environ.get("PROBE_DEBUG"):
            raise
        click.echo(f"probe: internal error: {type(exc).__name__}: {exc}", err=True)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
