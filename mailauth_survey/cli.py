"""The `mailauth-survey` command: a thin layer over the Python API."""

from __future__ import annotations

import click

from . import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mailauth-survey")
def main() -> None:
    """Measure SPF, DKIM, DMARC, MTA-STS, TLS-RPT and BIMI adoption across .jp domain lists.

    Typical quarter: `scan` a list into a snapshot, then `report`, `trend`, `diff` and `chart`
    read the snapshots. Run any command with --help for its options.
    """


# --- reports: report, trend, diff, chart (mailauth_survey.report / .charts) ---


# --- collection: scan, reanalyze, spf-check, demo ---


def _resolver_help() -> str:
    return (
        "Resolver to ask, HOST[:PORT]; repeat for a fleet. Use a local caching resolver "
        "(Unbound). Default: the system's resolvers (/etc/resolv.conf)."
    )


@main.command()
@click.argument("lists", nargs=-1, required=True, type=click.Path(dir_okay=False))
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
    help="Seconds to wait for each reply before retrying.",
)
@click.option(
    "--retries",
    type=click.IntRange(0, 10),
    default=2,
    show_default=True,
    help="Retries after a timeout (on another resolver when there is one).",
)
@click.option("--force", is_flag=True, help="Scan again over a snapshot that is already complete.")
@click.option("--quiet", is_flag=True, help="No progress bar or summary.")
def scan(lists, out, snapshot, resolvers, qps, concurrency, timeout, retries, force, quiet) -> None:
    """Scan the domains of LISTS into a snapshot under --out.

    LISTS are text files with one domain a line, CSV files with a 'domain' column, or
    'rank,domain' files. Bad lines are reported with their line numbers and skipped.
    Interrupted? Run the same command again: it continues where it stopped.
    """
    from .collect import ScanError, ScanOptions
    from .collect import scan as run_scan
    from .progress import ScanDisplay

    options = ScanOptions(
        resolvers=list(resolvers),
        qps=qps,
        concurrency=concurrency,
        timeout=timeout,
        retries=retries,
    )
    display = ScanDisplay(enabled=not quiet)
    try:
        with display:
            manifest = run_scan(
                lists,
                out,
                snapshot=snapshot,
                options=options,
                force=force,
                on_error=display.error,
                on_progress=display.update,
            )
    except ScanError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        raise click.ClickException("interrupted; run the same command again to resume") from None
    if not quiet:
        display.summary(manifest)


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, exists=True))
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
    from .live import check_host_live

    try:
        result, reason = check_host_live(
            ip, sender, helo=helo, resolvers=list(resolvers), timeout=timeout
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(result)
    if reason:
        click.echo(reason)
