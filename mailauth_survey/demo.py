"""The whole pipeline offline: an embedded DNS server, two quarters of a synthetic .jp sample.

No network: the sample (``population.demo_population``, about 2,000 domains in 2023Q4 and 2024Q2)
is served by :class:`authserver.ServerThread` on a free loopback port, scanned into two
snapshots, reported and charted exactly as a real quarterly scan would be.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import charts, report
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
    """Scan both demo quarters into ``out``, print the report, write the trend chart.

    The demo's own snapshots (2023Q4, 2024Q2) are replaced on every run.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    manifests = {}
    for quarter, pop in population.demo_population().items():
        listing = out / f"demo-domains-{quarter}.txt"
        listing.write_text("\n".join(pop.domains) + "\n", encoding="utf-8")
        with ServerThread(pop.zones) as server:
            echo(
                f"{quarter}: scanning {len(pop.domains):,} synthetic .jp domains against {server.address}"
            )
            manifests[quarter] = scan(
                [listing], out, snapshot=quarter, force=True, on_progress=on_progress,
                options=ScanOptions(
                    resolvers=[server.address], qps=0, concurrency=256, timeout=2.0,
                    mta_sts_policy=False,  # offline: no HTTPS fetch
                ),
            )  # fmt: skip
    newest = list(manifests)[-1]
    echo("")
    echo(report.render(report.report(out, newest), "table", lang, title=f"snapshot {newest}"))
    chart_path = charts.chart(out, out / "trend.png", kind="trend", lang=lang)
    echo("")
    echo(f"trend chart: {chart_path}")
    echo(f"snapshots:   {out / 'domains'}  (pandas.read_parquet({str(out / 'domains')!r}))")
    echo(f"done in {time.monotonic() - started:.1f} s")
    return {"manifests": manifests, "chart": chart_path}
