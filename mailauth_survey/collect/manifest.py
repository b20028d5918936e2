"""A snapshot's manifest: what was scanned, with which options, and how it ended."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from .. import __version__, store
from ..domains import psl_version
from ..policies.dkim import SELECTORS
from ..resolver import Stats
from .options import ScanCounters, ScanOptions


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def default_label() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def started(
    label: str,
    inputs: list[dict[str, str]],
    options: ScanOptions,
    buckets: int,
    started_at: str,
) -> dict[str, Any]:
    """The manifest of a scan under way (``complete`` False until :func:`finish`)."""
    return {
        "schema_version": store.SCHEMA_VERSION,
        "package": "mailauth-survey",
        "package_version": __version__,
        "snapshot": label,
        "complete": False,
        "started_at": started_at,
        "finished_at": None,
        "inputs": inputs,
        "public_suffix_list": psl_version(),
        "dkim_selectors": list(SELECTORS),  # where DKIM keys are looked for (a lower bound)
        "options": asdict(options),
        "buckets": buckets,
    }


def status_counts(parts: Iterable[store.Location]) -> Counter:
    """Domains by status over a snapshot's domains parts."""
    counts: Counter = Counter()
    for part in parts:
        counts.update(store.read_table(part, columns=["status"]).column("status").to_pylist())
    return counts


def finish(
    manifest: dict[str, Any], snap: store.Snapshot, counters: ScanCounters, stats: Stats
) -> None:
    """Mark ``manifest`` complete, with the counts of the snapshot's domains parts."""
    counts = status_counts(snap.domains.glob("part-*.parquet"))
    manifest.update(
        complete=True,
        finished_at=now(),
        domains=sum(counts.values()),
        status_counts=dict(sorted(counts.items())),
        bad_lines=counters.bad_lines,
        queries=asdict(stats),
        probes_skipped=skipped_probes(snap.probes.glob("part-*.parquet")),
    )


def skipped_probes(parts: Iterable[store.Location]) -> dict[str, int]:
    """Probes not made, by reason (``non-global address``, ``excluded domain``...): a scan
    that probed nothing must say so, not look like one that found nothing."""
    counts: Counter = Counter()
    for part in parts:
        t = store.read_table(part, columns=["status", "detail"]).to_pydict()
        counts.update(
            d or "" for s, d in zip(t["status"], t["detail"], strict=True) if s == "skipped"
        )
    return dict(sorted(counts.items()))


def add_retry(
    manifest: dict[str, Any],
    parts: Iterable[store.Location],
    counters: ScanCounters,
    options: ScanOptions,
    stats: Stats,
) -> None:
    """Record a ``--retry-errors`` run, and the status counts it leaves."""
    counts = status_counts(parts)
    manifest.setdefault("retries", []).append(
        {
            "at": now(),
            "domains": counters.total,
            "resolvers": options.resolvers,
            "result": dict(sorted(counters.by_status.items())),
            "queries": asdict(stats),
        }
    )
    manifest["status_counts"] = dict(sorted(counts.items()))
