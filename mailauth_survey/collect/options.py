"""What a scan is asked to do (:class:`ScanOptions`), how it fails (:class:`ScanError`), and the
running counts it reports (:class:`ScanCounters`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


class ScanError(RuntimeError):
    """A fatal problem, reported in one line (unreadable list, finished snapshot, ...)."""


@dataclass
class ScanOptions:
    resolvers: list[str] = field(default_factory=list)
    qps: float = 2500
    concurrency: int = 512
    timeout: float = 2.5
    retries: int = 2
    payload: int = 1232
    workers: int = 1  # processes; each runs its own event loop and fleet
    cluster: str | None = None  # a Dask scheduler (tcp://HOST:PORT) or local:N
    cluster_wait: float = 60.0  # seconds to wait for a first worker to join the scheduler
    dead_after: float = 45.0  # seconds of silence from every resolver that stop the scan
    # Transport security probes beyond DNS (never to non-global addresses unless allow_private).
    mta_sts_policy: bool = True  # fetch https://mta-sts.<domain>/.well-known/mta-sts.txt
    probe_smtp: bool = False  # STARTTLS on port 25 of every MX host (opt-in)
    allow_private: bool = False
    exclude: str | None = None  # opt-out list: domains and networks never probed
    ehlo_name: str = "mailauth-survey.invalid"
    info_url: str | None = None  # a page about the survey, in the User-Agent
    probe_timeout: float = 10.0
    https_port: int = 443
    smtp_port: int = 25
    cafile: str | None = None


@dataclass
class ScanCounters:
    """Running counters, handed to the progress callback."""

    total: int = 0
    done: int = 0
    skipped: int = 0  # already in the snapshot (resumed)
    by_status: Counter = field(default_factory=Counter)
    bad_lines: int = 0
    queries: int = 0
