"""Collection: domain lists → per-domain query plans → stored answers → snapshot parts.

The per-domain plan is the analysis itself (see :mod:`mailauth_survey.analysis`): each round runs
the analysis over the answers gathered so far and fetches what it asked for and did not find,
until it asks for nothing more. Every answer read goes to the records table, so the domains
table can be rebuilt from it with no network (``reanalyze``).

Streaming: the lists are spooled into hash buckets on disk (which also drops duplicates and
shuffles the order, so no provider's name servers get a burst); buckets are scanned one after
the other and each becomes one Parquet part of each table, written atomically. Memory stays at a
few buckets whatever the list length, and a re-run skips the buckets already written.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import math
import multiprocessing
import os
import queue as queue_module
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa

from .. import __version__, store
from ..analysis import (
    MAX_MX_HOSTS,
    DomainProbes,
    analyze_parts,
    domain_row,
    transport_columns,
)
from ..answers import APEX_QTYPES, Answer, AnswerSet
from ..domains import lists_table, name_hash, psl_version, read_list, sha256_file
from ..probes.https import dns_failure, fetch_policy
from ..probes.results import PROBES_SCHEMA, to_row
from ..probes.settings import ProbeSettings, domain_excluded, load_exclusions
from ..probes.smtp import SmtpProber
from ..resolver import Fleet, Lookup, NoResolverAnswering, Stats, system_resolvers

#: Bounds on what one domain's zone can make the scanner do (hostile zones).
MAX_ROUNDS = 30
MAX_QUERIES_PER_DOMAIN = 200
#: About this many input bytes per bucket (~2,000 names): one Parquet part each, and the unit of
#: work a resume redoes. MAILAUTH_SURVEY_BUCKET_BYTES overrides it (tests make small buckets).
BUCKET_BYTES = int(os.environ.get("MAILAUTH_SURVEY_BUCKET_BYTES", "30000"))
MAX_BUCKETS = 8192
#: The scanning processes' garbage collector thresholds (see :func:`_tune_gc`).
GC_THRESHOLDS = tuple(
    int(x) for x in os.environ.get("MAILAUTH_SURVEY_GC", "400000,20,100").split(",")
)
#: Statuses that ``--retry-errors`` scans again.
RETRY_STATUSES = ("servfail", "timeout", "error")


class ScanError(RuntimeError):
    """A fatal problem, reported in one line (unreadable list, finished snapshot, ...)."""


@dataclass
class ScanOptions:
    resolvers: list[str] = field(default_factory=list)
    qps: float = 2000
    concurrency: int = 256
    timeout: float = 2.5
    retries: int = 2
    payload: int = 1232
    workers: int = 1  # processes; each runs its own event loop and fleet
    cluster: str | None = None  # a Dask scheduler (tcp://HOST:PORT) or local:N
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
class Progress:
    """Running counters, handed to the progress callback."""

    total: int = 0
    done: int = 0
    skipped: int = 0  # already in the snapshot (resumed)
    by_status: Counter = field(default_factory=Counter)
    bad_lines: int = 0
    queries: int = 0


def _shared(name: str, domain: str) -> bool:
    """Whether other domains may ask for ``name`` too, so the scan's cache should keep it.

    Names under the domain, and the DMARC report authorizations that embed it
    (``<domain>._report._dmarc.<destination>``), are this domain's alone.
    """
    if name.endswith(domain) and (len(name) == len(domain) or name[-len(domain) - 1] == "."):
        return False
    return not name.startswith(domain + "._report._dmarc.")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us(epoch: float) -> int:
    """Microseconds since the epoch: how records hold their time until the part is written."""
    return int(epoch * 1_000_000 + 0.5)


def _ts(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


#: A records-table row is a tuple in RECORDS_SCHEMA order: a third of a dict's memory, and a
#: scan holds a few buckets of them (~16 per domain) before each part is written.
Record = tuple
_QUERIED_AT = store.RECORDS_SCHEMA.names.index("queried_at")


def record_row(domain: str, lk: Lookup) -> Record:
    a = lk.answer
    return (
        domain,
        a.qname,
        a.qtype,
        a.rcode,
        a.records,  # a tuple; a list once in a dict row
        a.ad,
        lk.rtt_ms,
        lk.attempts,
        lk.resolver,
        lk.transport,
        _us(lk.when),
    )


def record_dict(record: Record) -> dict[str, Any]:
    row = dict(zip(store.RECORDS_SCHEMA.names, record, strict=True))
    row["queried_at"] = _ts(row["queried_at"])
    row["answers"] = list(row["answers"])
    return row


class Probing:
    """The probes beyond DNS one scan makes: MTA-STS policies over HTTPS, STARTTLS on port 25.

    SMTP hosts are probed once per scan (per process) however many domains share them; their
    rows go to the probes table with the first domain that needed them.
    """

    def __init__(self, settings: ProbeSettings, *, policy: bool, smtp: bool) -> None:
        self.settings = settings
        self.policy = policy
        self.prober = SmtpProber(settings) if smtp else None
        self._emitted: set[str] = set()

    @classmethod
    def from_options(cls, options: ScanOptions) -> Probing | None:
        if not (options.mta_sts_policy or options.probe_smtp):
            return None
        domains, networks = load_exclusions(options.exclude) if options.exclude else ((), ())
        settings = ProbeSettings(
            timeout=options.probe_timeout,
            ehlo_name=options.ehlo_name,
            info_url=options.info_url,
            allow_private=options.allow_private,
            exclude_domains=frozenset(domains),
            exclude_networks=tuple(networks),
            https_port=options.https_port,
            smtp_port=options.smtp_port,
            cafile=options.cafile,
        )
        return cls(settings, policy=options.mta_sts_policy, smtp=options.probe_smtp)

    async def run(
        self, domain: str, row: dict[str, Any], dns: AnswerSet
    ) -> tuple[DomainProbes, list[dict]]:
        out: list[dict] = []
        fetch = None
        if self.policy and row["mta_sts_status"] == "valid":
            host = f"mta-sts.{domain}"
            answers = [dns.get(host, "A"), dns.get(host, "AAAA")]
            addresses = [ip for a in answers for ip in a.rdata()]
            if addresses:
                fetch = await fetch_policy(domain, addresses, self.settings)
            else:
                why = "/".join(f"{a.qtype} {a.rcode}" for a in answers)
                fetch = dns_failure(domain, f"no address for {host} ({why})", self.settings)
            out.append({**to_row(fetch), "domain": domain})
        smtp = None
        if self.prober is not None and row["mx_hosts"] is not None:
            smtp = []
            excluded = domain_excluded(domain, self.settings)
            for host in row["mx_hosts"][:MAX_MX_HOSTS]:
                addresses = [ip for t in ("A", "AAAA") for ip in dns.get(host, t).rdata()]
                probes = await self.prober.probe(host, addresses, domain)
                smtp.extend(probes)
                if not excluded and host not in self._emitted:
                    self._emitted.add(host)
                    out.extend(to_row(p) for p in probes)
        return DomainProbes(fetch, smtp), out

    async def close(self) -> None:
        if self.prober is not None:
            await self.prober.aclose()


async def scan_domain(
    domain: str, fleet: Fleet, probing: Probing | None = None
) -> tuple[dict[str, Any], list[Record], list[dict[str, Any]]]:
    """Collect what the analysis of ``domain`` needs; return its row, records and probes."""
    dns = AnswerSet()
    records: list[Record] = []

    def from_cache(key: tuple[str, str]) -> Answer | None:
        # A shared name the scan already holds is read at once, and stored as a lookup answered
        # from the cache, as it would be a round later (within the domain's query budget).
        if len(records) >= MAX_QUERIES_PER_DOMAIN or not _shared(key[0], domain):
            return None
        lk = fleet.cached(key)
        if lk is None:
            return None
        records.append(record_row(domain, lk))
        return lk.answer

    dns.fill = from_cache
    # The apex first: when it does not exist, nothing below it is asked (RFC 8020).
    need: list[tuple[str, str]] = [(domain, t) for t in APEX_QTYPES]
    memo: dict[str, dict[str, Any]] = {}
    parts = None
    for _round in range(MAX_ROUNDS):
        # (the names are the analysis' keys: already in normal form)
        lookups = await fleet.lookup_all(
            [(q, t, _shared(q, domain)) for q, t in need], normalized=True
        )
        for lk in lookups:
            dns.add_normalized(lk.answer)  # (the fleet asks normalized names only)
            records.append(record_row(domain, lk))
        # (planning: whatever it finds missing, there is a next round to ask it in)
        planning = _round + 1 < MAX_ROUNDS and len(records) < MAX_QUERIES_PER_DOMAIN
        parts = analyze_parts(domain, dns, memo, planning=planning)
        if not dns.missing:
            break
        budget = MAX_QUERIES_PER_DOMAIN - len(records)
        if budget <= 0:
            break
        need = sorted(dns.missing)[:budget]
        dns.missing.clear()
    dns.fill = None
    row = domain_row(domain, parts, memo)
    probe_rows: list[dict[str, Any]] = []
    probes = None
    if probing is not None and row.get("status") == "ok":
        probes, probe_rows = await probing.run(domain, row, dns)
    if row.get("status") is not None:  # (also a row cut short by the query budget)
        row.update(transport_columns(domain, row, probes))
    row["scanned_at"] = _ts(max(r[_QUERIED_AT] for r in records)) if records else None
    return row, records, probe_rows


async def scan_domains(
    domains: Iterable[str], fleet: Fleet, probing: Probing | None = None
) -> list[tuple[dict, list[dict], list[dict]]]:
    """Scan a handful of domains (a notebook helper; the CLI streams with :func:`scan`)."""
    await fleet.open()
    results = await asyncio.gather(*(scan_domain(d, fleet, probing) for d in domains))
    return [(row, [record_dict(r) for r in recs], probes) for row, recs, probes in results]


# --- spooling ---------------------------------------------------------------------------


def bucket_count(paths: list[Path]) -> int:
    size = sum(p.stat().st_size for p in paths)
    return max(1, min(MAX_BUCKETS, math.ceil(size / BUCKET_BYTES)))


def spool(
    paths: list[Path], work: Path, buckets: int, on_error: Callable[[str], None]
) -> tuple[int, int]:
    """Write each good name to its hash bucket file; return (names read, bad lines)."""
    work.mkdir(parents=True, exist_ok=True)
    bad = 0

    def count_bad(msg: str) -> None:
        nonlocal bad
        bad += 1
        on_error(msg)

    read = 0
    with contextlib.ExitStack() as stack:
        files = [
            stack.enter_context(open(work / f"bucket-{i:05d}.txt", "w", encoding="ascii"))
            for i in range(buckets)
        ]
        for path in paths:
            for _lineno, name in read_list(path, count_bad):
                files[name_hash(name.domain) % buckets].write(name.domain + "\n")
                read += 1
    return read, bad


def bucket_domains(work: Path, bucket: int) -> list[str]:
    """A bucket's names, duplicates dropped, in hash order (a stable shuffle)."""
    return sorted(_bucket_names(work, bucket), key=name_hash)


def bucket_size(work: Path, bucket: int) -> int:
    """How many names :func:`bucket_domains` gives (without hashing each to sort them)."""
    return len(_bucket_names(work, bucket))


def _bucket_names(work: Path, bucket: int) -> set[str]:
    return set((work / f"bucket-{bucket:05d}.txt").read_text(encoding="ascii").split())


# --- the scan -----------------------------------------------------------------------------


def default_label() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def part_name(bucket: int) -> str:
    return f"part-{bucket:05d}.parquet"


def _event_loop_runner() -> asyncio.Runner:
    try:
        import uvloop

        return asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        return asyncio.Runner()


def scan(
    lists: Iterable[str | Path],
    out: str | Path | store.Location,
    *,
    snapshot: str | None = None,
    options: ScanOptions | None = None,
    force: bool = False,
    on_error: Callable[[str], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> dict[str, Any]:
    """Scan every domain of ``lists`` into snapshot ``snapshot`` under ``out``; return the manifest.

    Re-running the same call after an interruption continues where it stopped.
    """
    options = options or ScanOptions()
    on_error = on_error or (lambda msg: print(msg, file=sys.stderr))
    label = store.check_label(snapshot or default_label())
    paths = [Path(p) for p in lists]
    for p in paths:
        if not p.is_file():
            raise ScanError(f"cannot read domain list {p}: no such file")
    if options.exclude:
        try:
            load_exclusions(options.exclude)
        except (OSError, ValueError) as exc:
            raise ScanError(f"opt-out list {options.exclude}: {exc}") from None
    shown = out  # messages name the folder as it was given
    try:
        out = store.location(out)
    except (ImportError, ValueError) as exc:  # an unknown protocol, or its package missing
        raise ScanError(f"output folder {shown}: {exc}") from None
    if out.process_local and (options.cluster or options.workers > 1):
        raise ScanError(f"{shown} is seen by this process only: no --workers or --cluster with it")
    try:
        out.mkdir()
        probe = out / f".write-test-{label}"
        probe.write_bytes(b"")
        probe.unlink()
    except (OSError, ValueError) as exc:  # fsspec: PermissionError, FileNotFoundError (bucket)...
        why = getattr(exc, "strerror", None) or exc
        raise ScanError(f"output folder {shown} is not writable: {why}") from None

    inputs = [{"path": str(p), "sha256": sha256_file(p)} for p in paths]
    ddir, rdir = store.snapshot_dirs(out, label)
    previous = store.read_manifest(out, label)
    if previous is not None and previous.get("complete") and not force:
        raise ScanError(
            f"snapshot {label} in {shown} is complete; use --force to scan it again or another --snapshot"
        )
    if previous is not None and (
        force and previous.get("complete") or previous.get("inputs") != inputs
    ):
        if not force:
            raise ScanError(
                f"snapshot {label} in {shown} was started with other lists; use --force to start over"
            )
        previous = None
        for d in (ddir, rdir, store.probes_dir(out, label), store.lists_dir(out, label)):
            d.rmtree()
    for d in (ddir, rdir, store.probes_dir(out, label), store.lists_dir(out, label)):
        store.remove_temporaries(d)  # writes cut short by a crash
    buckets = previous["buckets"] if previous else bucket_count(paths)
    started = (
        previous["started_at"] if previous else datetime.now(UTC).isoformat(timespec="seconds")
    )

    manifest: dict[str, Any] = {
        "schema_version": store.SCHEMA_VERSION,
        "package": "mailauth-survey",
        "package_version": __version__,
        "snapshot": label,
        "complete": False,
        "started_at": started,
        "finished_at": None,
        "inputs": inputs,
        "public_suffix_list": psl_version(),
        "options": asdict(options),
        "buckets": buckets,
    }
    # The spool (the bucket files the names are read from) is always on this machine's disk.
    if out.local:
        work = Path(out.path) / ".work" / label
    else:
        work = Path(tempfile.mkdtemp(prefix=f"mailauth-survey-{label}-"))
    progress = Progress()
    workers = None
    try:
        if options.workers > 1 and not options.cluster:
            workers = _Workers(work, ddir, rdir, options)
        _read, progress.bad_lines = spool(paths, work, buckets, on_error)
        store.write_table(store.lists_dir(out, label), part_name(0), lists_table(paths))
        done_parts = store.existing_parts(ddir)
        todo = [b for b in range(buckets) if part_name(b) not in done_parts]
        progress.total = sum(bucket_size(work, b) for b in range(buckets))
        for b in range(buckets):
            if part_name(b) in done_parts:
                progress.skipped += store.num_rows(ddir / part_name(b))
        progress.done = progress.skipped
        manifest["resolvers"] = options.resolvers or system_resolvers()
        manifest["domains_listed"] = progress.total  # "incomplete: N of M domains" (report)
        store.write_manifest(out, label, manifest)
        if options.cluster:
            from .cluster import run_on_cluster

            stats, shards = run_on_cluster(
                options.cluster, label, todo, partial(bucket_domains, work), ddir, rdir,
                progress, options, on_progress,
            )  # fmt: skip
            manifest["shards"] = (previous or {}).get("shards", []) + shards
        elif workers is not None and len(todo) > 1:
            stats = workers.run(todo, progress, on_progress)
        else:
            stats = _run_buckets(
                todo, partial(bucket_domains, work), ddir, rdir, progress, options, on_progress
            )
    finally:
        if workers is not None:
            workers.close()
        shutil.rmtree(work, ignore_errors=True)
        if out.local:
            with contextlib.suppress(OSError):
                (Path(out.path) / ".work").rmdir()

    counts = _status_counts(ddir.glob("part-*.parquet"))
    manifest.update(
        complete=True,
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
        domains=sum(counts.values()),
        status_counts=dict(sorted(counts.items())),
        bad_lines=progress.bad_lines,
        queries=asdict(stats),
    )
    store.write_manifest(out, label, manifest)
    return manifest


def _status_counts(parts: Iterable[store.Location]) -> Counter:
    """Domains by status over a snapshot's domains parts (for the manifest)."""
    counts: Counter = Counter()
    for part in parts:
        counts.update(store.read_table(part, columns=["status"]).column("status").to_pylist())
    return counts


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
async def _scanner(
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

    With the default thresholds the collector ran a full pass over the scan's live objects (its
    held buckets and its cache) dozens of times per 10,000 domains: a third of the CPU.
    What was loaded before the scan is frozen out of the collector's sight. A young-generation
    pass walks every young object still alive (the in-flight domains' state, ~600 ns each, cache
    misses mostly), so fewer, larger passes cost less: the scan makes almost no cyclic garbage
    (tests check that an SPF walk and an answered query leave none), so the threshold does not
    hold memory back.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _run_buckets(
    todo: Iterable[int],
    names_of: Callable[[int], list[str]],
    ddir: store.Location,
    rdir: store.Location,
    progress: Progress,
    options: ScanOptions,
    on_progress: Callable[[Progress], None] | None,
    share: int = 1,
) -> Stats:
    """Scan the ``todo`` buckets in this process, on its own event loop."""

    # The system allocator gives freed Parquet buffers back; mimalloc (pyarrow's default) keeps
    # them per thread, which showed as ~25% more peak RSS in a scan.
    pa.set_memory_pool(pa.system_memory_pool())
    _tune_gc()

    async def run() -> Stats:
        async with _scanner(options, share) as (fleet, probing):
            await _scan_buckets(
                todo, names_of, fleet, ddir, rdir, progress, options, on_progress, probing
            )
        return fleet.stats

    with _event_loop_runner() as runner:
        stats = runner.run(run())
    # What the scan leaves (the process's parse and name caches) lives until exit: frozen, the
    # interpreter's collections at exit do not walk it. They took ~0.5 s after a 100,000-domain
    # scan, with the other cores idle.
    gc.freeze()
    return stats


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
    ddir: store.Location,
    rdir: store.Location,
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
    progress = Progress()
    sent = {"done": 0, "status": Counter(), "at": 0.0}

    def report(p: Progress, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - sent["at"] < 0.25:
            return
        delta = p.by_status - sent["status"]
        channel.put(("progress", index, p.done - sent["done"], dict(delta), p.queries))
        sent.update(done=p.done, status=Counter(p.by_status), at=now)

    try:
        stats = _run_buckets(
            _claimed(todo, claims),
            partial(bucket_domains, work),
            ddir,
            rdir,
            progress,
            options,
            report,
            share,
        )
        report(progress, final=True)
        channel.put(("done", index, asdict(stats)))
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent as one line
        channel.put(("fatal", index, str(exc) or exc.__class__.__name__))


class _Workers:
    """The other ``--workers`` processes, started before the list is spooled.

    Starting one (a new interpreter importing the scanner) takes about as long as spooling
    100,000 names: done side by side, the second core is not idle while the first spools.
    This process is one of the workers: it claims buckets as the others do while it relays
    their progress, so ``--workers 2`` is two processes, not three.
    """

    def __init__(
        self, work: Path, ddir: store.Location, rdir: store.Location, options: ScanOptions
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.options = options
        self.work, self.ddir, self.rdir = work, ddir, rdir
        self.channel = ctx.Queue()
        # One orders queue each: which processes get work is decided here, not raced for.
        self.orders = [ctx.Queue() for _ in range(1, options.workers)]
        self.claims = ctx.Value("q", 0)
        self.finished = False
        self.procs = [
            ctx.Process(
                target=_worker_main,
                args=(i, self.orders[i - 1], self.claims, work, ddir, rdir, options, self.channel),
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
        progress: Progress,
        on_progress: Callable[[Progress], None] | None,
    ) -> Stats:
        """Spread the buckets of ``todo`` over this process and the others."""
        n = min(len(self.procs) + 1, len(todo))
        procs = self.procs[: n - 1]  # (processes 1 .. n-1; this one is 0)
        for i, orders in enumerate(self.orders):
            orders.put((todo, n) if i < n - 1 else None)
        channel, claims = self.channel, self.claims
        total = Stats()
        base = progress.done  # (domains skipped on resume)
        others = {"done": 0, "status": Counter(), "queries": [0] * n, "finished": 0}
        mine = Progress()

        def publish() -> None:
            progress.done = base + mine.done + others["done"]
            progress.by_status = mine.by_status + others["status"]
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
                    _add_stats(total, msg[2])
                else:
                    raise ScanError(f"{msg[2]}")

        last = [0.0]

        def relay(p: Progress) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.25:
                last[0] = now
                drain(None)
                publish()

        own = _run_buckets(
            _claimed(todo, claims),
            partial(bucket_domains, self.work),
            self.ddir,
            self.rdir,
            mine,
            self.options,
            relay,
            n,
        )
        _add_stats(total, asdict(own))
        while others["finished"] < n - 1:
            drain(1.0)
            publish()
        publish()
        self.finished = True
        return total


def _add_stats(total: Stats, part: dict[str, Any]) -> None:
    for key, value in part.items():
        if key == "by_rcode":
            for rcode, count in value.items():
                total.by_rcode[rcode] = total.by_rcode.get(rcode, 0) + count
        else:
            setattr(total, key, getattr(total, key) + value)


async def _scan_buckets(
    todo: Iterable[int],
    names_of: Callable[[int], list[str]],
    fleet: Fleet,
    ddir: store.Location,
    rdir: store.Location,
    progress: Progress,
    options: ScanOptions,
    on_progress: Callable[[Progress], None] | None,
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
                writes.append(
                    loop.run_in_executor(writer, _write_bucket, b, [], [], [], ddir, rdir)
                )
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
        args = (b, rows.pop(b), recs.pop(b), prob.pop(b), ddir, rdir)
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
            # fleet's, not the domains': keep it back until a resolver answers again. If none
            # does, the scan stops and those buckets are scanned again on resume.
            if held and fleet.silent_for() < fleet.timeout:
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
    ddir: store.Location,
    rdir: store.Location,
) -> None:
    """Records and probes first, then domains: a domains part on disk means the bucket is whole."""
    rows.sort(key=lambda r: r["domain"])
    store.write_tuples(rdir, part_name(b), recs, store.RECORDS_SCHEMA)
    if probes:
        pdir = ddir.parent.parent / "probes" / ddir.name
        store.write_part(pdir, part_name(b), probes, PROBES_SCHEMA)
    store.write_part(ddir, part_name(b), rows, store.DOMAINS_SCHEMA)


def retry_errors(
    out: str | Path | store.Location,
    label: str,
    *,
    options: ScanOptions | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> dict[str, Any]:
    """Scan again the domains of a snapshot that ended servfail, timeout or error.

    Their rows and their records are replaced in place, part by part (each part rewritten
    atomically, records first). Returns the updated manifest.
    """
    options = options or ScanOptions()
    manifest = store.read_manifest(out, label)
    if manifest is None:
        raise ScanError(f"no snapshot {label} in {out}")
    if not manifest.get("complete"):
        raise ScanError(f"snapshot {label} is not complete; run the scan again to finish it first")
    ddir, rdir = store.snapshot_dirs(out, label)
    parts = ddir.glob("part-*.parquet")
    progress = Progress()
    todo: list[tuple[store.Location, list[str]]] = []
    for part in parts:
        statuses = store.read_table(part, columns=["domain", "status"]).to_pydict()
        names = [
            d
            for d, st in zip(statuses["domain"], statuses["status"], strict=True)
            if st in RETRY_STATUSES
        ]
        if names:
            todo.append((part, names))
            progress.total += len(names)

    async def run() -> Stats:
        async with _scanner(options) as (fleet, probing):
            await _retry_parts(fleet, probing)
        return fleet.stats

    async def _retry_parts(fleet: Fleet, probing: Probing | None) -> None:
        sem = asyncio.Semaphore(options.concurrency)

        async def one(name: str) -> tuple[dict, list[Record], list[dict]]:
            async with sem:
                result = await scan_domain(name, fleet, probing)
            fleet.check_alive()
            progress.done += 1
            progress.by_status[result[0]["status"]] += 1
            if on_progress is not None:
                on_progress(progress)
            return result

        for part, names in todo:
            results = await asyncio.gather(*(one(n) for n in names))
            _replace_in_part(part, rdir / part.name, results)

    try:
        with _event_loop_runner() as runner:
            stats = runner.run(run())
    except NoResolverAnswering as exc:
        raise ScanError(
            f"{exc}; parts already retried are kept, run the same command again"
        ) from None
    counts = _status_counts(parts)
    manifest.setdefault("retries", []).append(
        {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "domains": progress.total,
            "resolvers": options.resolvers,
            "result": dict(sorted(progress.by_status.items())),
            "queries": asdict(stats),
        }
    )
    manifest["status_counts"] = dict(sorted(counts.items()))
    store.write_manifest(out, label, manifest)
    return manifest


def _replace_in_part(
    dpart: store.Location,
    rpart: store.Location,
    results: list[tuple[dict, list[dict], list[dict]]],
) -> None:
    """Put the re-scanned domains' rows, records and probes in place of their old ones."""
    new_rows = {row["domain"]: row for row, _, _ in results}

    def kept(part: store.Location) -> list[dict]:
        if not part.exists():
            return []
        return [r for r in store.read_table(part).to_pylist() if r["domain"] not in new_rows]

    records = kept(rpart)
    ppart = dpart.parent.parent.parent / "probes" / dpart.parent.name / dpart.name
    probes = kept(ppart)
    for _, recs, probe_rows in results:
        records.extend(record_dict(r) for r in recs)
        probes.extend(probe_rows)
    rows = [new_rows.get(r["domain"], r) for r in store.read_table(dpart).to_pylist()]
    store.write_part(rpart.parent, rpart.name, records, store.RECORDS_SCHEMA)
    if probes:
        store.write_part(ppart.parent, ppart.name, probes, PROBES_SCHEMA)
    store.write_part(dpart.parent, dpart.name, rows, store.DOMAINS_SCHEMA)
