"""What a person watching a scan sees on stderr: a progress bar, bad lines, a summary."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .collect.options import ScanCounters


class ScanDisplay:
    """A rich progress bar with domains/s and the error counts; quiet when disabled."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.console = Console(stderr=True)
        self._bar: Progress | None = None
        self._task = None
        self._last = 0.0
        self._t0 = time.monotonic()
        self._done0: int | None = None

    def __enter__(self) -> ScanDisplay:
        self._t0 = time.monotonic()
        return self

    def _start(self) -> None:
        """The bar appears with the first progress report: a scan refused while its inputs are
        checked shows its one line of error and nothing else."""
        self._bar = Progress(
            TextColumn("[bold]scan"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[errors]}"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._bar.__enter__()
        self._task = self._bar.add_task("scan", total=None, rate="", errors="")

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def error(self, message: str) -> None:
        """A bad input line: always shown, one line, naming file and line number."""
        self.console.print(message, markup=False, highlight=False, soft_wrap=True)

    def update(self, p: ScanCounters) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            self._start()
        now = time.monotonic()
        if self._done0 is None:
            self._done0 = p.skipped
        if now - self._last < 0.2 and p.done < p.total:
            return
        self._last = now
        elapsed = max(now - self._t0, 1e-6)
        rate = (p.done - self._done0) / elapsed
        errs = {k: v for k, v in p.by_status.items() if k not in ("ok", "nxdomain")}
        errors = " ".join(f"{k} {v}" for k, v in sorted(errs.items())) or "no errors"
        self._bar.update(
            self._task,
            total=p.total,
            completed=p.done,
            rate=f"{rate:,.0f} domains/s",
            errors=f"nxdomain {p.by_status.get('nxdomain', 0)} · {errors}",
        )

    def summary(self, manifest: dict[str, Any]) -> None:
        table = Table(title=f"snapshot {manifest['snapshot']}", show_header=True)
        table.add_column("status")
        table.add_column("domains", justify="right")
        total = manifest.get("domains", 0) or 0
        for status, n in manifest.get("status_counts", {}).items():
            table.add_row(status, f"{n:,} ({100 * n / total:.1f}%)" if total else str(n))
        table.add_row("[bold]total", f"[bold]{total:,}")
        q = manifest.get("queries", {})
        self.console.print(table)
        self.console.print(
            f"queries {q.get('queries', 0):,} · timeouts {q.get('timeouts', 0):,} · junk replies "
            f"{q.get('junk', 0):,} · cache hits {q.get('cache_hits', 0):,} · bad list lines "
            f"{manifest.get('bad_lines', 0):,}",
            highlight=False,
        )
        skipped = manifest.get("probes_skipped") or {}
        if skipped:
            words = {"excluded domain": "opt-out", "non-global address": "non-global address"}
            why = " · ".join(f"{words.get(k, k)} {n:,}" for k, n in skipped.items())
            self.console.print(
                f"{sum(skipped.values()):,} probes skipped ({why}); see --allow-private, --exclude",
                highlight=False,
                soft_wrap=True,
            )
