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

import json
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
#: Seconds to wait for the scheduler of ``--cluster tcp://...`` to answer.
CONNECT_TIMEOUT = 10.0
#: Where each finished shard leaves its record (beside the domains parts; pandas skips it), so
#: the manifest lists every shard of every run, including runs that were killed.
SHARDS_FOLDER = "_shards"


class ShardCancelled(RuntimeError):
    """The scan that wanted this shard is gone (ended, interrupted or killed): stop scanning."""


def _still_wanted() -> Callable[[Any], None]:
    """A progress callback for a shard task that raises ShardCancelled once the scheduler has
    cancelled or released the task (its client was closed or died), checked twice a second."""
    try:
        from distributed import get_worker

        worker = get_worker()
        key = worker.get_current_task()
    except (ImportError, ValueError):
        return lambda _p: None
    last = [time.monotonic()]

    def check(_progress: Any) -> None:
        now = time.monotonic()
        if now - last[0] < 0.5:
            return
        last[0] = now
        ts = worker.state.tasks.get(key)
        if ts is None or ts.state in ("cancelled", "released", "forgotten"):
            raise ShardCancelled(f"shard task {key} was cancelled")

    return check


def _shard_task(
    bucket: int,
    names: list[str],
    snap: store.Snapshot,
    options: ScanOptions,
    share: int,
) -> dict[str, Any]:
    """Scan one shard inside a Dask worker; record it beside the parts and return the record.

    ``snap`` pickles with its filesystem's storage options.
    """
    started = time.time()
    progress = ScanCounters()
    stats = run_buckets(
        [bucket], lambda _b: names, snap, progress, options, _still_wanted(), share
    )
    try:
        from distributed import get_worker

        worker = get_worker().address
    except (ImportError, ValueError):
        worker = socket.gethostname()
    record = {
        "shard": bucket,
        "domains": len(names),
        "worker": worker,
        "started": started,
        "finished": time.time(),
        "by_status": dict(progress.by_status),
        "stats": asdict(stats),
    }
    shard_record(snap, bucket).write_bytes(json.dumps(record).encode())
    return record


def shard_record(snap: store.Snapshot, bucket: int) -> store.Location:
    return snap.domains / SHARDS_FOLDER / f"shard-{bucket:05d}.json"


def shard_records(snap: store.Snapshot) -> list[dict[str, Any]]:
    """Every shard recorded in the snapshot, by every run (without their counters)."""
    out = []
    for loc in (snap.domains / SHARDS_FOLDER).glob("shard-*.json"):
        record = json.loads(loc.read_text())
        record.pop("stats", None)
        record.pop("by_status", None)
        out.append(record)
    return sorted(out, key=lambda r: r["shard"])


def connect(address: str, wait: float, notify: Callable[[str], None]) -> tuple[Any, Any]:
    """A Client for ``tcp://HOST:PORT`` with at least one worker, or for a new LocalCluster of N
    processes (``local:N``). Done before the scan writes anything: an unreachable scheduler is a
    ScanError after CONNECT_TIMEOUT s, a scheduler without workers one after ``wait`` s (said on
    ``notify`` while it waits)."""
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
        # No dashboard (bokeh), and the scheduler's own HTTP routes on a free loopback port:
        # its default, 8787, warned "Port 8787 is already in use" though no one asked for it.
        cluster = LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        )  # fmt: skip
        return Client(cluster), cluster
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise ScanError(
            f"--cluster {address}: no Dask scheduler answered in {CONNECT_TIMEOUT:.0f} s ({why})"
        ) from None
    try:
        if not client.nthreads():
            notify(f"waiting up to {wait:.0f} s for a Dask worker to join the scheduler at {address}")
            client.wait_for_workers(1, timeout=wait)
    except (TimeoutError, OSError):
        client.close()
        raise ScanError(
            f"--cluster {address}: no worker joined the scheduler in {wait:.0f} s; start "
            f"'dask worker {address}' on the scanning machines (or raise --cluster-wait)"
        ) from None
    return client, None


def run_on_cluster(
    client: Any,
    label: str,
    todo: list[int],
    names_of: Callable[[int], list[str]],
    snap: store.Snapshot,
    progress: ScanCounters,
    options: ScanOptions,
    on_progress: Callable[[ScanCounters], None] | None,
) -> tuple[Stats, list[dict[str, Any]]]:
    """Run one task per shard, at most one per worker thread present at the start; return the
    merged stats and the record of every shard of the snapshot (this run's and earlier ones').

    The caps stay true whatever joins later: each task gets 1/slots of ``--qps`` and
    ``--concurrency``, and no more than ``slots`` tasks are submitted at once (a worker that joins
    later is not used; one that leaves lowers the rate). Every task still pending or running is
    cancelled when this returns or raises (a running one stops at its next progress check).
    """
    from distributed import as_completed

    slots = max(1, sum(client.nthreads().values()))
    waiting = iter(todo)
    futures: list[Any] = []
    running = as_completed()

    def submit_next() -> None:
        b = next(waiting, None)
        if b is None:
            return
        fut = client.submit(
            _shard_task, b, names_of(b), snap, options, slots,
            key=f"mailauth-survey-{label}-shard-{b:05d}", pure=False, retries=SHARD_RETRIES,
        )  # fmt: skip
        futures.append(fut)
        running.add(fut)

    total = Stats()
    try:
        for _ in range(slots):
            submit_next()
        for fut in running:
            try:
                result = fut.result()
            except Exception as exc:  # noqa: BLE001 - a shard that failed every retry
                raise ScanError(
                    f"a shard failed on the cluster: {exc}; run the same command again to resume"
                ) from None
            submit_next()
            total.merge(result.pop("stats"))
            progress.done += result["domains"]
            progress.by_status.update(result.pop("by_status"))
            progress.queries = total.queries
            if on_progress is not None:
                on_progress(progress)
        return total, shard_records(snap)
    finally:
        pending = [f for f in futures if not f.done()]
        if pending:
            client.cancel(pending)
