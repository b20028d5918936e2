"""Run a scan on a Dask cluster (``distributed``): one shard per task, the same scanner inside.

A shard is a hash bucket of the list (the same buckets a single machine uses, so a re-run gives
the same shards and a finished shard is never scanned again). Each task runs the asyncio scanner
on its shard and writes that shard's Parquet parts atomically into the snapshot, wherever it is
(any fsspec location: a shared local path, NFS, S3...; the task receives its shard's names, so
no spool is shared); a worker lost mid-shard means
Dask runs the task again elsewhere, and the half-written shard is simply overwritten. The caps
are cluster-wide: each running task gets its share of ``--qps`` and ``--concurrency``.

``distributed`` is an optional extra (``pip install mailauth-survey[cluster]``); nothing on the
single-machine path imports this module.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from .. import store
from ..resolver import Stats
from .engine import run_buckets
from .options import ScanCounters, ScanError, ScanOptions

#: How often Dask may rerun a shard whose worker died before giving up on the scan.
SHARD_RETRIES = 3


def _shard_task(
    bucket: int,
    names: list[str],
    snap: store.Snapshot,
    options: ScanOptions,
    share: int,
) -> dict[str, Any]:
    """Scan one shard inside a Dask worker; return its stats and where it ran.

    ``snap`` pickles with its filesystem's storage options.
    """
    started = time.time()
    progress = ScanCounters()
    stats = run_buckets([bucket], lambda _b: names, snap, progress, options, None, share)
    try:
        from distributed import get_worker

        worker = get_worker().address
    except (ImportError, ValueError):
        worker = socket.gethostname()
    return {
        "shard": bucket,
        "domains": len(names),
        "worker": worker,
        "started": started,
        "finished": time.time(),
        "by_status": dict(progress.by_status),
        "stats": asdict(stats),
    }


def connect(address: str) -> tuple[Any, Any]:
    """A Client for ``tcp://HOST:PORT``, or for a new LocalCluster of N processes (``local:N``)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ScanError(
            "--cluster needs the optional 'distributed' package: pip install 'mailauth-survey[cluster]'"
        ) from None
    if address.startswith("local:"):
        try:
            n = int(address.split(":", 1)[1])
        except ValueError:
            raise ScanError(
                f"--cluster {address}: expected local:N with N a number of workers"
            ) from None
        cluster = LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None
        )
        return Client(cluster), cluster
    try:
        return Client(address, timeout=30), None
    except (OSError, TimeoutError) as exc:
        raise ScanError(f"cannot reach the Dask scheduler at {address}: {exc}") from None


def run_on_cluster(
    address: str,
    label: str,
    todo: list[int],
    names_of: Callable[[int], list[str]],
    snap: store.Snapshot,
    progress: ScanCounters,
    options: ScanOptions,
    on_progress: Callable[[ScanCounters], None] | None,
) -> tuple[Stats, list[dict[str, Any]]]:
    """Submit one task per shard and wait for all; return merged stats and the shard list."""
    from distributed import as_completed

    client, cluster = connect(address)
    try:
        slots = max(1, sum(client.nthreads().values()))
        futures = [
            client.submit(
                _shard_task,
                b,
                names_of(b),
                snap,
                options,
                slots,
                key=f"mailauth-survey-{label}-shard-{b:05d}",
                pure=False,
                retries=SHARD_RETRIES,
            )  # fmt: skip
            for b in todo
        ]
        total = Stats()
        shards: list[dict[str, Any]] = []
        for fut in as_completed(futures):
            try:
                result = fut.result()
            except Exception as exc:  # noqa: BLE001 - a shard that failed every retry
                raise ScanError(
                    f"a shard failed on the cluster: {exc}; run the same command again to resume"
                ) from None
            total.merge(result.pop("stats"))
            by_status = result.pop("by_status")
            progress.done += result["domains"]
            progress.by_status.update(by_status)
            progress.queries = total.queries
            shards.append(result)
            if on_progress is not None:
                on_progress(progress)
        shards.sort(key=lambda r: r["shard"])
        return total, shards
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
