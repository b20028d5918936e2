"""The `mailauth-survey` command: a thin layer over the Python API."""

from __future__ import annotations

import os

import click

from . import __version__

# Arrow's C++ side (the Parquet writer) allocates from the pool chosen when pyarrow loads, which
# pa.set_memory_pool does not reach: the system allocator gives freed buffers back, mimalloc kept
# ~16 MB more resident per scanning process. Set before anything imports pyarrow; the --workers
# processes inherit it.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mailauth-survey")
def main() -> None:
    """Measure SPF, DKIM, DMARC, MTA-STS, TLS-RPT and BIMI adoption across .jp domain lists.

    Typical quarter: `scan` a list into a snapshot, then `report`, `trend`, `diff` and `chart`
    read the snapshots. Run any command with --help for its options.
    """


# --- reports: report, trend, diff, chart (mailauth_survey.report / .charts) ---

_FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "markdown", "json"]),
    default="table",
    show_default=True,
    help="json/csv: every metric with its _pct and _mx_pct; table/markdown: for people.",
)
_LANG = click.option(
    "--lang", type=click.Choice(["ja", "en"]), default="en", show_default=True, help="Labels."
)
_RESULTS = click.argument("directory", metavar="DIR", type=click.Path(file_okay=False))


def _reporting(run):  # type: ignore[no-untyped-def]
    """Call run(); a bad input (missing DIR, unknown snapshot...) becomes a one-line error."""
    from .report import ReportError

    try:
        return run()
    except ReportError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:  # unreadable parts, a folder that went away mid-read
        raise click.ClickException(
            f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
        ) from None


@main.command("report")
@_RESULTS
@click.option("--snapshot", metavar="LABEL", help="Snapshot to report (default: the newest).")
@click.option(
    "--by",
    type=click.Choice(["category", "mx_provider", "dns_provider"]),
    default="category",
    show_default=True,
    help="Rows: .jp registration category, or the largest MX / DNS providers.",
)
@click.option(
    "--top",
    type=click.IntRange(1),
    default=20,
    show_default=True,
    help="Providers shown by name with --by *_provider; the rest are 'other'.",
)
@_FORMAT
@_LANG
def report_command(directory, snapshot, by, top, fmt, lang) -> None:
    """The adoption table of one snapshot in DIR, by group and in total.

    Percentages are of the domains that exist (_pct) and of those with MX (_mx_pct); a domain
    that ended in an error (timeout...) counts only in that error, never as "absent".
    """
    from . import report

    def run() -> str:
        label = report.resolve_snapshot(directory, snapshot)
        table = report.report(directory, label, by=by, top=top)
        return report.render(table, fmt, lang, title=label)

    click.echo(_reporting(run), nl=False)


@main.command("trend")
@_RESULTS
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    metavar="NAME",
    help="Metric to follow (repeatable; default: all), e.g. dmarc_valid.",
)
@_FORMAT
@_LANG
def trend_command(directory, metrics, fmt, lang) -> None:
    """The metrics by category across every snapshot in DIR, oldest first."""
    from . import report

    def run() -> str:
        return report.render_trend(report.trend(directory, metrics), fmt, lang)

    click.echo(_reporting(run), nl=False)


@main.command("diff")
@_RESULTS
@click.argument("a")
@click.argument("b")
@_FORMAT
@_LANG
def diff_command(directory, a, b, fmt, lang) -> None:
    """What changed from snapshot A to snapshot B in DIR, over the domains in both.

    Adopters gained and lost per metric (json lists the domains), and the transitions of the
    DMARC policy and of SPF's effective all. A domain that errored in one snapshot is
    'unknown', never gained or lost.
    """
    from . import report

    def run() -> str:
        return report.render_diff(report.diff(directory, a, b), fmt, lang)

    click.echo(_reporting(run), nl=False)


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
    type=click.Choice(["trend", "policy", "adoption", "providers"]),
    default="adoption",
    show_default=True,
    help="trend: a metric over the snapshots; policy: DMARC policy mix; adoption: each "
    "mechanism; providers: a metric at the largest providers.",
)
@_LANG
@click.option("--snapshot", metavar="LABEL", help="Snapshot to chart (default: the newest).")
@click.option("--metric", metavar="NAME", help="Metric of trend/providers (default dmarc_valid).")
@click.option(
    "--denominator",
    type=click.Choice(["domains", "mx"]),
    default="domains",
    show_default=True,
    help="Percent of the domains that exist, or of those with MX.",
)
@click.option(
    "--by",
    type=click.Choice(["mx_provider", "dns_provider"]),
    default="mx_provider",
    show_default=True,
    help="Providers of the providers chart.",
)
@click.option(
    "--top", type=click.IntRange(1, 50), default=15, show_default=True, help="Providers shown."
)
def chart_command(directory, out, kind, lang, snapshot, metric, denominator, by, top) -> None:
    """Write a 16:9 chart of the snapshots in DIR, fit for a slide."""

    def run() -> object:
        from . import charts

        return charts.chart(
            directory,
            out,
            kind,
            lang=lang,
            snapshot=snapshot,
            metric=metric,
            denominator=denominator,
            by=by,
            top=top,
        )

    click.echo(f"wrote {_reporting(run)}", err=True)


# --- collection: scan, reanalyze, spf-check, demo ---


def _resolver_help() -> str:
    return (
        "Resolver to ask, HOST[:PORT]; repeat for a fleet. Use a local caching resolver "
        "(Unbound). Default: the system's resolvers (/etc/resolv.conf)."
    )


@main.command()
@click.argument("lists", nargs=-1, type=click.Path(dir_okay=False))
@click.option(
    "--out", required=True, type=click.Path(file_okay=False), help="Folder of the snapshots."
)
@click.option("--snapshot", help="Snapshot label (default: today's UTC date, YYYY-MM-DD).")
@click.option("--resolver", "resolvers", multiple=True, help=_resolver_help())
@click.option(
    "--qps",
    type=float,
    default=2000,
    show_default=True,
    help="Cap on queries per second over the whole fleet (0: no cap).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 100_000),
    default=256,
    show_default=True,
    help="Queries in flight at once.",
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
    help="Run on a Dask cluster: tcp://SCHEDULER:8786, or local:N for N local worker processes "
    "(needs the 'cluster' extra).",
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
    help="Name the SMTP probes introduce themselves with (EHLO).",
)
@click.option("--info-url", help="Page about the survey, sent in the HTTPS User-Agent.")
@click.option(
    "--exclude",
    "exclude",
    type=click.Path(dir_okay=False, exists=True),
    help="Opt-out list: domains and networks (CIDR) never probed, one a line.",
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
@click.option("--force", is_flag=True, help="Scan again over a snapshot that is already complete.")
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
    mta_sts_policy,
    probe_smtp,
    ehlo_name,
    info_url,
    exclude,
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
    if not lists and not retry_errors:
        raise click.UsageError("give at least one domain list")

    options = ScanOptions(
        resolvers=list(resolvers),
        qps=qps,
        concurrency=concurrency,
        timeout=timeout,
        retries=retries,
        dead_after=dead_after,
        workers=workers,
        cluster=cluster,
        mta_sts_policy=mta_sts_policy,
        probe_smtp=probe_smtp,
        ehlo_name=ehlo_name,
        info_url=info_url,
        exclude=exclude,
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
@click.argument("directory")
@click.option("--snapshot", required=True, help="Snapshot label to rebuild.")
def reanalyze(directory, snapshot) -> None:
    """Rebuild a snapshot's domains table from its stored DNS answers (no network).

    Use it after an analysis fix: the verdicts change, the collected answers do not.
    """
    from .analysis import reanalyze as run

    try:
        n = run(directory, snapshot)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"reanalyzed {n} domains of snapshot {snapshot}", err=True)


@main.command("spf-check")
@click.argument("ip")
@click.argument("sender")
@click.option("--helo", help="HELO/EHLO name of the client (used for an empty sender and %{h}).")
@click.option("--resolver", "resolvers", multiple=True, help=_resolver_help())
@click.option("--timeout", type=click.FloatRange(0.05, 60), default=2.5, show_default=True)
def spf_check(ip, sender, helo, resolvers, timeout) -> None:
    """Evaluate SPF (RFC 7208 check_host) for a client IP and a sender address or domain.

    The first line of output is the result alone: pass, fail, softfail, neutral, none,
    permerror or temperror; the second the reason.
    """
    from .collect.live import check_host_live

    try:
        result, reason = check_host_live(
            ip, sender, helo=helo, resolvers=list(resolvers), timeout=timeout
        )
    except ValueError as exc:
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
    help="Folder for the demo snapshots and chart.",
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
    (2023Q4, 2024Q2); both are scanned, the report printed and a trend chart written.
    """
    from .demo import run_demo

    run_demo(out, lang=lang, echo=click.echo)


if __name__ == "__main__":
    main()
