"""The `mailauth-survey` command: a thin layer over the Python API."""

from __future__ import annotations

import os

import click

from . import __version__
from .metrics import DEFAULT_TOP, METRICS


class _OneLineError(click.ClickException):
    """A usage error shown as one line (click's own adds the usage and a hint on three more)."""

    exit_code = 2


def _one_line(exc: click.UsageError) -> click.ClickException:
    where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
    return _OneLineError(exc.format_message() + where)


class _Commands(click.Group):
    """The command group; every bad input, usage errors included, is one line on stderr."""

    def make_context(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return super().make_context(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:
            raise _one_line(exc) from None

    def invoke(self, ctx: click.Context):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:
            raise _one_line(exc) from None


@click.group(
    cls=_Commands,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="mailauth-survey")
def main() -> None:
    """Measure SPF, DKIM, DMARC, MTA-STS, TLS-RPT and BIMI adoption across .jp domain lists.

    Typical quarter: `scan` a list into a snapshot, then `report`, `trend`, `diff` and `chart`
    read the snapshots. Run any command with --help for its options.
    """


# --- reports: report, trend, diff, chart (mailauth_survey.report / .charts) ---

_METRIC_NAMES = ", ".join(METRICS)
_FORMAT_HELP = (
    "json: the rows, full precision (null: not measured); csv: the same, shares to one decimal; "
    "xlsx (with --out): one sheet per table and a methods sheet; table/markdown: for people."
)
_FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "markdown", "json", "xlsx"]),
    default="table",
    show_default=True,
    help=_FORMAT_HELP,
)
_LANG = click.option(
    "--lang",
    type=click.Choice(["ja", "en"]),
    default="en",
    show_default=True,
    help="Language of the labels (json/csv: the label column).",
)
_RESULTS = click.argument("directory", metavar="DIR", type=click.Path(file_okay=False))
_SNAPSHOT = click.option(
    "--snapshot", metavar="LABEL", help="Snapshot to use (default: the newest complete one)."
)
_INCOMPLETE = click.option(
    "--include-incomplete",
    is_flag=True,
    help="Use snapshots whose scan did not finish (left out with a warning otherwise).",
)
_CI = click.option(
    "--ci", is_flag=True, help="Show each share's 95% Wilson interval (table/markdown)."
)
_DENOMINATOR = click.option(
    "--denominator",
    type=click.Choice(["domains", "mx"]),
    default="domains",
    show_default=True,
    help="Shares of the domains that exist, or of those with MX (table/markdown; json and csv "
    "have both).",
)
_OUT = click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False),
    help="File to write (needed with --format xlsx; otherwise standard output).",
)


def _metric_option(help_text: str):  # type: ignore[no-untyped-def]
    return click.option(
        "--metric",
        "metrics",
        multiple=True,
        metavar="NAME",
        help=f"{help_text} NAME is one of: {_METRIC_NAMES}.",
    )


def _reporting(run):  # type: ignore[no-untyped-def]
    """Call run(); a bad input (missing DIR, unknown snapshot...) becomes a one-line error, and a
    warning (an incomplete snapshot left out) one line on stderr."""
    import warnings

    from .report import ReportError

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = run()
        except ReportError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:  # unreadable parts, a folder that went away mid-read
            raise click.ClickException(
                f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
            ) from None
        finally:
            from .report import IncompleteSnapshotWarning

            # Once each: a command that reads a snapshot twice (chart) says so in one line.
            said = dict.fromkeys(
                str(w.message) for w in caught if issubclass(w.category, IncompleteSnapshotWarning)
            )
            for message in said:
                click.echo(f"warning: {message}", err=True)
    return result


def _emit(text_or_book, fmt: str, out_file: str | None) -> None:  # type: ignore[no-untyped-def]
    """Print a text result, or write it to --out; xlsx is always written to --out."""
    if fmt == "xlsx":
        click.echo(f"wrote {text_or_book}", err=True)
        return
    if out_file:
        try:
            with open(out_file, "w", encoding="utf-8") as fh:
                fh.write(text_or_book)
        except OSError as exc:
            raise click.ClickException(f"{out_file}: {exc.strerror or exc}") from None
        click.echo(f"wrote {out_file}", err=True)
        return
    click.echo(text_or_book, nl=False)


def _check_out(fmt: str, out_file: str | None) -> None:
    if fmt == "xlsx" and not out_file:
        raise click.UsageError("--format xlsx writes a file: give --out FILE.xlsx")
    if out_file and not os.path.isdir(os.path.dirname(os.path.abspath(out_file))):
        raise click.UsageError(f"--out {out_file}: no such directory")


@main.command("report")
@_RESULTS
@_SNAPSHOT
@click.option(
    "--by",
    default="category",
    show_default=True,
    metavar="NAME[,NAME]",
    help="Columns: category, mx_provider, dns_provider, or a column of the input lists; two "
    "names joined by a comma cross them (e.g. mx_provider,category).",
)
@click.option(
    "--top",
    type=click.IntRange(1),
    help=f"With a provider grouping: providers shown by name at most (default {DEFAULT_TOP}); "
    "the rest are in 'other'.",
)
@click.option(
    "--min-domains",
    type=click.IntRange(0),
    help="With a provider grouping: providers with fewer domains fold into 'other' (default: "
    "10 or 0.5% of the domains that exist, whichever is larger).",
)
@_metric_option("Rows to show (repeatable; default: all).")
@_CI
@_DENOMINATOR
@_FORMAT
@_OUT
@_LANG
@_INCOMPLETE
def report_command(
    directory, snapshot, by, top, min_domains, metrics, ci, denominator, fmt, out_file, lang,
    include_incomplete,
) -> None:  # fmt: skip
    """The adoption table of one snapshot in DIR, by group and in total.

    Each metric is a count with its share of the domains that exist (_pct) and of those with MX
    (_mx_pct), each with a 95% Wilson interval (_lo/_hi). A domain that ended in an error
    (timeout...) counts only in that error, never as "absent"; a metric that was not measured
    (no --probe-smtp, a resolver that does not validate) is null / "—", never 0. Groups of fewer
    than 30 domains are marked †. Tables end with a methods block from the manifest.
    """
    from . import report

    _check_out(fmt, out_file)

    def run() -> str:
        table = report.report(
            directory, snapshot, by, top, min_domains=min_domains, lang=lang,
            include_incomplete=include_incomplete,
        )  # fmt: skip
        if fmt == "xlsx":
            return str(report.write_xlsx({by.replace(",", " x "): table}, out_file, lang=lang))
        return report.render(table, fmt, lang, metrics=metrics, ci=ci, denominator=denominator)

    _emit(_reporting(run), fmt, out_file)


@main.command("trend")
@_RESULTS
@_metric_option("Metric to follow (repeatable; default: all), e.g. dmarc_valid.")
@click.option(
    "--by",
    default="category",
    show_default=True,
    metavar="NAME",
    help="Groups: category, or a column of the input lists.",
)
@_CI
@_DENOMINATOR
@_FORMAT
@_OUT
@_LANG
@_INCOMPLETE
def trend_command(
    directory, metrics, by, ci, denominator, fmt, out_file, lang, include_incomplete
) -> None:
    """The metrics by group across every complete snapshot in DIR, oldest first."""
    from . import report

    _check_out(fmt, out_file)

    def run() -> str:
        table = report.trend(
            directory, metrics, by=by, lang=lang, include_incomplete=include_incomplete
        )
        if fmt == "xlsx":
            return str(report.write_xlsx({"trend": table}, out_file, lang=lang))
        return report.render_trend(table, fmt, lang, ci=ci, denominator=denominator)

    _emit(_reporting(run), fmt, out_file)


@main.command("diff")
@_RESULTS
@click.argument("a", required=False, metavar="[A]")
@click.argument("b", required=False, metavar="[B]")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "markdown", "json", "xlsx"]),
    default="table",
    show_default=True,
    help="json: the counts and the domains gained/lost per metric; csv: long rows "
    "table,row,column,value (changes, adopters, both transition matrices); xlsx (with --out): "
    "one sheet per table and a methods sheet; table/markdown: for people.",
)
@_OUT
@_LANG
@_INCOMPLETE
def diff_command(directory, a, b, fmt, out_file, lang, include_incomplete) -> None:
    """What changed from snapshot A to snapshot B in DIR.

    B defaults to the newest complete snapshot and A to the complete one before it. Shows each
    share in A and B with the change and whether it is beyond the noise (a two-sided
    two-proportion z-test at the 5% level); the adopters gained and lost per metric over the
    domains in both (json lists them); and the transitions of the DMARC policy and of SPF's
    effective all ("no all": a valid record without one). A domain that errored in one snapshot
    is 'unknown' (NXDOMAIN: 'nxdomain'), never gained or lost.
    """
    from . import report

    _check_out(fmt, out_file)

    def run() -> str:
        result = report.diff(directory, a, b, include_incomplete=include_incomplete)
        if fmt == "xlsx":
            return str(report.write_diff_xlsx(result, out_file, lang=lang))
        return report.render_diff(result, fmt, lang)

    _emit(_reporting(run), fmt, out_file)


@main.command("chart")
@_RESULTS
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="File to write: .png (2400x1350, 150 dpi), .svg or .pdf.",
)
@click.option(
    "--kind",
    type=click.Choice(["trend", "policy", "adoption", "providers", "map"]),
    default="adoption",
    show_default=True,
    help="trend: a metric over the snapshots; policy: DMARC policy mix; adoption: each "
    "mechanism; providers: a metric at the largest providers; map: a metric by prefecture.",
)
@_LANG
@_SNAPSHOT
@click.option(
    "--metric",
    metavar="NAME",
    help=f"Metric of trend/providers/map (default dmarc_valid). NAME is one of: {_METRIC_NAMES}.",
)
@click.option(
    "--denominator",
    type=click.Choice(["domains", "mx"]),
    default="domains",
    show_default=True,
    help="Percent of the domains that exist, or of those with MX.",
)
@click.option(
    "--by",
    metavar="NAME",
    help="Groups of the trend and policy charts (category, the default, mx_provider, "
    "dns_provider or a column of the input lists); providers of the providers chart "
    "(mx_provider, the default, or dns_provider); the list column of prefecture names of the "
    "map (default prefecture).",
)
@click.option(
    "--top",
    type=click.IntRange(1, 50),
    help=f"Providers chart: providers shown by name at most (default {DEFAULT_TOP}).",
)
@click.option(
    "--min-domains",
    type=click.IntRange(0),
    help="Providers chart: providers with fewer domains fold into 'other' (default: 10 or 0.5% "
    "of the domains that exist).",
)
@click.option("--title", help="Title of the chart (default: what it shows and when).")
@click.option(
    "--source",
    help="Footnote of the chart (default: the methods block of the snapshot's manifest).",
)
@_CI
@_INCOMPLETE
def chart_command(
    directory, out, kind, lang, snapshot, metric, denominator, by, top, min_domains, title,
    source, ci, include_incomplete,
) -> None:  # fmt: skip
    """Write a 16:9 chart of the snapshots in DIR, fit for a slide, with n and a methods
    footnote. Groups of fewer than 30 domains are drawn hollow and labelled with their n."""

    def run() -> object:
        charts = _charts_module()
        return charts.chart(
            directory, out, kind, lang=lang, snapshot=snapshot, metric=metric,
            denominator=denominator, by=by, top=top, min_domains=min_domains, title=title,
            source=source, ci=ci, include_incomplete=include_incomplete,
        )  # fmt: skip

    click.echo(f"wrote {_reporting(run)}", err=True)


def _charts_module():  # type: ignore[no-untyped-def]
    """mailauth_survey.charts, or one line when matplotlib is missing from a broken install."""
    try:
        from . import charts
    except ImportError as exc:
        missing = exc.name or "matplotlib"
        raise click.ClickException(
            f"charts need {missing}, which is not installed: "
            "pip install --force-reinstall mailauth-survey (or pip install matplotlib "
            "matplotlib-fontja)"
        ) from None
    return charts


@main.command("publish")
@_RESULTS
@click.option(
    "--snapshot", metavar="LABEL", help="Snapshot to publish (default: the newest complete one)."
)
@click.option(
    "--out",
    "out",
    required=True,
    metavar="FOLDER",
    type=click.Path(file_okay=False),
    help="Folder for index.html, report.xlsx and the charts (PNG and SVG); created if missing.",
)
@click.option(
    "--lang",
    type=click.Choice(["ja", "en"]),
    default="en",
    show_default=True,
    help="Language of the whole page: labels, headings, footnotes, dates.",
)
@_INCOMPLETE
def publish_command(directory, snapshot, out, lang, include_incomplete) -> None:
    """Write one self-contained HTML page of a snapshot in DIR, with its tables and charts.

    FOLDER/index.html needs nothing else to be read (no script, nothing fetched): it opens from
    a USB stick or as a mail attachment. report.xlsx and every chart as PNG and SVG sit beside it.
    """

    def run() -> object:
        _charts_module()  # the page's charts: a one-line error when matplotlib is missing
        from . import publish

        return publish.publish(
            directory, out, snapshot=snapshot, lang=lang, include_incomplete=include_incomplete
        )["index"]

    click.echo(str(_reporting(run)))


# --- collection: scan, reanalyze, spf-check, demo ---


def _resolver_help() -> str:
    return (
        "Resolver to ask, HOST[:PORT]: an address ([IPv6]:PORT for a port with IPv6) or a host "
        "name, looked up once before the scan (its addresses are the resolvers recorded); "
        "repeat for a fleet. Use a local caching resolver (Unbound). "
        "Default: the system's resolvers (/etc/resolv.conf)."
    )


def _check_resolvers(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """--resolver: every address checked before anything starts."""
    from .resolver import ResolverAddressError, check_resolvers

    try:
        return check_resolvers(value)
    except ResolverAddressError as exc:
        raise click.ClickException(f"--resolver {exc}") from None


def _check_label(ctx: click.Context, param: click.Parameter, value: str | None):  # type: ignore[no-untyped-def]
    """--snapshot: a label that can be a folder name (hive partition value)."""
    if value is None:
        return None
    from .store import check_label

    try:
        return check_label(value)
    except ValueError as exc:
        raise click.ClickException(f"--snapshot {exc}") from None


def _check_cluster(ctx: click.Context, param: click.Parameter, value: str | None):  # type: ignore[no-untyped-def]
    """--cluster: local:N (1 to 256 processes) or a scheduler address."""
    if value is None:
        return None
    import re

    if value.startswith("local:"):
        n = value.split(":", 1)[1]
        if not (n.isascii() and n.isdigit() and 1 <= int(n) <= 256):
            raise click.ClickException(
                f"--cluster {value!r}: expected local:N with N from 1 to 256 worker processes"
            )
    elif not re.fullmatch(r"(?:[a-z]+://)?[^\s/:]+(?::\d{1,5})?/?", value):
        raise click.ClickException(
            f"--cluster {value!r}: expected a scheduler address (tcp://HOST:PORT) or local:N"
        )
    return value


def _check_ehlo(ctx: click.Context, param: click.Parameter, value: str):  # type: ignore[no-untyped-def]
    """--ehlo-name: a host name (RFC 5321 4.1.1.1 Domain), never a line break into the session."""
    import re

    label = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    if len(value) > 253 or not re.fullmatch(rf"{label}(?:\.{label})+", value):
        raise click.ClickException(
            f"--ehlo-name {value!r}: expected a fully qualified host name (letters, digits, "
            "hyphens, dots)"
        )
    return value


def _check_info_url(ctx: click.Context, param: click.Parameter, value: str | None):  # type: ignore[no-untyped-def]
    """--info-url: an http(s) URL, printable ASCII only (it goes into a request header)."""
    if value is None:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or not value.isascii()
        or not value.isprintable()
        or " " in value
    ):
        raise click.ClickException(
            f"--info-url {value!r}: expected an http:// or https:// URL (printable ASCII, no spaces)"
        )
    return value


def _check_cafile(ctx: click.Context, param: click.Parameter, value: str | None):  # type: ignore[no-untyped-def]
    """--ca-file: PEM certificates that load (a typo in a path or a DER file fails now, not mid-scan)."""
    if value is None:
        return None
    import ssl

    try:
        ssl.create_default_context().load_verify_locations(cafile=value)
    except (ssl.SSLError, OSError, ValueError) as exc:
        why = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        raise click.ClickException(
            f"--ca-file {value}: expected PEM CA certificates ({why})"
        ) from None
    return value


@main.command()
@click.argument("lists", nargs=-1, type=click.Path(dir_okay=False))
@click.option(
    "--out", required=True, type=click.Path(file_okay=False), help="Folder of the snapshots."
)
@click.option(
    "--snapshot",
    callback=_check_label,
    help="Snapshot label (default: the UTC date of the scan's start, YYYY-MM-DD: an unfinished "
    "snapshot of the same lists is continued).",
)
@click.option(
    "--resolver", "resolvers", multiple=True, callback=_check_resolvers, help=_resolver_help()
)
@click.option(
    "--qps",
    type=click.FloatRange(0, 10_000_000),
    default=2500,
    show_default=True,
    help="Cap on queries per second over the whole fleet (0: no cap). At ~12 queries a "
    "domain the default is ~200 domains/s.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 100_000),
    default=512,
    show_default=True,
    help="Queries in flight at once (a query late by its resolver's measure gives its place "
    "up), and domains being scanned at once.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.05, 60),
    default=2.5,
    show_default=True,
    help="Seconds one query may take in all, from its first send. Within it, a query is "
    "sent again when late by its resolver's measured round trip (smoothed RTT + 4 x its "
    "variance, at least 0.2 s, doubled each time), to another resolver when there is one; "
    "a reply to any attempt is taken.",
)
@click.option(
    "--retries",
    type=click.IntRange(0, 10),
    default=2,
    show_default=True,
    help="Attempts after the first for a late reply (on another resolver when there is "
    "one); a SERVFAIL is asked once more besides.",
)
@click.option(
    "--dead-after",
    type=click.FloatRange(1, 3600),
    default=45,
    show_default=True,
    help="Stop the scan when no resolver has answered for this many seconds (resume later).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Processes to scan with (one per core); the qps and concurrency caps are shared.",
)
@click.option(
    "--cluster",
    metavar="ADDRESS",
    callback=_check_cluster,
    help="Run on a Dask cluster: tcp://SCHEDULER:8786, or local:N for N local worker processes "
    "(needs the 'cluster' extra).",
)
@click.option(
    "--cluster-wait",
    type=click.FloatRange(0, 86_400),
    default=60,
    show_default=True,
    help="With --cluster: seconds to wait for a first worker to join the scheduler.",
)
@click.option(
    "--mta-sts-policy/--no-mta-sts-policy",
    default=True,
    show_default=True,
    help="Fetch the MTA-STS policy over HTTPS for domains with a valid _mta-sts record.",
)
@click.option(
    "--probe-smtp",
    is_flag=True,
    help="Probe STARTTLS on port 25 of every MX host (once per host; many networks block port 25).",
)
@click.option(
    "--ehlo-name",
    default="mailauth-survey.invalid",
    show_default=True,
    callback=_check_ehlo,
    help="Name the SMTP probes introduce themselves with (EHLO).",
)
@click.option(
    "--info-url",
    callback=_check_info_url,
    help="Page about the survey (http/https), sent in the HTTPS User-Agent.",
)
@click.option(
    "--exclude",
    "exclude",
    type=click.Path(dir_okay=False, exists=True),
    help="Opt-out list: domains and networks (CIDR) never probed, one a line.",
)
@click.option(
    "--ca-file",
    "cafile",
    type=click.Path(dir_okay=False, exists=True),
    callback=_check_cafile,
    help="PEM file of CA certificates to trust for HTTPS and SMTP probes, in addition to the "
    "system's (a lab CA, an enterprise proxy).",
)
@click.option(
    "--allow-private",
    is_flag=True,
    help="Allow probes to loopback and private addresses (tests only).",
)
@click.option(
    "--probe-timeout",
    type=click.FloatRange(0.1, 120),
    default=10,
    show_default=True,
    help="Seconds for one HTTPS or SMTP probe.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Scan again a snapshot that is already complete (or was started with other lists). "
    "The new one is written beside it and replaces it only once complete; until then, and if "
    "the rescan is interrupted, the old one stays as it was.",
)
@click.option(
    "--retry-errors",
    is_flag=True,
    help="Scan again only the domains of --snapshot that ended servfail, timeout or error, in place.",
)
@click.option("--quiet", is_flag=True, help="No progress bar or summary.")
def scan(
    lists,
    out,
    snapshot,
    resolvers,
    qps,
    concurrency,
    timeout,
    retries,
    dead_after,
    workers,
    cluster,
    cluster_wait,
    mta_sts_policy,
    probe_smtp,
    ehlo_name,
    info_url,
    exclude,
    cafile,
    allow_private,
    probe_timeout,
    force,
    retry_errors,
    quiet,
) -> None:
    """Scan the domains of LISTS into a snapshot under --out.

    LISTS are text files with one domain a line, CSV files with a 'domain' column, or
    'rank,domain' files. Bad lines are reported with their line numbers and skipped.
    Interrupted? Run the same command again: it continues where it stopped.
    """
    from .collect import ScanError, ScanOptions
    from .collect import retry_errors as run_retry
    from .collect import scan as run_scan
    from .display import ScanDisplay

    if retry_errors and not snapshot:
        raise click.UsageError("--retry-errors needs --snapshot LABEL")
    if retry_errors and (lists or force):
        raise click.UsageError(
            "--retry-errors takes no LIST and no --force: it scans again the failed domains of "
            "--snapshot, in place"
        )
    if not lists and not retry_errors:
        raise click.UsageError("give at least one domain list")
    if cluster and workers > 1:
        raise click.UsageError(
            "--workers and --cluster: choose one (a cluster has its own workers)"
        )

    options = ScanOptions(
        resolvers=list(resolvers),
        qps=qps,
        concurrency=concurrency,
        timeout=timeout,
        retries=retries,
        dead_after=dead_after,
        workers=workers,
        cluster=cluster,
        cluster_wait=cluster_wait,
        mta_sts_policy=mta_sts_policy,
        probe_smtp=probe_smtp,
        ehlo_name=ehlo_name,
        info_url=info_url,
        exclude=exclude,
        cafile=cafile,
        allow_private=allow_private,
        probe_timeout=probe_timeout,
    )
    display = ScanDisplay(enabled=not quiet)
    try:
        with display:
            if retry_errors:
                manifest = run_retry(out, snapshot, options=options, on_progress=display.update)
            else:
                manifest = run_scan(
                    lists,
                    out,
                    snapshot=snapshot,
                    options=options,
                    force=force,
                    on_error=display.error,
                    on_progress=display.update,
                )
    except (ScanError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        raise click.ClickException("interrupted; run the same command again to resume") from None
    if not quiet:
        display.summary(manifest)


@main.command()
@_RESULTS
@click.option(
    "--snapshot",
    metavar="LABEL",
    callback=_check_label,
    help="Snapshot to rebuild (default: the newest complete one).",
)
def reanalyze(directory, snapshot) -> None:
    """Rebuild a snapshot's domains table in DIR from its stored DNS answers (no network).

    Use it after an analysis fix: the verdicts change, the collected answers do not.
    """
    from . import report
    from .analysis import reanalyze as run

    # (a named one is checked too: it exists in DIR, before anything is rewritten)
    snapshot = _reporting(lambda: report.resolve_snapshot(directory, snapshot))
    try:
        n = run(directory, snapshot)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"reanalyzed {n} domains of snapshot {snapshot}", err=True)


@main.command("spf-check")
@click.argument("ip")
@click.argument("sender")
@click.option("--helo", help="HELO/EHLO name of the client (used for an empty sender and %{h}).")
@click.option(
    "--resolver", "resolvers", multiple=True, callback=_check_resolvers, help=_resolver_help()
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.05, 60),
    default=2.5,
    show_default=True,
    help="Seconds to wait for each reply before retrying.",
)
def spf_check(ip, sender, helo, resolvers, timeout) -> None:
    """Evaluate SPF (RFC 7208 check_host) for a client IP and a sender address or domain.

    The first line of output is the result alone: pass, fail, softfail, neutral, none,
    permerror or temperror; the second the reason.
    """
    from .collect.live import check_host_live
    from .resolver import NoResolverAnswering

    try:
        result, reason = check_host_live(
            ip, sender, helo=helo, resolvers=list(resolvers), timeout=timeout
        )
    except (ValueError, NoResolverAnswering) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(result)
    if reason:
        click.echo(reason)


@main.command()
@click.option(
    "--out",
    default="results/demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the demo snapshots, chart and page (site/).",
)
@click.option(
    "--lang",
    type=click.Choice(["en", "ja"]),
    default="en",
    show_default=True,
    help="Language of the report and chart labels.",
)
def demo(out, lang) -> None:
    """Run the whole pipeline offline on a synthetic .jp sample (no network needed).

    An embedded DNS server on loopback serves ~2,000 synthetic domains in two quarters
    (2023Q4, 2024Q2); both are scanned, the report printed, a trend chart written and the
    page of `publish` written to OUT/site/index.html.
    """
    _charts_module()  # the demo ends with a chart
    from .demo import run_demo

    run_demo(out, lang=lang, echo=click.echo)


if __name__ == "__main__":
    main()
