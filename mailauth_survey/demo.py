"""The whole pipeline offline: an embedded DNS server, two quarters of a synthetic .jp sample.

No network: the sample (``population.demo_population``, about 2,000 domains in 2023Q4 and 2024Q2,
and beside them a local-government panel in every prefecture, as a CSV list with a prefecture
column) is served by :class:`authserver.ServerThread` on a free loopback port, scanned into two
snapshots, reported and charted (the trend, and the panel on a prefecture map) exactly as a real
quarterly scan would be.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import charts, publish, report
from .collect import ScanCounters, ScanOptions, scan
from .synthetic import population
from .synthetic.authserver import ServerThread


def run_demo(
    out: str | Path,
    *,
    lang: str = "en",
    echo: Callable[[str], None] = print,
    on_progress: Callable[[ScanCounters], None] | None = None,
) -> dict[str, Any]:
    """Scan both demo quarters into ``out``, print the report, write the trend chart, the map
    and the published page (``out/site/index.html``).

    The demo's own snapshots (2023Q4, 2024Q2) are replaced on every run.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    manifests = {}
    for quarter, pop in population.demo_population(localgov=True).items():
        panel = {row["domain"] for row in pop.panel}
        listing = out / f"demo-domains-{quarter}.txt"
        listing.write_text(
            "\n".join(d for d in pop.domains if d not in panel) + "\n", encoding="utf-8"
        )
        localgov = _write_panel(out / f"demo-localgov-{quarter}.csv", pop.panel)
        with ServerThread(pop.zones) as server:
            echo(
                f"{quarter}: scanning {len(pop.domains):,} synthetic .jp domains"
                f" ({len(panel):,} of them a local-government panel) against {server.address}"
            )
            manifests[quarter] = scan(
                [listing, localgov], out, snapshot=quarter, force=True, on_progress=on_progress,
                options=ScanOptions(
                    resolvers=[server.address], qps=0, concurrency=256, timeout=2.0,
                    mta_sts_policy=False,  # offline: no HTTPS fetch
                ),
            )  # fmt: skip
    newest = list(manifests)[-1]
    echo("")
    echo(report.render(report.report(out, newest), "table", lang, title=f"snapshot {newest}"))
    chart_path = charts.chart(out, out / "trend.png", kind="trend", lang=lang)
    map_path = charts.chart(out, out / "map.png", kind="map", by="prefecture", lang=lang)
    page = publish.publish(out, out / "site", lang=lang)["index"]
    echo("")
    echo(f"trend chart: {chart_path}")
    echo(f"map:         {map_path}  (the local-government panel by prefecture)")
    echo(f"web page:    {page}")
    echo(f"snapshots:   {out / 'domains'}  (pandas.read_parquet({str(out / 'domains')!r}))")
    echo(f"done in {time.monotonic() - started:.1f} s")
    return {"manifests": manifests, "chart": chart_path, "map": map_path, "page": page}


def _write_panel(path: Path, rows: list[dict[str, str]]) -> Path:
    """The panel as a CSV list: its columns become the snapshot's lists table."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path
