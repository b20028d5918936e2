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
