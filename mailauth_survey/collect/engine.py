"""The engine of one scanning process: its event loop, its fleet, its buckets, its parts.

:func:`run_buckets` scans buckets one after the other in this process; the ``--workers``
processes (:mod:`.workers`) and the Dask tasks (:mod:`.cluster`) each run it on their share.
Buckets are pulled by ``concurrency`` coroutines from one iterator; each whole bucket is written
as one Parquet part of each table, atomically, records and probes before domains, so a domains
part on disk means its bucket is done.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import os
from collections.abc import AsyncIterator, Callable, Iterable, Iterator

import pyarrow as pa

from .. import store
from ..resolver import Fleet, NoResolverAnswering, Stats
from .domain import Probing, Record, scan_domain
from .options import ScanCounters, ScanError, ScanOptions
from .spool import part_name

#: The scanning processes' garbage collector thresholds (see :func:`_tune_gc`).
GC_THRESHOLDS = tuple(
    int(x) for x in os.environ.get("MAILAUTH_SURVEY_GC", "400000,20,100").split(",")
)


def event_loop_runner() -> asyncio.Runner:
    try:
        import uvloop

        return asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        return asyncio.Runner()


def _new_fleet(options: ScanOptions, share: int = 1) -> Fleet:
    """A fleet for one process; with ``share`` processes each gets its part of the caps."""
    return Fleet(
        options.resolvers or None,
        timeout=options.timeout,
        retries=options.retries,
        qps=options.qps / share if options.qps else 0,
        concurrency=max(1, options.concurrency // share),
        payload=options.payload,
        dead_after=options.dead_after,
    )


@contextlib.asynccontextmanager
async def open_scanner(
    options: ScanOptions, share: int = 1
) -> AsyncIterator[tuple[Fleet, Probing | None]]:
    """The fleet (sockets open) and the probes of one scanning process, closed on the way out."""
    fleet = _new_fleet(options, share)
    probing = Probing.from_options(options)
    await fleet.open()
    try:
        yield fleet, probing
    finally:
        fleet.close()
        if probing is not None:
            await probing.close()


def _tune_gc() -> None:
    """Collect cyclic garbage rarely: a scan allocates millions of short-lived acyclic objects.

    What was loaded before the scan is frozen out of the collector's sight, and young passes are
    few and large: each walks every young object still alive, and the scan makes almost no cyclic
    garbage (tested), so the threshold does not hold memory back. See docs/design.md.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run_buckets(
    todo: Iterable[int],
    names_of: Callable[[int], list[str]],
    snap: store.Snapshot,
    progress: ScanCounters,
    options: ScanOptions,
    on_progress: Callable[[ScanCounters], None] | None,
    share: int = 1,
) -> Stats:
    """Scan the ``todo`` buckets in this process, on its own event loop."""

    # The system allocator gives freed Parquet buffers back; mimalloc keeps them per thread.
    # (What pyarrow allocates from C++ follows ARROW_DEFAULT_MEMORY_POOL: see the package's
    # __init__.)
    pa.set_memory_pool(pa.system_memory_pool())
    _tune_gc()

    async def run() -> Stats:
        async with open_scanner(options, share) as (fleet, probing):
            await _scan_buckets(
                todo, names_of, fleet, snap, progress, options, on_progress, probing
            )
        return fleet.stats

    with event_loop_runner() as runner:
        stats = runner.run(run())
    # What the scan leaves (the process's parse and name caches) lives until exit: frozen, the
    # interpreter's collections at exit do not walk it (on the scan's critical path).
    gc.freeze()
    return stats


async def _scan_buckets(
    todo: Iterable[int],
    names_of: Callable[[int], list[str]],
    fleet: Fleet,
    snap: store.Snapshot,
    progress: ScanCounters,
    options: ScanOptions,
    on_progress: Callable[[ScanCounters], None] | None,
    probing: Probing | None = None,
) -> None:
    """Workers pull domains bucket after bucket; a bucket's parts are written when it is whole."""
    pending: dict[int, int] = {}  # bucket → domains not yet finished
    rows: dict[int, list[dict]] = {}
    recs: dict[int, list[Record]] = {}
    prob: dict[int, list[dict]] = {}
    fatal: list[BaseException] = []

    def feed() -> Iterator[tuple[int, str]]:
        """(bucket, name) in scan order. One iterator that every worker takes its next domain
        from (nothing awaits inside it): no queue, no producer task between them."""
        for b in todo:
            names = names_of(b)
            if not names:
                writes.append(loop.run_in_executor(writer, _write_bucket, b, [], [], [], snap))
                continue
            pending[b] = len(names)
            rows[b], recs[b], prob[b] = [], [], []
            for name in names:
                yield b, name

    held: list[int] = []  # whole buckets kept back while no resolver answers

    writes: list[asyncio.Future] = []
    # One writer thread: parts are written in order, and one thread keeps one malloc arena.
    writer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="parts")
    loop = asyncio.get_running_loop()

    def flush(b: int) -> None:
        # Parquet encoding runs in a thread so that replies keep being read meanwhile.
        args = (b, rows.pop(b), recs.pop(b), prob.pop(b), snap)
        writes.append(loop.run_in_executor(writer, _write_bucket, *args))
        del pending[b]

    async def worker() -> None:
        for b, name in domains:
            row, records, probe_rows = await scan_domain(name, fleet, probing)
            fleet.check_alive()
            rows[b].append(row)
            recs[b].extend(records)
            prob[b].extend(probe_rows)
            progress.done += 1
            progress.by_status[row["status"]] += 1
            progress.queries = fleet.stats.queries
            pending[b] -= 1
            if pending[b] == 0:
                held.append(b)
            # A bucket finished while the whole fleet was silent may hold timeouts that are the
            # fleet's, not the domains': keep it back until a resolver answers again (at all,
            # at the start). If none does, the scan stops and those buckets are scanned again
            # on resume.
            if held and fleet.stats.replies and fleet.silent_for() < fleet.timeout:
                for hb in held:
                    flush(hb)
                held.clear()
            if on_progress is not None:
                on_progress(progress)

    domains = feed()
    tasks = [asyncio.create_task(worker()) for _ in range(options.concurrency)]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for t in done:
            if t.exception() is not None:
                fatal.append(t.exception())
        if not fatal and fleet.stats.queries and not fleet.stats.replies:
            # Not one reply: the timeouts are the fleet's, not the domains'. Nothing is
            # stored, and the snapshot is never marked complete.
            fatal.append(
                NoResolverAnswering(
                    f"no resolver answered any of {fleet.stats.queries} queries "
                    f"({', '.join(fleet.names)})"
                )
            )
        if not fatal:
            for hb in held:  # the scan ended with answers: the last buckets are whole
                flush(hb)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for result in await asyncio.gather(*writes, return_exceptions=True):
            if isinstance(result, BaseException):
                fatal.append(result)
        writer.shutdown()
    if fatal:
        exc = fatal[0]
        if isinstance(exc, NoResolverAnswering):
            raise ScanError(
                f"{exc}; nothing was stored for the unfinished domains, run the same command again to resume"
            )
        raise exc


def _write_bucket(
    b: int,
    rows: list[dict],
    recs: list[Record],
    probes: list[dict],
    snap: store.Snapshot,
) -> None:
    """Records and probes first, then domains: a domains part on disk means the bucket is whole."""
    rows.sort(key=lambda r: r["domain"])
    store.write_tuples(snap.records, part_name(b), recs, store.RECORDS_SCHEMA)
    # Even with no probe made: every table of SPEC.md's layout is there for pandas to read.
    store.write_part(snap.probes, part_name(b), probes, store.PROBES_SCHEMA)
    store.write_part(snap.domains, part_name(b), rows, store.DOMAINS_SCHEMA)
