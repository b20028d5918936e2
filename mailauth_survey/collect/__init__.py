"""Orchestration: domain lists → spool buckets → per-domain rounds → snapshot parts.

:func:`scan` checks every input, spools the lists into hash buckets (:mod:`.spool`), and has
the buckets scanned by this process (:mod:`.engine`), by ``--workers`` processes
(:mod:`.workers`) or on a Dask cluster (:mod:`.cluster`); each domain is collected by
:func:`.domain.scan_domain`. Memory stays at a few buckets whatever the list length, and a re-run
skips the buckets already written. :func:`retry_errors` scans again the domains that ended in an
error; :func:`reanalyze` rebuilds the verdicts from the stored answers with no network (it is
the analysis's, defined in :mod:`mailauth_survey.analysis` and re-exported here: analysis cannot
import this package, which imports analysis).

This package is ``collect``, not ``scan``: ``mailauth_survey.scan`` is the public function, and
a subpackage of that name would replace it as an attribute of ``mailauth_survey`` once imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from .. import store
from ..analysis import reanalyze
from ..domains import NotText, check_text, lists_table, sha256_file
from ..probes.settings import load_exclusions
from ..resolver import (
    Fleet,
    NoResolverAnswering,
    ResolverAddressError,
    Stats,
    check_resolvers,
    system_resolvers,
)
from . import manifest as manifests
from . import spool as spooling
from .domain import Probing, Record, record_dict, scan_domain
from .engine import event_loop_runner, open_scanner, run_buckets
from .options import ScanCounters, ScanError, ScanOptions
from .workers import Workers

__all__ = [
    "ScanCounters",
    "ScanError",
    "ScanOptions",
    "reanalyze",
    "retry_errors",
    "scan",
]

#: How long after its start an unfinished snapshot is continued by a scan of the same lists
#: without --snapshot.
CONTINUE_WITHIN = timedelta(days=7)

#: Statuses that ``--retry-errors`` scans again.
RETRY_STATUSES = ("servfail", "timeout", "error")


def check_inputs(paths: list[Path], options: ScanOptions) -> ScanOptions:
    """Every input a scan reads, checked before it creates, changes or deletes anything.

    The lists exist and are text (the rest of each is checked as it is read), the opt-out list
    reads, the resolvers are addresses (a host name is looked up), the CA file loads. Returns
    the options with the resolvers' addresses. Raises ScanError (one line).
    """
    for p in paths:
        if not p.is_file():
            why = "a folder, not a file" if p.is_dir() else "no such file"
            raise ScanError(f"cannot read domain list {p}: {why}")
        try:
            check_text(p)
        except NotText as exc:
            raise ScanError(str(exc)) from None
        except OSError as exc:
            raise ScanError(f"cannot read domain list {p}: {exc.strerror or exc}") from None
    if options.exclude:
        try:
            load_exclusions(options.exclude)
        except (OSError, ValueError) as exc:
            raise ScanError(f"opt-out list {options.exclude}: {exc}") from None
    try:
        resolvers = check_resolvers(options.resolvers)
    except ResolverAddressError as exc:
        raise ScanError(f"resolver {exc}") from None
    if options.cafile:
        import ssl

        try:
            ssl.create_default_context().load_verify_locations(cafile=options.cafile)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ScanError(
                f"CA file {options.cafile}: expected PEM CA certificates ({exc})"
            ) from None
    return dataclasses.replace(options, resolvers=resolvers)


def check_resolvers_listen(options: ScanOptions) -> None:
    """One query to the fleet before anything is written: a fleet where nothing listens (every
    resolver answers ICMP port unreachable) is a one-line ScanError now, not an empty snapshot.

    Waits for a reply at most min(timeout, 1 s); silence is not decided here (``dead_after``).
    """

    async def ask() -> None:
        fleet = Fleet(
            options.resolvers or None, timeout=min(options.timeout, 1.0), retries=0, qps=0
        )
        try:
            await fleet.resolve("jp", "NS")
        finally:
            fleet.close()

    try:
        asyncio.run(ask())
    except NoResolverAnswering as exc:
        raise ScanError(str(exc)) from None


def scan(
    lists: Iterable[str | Path],
    out: str | Path | store.Location,
    *,
    snapshot: str | None = None,
    options: ScanOptions | None = None,
    force: bool = False,
    on_error: Callable[[str], None] | None = None,
    on_progress: Callable[[ScanCounters], None] | None = None,
) -> dict[str, Any]:
    """Scan every domain of ``lists`` into snapshot ``snapshot`` under ``out``; return the manifest.

    Re-running the same call after an interruption continues where it stopped. With ``force``,
    a snapshot that is complete (or was started with other lists) is scanned again beside the
    old one (:func:`store.rescan_root`), which it replaces only once complete; an interrupted
    forced rescan leaves the old snapshot as it was, and the same call resumes the rescan.
    """
    options = options or ScanOptions()
    on_error = on_error or (lambda msg: print(msg, file=sys.stderr))
    try:
        label = store.check_label(snapshot) if snapshot else None
    except ValueError as exc:
        raise ScanError(str(exc)) from None
    paths = [Path(p) for p in lists]
    options = check_inputs(paths, options)
    shown = out  # messages name the folder as it was given
    try:
        out = store.location(out)
    except (ImportError, ValueError) as exc:  # an unknown protocol, or its package missing
        raise ScanError(f"output folder {shown}: {exc}") from None
    if label is None:
        label = _unfinished(out, paths, on_error)
        if label is not None:
            on_error(f"continuing snapshot {label}, unfinished, of the same lists")
        else:
            label = manifests.default_label()
    if out.process_local and (options.cluster or options.workers > 1):
        raise ScanError(f"{shown} is seen by this process only: no --workers or --cluster with it")
    if not options.cluster:  # (a cluster's workers may ask resolvers of their own)
        check_resolvers_listen(options)
    dask = None
    if options.cluster:  # the scheduler and a worker, before anything is written
        from .cluster import connect

        dask = connect(options.cluster, options.cluster_wait, on_error)
    try:
        return _checked_scan(paths, out, shown, label, options, force, on_error, on_progress, dask)
    finally:
        if dask is not None:
            dask[0].close()
            if dask[1] is not None:
                dask[1].close()


def _unfinished(
    out: store.Location, paths: list[Path], on_error: Callable[[str], None]
) -> str | None:
    """The label of the newest unfinished snapshot in ``out`` started with these same lists
    within :data:`CONTINUE_WITHIN`.

    The default label is the UTC date of the scan's start: run again after midnight, an
    interrupted scan continues its own snapshot rather than starting one under today's date.
    An older one is not mixed into a new scan: it is named, to be continued with --snapshot.
    """
    labels = store.list_snapshots(out)
    if not labels:
        return None
    inputs = _inputs(paths)
    found = []
    for label in labels:
        manifest = store.Snapshot(out, label).read_manifest()
        if manifest and not manifest.get("complete") and manifest.get("inputs") == inputs:
            found.append((manifest.get("started_at") or "", label))
    if not found:
        return None
    started, label = max(found)
    try:
        age = datetime.now(UTC) - datetime.fromisoformat(started)
    except (TypeError, ValueError):
        age = None
    if age is None or age > CONTINUE_WITHIN:
        on_error(
            f"snapshot {label} of the same lists is unfinished since {started or 'an unknown time'}: "
            f"not continued after {CONTINUE_WITHIN.days} days (--snapshot {label} continues it)"
        )
        return None
    return label


def _inputs(paths: list[Path]) -> list[dict[str, str]]:
    """The lists as a manifest names them: path as given, and SHA-256."""
    return [{"path": str(p), "sha256": sha256_file(p)} for p in paths]


def _checked_scan(
    paths: list[Path],
    out: store.Location,
    shown: object,
    label: str,
    options: ScanOptions,
    force: bool,
    on_error: Callable[[str], None],
    on_progress: Callable[[ScanCounters], None] | None,
    dask: tuple[Any, Any] | None,
) -> dict[str, Any]:
    created = out.local and not os.path.lexists(out.path)
    try:
        out.mkdir()
        probe = out / f".write-test-{label}"
        probe.write_bytes(b"")
        probe.unlink()
    except (OSError, ValueError) as exc:  # fsspec: PermissionError, FileNotFoundError (bucket)...
        why = getattr(exc, "strerror", None) or exc
        raise ScanError(f"output folder {shown} is not writable: {why}") from None
    try:
        return _scan(paths, out, shown, label, options, force, on_error, on_progress, dask)
    finally:
        if created:  # a scan refused before it wrote anything leaves no empty folder behind
            with contextlib.suppress(OSError):
                os.rmdir(out.path)


def _scan(
    paths: list[Path],
    out: store.Location,
    shown: object,
    label: str,
    options: ScanOptions,
    force: bool,
    on_error: Callable[[str], None],
    on_progress: Callable[[ScanCounters], None] | None,
    dask: tuple[Any, Any] | None = None,
) -> dict[str, Any]:
    store.recover_rescan(out, label)  # a swap that a crash cut short is finished first
    inputs = _inputs(paths)
    snap = store.Snapshot(out, label)  # where this scan writes: the snapshot, or its rescan
    previous = snap.read_manifest()
    restart = False  # a rescan begun with other lists is started over
    if previous is not None and previous.get("complete") and not force:
        raise ScanError(
            f"snapshot {label} in {shown} is complete; use --force to scan it again or another --snapshot"
        )
    if previous is not None and (previous.get("complete") or previous.get("inputs") != inputs):
        if not force:
            raise ScanError(
                f"snapshot {label} in {shown} was started with other lists; use --force to start over"
            )
        snap = store.Snapshot(store.rescan_root(out, label), label)
        previous = snap.read_manifest()
        if previous is not None and previous.get("inputs") != inputs:
            previous, restart = None, True
    buckets = previous["buckets"] if previous else spooling.bucket_count(paths)
    started = previous["started_at"] if previous else manifests.now()
    manifest = manifests.started(label, inputs, options, buckets, started)
    # The spool (the bucket files the names are read from) is always on this machine's disk.
    if out.local:
        work = Path(out.path) / ".work" / label
    else:
        work = Path(tempfile.mkdtemp(prefix=f"mailauth-survey-{label}-"))
    progress = ScanCounters()
    pool = None
    try:
        if options.workers > 1 and not options.cluster:
            pool = Workers(work, snap, options)
        try:
            read, progress.bad_lines = spooling.spool(paths, work, buckets, on_error)
        except NotText as exc:
            raise ScanError(str(exc)) from None
        if not read:
            bad = f" ({progress.bad_lines} bad lines)" if progress.bad_lines else ""
            raise ScanError(f"{', '.join(map(str, paths))}: no domains to scan{bad}")
        # Nothing was changed before this point.
        if restart:
            store.rescan_root(out, label).rmtree()
        for d in snap.folders:
            store.remove_temporaries(d)  # writes cut short by a crash
        store.write_table(snap.lists, spooling.part_name(0), lists_table(paths))
        done_parts = store.existing_parts(snap.domains)
        todo = [b for b in range(buckets) if spooling.part_name(b) not in done_parts]
        progress.total = sum(spooling.bucket_size(work, b) for b in range(buckets))
        done = [snap.domains / spooling.part_name(b) for b in range(buckets)]
        done = [part for part in done if part.name in done_parts]
        # A resume counts the whole snapshot, as the summary will: the statuses already stored too.
        progress.by_status.update(manifests.status_counts(done))
        progress.skipped = sum(progress.by_status.values())
        progress.done = progress.skipped
        manifest["resolvers"] = options.resolvers or system_resolvers()
        manifest["domains_listed"] = progress.total  # "incomplete: N of M domains" (report)
        snap.write_manifest(manifest)
        if on_progress is not None:
            on_progress(progress)  # (the bar appears, with the total, as the scan begins)
        if options.cluster:
            from .cluster import run_on_cluster

            stats, manifest["shards"] = run_on_cluster(
                dask[0], label, todo, partial(spooling.bucket_domains, work), snap,
                progress, options, on_progress,
            )  # fmt: skip
        elif pool is not None and len(todo) > 1:
            stats = pool.run(todo, progress, on_progress)
        else:
            stats = run_buckets(
                todo, partial(spooling.bucket_domains, work), snap, progress, options, on_progress
            )
    finally:
        if pool is not None:
            pool.close()
        shutil.rmtree(work, ignore_errors=True)
        if out.local:
            with contextlib.suppress(OSError):
                (Path(out.path) / ".work").rmdir()

    manifests.finish(manifest, snap, progress, stats)
    snap.write_manifest(manifest)
    if snap.out != out:
        store.commit_rescan(out, label)
    return manifest


def retry_errors(
    out: str | Path | store.Location,
    label: str,
    *,
    options: ScanOptions | None = None,
    on_progress: Callable[[ScanCounters], None] | None = None,
) -> dict[str, Any]:
    """Scan again the domains of a snapshot that ended servfail, timeout or error.

    Their rows and their records are replaced in place, part by part (each part rewritten
    atomically, records first). Returns the updated manifest.
    """
    options = check_inputs([], options or ScanOptions())
    try:
        store.check_label(label)
    except ValueError as exc:
        raise ScanError(str(exc)) from None
    snap = store.Snapshot(out, label)
    manifest = snap.read_manifest()
    if manifest is None:
        raise ScanError(f"no snapshot {label} in {out}")
    if not manifest.get("complete"):
        raise ScanError(f"snapshot {label} is not complete; run the scan again to finish it first")
    check_resolvers_listen(options)
    parts = snap.domains.glob("part-*.parquet")
    progress = ScanCounters()
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
        async with open_scanner(options) as (fleet, probing):
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
            if not fleet.stats.replies:  # errors again, and the fleet's: nothing is replaced
                raise NoResolverAnswering(
                    f"no resolver answered any of {fleet.stats.queries} queries "
                    f"({', '.join(fleet.names)})"
                )
            _replace_in_part(snap, part.name, results)

    try:
        with event_loop_runner() as runner:
            stats = runner.run(run())
    except NoResolverAnswering as exc:
        raise ScanError(
            f"{exc}; parts already retried are kept, run the same command again"
        ) from None
    manifests.add_retry(manifest, parts, progress, options, stats)
    snap.write_manifest(manifest)
    return manifest


def _replace_in_part(
    snap: store.Snapshot, name: str, results: list[tuple[dict, list[Record], list[dict]]]
) -> None:
    """Put the re-scanned domains' rows, records and probes in place of their old ones."""
    new_rows = {row["domain"]: row for row, _, _ in results}

    def kept(part: store.Location) -> list[dict]:
        if not part.exists():
            return []
        return [r for r in store.read_table(part).to_pylist() if r["domain"] not in new_rows]

    records = kept(snap.records / name)
    probes = kept(snap.probes / name)
    for _, recs, probe_rows in results:
        records.extend(record_dict(r) for r in recs)
        probes.extend(probe_rows)
    rows = [new_rows.get(r["domain"], r) for r in store.read_table(snap.domains / name).to_pylist()]
    store.write_part(snap.records, name, records, store.RECORDS_SCHEMA)
    # Always rewritten: a retried domain's old probe rows go even when it has no new ones.
    store.write_part(snap.probes, name, probes, store.PROBES_SCHEMA)
    store.write_part(snap.domains, name, rows, store.DOMAINS_SCHEMA)
