"""``--workers``: processes on this machine that claim buckets from one shared counter."""

from __future__ import annotations

import multiprocessing
import queue as queue_module
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

from .. import store
from ..resolver import Stats
from .engine import run_buckets
from .options import ScanCounters, ScanError, ScanOptions
from .spool import bucket_domains


def _claimed(todo: list[int], claims: Any) -> Iterator[int]:
    """The buckets of ``todo`` this process claims, one at a time, from a counter all share.

    Each process takes the next bucket when it is ready for one, so they finish together
    (a fixed split left one process scanning alone for seconds at the end).
    """
    while True:
        with claims.get_lock():
            i = claims.value
            claims.value = i + 1
        if i >= len(todo):
            return
        yield todo[i]


def _worker_main(
    index: int,
    orders: Any,
    claims: Any,
    work: Path,
    snap: store.Snapshot,
    options: ScanOptions,
    channel: Any,
) -> None:
    """One ``--workers`` process: its buckets, progress and the end sent back on ``channel``.

    Started before the list is spooled, it waits on ``orders`` for the buckets to do (and the
    number of processes sharing them), or None: nothing for it to do. It ends if the parent
    does before saying (killed while spooling): it would otherwise wait forever.
    """
    parent = multiprocessing.parent_process()
    while True:
        try:
            order = orders.get(timeout=1.0)
            break
        except queue_module.Empty:
            if parent is not None and not parent.is_alive():
                return
    if order is None:
        return
    todo, share = order
    progress = ScanCounters()
    sent = {"done": 0, "status": Counter(), "at": 0.0}

    def report(p: ScanCounters, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - sent["at"] < 0.25:
            return
        delta = p.by_status - sent["status"]
        channel.put(("progress", index, p.done - sent["done"], dict(delta), p.queries))
        sent.update(done=p.done, status=Counter(p.by_status), at=now)

    try:
        stats = run_buckets(
            _claimed(todo, claims),
            partial(bucket_domains, work),
            snap,
            progress,
            options,
            report,
            share,
        )
        report(progress, final=True)
        channel.put(("done", index, asdict(stats)))
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent as one line
        channel.put(("fatal", index, str(exc) or exc.__class__.__name__))


class Workers:
    """The other ``--workers`` processes, started before the list is spooled.

    Starting one (a new interpreter importing the scanner) takes about as long as spooling
    100,000 names: done side by side, the second core is not idle while the first spools.
    This process is one of the workers: it claims buckets as the others do while it relays
    their progress, so ``--workers 2`` is two processes, not three.
    """

    def __init__(self, work: Path, snap: store.Snapshot, options: ScanOptions) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.options = options
        self.work, self.snap = work, snap
        self.channel = ctx.Queue()
        # One orders queue each: which processes get work is decided here, not raced for.
        self.orders = [ctx.Queue() for _ in range(1, options.workers)]
        self.claims = ctx.Value("q", 0)
        self.finished = False
        self.procs = [
            ctx.Process(
                target=_worker_main,
                args=(i, self.orders[i - 1], self.claims, work, snap, options, self.channel),
                daemon=True,
            )
            for i in range(1, options.workers)
        ]
        for proc in self.procs:
            proc.start()

    def close(self) -> None:
        """Wait for the processes after a finished run; stop them after anything else."""
        for proc in self.procs:
            if not self.finished and proc.is_alive():
                proc.terminate()
            proc.join(5)

    def run(
        self,
        todo: list[int],
        progress: ScanCounters,
        on_progress: Callable[[ScanCounters], None] | None,
    ) -> Stats:
        """Spread the buckets of ``todo`` over this process and the others."""
        n = min(len(self.procs) + 1, len(todo))
        procs = self.procs[: n - 1]  # (processes 1 .. n-1; this one is 0)
        for i, orders in enumerate(self.orders):
            orders.put((todo, n) if i < n - 1 else None)
        channel, claims = self.channel, self.claims
        total = Stats()
        base = progress.done  # (domains skipped on resume)
        base_status = Counter(progress.by_status)  # (and their statuses: the whole snapshot)
        others = {"done": 0, "status": Counter(), "queries": [0] * n, "finished": 0}
        mine = ScanCounters()

        def publish() -> None:
            progress.done = base + mine.done + others["done"]
            progress.by_status = base_status + mine.by_status + others["status"]
            progress.queries = mine.queries + sum(others["queries"])
            if on_progress is not None:
                on_progress(progress)

        def drain(timeout: float | None) -> None:
            """Take the other workers' messages (waiting up to ``timeout`` s for the first)."""
            while True:
                try:
                    msg = channel.get(timeout=timeout) if timeout else channel.get_nowait()
                except queue_module.Empty:
                    dead = [p for p in procs if p.exitcode not in (None, 0)]
                    if dead:
                        raise ScanError(
                            f"a scan worker died (exit code {dead[0].exitcode}); run the same command again to resume"
                        ) from None
                    return
                timeout = None
                kind, index = msg[0], msg[1]
                if kind == "progress":
                    _, _, done, statuses, q = msg
                    others["done"] += done
                    others["status"].update(statuses)
                    others["queries"][index] = q
                elif kind == "done":
                    others["finished"] += 1
                    total.merge(msg[2])
                else:
                    raise ScanError(f"{msg[2]}")

        last = [0.0]

        def relay(p: ScanCounters) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.25:
                last[0] = now
                drain(None)
                publish()

        own = run_buckets(
            _claimed(todo, claims),
            partial(bucket_domains, self.work),
            self.snap,
            mine,
            self.options,
            relay,
            n,
        )
        total.merge(own)
        while others["finished"] < n - 1:
            drain(1.0)
            publish()
        publish()
        self.finished = True
        return total
