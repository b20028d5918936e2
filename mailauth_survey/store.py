"""Snapshots on disk: Parquet parts in hive partitions, and the manifest.

Layout (SPEC.md)::

    DIR/domains/snapshot=LABEL/part-*.parquet    one row per domain
    DIR/records/snapshot=LABEL/part-*.parquet    one row per DNS answer a domain's analysis used
    DIR/probes/snapshot=LABEL/part-*.parquet     HTTPS and SMTP probes (transport security)
    DIR/lists/snapshot=LABEL/part-*.parquet      the input lists' own columns, per domain
    DIR/domains/snapshot=LABEL/_manifest.json    how the snapshot was made

``DIR`` is a local folder or any fsspec URL (``s3://bucket/prefix``, ``file:///abs/path``,
``memory://name``): every read and write of a snapshot goes through :class:`Location` here. A part
or manifest is never seen half written: on a local disk it is written to a temporary name, fsynced
and renamed; on an object store (S3, GCS, Azure, memory) it is sent whole in one PUT, which is
atomic by itself. Storage options (an S3 endpoint, a profile...) come from fsspec's own
configuration: ``FSSPEC_S3_ENDPOINT_URL=...`` style environment variables, JSON files in
``FSSPEC_CONFIG_DIR``, or ``fsspec.config.conf`` from Python. The schemas are fixed here so that
every part, even an all-null one, has every column with its type.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import posixpath
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

SCHEMA_VERSION = 1

_STR = pa.string()
_LIST = pa.list_(pa.string())
_TS = pa.timestamp("us", tz="UTC")

#: The domains table, in SPEC.md order; extra columns at the end.
DOMAINS_SCHEMA = pa.schema(
    [
        ("domain", _STR),
        ("domain_unicode", _STR),
        ("category", _STR),
        ("scanned_at", _TS),
        ("status", _STR),
        ("mx_status", _STR),
        ("mx_hosts", _LIST),
        ("mx_null", pa.bool_()),
        ("has_mx", pa.bool_()),
        ("mx_provider", _STR),
        ("ns_hosts", _LIST),
        ("dns_provider", _STR),
        ("spf_status", _STR),
        ("spf_record", _STR),
        ("spf_all", _STR),
        ("spf_lookups", pa.int32()),
        ("spf_void_lookups", pa.int32()),
        ("spf_errors", _LIST),
        ("spf_warnings", _LIST),
        ("dmarc_status", _STR),
        ("dmarc_record", _STR),
        ("dmarc_source", _STR),
        ("dmarc_p", _STR),
        ("dmarc_sp", _STR),
        ("dmarc_np", _STR),
        ("dmarc_policy", _STR),
        ("dmarc_pct", pa.int32()),
        ("dmarc_adkim", _STR),
        ("dmarc_aspf", _STR),
        ("dmarc_rua", _LIST),
        ("dmarc_ruf", _LIST),
        ("dmarc_rua_authorized", pa.bool_()),
        ("dmarc_errors", _LIST),
        ("dmarc_warnings", _LIST),
        ("dkim_domainkey", _STR),
        ("dkim_selectors", _LIST),
        ("mta_sts_status", _STR),
        ("mta_sts_id", _STR),
        ("tlsrpt_status", _STR),
        ("tlsrpt_rua", _LIST),
        ("bimi_status", _STR),
        # Beyond SPEC.md's list (same style): the SPF policy passes any address.
        ("spf_pass_any", pa.bool_()),
        # Transport security: DNSSEC-validated apex answers; DANE on every MX; the
        # MTA-STS policy fetched over HTTPS; STARTTLS probed on port 25 (--probe-smtp).
        ("dnssec", pa.bool_()),
        ("dane", pa.bool_()),
        ("mta_sts_policy_status", _STR),
        ("mta_sts_mode", _STR),
        ("mta_sts_max_age", pa.int64()),
        ("mta_sts_mx_match", pa.bool_()),
        ("starttls", pa.bool_()),
        ("starttls_cert_valid", pa.bool_()),
        ("tls_versions", _LIST),
    ]
)

DOMAIN_COLUMNS = tuple(DOMAINS_SCHEMA.names)

#: The records table: every answer a domain's analysis read.
RECORDS_SCHEMA = pa.schema(
    [
        ("domain", _STR),
        ("qname", _STR),
        ("qtype", _STR),
        ("rcode", _STR),
        ("answers", _LIST),
        ("ad", pa.bool_()),
        ("rtt_ms", pa.float32()),
        ("attempts", pa.int16()),
        ("resolver", _STR),
        ("transport", _STR),  # udp, tcp, cache (answered from this scan's cache), none
        ("queried_at", _TS),
    ]
)

#: The ``probes`` table: one row per policy fetch (``kind`` ``mta-sts-policy``, ``host`` =
#: ``mta-sts.<domain>``) or per probed MX address (``kind`` ``smtp``, ``domain`` null: an MX
#: host's probe serves every domain that uses it). ``probed_at`` is a policy's ``fetched_at``.
PROBES_COLUMNS: dict[str, pa.DataType] = {
    "kind": _STR,
    "domain": _STR,
    "host": _STR,
    "address": _STR,
    "url": _STR,
    "status": _STR,
    "http_status": pa.int16(),
    "content_type": _STR,
    "body": _STR,
    "banner": _STR,
    "ehlo_extensions": _LIST,
    "starttls_advertised": pa.bool_(),
    "tls_version": _STR,
    "tls_cipher": _STR,
    "cert_valid": pa.bool_(),
    "cert_name_match": pa.bool_(),
    "cert_not_after": _TS,
    "cert_expired": pa.bool_(),
    "cert_names": _LIST,
    "cert_not_before": _TS,
    "cert_issuer": _STR,
    "cert_key_type": _STR,
    "cert_key_bits": pa.int32(),
    "cert_signature_algorithm": _STR,
    "cert_error": _STR,
    "detail": _STR,
    "probed_at": _TS,
    "duration_ms": pa.float32(),
}

PROBES_SCHEMA = pa.schema(list(PROBES_COLUMNS.items()))

_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_label(label: str) -> str:
    """A snapshot label must be a safe directory name (hive partition value)."""
    if not _LABEL_RE.match(label):
        raise ValueError(f"snapshot label {label!r}: use letters, digits, '.', '_' or '-'")
    return label


# --- where snapshots live: a local folder or an fsspec URL --------------------------------------

#: Filesystems where one PUT of a whole object is atomic and there are no real directories.
_OBJECT_STORES = frozenset(
    {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "memory"}
)

_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")



@dataclass(frozen=True)
class Location:
    """A file or folder on some fsspec filesystem; a small part of :class:`pathlib.Path`'s API.

    ``path`` is the filesystem's own form (no protocol for S3: ``bucket/key``). A Location pickles
    with its filesystem and that filesystem's storage options, so Dask tasks and worker processes
    reach the same store.
    """

    fs: Any
    path: str

    @classmethod
    def of(cls, where: str | Path | Location) -> Location:
        if isinstance(where, Location):
            return where
        if isinstance(where, Path) or not _URL_RE.match(where):
            return cls(LocalFileSystem(), os.path.abspath(os.fspath(where)))
        fs, path = fsspec.core.url_to_fs(where)
        return cls(fs, path.rstrip("/") or path)

    @property
    def local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    @property
    def object_store(self) -> bool:
        protocols = (self.fs.protocol,) if isinstance(self.fs.protocol, str) else self.fs.protocol
        return bool(_OBJECT_STORES.intersection(protocols))

    @property
    def process_local(self) -> bool:
        """Data only this process sees (``memory://``): no use to other processes or machines."""
        protocols = (self.fs.protocol,) if isinstance(self.fs.protocol, str) else self.fs.protocol
        return "memory" in protocols

    def __truediv__(self, name: str) -> Location:
        return Location(self.fs, self.path.rstrip("/") + "/" + name)

    @property
    def name(self) -> str:
        return posixpath.basename(self.path.rstrip("/"))

    @property
    def parent(self) -> Location:
        return Location(self.fs, posixpath.dirname(self.path.rstrip("/")))

    def __str__(self) -> str:
        return self.path if self.local else self.fs.unstrip_protocol(self.path)

    def __fspath__(self) -> str:
        if not self.local:
            raise TypeError(f"{self} is not a local path")
        return self.path

    @property
    def arrow_fs(self) -> Any:
        """The ``filesystem=`` to give pyarrow: None (its own, fast) for local paths."""
        return None if self.local else self.fs

    def _fresh(self) -> None:
        # Listings are cached by some filesystems (s3fs); other processes write here too.
        if not self.local:
            self.fs.invalidate_cache(self.path)

    def exists(self) -> bool:
        self._fresh()
        return bool(self.fs.exists(self.path))

    def is_dir(self) -> bool:
        self._fresh()
        return bool(self.fs.isdir(self.path))

    def mkdir(self, parents: bool = True, exist_ok: bool = True) -> None:
        """Make the folder (nothing to make on an object store: keys need no folders)."""
        if self.local:
            Path(self.path).mkdir(parents=parents, exist_ok=exist_ok)
        elif not self.object_store:
            self.fs.makedirs(self.path, exist_ok=exist_ok)
        elif self.process_local:  # memory://: a pseudo folder, so that is_dir() sees it at once
            self.fs.makedirs(self.path, exist_ok=True)

    def iterdir(self) -> list[Location]:
        """What is in this folder (nothing when it does not exist)."""
        self._fresh()
        try:
            entries = self.fs.ls(self.path, detail=False)
        except (FileNotFoundError, NotADirectoryError):
            return []
        me = self.path.rstrip("/")
        return [Location(self.fs, e) for e in entries if e.rstrip("/") != me]

    def glob(self, pattern: str) -> list[Location]:
        """The entries whose names match ``pattern`` (one level, no special path characters)."""
        return sorted(
            (e for e in self.iterdir() if fnmatch.fnmatchcase(e.name, pattern)),
            key=lambda e: e.path,
        )

    def read_bytes(self) -> bytes:
        return self.fs.cat_file(self.path)

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> None:
        """Write the whole file so that no reader ever sees part of it."""
        if self.local:
            self.parent.mkdir()
            tmp = f"{self.parent.path}/.{self.name}.tmp-{os.getpid()}"
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        elif self.object_store:  # one PUT (or one completed multipart upload): atomic
            self.fs.pipe_file(self.path, data)
        else:  # sftp, hdfs...: a temporary name, then a rename
            self.parent.mkdir()
            tmp = f"{self.parent.path}/.{self.name}.tmp-{os.getpid()}"
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, self.path)

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self.fs.rm_file(self.path)
        except FileNotFoundError:
            if not missing_ok:
                raise
        self._fresh()

    def rmtree(self) -> None:
        """Delete this folder and all below it (nothing when it does not exist)."""
        if self.local:
            import shutil

            shutil.rmtree(self.path, ignore_errors=True)
            return
        if self.exists():
            self.fs.rm(self.path, recursive=True)
        self._fresh()


def location(out: str | Path | Location) -> Location:
    """The :class:`Location` of a snapshot folder given as a path, URL or Location."""
    return Location.of(out)



class Snapshot:
    """One snapshot under ``DIR``: where each of its tables and its manifest are (the layout above).

    Callers ask it for a table's folder (:attr:`domains`, :attr:`records`, :attr:`probes`,
    :attr:`lists`) instead of building paths. It pickles (its Location does, with the
    filesystem's storage options), so a scan hands it to its worker processes and Dask tasks.
    """

    TABLES = ("domains", "records", "probes", "lists")

    def __init__(self, out: str | Path | Location, label: str) -> None:
        self.out = Location.of(out)
        self.label = label

    def __repr__(self) -> str:
        return f"Snapshot({str(self.out)!r}, {self.label!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Snapshot) and (str(self.out), self.label) == (
            str(other.out),
            other.label,
        )

    def __hash__(self) -> int:
        return hash((str(self.out), self.label))

    def table(self, name: str) -> Location:
        """The folder of table ``name`` (one of :attr:`TABLES`) for this snapshot."""
        if name not in self.TABLES:
            raise ValueError(f"no table {name!r} in a snapshot (expected one of {self.TABLES})")
        return self.out / name / f"snapshot={self.label}"

    @property
    def domains(self) -> Location:
        """One row per domain."""
        return self.table("domains")

    @property
    def records(self) -> Location:
        """One row per DNS answer a domain's analysis used."""
        return self.table("records")

    @property
    def probes(self) -> Location:
        """MTA-STS policy fetches and SMTP STARTTLS probes."""
        return self.table("probes")

    @property
    def lists(self) -> Location:
        """The input lists' own columns, per domain."""
        return self.table("lists")

    @property
    def folders(self) -> list[Location]:
        """Every table's folder (what starting the snapshot over removes)."""
        return [self.table(name) for name in self.TABLES]

    @property
    def manifest(self) -> Location:
        """How the snapshot was made (JSON, beside the domains parts)."""
        return self.domains / "_manifest.json"

    def read_manifest(self) -> dict[str, Any] | None:
        """The manifest, or None when the snapshot has none (never started)."""
        try:
            return json.loads(self.manifest.read_text())
        except FileNotFoundError:
            return None

    def write_manifest(self, manifest: Mapping[str, Any]) -> Location:
        text = json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n"
        self.manifest.write_bytes(text.encode("utf-8"))
        return self.manifest


def write_part(
    directory: str | Path | Location, name: str, rows: list[Mapping[str, Any]], schema: pa.Schema
) -> Location:
    """Write rows as one Parquet part atomically (see the module's docstring)."""
    # Column by column: cheaper than Table.from_pylist on wide dict rows. (The names once, not
    # ``f.name`` per row: each read of it builds a new str from C++.)
    columns = zip(schema.names, schema.types, strict=True)
    table = pa.Table.from_arrays(
        [pa.array([r.get(n) for r in rows], type=t) for n, t in columns], schema=schema
    )
    return write_table(directory, name, table)


def write_table(
    directory: str | Path | Location,
    name: str,
    table: pa.Table | Iterable[pa.Table],
    schema: pa.Schema | None = None,
) -> Location:
    """Write one part atomically: a table, or tables of ``schema`` written as row groups."""
    directory = Location.of(directory)
    final = directory / name
    if final.local:
        directory.mkdir()
        tmp = directory / f".{name}.tmp-{os.getpid()}"
        _write_parquet(table, schema, tmp.path)
        with open(tmp.path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp.path, final.path)
    else:  # encoded in memory, then sent whole: never half an object in the store
        sink = pa.BufferOutputStream()
        _write_parquet(table, schema, sink)
        final.write_bytes(sink.getvalue().to_pybytes())
    return final


def _write_parquet(
    table: pa.Table | Iterable[pa.Table], schema: pa.Schema | None, where: Any
) -> None:
    dictionary = _dictionary(table.schema if isinstance(table, pa.Table) else schema)
    if isinstance(table, pa.Table):
        pq.write_table(table, where, compression="zstd", use_dictionary=dictionary)
        return
    with pq.ParquetWriter(where, schema, compression="zstd", use_dictionary=dictionary) as writer:
        for t in table:
            writer.write_table(t)


def write_tuples(
    directory: str | Path | Location, name: str, rows: list[tuple], schema: pa.Schema
) -> Location:
    """Like :func:`write_part` for rows given as tuples in schema order (timestamps as µs).

    Converted and written a row group at a time: the whole part as Arrow arrays at once would be
    a peak that the allocator keeps as resident memory for the rest of the scan.
    """

    def tables() -> Iterator[pa.Table]:
        for start in range(0, max(len(rows), 1), TUPLE_CHUNK_ROWS):
            chunk = rows[start : start + TUPLE_CHUNK_ROWS]
            if chunk and set(map(len, chunk)) != {len(schema)}:
                raise ValueError(f"rows of {len(schema)} values expected in {name}")
            arrays = []
            for i, f in enumerate(schema):
                # A column at a time with itemgetter: cheaper than transposing with zip(*chunk),
                # which builds each column as a tuple over thousands of argument iterators.
                col = list(map(itemgetter(i), chunk))
                if pa.types.is_timestamp(f.type):  # held as integer µs (cheaper than datetimes)
                    arrays.append(pa.array(col, type=pa.int64()).cast(f.type))
                else:
                    arrays.append(pa.array(col, type=f.type))
            yield pa.Table.from_arrays(arrays, schema=schema)

    return write_table(directory, name, tables(), schema)


#: Rows per row group of :func:`write_tuples`.
TUPLE_CHUNK_ROWS = 8192

#: The records table's columns with few distinct values, the only ones dictionary-encoded: the
#: names and answers are nearly all distinct within a part, so a dictionary on them costs time
#: and makes no smaller file (zstd finds the repeats anyway).
RECORDS_DICTIONARY = ["qtype", "rcode", "resolver", "transport"]


def _dictionary(schema: pa.Schema | None) -> bool | list[str]:
    """The columns to dictionary-encode in a part of ``schema`` (True: all)."""
    return RECORDS_DICTIONARY if schema is not None and schema.equals(RECORDS_SCHEMA) else True


def read_table(part: str | Path | Location, columns: list[str] | None = None) -> pa.Table:
    """One Parquet part (or a folder of them) as an Arrow table."""
    part = Location.of(part)
    return pq.read_table(part.path, columns=columns, filesystem=part.arrow_fs)


def num_rows(part: str | Path | Location) -> int:
    part = Location.of(part)
    return pq.read_metadata(part.path, filesystem=part.arrow_fs).num_rows


def list_snapshots(out: str | Path | Location) -> list[str]:
    """Labels of the snapshots under DIR, oldest first (labels sort as dates)."""
    base = Location.of(out) / "domains"
    base._fresh()
    try:
        entries = base.fs.ls(base.path, detail=True)
    except (FileNotFoundError, NotADirectoryError):
        return []
    names = (posixpath.basename(e["name"].rstrip("/")) for e in entries if e["type"] == "directory")
    return sorted(n.split("=", 1)[1] for n in names if n.startswith("snapshot="))


def existing_parts(directory: str | Path | Location) -> set[str]:
    return {p.name for p in Location.of(directory).glob("part-*.parquet")}


def remove_temporaries(directory: str | Path | Location) -> None:
    """Delete the temporary files of writes cut short by a crash (local and rename-based stores)."""
    directory = Location.of(directory)
    if directory.object_store:
        return  # nothing is ever written there under a temporary name
    for stale in directory.glob(".part-*.tmp-*"):
        stale.unlink(missing_ok=True)


# --- a forced rescan: the new snapshot beside the old, swapped in when complete ----------------

#: Where the snapshot of a forced rescan is written until it is complete: ``DIR/.rescan/LABEL``
#: holds a whole snapshot tree of its own (``domains/snapshot=LABEL/...``), so the scan writes it
#: exactly as it writes any snapshot, and neither pandas (it skips folders whose names start
#: with a dot) nor ``list_snapshots`` sees it.
RESCAN_FOLDER = ".rescan"
_COMMIT_MARK = "_commit"


def rescan_root(out: str | Path | Location, label: str) -> Location:
    """The folder a forced rescan of ``label`` writes its snapshot tree into."""
    return Location.of(out) / RESCAN_FOLDER / label


def _tables(base: Location) -> list[str]:
    """The tables (domains, records, probes, lists...) under a snapshot folder, domains last."""
    names = {e.name for e in base.iterdir() if not e.name.startswith((".", "_")) and e.is_dir()}
    return sorted(names - {"domains"}) + (["domains"] if "domains" in names else [])


def _move(src: Location, dst: Location) -> None:
    """Move a folder; ``dst`` must not exist. A rename on disk; a copy, then a delete elsewhere."""
    dst.parent.mkdir()
    if src.local:
        os.rename(src.path, dst.path)
        return
    src.fs.copy(src.path, dst.path, recursive=True)
    src.rmtree()
    dst._fresh()


def commit_rescan(out: str | Path | Location, label: str) -> None:
    """Put the complete snapshot of a forced rescan in place of the old one.

    A mark is written first; from then on :func:`recover_rescan` finishes the swap whatever the
    point it was cut at (each step is repeated safely). Table by table, domains last (its
    manifest says which snapshot is there): the old folder is deleted and the new one moved in.
    Tables the old snapshot had and the new one has not are deleted too.
    """
    out = Location.of(out)
    root = rescan_root(out, label)
    manifest = Snapshot(root, label).read_manifest()
    if manifest is None or not manifest.get("complete"):
        raise ValueError(f"the rescan of snapshot {label} in {out} is not complete")
    # The mark names the new snapshot's tables: after a cut, some are already moved.
    (root / _COMMIT_MARK).write_bytes(json.dumps(_tables(root)).encode())
    _finish_commit(out, label)


def _finish_commit(out: Location, label: str) -> None:
    root = rescan_root(out, label)
    partition = f"snapshot={label}"
    new_tables = json.loads((root / _COMMIT_MARK).read_text())
    stale = [t for t in _tables(out) if t not in new_tables]
    for table in stale + new_tables:  # (new_tables ends with domains)
        src, dst = root / table / partition, out / table / partition
        if table in new_tables and not src.exists():
            continue  # moved before the cut
        dst.rmtree()
        if table in new_tables:
            _move(src, dst)
    root.rmtree()
    with contextlib.suppress(OSError):
        if out.local:
            os.rmdir((out / RESCAN_FOLDER).path)  # (only when no other rescan is under way)


def recover_rescan(out: str | Path | Location, label: str) -> bool:
    """Finish a swap that :func:`commit_rescan` began and a crash cut short; True if it did.

    A rescan that was not complete is left where it is, to be resumed.
    """
    out = Location.of(out)
    root = rescan_root(out, label)
    if not (root / _COMMIT_MARK).exists():
        return False
    _finish_commit(out, label)
    return True
