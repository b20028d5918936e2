"""Snapshots on disk: Parquet parts in hive partitions, and the manifest.

Layout (SPEC.md)::

    DIR/domains/snapshot=LABEL/part-*.parquet    one row per domain
    DIR/records/snapshot=LABEL/part-*.parquet    one row per DNS answer a domain's analysis used
    DIR/probes/snapshot=LABEL/part-*.parquet     HTTPS and SMTP probes (transport security)
    DIR/domains/snapshot=LABEL/_manifest.json    how the snapshot was made

Every part is written to a temporary name and renamed, so a part on disk is always whole. The
schemas are fixed here so that every part, even an all-null one, has every column with its type.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

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
        # Transport security (issue 7): DNSSEC-validated apex answers; DANE on every MX; the
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

_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_label(label: str) -> str:
    """A snapshot label must be a safe directory name (hive partition value)."""
    if not _LABEL_RE.match(label):
        raise ValueError(f"snapshot label {label!r}: use letters, digits, '.', '_' or '-'")
    return label


def snapshot_dirs(out: str | Path, label: str) -> tuple[Path, Path]:
    """(domains dir, records dir) of one snapshot."""
    out = Path(out)
    return out / "domains" / f"snapshot={label}", out / "records" / f"snapshot={label}"


def probes_dir(out: str | Path, label: str) -> Path:
    """Where a snapshot's probes (MTA-STS policy fetches, SMTP STARTTLS) are kept."""
    return Path(out) / "probes" / f"snapshot={label}"


def manifest_path(out: str | Path, label: str) -> Path:
    return snapshot_dirs(out, label)[0] / "_manifest.json"


def write_part(
    directory: Path, name: str, rows: list[Mapping[str, Any]], schema: pa.Schema
) -> Path:
    """Write rows as one Parquet part atomically (temporary file, fsync, rename)."""
    # Column by column: several times faster than Table.from_pylist on wide dict rows.
    table = pa.Table.from_arrays(
        [pa.array([r.get(f.name) for r in rows], type=f.type) for f in schema], schema=schema
    )
    return _write_table(directory, name, table)


def _write_table(directory: Path, name: str, table: pa.Table) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / name
    tmp = directory / f".{name}.tmp-{os.getpid()}"
    pq.write_table(table, tmp, compression="zstd")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    return final


def write_tuples(directory: Path, name: str, rows: list[tuple], schema: pa.Schema) -> Path:
    """Like :func:`write_part` for rows given as tuples in schema order (timestamps as µs)."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
    arrays = []
    for col, f in zip(columns, schema, strict=True):
        if pa.types.is_timestamp(f.type):  # held as integer microseconds (cheaper than datetimes)
            arrays.append(pa.array(list(col), type=pa.int64()).cast(f.type))
        else:
            arrays.append(pa.array(list(col), type=f.type))
    table = pa.Table.from_arrays(arrays, schema=schema)
    return _write_table(directory, name, table)


def read_manifest(out: str | Path, label: str) -> dict[str, Any] | None:
    path = manifest_path(out, label)
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def write_manifest(out: str | Path, label: str, manifest: Mapping[str, Any]) -> Path:
    path = manifest_path(out, label)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
    )
    os.replace(tmp, path)
    return path


def list_snapshots(out: str | Path) -> list[str]:
    """Labels of the snapshots under DIR, oldest first (labels sort as dates)."""
    base = Path(out) / "domains"
    if not base.is_dir():
        return []
    return sorted(
        p.name.split("=", 1)[1]
        for p in base.iterdir()
        if p.is_dir() and p.name.startswith("snapshot=")
    )


def existing_parts(directory: Path) -> set[str]:
    if not directory.is_dir():
        return set()
    return {p.name for p in directory.glob("part-*.parquet")}


def read_records(out: str | Path, label: str) -> Iterable[pa.RecordBatch]:
    """The records table of one snapshot, part by part (memory stays at one part)."""
    _, rdir = snapshot_dirs(out, label)
    for part in sorted(rdir.glob("part-*.parquet")):
        yield from pq.ParquetFile(part).iter_batches(batch_size=65536)
