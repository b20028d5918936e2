"""Adoption figures from snapshots: the engine behind `report`, `trend`, `diff` and `chart`.

Notebooks use the same functions as the command line::

    from mailauth_survey import report
    df = report.load("results")                      # every complete snapshot, a row per domain
    table = report.adoption(report.load("results", "2024-06-01"))
    table = report.adoption(df, by="mx_provider", top=10)   # rows per snapshot, never pooled
    report.report("results", by="mx_provider,category")    # what `report --format json` prints
    report.methods("results")                        # the manifest's facts (the methods block)
    report.trend("results", ["dmarc_valid"])         # one row per snapshot and category
    report.diff("results", "2024-03-01", "2024-06-01")

Metrics (SPEC.md, "Metrics"). Every metric is a count of domains; each comes with two
percentages, always with the same denominators so that they compare across rows and quarters:

* ``<metric>_pct``: of ``domains`` (the group's domains with ``status == ok``);
* ``<metric>_mx_pct``: of ``has_mx`` (the ok domains with a real exchange), the numerator being
  restricted to those domains too, so it never exceeds 100 (the WIDE/JPRS "÷ domains with MX");
* each with its 95% Wilson score interval, ``_pct_lo``/``_pct_hi`` and ``_mx_pct_lo``/``_mx_pct_hi``.

Not measured is not zero: `PARTIAL_METRICS` (``mta_sts_enforce``, ``mta_sts_mismatch``,
``starttls``, ``dane``, ``dnssec``) carry ``<metric>_measured`` (domains with a definite value), and
their count and shares are null for a group where it is 0 (no ``--probe-smtp``, the policy fetch
off, a resolver that set no AD flag). Every row carries ``snapshot`` and ``label`` (the group's
name in the language asked).

A domain whose status is not ``ok`` counts only in its error metric: it is in no other numerator
nor denominator, so a timeout never reads as "no SPF". The error metrics (``nxdomain``,
``servfail``, ``timeout``, ``refused``, ``error``) take their ``_pct`` of all listed domains of the
group; their ``_mx_pct`` is null, since nothing is known of the mail setup of a domain that did not
resolve. A percentage whose denominator is 0 is null (NaN in pandas, null in JSON).

Where SPEC.md leaves room, the definitions are:

* the five ``spf_all_*`` counts split ``spf_valid`` (a valid record without an effective ``all``,
  or with none recorded, is ``spf_all_none``), so they add up to it;
* ``dmarc_none``/``_quarantine``/``_reject`` split ``dmarc_valid`` by ``dmarc_policy`` (the policy
  that applies to the domain, own or inherited); ``dmarc_enforcing`` is their last two;
* ``dmarc_rua``: a valid DMARC record with at least one ``rua`` URI;
* ``dkim_domainkey``: ``dkim_domainkey == "exists"``; ``dkim_selector``: ``dkim_selectors`` not
  empty (both lower bounds: only the probed selectors are known);
* ``mta_sts``, ``tlsrpt``, ``bimi``: the record's status is ``valid``; ``bimi_declined``: the
  domain publishes a BIMI declination (``bimi_status == "declined"``, SPEC.md), shown in its own
  row because it is a record but not adoption;
* ``mta_sts_enforce``: a valid MTA-STS policy (fetched over HTTPS) in mode ``enforce`` whose
  patterns match every MX host; ``mta_sts_mismatch``: a valid policy in ``enforce`` or ``testing``
  that some MX host does not match (RFC 8461 senders would refuse that mail when enforced);
  ``starttls``: every MX address that spoke SMTP did STARTTLS (only with ``--probe-smtp``);
  ``dane``: every MX host has a validated, usable TLSA RRset; ``dnssec``: the apex answers were
  validated (AD from a validating resolver). Unprobed or unknown is never counted as "no";
* a record-level ``temperror`` (e.g. ``spf_status == "temperror"`` on an ok domain) stays in the
  denominator, as SPEC.md fixes it to ``status == ok``, and counts in no metric of that record.

Groups: ``by="category"`` gives the categories that have at least one listed domain, in
`domains.CATEGORIES` order. ``by="mx_provider"`` or ``"dns_provider"`` gives the providers with at
least ``min_domains`` domains (default: 10 or 0.5% of the domains that exist), at most ``top``
(default 15), largest first (ties by name), then ``self-hosted`` (the exchange or name server is
under the domain's own registrable domain), ``other`` (every smaller provider together) and
``none`` (domains without a provider: no MX, no name servers, or not resolved); provider names are
registrable domains, so they never clash with these words. Any other column (a list's own) groups
by its values. Two keys cross. A ``total`` row ends every table. The group key is in a column
named as ``by``.
"""

from __future__ import annotations

import io
import json
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from . import store
from .domains import CATEGORIES, VALUE_SEPARATOR
from .metrics import (
    DEFAULT_TOP,
    ERROR_METRICS,
    GROUPINGS,
    METRICS,
    PARTIAL_METRICS,
    PROVIDER_GROUPINGS,
    TABLE_ONLY,
)
from .prefectures import prefecture_code

# --- metrics -----------------------------------------------------------------------------------

#: The adoption metrics a domain can gain or lose between snapshots (`diff`).
ADOPTION_METRICS: tuple[str, ...] = tuple(
    m for m in METRICS if m != "domains" and m not in ERROR_METRICS
)

#: Groups of fewer domains than this are marked (†) in tables and drawn hollow in charts.
SMALL_GROUP = 30
#: The 97.5% point of the standard normal distribution (95% two-sided).
Z95 = 1.959963984540054
TOTAL, OTHER, NONE, SELF_HOSTED = "total", "other", "none", "self-hosted"

#: Columns of the domains table the metrics read (what `report` and `trend` load).
METRIC_COLUMNS: tuple[str, ...] = (
    "domain", "category", "status", "mx_status", "has_mx", "mx_null", "mx_provider", "dns_provider",
    "spf_status", "spf_all", "dmarc_status", "dmarc_policy", "dmarc_rua",
    "dkim_domainkey", "dkim_selectors", "mta_sts_status", "tlsrpt_status", "bimi_status",
    "mta_sts_policy_status", "mta_sts_mode", "mta_sts_mx_match", "starttls", "dane", "dnssec",
)  # fmt: skip

_SPF_ALL = {
    "spf_all_fail": "-all",
    "spf_all_softfail": "~all",
    "spf_all_neutral": "?all",
    "spf_all_pass": "+all",
}

#: ``mta_sts_policy_status`` words that are a definite answer: the policy host answered (or, for
#: ``none``, no valid ``_mta-sts`` record means no policy, RFC 8461 3.1). ``tls-error``,
#: ``timeout``, ``error`` and ``skipped`` leave the domain's policy unknown.
_POLICY_DEFINITE = ("none", "valid", "invalid", "redirect", "http-error", "too-large")


class ReportError(ValueError):
    """A problem with the input a report was asked for (missing folder, unknown snapshot...)."""


class IncompleteSnapshotWarning(UserWarning):
    """A snapshot whose scan did not finish was left out (or used, when named)."""


def _is(series: pd.Series, value: str) -> np.ndarray:
    """Element-wise ``== value``, nulls False (string, object, categorical or Arrow columns)."""
    return series.eq(value).to_numpy(dtype=bool, na_value=False)


def _true(series: pd.Series) -> np.ndarray:
    """A nullable boolean column with nulls as False."""
    return series.eq(True).to_numpy(dtype=bool, na_value=False)


def _false(series: pd.Series) -> np.ndarray:
    """A nullable boolean column's definite False cells."""
    return series.eq(False).to_numpy(dtype=bool, na_value=False)


def _isin(series: pd.Series, values: Sequence[str]) -> np.ndarray:
    return series.isin(values).to_numpy(dtype=bool, na_value=False)


def _nonempty(series: pd.Series) -> np.ndarray:
    """A list column's cells that hold at least one item (Arrow lists, numpy arrays or lists)."""
    if isinstance(series.dtype, pd.ArrowDtype):
        return series.list.len().to_numpy(dtype="int64", na_value=0) > 0
    return np.fromiter(
        (v is not None and not _isna_scalar(v) and len(v) > 0 for v in series), bool, len(series)
    )


def _isna_scalar(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _column(df: pd.DataFrame, name: str) -> pd.Series:
    """A column of df, or an all-null one (a frame from an older schema, or a test's own)."""
    if name in df.columns:
        return df[name]
    return pd.Series([None] * len(df), index=df.index, dtype=object)


def metric_masks(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per metric, a boolean array over df's rows: which domains it counts (the definitions)."""
    ok = _is(df["status"], "ok")
    spf = ok & _is(df["spf_status"], "valid")
    dmarc = ok & _is(df["dmarc_status"], "valid")
    m: dict[str, np.ndarray] = {
        "domains": ok,
        "has_mx": ok & _true(df["has_mx"]),
        "null_mx": ok & _true(df["mx_null"]),
        "spf_valid": spf,
        "spf_permerror": ok & _is(df["spf_status"], "permerror"),
    }
    spf_all = df["spf_all"]
    for metric, word in _SPF_ALL.items():
        m[metric] = spf & _is(spf_all, word)
    m["spf_all_none"] = spf & (_is(spf_all, "none") | spf_all.isna().to_numpy())
    m["dmarc_valid"] = dmarc
    m["dmarc_invalid"] = ok & _is(df["dmarc_status"], "invalid")
    for policy in ("none", "quarantine", "reject"):
        m[f"dmarc_{policy}"] = dmarc & _is(df["dmarc_policy"], policy)
    m["dmarc_enforcing"] = m["dmarc_quarantine"] | m["dmarc_reject"]
    m["dmarc_rua"] = dmarc & _nonempty(df["dmarc_rua"])
    m["dkim_domainkey"] = ok & _is(df["dkim_domainkey"], "exists")
    m["dkim_selector"] = ok & _nonempty(df["dkim_selectors"])
    m["mta_sts"] = ok & _is(df["mta_sts_status"], "valid")
    m["tlsrpt"] = ok & _is(df["tlsrpt_status"], "valid")
    m["bimi"] = ok & _is(df["bimi_status"], "valid")
    m["bimi_declined"] = ok & _is(df["bimi_status"], "declined")
    policy = ok & _is(_column(df, "mta_sts_policy_status"), "valid")
    mode = _column(df, "mta_sts_mode")
    match = _column(df, "mta_sts_mx_match")
    # RFC 8461 5: a sender refuses to deliver to an MX that no pattern of an enforce policy
    # matches, so such a domain is at risk, not protected.
    m["mta_sts_enforce"] = policy & _is(mode, "enforce") & _true(match)
    m["mta_sts_mismatch"] = policy & _isin(mode, ("enforce", "testing")) & _false(match)
    for flag in ("starttls", "dane", "dnssec"):
        m[flag] = ok & _true(_column(df, flag))
    for status in ERROR_METRICS:
        m[status] = _is(df["status"], status)
    return m


def measured_masks(
    df: pd.DataFrame, facts: Mapping[str, Any] | None = None
) -> dict[str, np.ndarray]:
    """Per partial metric: the domains whose value for it is definite (`PARTIAL_METRICS`).

    ``facts`` (see `methods`) can say an input was switched off for the whole snapshot: with the
    MTA-STS policy fetch off, no domain's policy metrics are measured, even those without a
    ``_mta-sts`` record (the scan did not look).
    """
    ok = _is(df["status"], "ok")
    out: dict[str, np.ndarray] = {}
    policy = _column(df, "mta_sts_policy_status")
    pending = (
        _is(policy, "valid")
        & _isin(_column(df, "mta_sts_mode"), ("enforce", "testing"))
        & _column(df, "mta_sts_mx_match").isna().to_numpy()
        & ~_false(df["has_mx"])  # no MX at all: nothing to match, a definite "neither"
    )
    mta = ok & _isin(policy, _POLICY_DEFINITE) & ~pending
    if facts is not None and (facts.get("probes") or {}).get("mta_sts_policy") is False:
        mta = np.zeros(len(df), dtype=bool)
    out["mta_sts_enforce"] = out["mta_sts_mismatch"] = mta
    for flag in ("starttls", "dane", "dnssec"):
        out[flag] = ok & _column(df, flag).notna().to_numpy()
    return out


def _known_masks(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per adoption metric: domains whose answer for it is definite (no error), for `diff`."""
    ok = _is(df["status"], "ok")

    def fine(column: str, *errors: str) -> np.ndarray:
        return ok & ~_isin(df[column], errors)

    mx = fine("mx_status", "SERVFAIL", "REFUSED", "TIMEOUT")
    spf = fine("spf_status", "temperror")
    dmarc = fine("dmarc_status", "temperror")
    known = {"has_mx": mx, "null_mx": mx, "dkim_domainkey": fine("dkim_domainkey", "error")}
    known |= {m: spf for m in ADOPTION_METRICS if m.startswith("spf_")}
    known |= {m: dmarc for m in ADOPTION_METRICS if m.startswith("dmarc_")}
    known["dkim_selector"] = ok
    known["mta_sts"] = fine("mta_sts_status", "temperror")
    known["tlsrpt"] = fine("tlsrpt_status", "temperror")
    known["bimi"] = known["bimi_declined"] = fine("bimi_status", "temperror")
    known |= measured_masks(df)
    return known


# --- loading -----------------------------------------------------------------------------------


def _domains_dir(directory: str | Path | store.Location) -> store.Location:
    """DIR/domains, checked; DIR is a local folder or an fsspec URL (``s3://bucket/prefix``)."""
    try:
        base = store.location(directory)
    except (ImportError, ValueError) as exc:  # an unknown protocol, or its package missing
        raise ReportError(f"{directory}: {exc}") from None
    if not base.object_store and not base.is_dir():  # on S3 a folder is only a key prefix
        raise ReportError(f"{directory}: no such directory")
    if not (base / "domains").is_dir():
        raise ReportError(f"{directory}: no snapshots here (no domains/ folder)")
    return base / "domains"


def snapshots(directory: str | Path | store.Location) -> list[str]:
    """Labels of every snapshot under DIR (complete or not), oldest first; an error when none."""
    _domains_dir(directory)
    labels = store.list_snapshots(directory)
    if not labels:
        raise ReportError(f"{directory}: no snapshots under domains/")
    return labels


def _manifest(directory: str | Path | store.Location, label: str) -> dict[str, Any]:
    try:
        return store.Snapshot(directory, label).read_manifest() or {}
    except (ValueError, OSError):  # a damaged manifest: the data may still be read
        return {}


def is_complete(directory: str | Path | store.Location, label: str) -> bool:
    """False only when the manifest says ``complete: false`` (a scan that did not finish)."""
    return _manifest(directory, label).get("complete") is not False


def _warn(message: str) -> None:
    warnings.warn(message, IncompleteSnapshotWarning, stacklevel=3)


def complete_snapshots(
    directory: str | Path | store.Location, include_incomplete: bool = False
) -> list[str]:
    """The snapshots to use, oldest first: the complete ones, with a warning naming the others.

    ``include_incomplete`` keeps them all (SPEC.md: an incomplete snapshot is never used
    silently).
    """
    labels = snapshots(directory)
    if include_incomplete:
        return labels
    skipped = [label for label in labels if not is_complete(directory, label)]
    if skipped:
        _warn(
            f"left out incomplete snapshot{'s' if len(skipped) > 1 else ''} "
            f"{', '.join(skipped)} (scan not finished; --include-incomplete to use)"
        )
    kept = [label for label in labels if label not in skipped]
    if not kept:
        raise ReportError(
            f"{directory}: no complete snapshot (incomplete: {', '.join(skipped)}; "
            "name one with --snapshot or use --include-incomplete)"
        )
    return kept


def resolve_snapshot(
    directory: str | Path | store.Location, label: str | None, include_incomplete: bool = False
) -> str:
    """The label asked for, checked, or the newest complete snapshot's label when None.

    A snapshot named here is used even when incomplete, with a warning saying how far it got.
    """
    if label is None:
        return complete_snapshots(directory, include_incomplete)[-1]
    labels = snapshots(directory)
    if label not in labels:
        raise ReportError(f"no snapshot {label!r} in {directory} (have: {', '.join(labels)})")
    if not is_complete(directory, label):
        _warn(f"snapshot {label}: {incomplete_note(directory, label)}")
    return label


def _rows_written(directory: str | Path | store.Location, label: str) -> int:
    parts = store.Snapshot(directory, label).domains.glob("part-*.parquet")
    return sum(store.num_rows(p) for p in parts)


def incomplete_note(directory: str | Path | store.Location, label: str) -> str:
    """ "incomplete: N of M domains" (M when the manifest knows the list's size), else ""."""
    manifest = _manifest(directory, label)
    if manifest.get("complete") is not False:
        return ""
    done = _rows_written(directory, label)
    listed = manifest.get("domains") or manifest.get("domains_listed")
    if listed:
        return f"incomplete: {done:,} of {int(listed):,} domains"
    return f"incomplete: {done:,} domains scanned, scan not finished"


def methods(directory: str | Path | store.Location, snapshot: str | None = None) -> dict[str, Any]:
    """How a snapshot was made, from its manifest: the facts a methods block prints.

    Keys: ``snapshot``, ``complete``, ``incomplete`` (the "incomplete: N of M domains" note, or
    ""), ``started_at``, ``finished_at``, ``listed`` (domains scanned), ``exist``
    (``status == ok``), ``resolvers``, ``validated`` (True when the resolver set the AD flag on
    some answer, i.e. DNSSEC was validated; False when on none; read from the ``dnssec`` column),
    ``probes`` ({``mta_sts_policy``, ``probe_smtp``}: True/False, None when the manifest does
    not say), ``psl`` (Public Suffix List version), ``lists`` ([{``name``, ``sha256``}]),
    ``dkim_selectors`` (the selectors where DKIM keys were looked for), ``package_version``.
    Missing facts are None.
    """
    label = resolve_snapshot(directory, snapshot) if snapshot is None else snapshot
    manifest = _manifest(directory, label)
    options = manifest.get("options") or {}
    counts = manifest.get("status_counts") or {}
    dnssec = _read_snapshot(directory, label, ["status", "dnssec"])
    exist = pc.sum(pc.equal(dnssec["status"], "ok")).as_py() or 0
    listed = manifest.get("domains")
    if manifest.get("complete") is False or listed is None:
        listed = dnssec.num_rows
    validated = dnssec["dnssec"].null_count < dnssec.num_rows if dnssec.num_rows else None
    return {
        "snapshot": label,
        "complete": manifest.get("complete") is not False,
        "incomplete": incomplete_note(directory, label),
        "started_at": manifest.get("started_at"),
        "finished_at": manifest.get("finished_at"),
        "listed": int(listed),
        "exist": int(counts.get("ok", exist)) if manifest.get("complete") is not False else exist,
        "resolvers": list(manifest.get("resolvers") or options.get("resolvers") or []),
        "validated": validated,
        "probes": {
            "mta_sts_policy": options.get("mta_sts_policy"),
            "probe_smtp": options.get("probe_smtp"),
        },
        "psl": manifest.get("public_suffix_list"),
        "lists": [
            {"name": Path(str(i.get("path", ""))).name, "sha256": i.get("sha256")}
            for i in manifest.get("inputs") or []
        ],
        "dkim_selectors": manifest.get("dkim_selectors"),
        "package_version": manifest.get("package_version"),
    }


def _read_snapshot(
    directory: str | Path | store.Location, label: str, columns: Sequence[str] | None
) -> pa.Table:
    """One snapshot's parts as an Arrow table with every schema column (absent ones as nulls)."""
    domains_dir = store.Snapshot(directory, label).domains
    parts = [p.path for p in domains_dir.glob("part-*.parquet")]
    schema = store.DOMAINS_SCHEMA
    names = list(columns) if columns is not None else list(schema.names)
    unknown = [c for c in names if c not in schema.names]
    if unknown:
        raise ReportError(f"unknown column(s): {', '.join(unknown)}")
    if parts:
        try:
            table = ds.dataset(
                parts, schema=schema, format="parquet", filesystem=domains_dir.arrow_fs
            ).to_table(columns=names)
        except pa.ArrowException as exc:  # a damaged part: say which snapshot, not a traceback
            raise ReportError(f"snapshot {label}: cannot read its parts ({exc})") from None
    else:  # a snapshot whose scan has not written a part yet
        table = schema.empty_table().select(names)
    return table.append_column("snapshot", pa.repeat(pa.scalar(label, pa.string()), table.num_rows))


_NULLABLE = {
    pa.bool_(): pd.BooleanDtype(),
    pa.int16(): pd.Int16Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
}


def _to_pandas(table: pa.Table, arrow_lists: bool) -> pd.DataFrame:
    def mapper(t: pa.DataType) -> Any:
        if pa.types.is_list(t):
            return pd.ArrowDtype(t) if arrow_lists else None
        return _NULLABLE.get(t)  # ints and bools keep their type where a cell is null

    df = table.to_pandas(types_mapper=mapper)
    if "category" in df:
        df["category"] = pd.Categorical(df["category"], categories=list(CATEGORIES), ordered=True)
    return df


def load(
    directory: str | Path | store.Location,
    snapshot: str | None = None,
    columns: Sequence[str] | None = None,
    include_incomplete: bool = False,
) -> pd.DataFrame:
    """The domains table of every complete snapshot (oldest first), or of one, as a DataFrame.

    ``snapshot`` is a plain string column; ``category`` an ordered Categorical in `CATEGORIES`
    order; list columns hold numpy arrays (as `pandas.read_parquet` gives them); timestamps are
    UTC. The snapshot label is always read as a string (a hive reader would turn ``2024-06-01``
    into a date). ``columns`` limits the columns read (the ``snapshot`` column is always there).
    ``directory`` is a local folder or any fsspec URL (``s3://bucket/prefix``...). Incomplete
    snapshots are left out with a warning unless ``include_incomplete`` or named. The frame's
    ``attrs["methods"]`` holds `methods` of each snapshot, which `adoption` reads.
    """
    labels = (
        [resolve_snapshot(directory, snapshot)]
        if snapshot is not None
        else complete_snapshots(directory, include_incomplete)
    )
    tables = [_read_snapshot(directory, label, columns) for label in labels]
    df = _to_pandas(pa.concat_tables(tables), arrow_lists=False)
    if columns is None or "domain" in columns:
        df = _with_attributes(df, directory, labels)  # the lists' own columns
    df.attrs["methods"] = {label: methods(directory, label) for label in labels}
    return df


def _load_for_metrics(directory: str | Path | store.Location, label: str) -> pd.DataFrame:
    """Only the columns the metrics read, list columns kept in Arrow (cheap at 1.8M rows)."""
    return _to_pandas(_read_snapshot(directory, label, METRIC_COLUMNS), arrow_lists=True)


# --- list attributes (the lists table) ---------------------------------------------------------


def _lists_frame(directory: str | Path | store.Location, label: str) -> pd.DataFrame | None:
    """A snapshot's lists table (domain, list, the lists' own columns), None when it has none."""
    folder = store.Snapshot(directory, label).lists
    parts = [p.path for p in folder.glob("part-*.parquet")]
    if not parts:
        return None
    try:
        table = ds.dataset(parts, format="parquet", filesystem=folder.arrow_fs).to_table()
    except pa.ArrowException as exc:
        raise ReportError(f"snapshot {label}: cannot read its lists table ({exc})") from None
    return table.to_pandas()


def list_attributes(directory: str | Path | store.Location, label: str) -> list[str]:
    """The columns of a snapshot's lists table that ``--by`` can group by (``list`` included)."""
    frame = _lists_frame(directory, label)
    if frame is None:
        return []
    return [c for c in frame.columns if c != "domain" and c not in store.DOMAIN_COLUMNS]


def _attributes_by_domain(frame: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """One row per domain: each attribute's distinct values over the lists, joined as stored."""

    def merged(values: pd.Series) -> str | None:
        seen: dict[str, None] = {}
        for value in values.dropna():
            seen.update(dict.fromkeys(str(value).split(VALUE_SEPARATOR)))
        return VALUE_SEPARATOR.join(seen) if seen else None

    single = ~frame["domain"].duplicated(keep=False)
    alone = frame.loc[single, ["domain", *names]]
    shared = frame.loc[~single, ["domain", *names]]
    if len(shared):  # a domain in several lists: their values together
        shared = shared.groupby("domain", sort=False).agg(merged).reset_index()
        alone = pd.concat([alone, shared], ignore_index=True)
    return alone


def _with_attributes(
    df: pd.DataFrame,
    directory: str | Path | store.Location,
    labels: Sequence[str],
    only: str | None = None,
) -> pd.DataFrame:
    """``df`` with the list attributes of its domains as string columns (null: not in a CSV list).

    A value of a domain that several rows share holds their values joined by a line break; an
    attribute named as a domains column is left out (the domains column wins).
    """
    frames = []
    for label in labels:
        frame = _lists_frame(directory, label)
        if frame is None:
            continue
        names = [
            c for c in frame.columns
            if c not in ("domain", "snapshot") and c not in store.DOMAIN_COLUMNS
            and c not in df.columns and (only is None or c == only)
        ]  # fmt: skip
        if names:
            part = _attributes_by_domain(frame, names)
            frames.append(part.assign(snapshot=label))
    if not frames:
        return df
    attrs = pd.concat(frames, ignore_index=True)
    names = [c for c in attrs.columns if c not in ("domain", "snapshot")]
    merged = df.merge(attrs, on=["snapshot", "domain"], how="left", sort=False)
    for name in names:
        merged[name] = merged[name].astype(object).where(merged[name].notna(), None)
    return merged


def _unknown_grouping(by: str, attributes: Sequence[str]) -> str:
    known = ", ".join(GROUPINGS)
    if attributes:
        return (
            f"cannot group by {by!r}: use one of {known}, or a list column: {', '.join(attributes)}"
        )
    return f"cannot group by {by!r}: use one of {known} (the lists scanned had no other columns)"


# --- adoption ----------------------------------------------------------------------------------


def grouping_keys(by: str | Sequence[str]) -> list[str]:
    """``"mx_provider,category"`` or a list of names as a list of one or two column names."""
    keys = [k.strip() for k in by.split(",")] if isinstance(by, str) else [str(k) for k in by]
    keys = [k for k in keys if k]
    if not keys or len(keys) > 2 or len(set(keys)) != len(keys):
        raise ReportError(f"--by takes one column or two different ones, not {by!r}")
    return keys


def default_min_domains(exist: int) -> int:
    """Providers smaller than this fold into ``other``: 10, or 0.5% of the domains if larger."""
    return max(10, math.ceil(0.005 * exist))


def _arrow_strings(series: pd.Series) -> pa.Array:
    """A string column as one Arrow array (no copy when pandas already holds it in Arrow)."""
    try:
        array = pa.array(series, type=pa.string())
    except (pa.ArrowException, TypeError):  # categorical or mixed objects
        array = pa.array(series.astype(object).to_numpy(), type=pa.string())
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def _self_hosted(df: pd.DataFrame, by: str) -> np.ndarray:
    """Domains whose provider (a registrable domain) is the domain's own registrable domain.

    The provider is the exchange's registrable domain, so it is the domain's own exactly when the
    domain is that name or under it (a registrable domain is the public suffix plus one label).
    Checked with Arrow kernels, a label at a time, on the rows still longer than their provider
    (a per-row suffix test in Python took seconds at 1.8 million domains).
    """
    domain = _arrow_strings(df["domain"])
    provider = _arrow_strings(df[by])
    out = pc.fill_null(pc.equal(domain, provider), False).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(
        pc.fill_null(pc.greater(pc.utf8_length(domain), pc.utf8_length(provider)), False).to_numpy(
            zero_copy_only=False
        )
    )
    current, want = domain.take(rows), provider.take(rows)
    while len(rows):
        current = pc.replace_substring_regex(current, r"^[^.]*\.", "", max_replacements=1)
        out[rows[pc.equal(current, want).to_numpy(zero_copy_only=False)]] = True
        keep = pc.greater(pc.utf8_length(current), pc.utf8_length(want)).to_numpy(
            zero_copy_only=False
        )
        rows, current, want = rows[keep], current.filter(keep), want.filter(keep)
    return out


def _group_codes(
    df: pd.DataFrame,
    by: str,
    top: int | None,
    min_domains: int | None,
    counted: np.ndarray,
) -> tuple[np.ndarray, list[str]]:
    """Each domain's group as an index into the group names returned (-1: in no group)."""
    if by == "category":
        codes = pd.Categorical(df["category"], categories=list(CATEGORIES)).codes.astype(np.int64)
        present = np.unique(codes[codes >= 0])
        lookup = np.full(len(CATEGORIES) + 1, -1)  # the last slot maps -1 (unknown) to -1
        lookup[present] = np.arange(len(present))
        return lookup[codes], [CATEGORIES[i] for i in present]
    if by not in df.columns or by in ("domain", "snapshot"):
        known = [*GROUPINGS, *(c for c in df.columns if c not in store.DOMAIN_COLUMNS)]
        raise ReportError(f"cannot group by {by!r}: use one of {', '.join(dict.fromkeys(known))}")
    if by not in PROVIDER_GROUPINGS:
        values = df[by].astype(object).to_numpy()
        values = np.where(pd.isna(values), None, values)
        # A column of the input list (a prefecture, a sector...): every value, in natural order,
        # domains without one as none.
        codes, uniques = pd.factorize(values, sort=True, use_na_sentinel=True)
        codes, names = _prefectures_first(codes, [str(u) for u in uniques])
        if (codes < 0).any():
            codes = np.where(codes < 0, len(names), codes)
            names.append(NONE)
        return codes.astype(np.int64), names
    top = DEFAULT_TOP if top is None else top
    if top < 1:
        raise ReportError("top must be at least 1")
    if min_domains is None:
        min_domains = default_min_domains(int(counted.sum()))
    own = _self_hosted(df, by)
    codes, uniques = pd.factorize(df[by], use_na_sentinel=True)
    codes = np.where(own, -1, codes)  # self-hosted rows count for no provider's size
    has = codes >= 0
    sizes = np.bincount(codes[has], weights=counted[has], minlength=len(uniques))
    big = [i for i in range(len(uniques)) if sizes[i] >= min_domains and sizes[i] > 0]
    ranked = sorted(big, key=lambda i: (-sizes[i], uniques[i]))[:top]
    names = [str(uniques[i]) for i in ranked]
    self_i, other, none = len(names), len(names) + 1, len(names) + 2
    lookup = np.full(len(uniques) + 1, other)
    lookup[ranked] = np.arange(len(names))
    lookup[-1] = none  # code -1: no provider
    group = np.where(own, self_i, lookup[codes])
    used = np.bincount(group, minlength=none + 1) > 0
    kept = [i for i in (self_i, other, none) if used[i]]
    remap = np.arange(none + 1)
    for new, old in enumerate(kept, start=len(names)):
        remap[old] = new
    names += [{self_i: SELF_HOSTED, other: OTHER, none: NONE}[i] for i in kept]
    return remap[group], names


def _percent(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """100 * num / den, NaN where den is 0 (no domain to take a share of) or num is NaN."""
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, 100.0 * num / np.maximum(den, 1), np.nan)


def wilson(num: np.ndarray, den: np.ndarray, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """The Wilson score interval of num/den in percent (NaN where den is 0 or num NaN).

    Wilson (1927); Brown, Cai & DasGupta (2001) recommend it over the normal ("Wald") interval,
    which collapses to [0, 0] at 0 of 6. Written out with numpy: it is three lines, and neither
    scipy nor statsmodels is a dependency.
    """
    k = np.asarray(num, dtype=float)
    n = np.asarray(den, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        z2 = z * z
        denom = 1 + z2 / n
        centre = (p + z2 / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
        lo = np.clip(centre - half, 0.0, 1.0) * 100
        hi = np.clip(centre + half, 0.0, 1.0) * 100
    lo = np.where(k == 0, 0.0, lo)  # exact ends (no rounding residue at 0 of n, n of n)
    hi = np.where(k == n, 100.0, hi)
    bad = ~(n > 0) | np.isnan(k)
    return np.where(bad, np.nan, lo), np.where(bad, np.nan, hi)


def metric_columns(metrics: Iterable[str]) -> list[str]:
    """The columns of some metrics: each count with its percentages, intervals and measured."""
    out = []
    for m in metrics:
        out += [m, f"{m}_pct", f"{m}_pct_lo", f"{m}_pct_hi"]
        out += [f"{m}_mx_pct", f"{m}_mx_pct_lo", f"{m}_mx_pct_hi"]
        if m in PARTIAL_METRICS:
            out.append(f"{m}_measured")
    return out


def check_metrics(metrics: Iterable[str] | None) -> list[str]:
    """The metrics asked for, checked (all of them when None), in the order given."""
    if not metrics:
        return list(METRICS)
    asked = list(dict.fromkeys(metrics))
    unknown = [m for m in asked if m not in METRICS]
    if unknown:
        raise ReportError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
    return asked


def adoption(
    df: pd.DataFrame,
    by: str | Sequence[str] = "category",
    top: int | None = None,
    *,
    min_domains: int | None = None,
    lang: str = "en",
    facts: Mapping[str, Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """The adoption table of a domains frame: per snapshot, one row per group plus ``total``.

    Columns: ``snapshot``, the grouping key(s) named as ``by``, ``label`` (the group's name in
    ``lang``), then `metric_columns` of every metric (definitions in the module docstring).
    A frame holding several snapshots gives rows for each (never pooled), in the frame's order.
    ``by`` is ``category``, ``mx_provider``, ``dns_provider`` or any other column of df (a list's
    own column); two of them, as ``"mx_provider,category"`` or a list, cross them (rows per pair,
    a ``total`` row per first-key group, then the grand total). ``top`` and ``min_domains`` are
    for provider groupings (default `DEFAULT_TOP` and `default_min_domains`). ``facts`` is
    {snapshot: `methods`} (default: ``df.attrs["methods"]``, which `load` sets): it tells which
    inputs were switched off for the whole scan.
    """
    _check_lang(lang)
    keys = grouping_keys(by)
    if not any(k in PROVIDER_GROUPINGS for k in keys):
        if top is not None:
            raise ReportError(
                f"--top applies to provider groupings (mx_provider, dns_provider), not to --by "
                f"{','.join(keys)}"
            )
        if min_domains is not None:
            raise ReportError(
                f"--min-domains applies to provider groupings (mx_provider, dns_provider), not "
                f"to --by {','.join(keys)}"
            )
    facts = facts if facts is not None else df.attrs.get("methods") or {}
    if "snapshot" in df.columns and len(df):
        labels = list(dict.fromkeys(df["snapshot"].astype(object)))
    else:
        labels = [None]
    frames = []
    for label in labels:
        part = df if len(labels) == 1 else df[(df["snapshot"] == label).to_numpy()]
        frames.append(_adoption_one(part, keys, top, min_domains, lang, facts.get(label), label))
    if len(frames) == 1:
        return frames[0]
    out = pd.concat(frames, ignore_index=True)
    shared = max((f.attrs.get("shared_domains", 0) for f in frames), default=0)
    if shared:
        out.attrs["shared_domains"] = shared
    return out


def _prefectures_first(codes: np.ndarray, names: list[str]) -> tuple[np.ndarray, list[str]]:
    """Groups that are all prefectures in JIS order (北海道 first), not in the order of names."""
    order = [prefecture_code(n) for n in names]
    if not names or any(o is None for o in order):
        return codes, names
    ranked = sorted(range(len(names)), key=lambda i: order[i])
    lookup = np.empty(len(names) + 1, dtype=np.int64)
    lookup[ranked] = np.arange(len(names))
    lookup[-1] = -1  # code -1 stays -1
    return lookup[codes], [names[i] for i in ranked]


def _memberships(df: pd.DataFrame, keys: Sequence[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """``df`` with one row per (domain, group) of a list column, and each row's domain (its
    position in ``df``).

    A domain that rows of a list share (a city's wards on the city's domain) holds their values
    joined by a line break: it belongs to each of their groups. Without such a value ``df`` is
    returned as it is.
    """
    df = df.reset_index(drop=True)
    origin = np.arange(len(df))
    for key in keys:
        if key in GROUPINGS or key in store.DOMAIN_COLUMNS or key not in df.columns:
            continue
        values = df[key].astype(object)
        split = values.str.contains(VALUE_SEPARATOR, regex=False).fillna(False).to_numpy(bool)
        if split.any():
            df = df.assign(**{key: values.str.split(VALUE_SEPARATOR)}).explode(key)
            origin = origin[df.index.to_numpy()]
            df = df.reset_index(drop=True)
    return df, origin


def _once(origin: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """True for the first row of each (domain, code): a domain counts once in each group."""
    return ~pd.DataFrame({"o": origin, "c": codes}).duplicated().to_numpy()


def _adoption_one(
    df: pd.DataFrame,
    keys: list[str],
    top: int | None,
    min_domains: int | None,
    lang: str,
    facts: Mapping[str, Any] | None,
    label: str | None,
) -> pd.DataFrame:
    listed = len(df)
    df, origin = _memberships(df, keys)
    shared = len(origin) > listed  # a domain in several groups of a key (rows were added)
    masks = metric_masks(df)
    measured = measured_masks(df, facts)
    grouped = [_group_codes(df, k, top, min_domains, masks["domains"]) for k in keys]
    # Rows: (bins of one code array, bin) pairs; count() gives every row's count at once.
    if len(keys) == 1:
        codes, names = grouped[0]
        code_sets = [codes]
        rows = [(0, i) for i in range(len(names))]
        keys_of_rows = [(n,) for n in names]
        bins = [len(names)]
    else:
        (c0, n0), (c1, n1) = grouped
        pair = np.where((c0 >= 0) & (c1 >= 0), c0 * len(n1) + c1, -1)
        present = np.bincount(pair[pair >= 0], minlength=len(n0) * len(n1)) > 0
        code_sets, bins = [pair, c0], [len(n0) * len(n1), len(n0)]
        rows, keys_of_rows = [], []
        for i, a in enumerate(n0):
            for j, b in enumerate(n1):
                if present[i * len(n1) + j]:
                    rows.append((0, i * len(n1) + j))
                    keys_of_rows.append((a, b))
            rows.append((1, i))
            keys_of_rows.append((a, TOTAL))
    keys_of_rows.append(tuple(TOTAL for _ in keys))
    set_of_row = np.array([s for s, _ in rows], dtype=np.int64)
    bin_of_row = np.array([b for _, b in rows], dtype=np.int64)
    # A domain counts once in each of its groups, and once in the total.
    once = [_once(origin, c) if shared else c >= 0 for c in code_sets]
    first = _once(origin, np.zeros(len(origin), dtype=np.int64)) if shared else True

    def count(mask: np.ndarray) -> np.ndarray:
        """Per row, then the total (which includes a domain of an unknown category)."""
        per_set = [
            np.bincount(codes[mask & once_s & (codes >= 0)], minlength=size)
            for codes, size, once_s in zip(code_sets, bins, once, strict=True)
        ]
        out = np.zeros(len(rows) + 1, dtype=np.int64)
        for s, counts in enumerate(per_set):
            out[:-1][set_of_row == s] = counts[bin_of_row[set_of_row == s]]
        out[-1] = (mask & first).sum()
        return out

    has_mx = masks["has_mx"]
    listed = count(np.ones(len(df), dtype=bool))
    n_domains, n_mx = count(masks["domains"]), count(has_mx)
    columns: dict[str, Any] = {"snapshot": [label] * (len(rows) + 1)}
    for k, key in enumerate(keys):
        columns[key] = [r[k] for r in keys_of_rows]
    columns["label"] = [
        " / ".join(group_label(g, key, lang) for g, key in zip(r, keys, strict=True))
        if not all(g == TOTAL for g in r)
        else group_label(TOTAL, keys[0], lang)
        for r in keys_of_rows
    ]
    for metric in METRICS:
        num = count(masks[metric]).astype(float)
        if metric in ERROR_METRICS:
            den, num_mx, den_mx = listed, np.full(len(num), np.nan), np.zeros(len(num))
        else:
            den, num_mx, den_mx = n_domains, count(masks[metric] & has_mx).astype(float), n_mx
        if metric in PARTIAL_METRICS:
            k_measured = count(measured[metric])
            unmeasured = k_measured == 0
            num[unmeasured] = np.nan
            num_mx[unmeasured] = np.nan
        columns[metric] = (
            pd.array([None if math.isnan(v) else int(v) for v in num], dtype="Int64")
            if metric in PARTIAL_METRICS
            else num.astype(np.int64)
        )
        columns[f"{metric}_pct"] = _percent(num, den)
        columns[f"{metric}_pct_lo"], columns[f"{metric}_pct_hi"] = wilson(num, den)
        columns[f"{metric}_mx_pct"] = _percent(num_mx, den_mx)
        columns[f"{metric}_mx_pct_lo"], columns[f"{metric}_mx_pct_hi"] = wilson(num_mx, den_mx)
        if metric in PARTIAL_METRICS:
            columns[f"{metric}_measured"] = k_measured
    table = pd.DataFrame(columns).astype({"snapshot": object, "label": object})
    table = table.astype({k: object for k in keys})
    if shared:  # how many domains are in several groups (the people's table says so)
        table.attrs["shared_domains"] = int((np.bincount(origin[once[0]]) > 1).sum())
    return table


def report(
    directory: str | Path | store.Location,
    snapshot: str | None = None,
    by: str | Sequence[str] = "category",
    top: int | None = None,
    *,
    min_domains: int | None = None,
    lang: str = "en",
    include_incomplete: bool = False,
) -> pd.DataFrame:
    """The rows of `report --format json`: `adoption` of one snapshot read from DIR.

    Default snapshot: the newest complete one. ``table.attrs["methods"]`` holds {label:
    `methods`} for the methods block.
    """
    label = resolve_snapshot(directory, snapshot, include_incomplete)
    facts = {label: methods(directory, label)}
    df = _load_for_metrics(directory, label)
    extra = [k for k in grouping_keys(by) if k not in df.columns]
    if extra:  # a column of the domains table the metrics do not read, or of the lists
        names = [c for c in extra if c in store.DOMAIN_COLUMNS]
        if names:
            more = _to_pandas(_read_snapshot(directory, label, names), arrow_lists=True)
            df = pd.concat([df, more[names]], axis=1)
        for key in (k for k in extra if k not in store.DOMAIN_COLUMNS and k not in GROUPINGS):
            df = _with_attributes(df, directory, [label], only=key)
            if key not in df.columns:
                raise ReportError(_unknown_grouping(key, list_attributes(directory, label)))
    table = adoption(df, by, top, min_domains=min_domains, lang=lang, facts=facts)
    table.attrs["methods"] = facts
    return table


def trend(
    directory: str | Path | store.Location,
    metrics: Iterable[str] | None = None,
    *,
    by: str | Sequence[str] = "category",
    lang: str = "en",
    include_incomplete: bool = False,
) -> pd.DataFrame:
    """The adoption table of every complete snapshot, oldest first (the ``snapshot`` column).

    One snapshot is in memory at a time. ``metrics`` limits the metric columns (all by default;
    ``domains``, the n of every share, is always there).
    """
    chosen = check_metrics(metrics)
    chosen = ["domains", *(m for m in chosen if m != "domains")]  # n of every share
    keys = grouping_keys(by)
    frames, facts = [], {}
    for label in complete_snapshots(directory, include_incomplete):
        table = report(directory, label, by, lang=lang)
        facts |= table.attrs["methods"]
        frames.append(table[["snapshot", *keys, "label", *metric_columns(chosen)]])
    out = pd.concat(frames, ignore_index=True)
    out.attrs["methods"] = facts
    return out


# --- diff --------------------------------------------------------------------------------------

#: States of a domain in the DMARC policy transition matrix, weakest first; ``nxdomain``: the
#: domain does not exist; ``unknown``: the domain or its DMARC query ended in an error.
DMARC_STATES: tuple[str, ...] = (
    "absent", "invalid", "none", "quarantine", "reject", "nxdomain", "unknown",
)  # fmt: skip
#: States of a domain in the SPF ``all`` transition matrix (``no all``: valid, without ``all``).
SPF_STATES: tuple[str, ...] = (
    "absent", "permerror", "+all", "no all", "?all", "~all", "-all", "nxdomain", "unknown",
)  # fmt: skip
#: Two-sided level of the noise test of `diff`.
ALPHA = 0.05


def _state_codes(
    df: pd.DataFrame,
    status_column: str,
    value_column: str,
    values: Mapping[str, str],
    states: Sequence[str],
    missing: str,
) -> np.ndarray:
    """Each domain's state as an index into ``states``; ``values`` map record values to states
    (a valid record with another value or none is ``missing``), an NXDOMAIN domain is
    ``nxdomain`` and an error (the domain's or the record's) ``unknown``."""
    index = {s: i for i, s in enumerate(states)}
    status = df[status_column]
    value = pd.Categorical(df[value_column], categories=list(values)).codes
    value_state = np.array([index[v] for v in values.values()] + [index[missing]])[value]
    nxdomain = _is(df["status"], "nxdomain")
    unknown = ~_is(df["status"], "ok") | _is(status, "temperror")
    conditions = [
        nxdomain,
        unknown,
        _is(status, "valid"),
        _is(status, "invalid"),
        _is(status, "permerror"),
        _is(status, "none"),
    ]
    choices = [
        index["nxdomain"],
        index["unknown"],
        value_state,
        index.get("invalid", -1),
        index.get("permerror", -1),
        index["absent"],
    ]
    codes = np.select(conditions, choices, default=index["unknown"])
    return np.where(codes < 0, index["unknown"], codes)  # a status word this matrix does not have


def dmarc_state(df: pd.DataFrame) -> pd.Series:
    """Each domain's DMARC state (`DMARC_STATES`): its applied policy, absent, invalid,
    nxdomain, or unknown (the domain or the DMARC query ended in an error)."""
    policies = {"none": "none", "quarantine": "quarantine", "reject": "reject"}
    codes = _state_codes(df, "dmarc_status", "dmarc_policy", policies, DMARC_STATES, "unknown")
    return pd.Series(pd.Categorical.from_codes(codes, DMARC_STATES), index=df.index)


def spf_state(df: pd.DataFrame) -> pd.Series:
    """Each domain's SPF state (`SPF_STATES`): its effective ``all`` (``no all``: a valid record
    without one), absent, permerror, nxdomain, or unknown (an error)."""
    alls = {"+all": "+all", "?all": "?all", "~all": "~all", "-all": "-all", "none": "no all"}
    codes = _state_codes(df, "spf_status", "spf_all", alls, SPF_STATES, "no all")
    return pd.Series(pd.Categorical.from_codes(codes, SPF_STATES), index=df.index)


def _transitions(a: pd.Series, b: pd.Series, label_a: str, label_b: str) -> pd.DataFrame:
    """Counts of domains by (state in A, state in B): every state is a row and a column."""
    states = list(a.cat.categories)
    k = len(states)
    cells = np.bincount(a.cat.codes.to_numpy() * k + b.cat.codes.to_numpy(), minlength=k * k)
    matrix = pd.DataFrame(cells.reshape(k, k), index=states, columns=states)
    matrix.index.name, matrix.columns.name = label_a, label_b
    return matrix


def _unique_domains(df: pd.DataFrame) -> pd.DataFrame:
    """One row per domain (the last one written, should a part repeat a domain)."""
    return df[~df["domain"].duplicated(keep="last").to_numpy()].reset_index(drop=True)


def two_proportion_p(k1: Any, n1: Any, k2: Any, n2: Any) -> np.ndarray:
    """Two-sided p-value of the pooled two-proportion z-test of k1/n1 against k2/n2 (NaN where a
    count is null or a denominator 0). The normal tail is ``erfc``: numpy and the standard
    library suffice, scipy is not a dependency."""
    k1, n1, k2, n2 = (np.asarray(v, dtype=float) for v in (k1, n1, k2, n2))
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (k1 + k2) / (n1 + n2)
        se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        z = np.abs(k1 / n1 - k2 / n2) / se
    p = np.array([math.erfc(v / math.sqrt(2)) if np.isfinite(v) else np.nan for v in z.ravel()])
    p = p.reshape(z.shape)
    same = (se == 0) & (n1 > 0) & (n2 > 0)  # both 0% or both 100%: no change at all
    return np.where(same, 1.0, p)


def changes(table_a: pd.DataFrame, table_b: pd.DataFrame) -> pd.DataFrame:
    """Each metric's total share in A and in B (of the domains that exist, errors of those
    listed), the change in points, the test's p-value and ``beyond_noise`` (p < `ALPHA`; null
    when either share is not measured)."""
    ta = table_a.iloc[-1]
    tb = table_b.iloc[-1]
    rows = []
    for m in METRICS:
        if m == "domains":
            continue
        den_a = listed_domains(ta) if m in ERROR_METRICS else int(ta["domains"])
        den_b = listed_domains(tb) if m in ERROR_METRICS else int(tb["domains"])
        ka, kb = ta[m], tb[m]
        if is_null(ka) or is_null(kb):
            p = np.nan
        else:
            p = float(two_proportion_p(int(ka), den_a, int(kb), den_b))
        rows.append(
            {
                "metric": m,
                "a_pct": ta[f"{m}_pct"],
                "b_pct": tb[f"{m}_pct"],
                "change_points": tb[f"{m}_pct"] - ta[f"{m}_pct"],
                "p_value": p,
                "beyond_noise": None if math.isnan(p) else bool(p < ALPHA),
            }
        )
    return pd.DataFrame(rows)


def _pair(
    directory: str | Path | store.Location, a: str | None, b: str | None, include_incomplete: bool
) -> tuple[str, str]:
    """A and B, checked; B defaults to the newest complete snapshot, A to the one before it."""
    if a is not None and b is not None:
        return (
            resolve_snapshot(directory, a, include_incomplete),
            resolve_snapshot(directory, b, include_incomplete),
        )
    if a is not None:  # one label given: compare it with the newest
        return resolve_snapshot(directory, a, include_incomplete), resolve_snapshot(
            directory, None, include_incomplete
        )
    labels = complete_snapshots(directory, include_incomplete)
    if len(labels) < 2:
        raise ReportError(
            f"{directory}: diff needs two complete snapshots (have: {', '.join(labels)})"
        )
    return labels[-2], labels[-1]


def diff(
    directory: str | Path | store.Location,
    a: str | None = None,
    b: str | None = None,
    *,
    include_incomplete: bool = False,
) -> dict[str, Any]:
    """What changed from snapshot A to snapshot B (default: the two newest complete ones).

    Returns a dict: ``a``, ``b`` (labels); ``domains`` (counts: ``a``, ``b``, ``both``,
    ``only_a``, ``only_b``); ``changes`` (`changes`: each total share in A and B, and whether
    the change is beyond the noise); ``gained`` and ``lost`` ({metric: sorted domains} for every
    adoption metric, over the domains listed in both); ``dmarc_policy`` and ``spf_all``
    (transition matrices, rows A, columns B, over `DMARC_STATES` / `SPF_STATES`); ``methods``
    ({label: `methods`}). A domain is gained or lost for a metric only when its answer for that
    metric is definite in both snapshots: a record that timed out in B is not "lost", it is
    ``unknown`` in the matrices.
    """
    label_a, label_b = _pair(directory, a, b, include_incomplete)
    df_a = _unique_domains(_load_for_metrics(directory, label_a))
    df_b = _unique_domains(_load_for_metrics(directory, label_b))
    facts = {label_a: methods(directory, label_a), label_b: methods(directory, label_b)}
    position = pd.Index(df_a["domain"]).get_indexer(df_b["domain"])  # row in A of each B row
    ib = np.flatnonzero(position >= 0)
    domains = df_b["domain"].to_numpy(dtype=object)[ib]
    order = np.argsort(domains, kind="stable")  # sort once: every list below comes out sorted
    ib, domains = ib[order], domains[order]
    ia = position[ib]
    masks_a, masks_b = metric_masks(df_a), metric_masks(df_b)
    known_a, known_b = _known_masks(df_a), _known_masks(df_b)
    for label, known, df in ((label_a, known_a, df_a), (label_b, known_b, df_b)):
        for m, mask in measured_masks(df, facts[label]).items():
            known[m] = known[m] & mask
    gained: dict[str, list[str]] = {}
    lost: dict[str, list[str]] = {}
    for metric in ADOPTION_METRICS:
        definite = known_a[metric][ia] & known_b[metric][ib]
        was, now = masks_a[metric][ia], masks_b[metric][ib]
        gained[metric] = domains[definite & ~was & now].tolist()
        lost[metric] = domains[definite & was & ~now].tolist()
    both = len(ib)
    table_a = adoption(df_a, "category", facts={label_a: facts[label_a]})
    table_b = adoption(df_b, "category", facts={label_b: facts[label_b]})
    return {
        "a": label_a,
        "b": label_b,
        "domains": {
            "a": len(df_a),
            "b": len(df_b),
            "both": both,
            "only_a": len(df_a) - both,
            "only_b": len(df_b) - both,
        },
        "changes": changes(table_a, table_b),
        "gained": gained,
        "lost": lost,
        "dmarc_policy": _transitions(
            dmarc_state(df_a).iloc[ia], dmarc_state(df_b).iloc[ib], label_a, label_b
        ),
        "spf_all": _transitions(
            spf_state(df_a).iloc[ia], spf_state(df_b).iloc[ib], label_a, label_b
        ),
        "methods": facts,
    }


# --- labels ------------------------------------------------------------------------------------

LANGS = ("ja", "en")

METRIC_LABELS: dict[str, dict[str, str]] = {
    "en": {
        "domains": "Domains (exist)", "has_mx": "With MX", "null_mx": "Null MX",
        "spf_valid": "SPF valid", "spf_permerror": "SPF permerror",
        "spf_all_fail": "SPF -all", "spf_all_softfail": "SPF ~all", "spf_all_neutral": "SPF ?all",
        "spf_all_pass": "SPF +all", "spf_all_none": "SPF without all",
        "dmarc_valid": "DMARC valid", "dmarc_invalid": "DMARC invalid",
        "dmarc_none": "DMARC p=none", "dmarc_quarantine": "DMARC p=quarantine",
        "dmarc_reject": "DMARC p=reject", "dmarc_enforcing": "DMARC enforcing",
        "dmarc_rua": "DMARC with rua",
        "dkim_domainkey": "DKIM _domainkey", "dkim_selector": "DKIM key found",
        "mta_sts": "MTA-STS", "tlsrpt": "TLS-RPT", "bimi": "BIMI",
        "bimi_declined": "BIMI declined",
        "mta_sts_enforce": "MTA-STS enforce", "mta_sts_mismatch": "MTA-STS MX mismatch",
        "starttls": "STARTTLS (all MX)", "dane": "DANE (all MX)", "dnssec": "DNSSEC validated",
        "nxdomain": "NXDOMAIN", "servfail": "SERVFAIL", "timeout": "Timeout",
        "refused": "REFUSED", "error": "Other error",
    },
    "ja": {
        "domains": "ドメイン数（存在）", "has_mx": "MX あり", "null_mx": "Null MX",
        "spf_valid": "SPF 有効", "spf_permerror": "SPF 恒久エラー",
        "spf_all_fail": "SPF -all", "spf_all_softfail": "SPF ~all", "spf_all_neutral": "SPF ?all",
        "spf_all_pass": "SPF +all", "spf_all_none": "SPF all なし",
        "dmarc_valid": "DMARC 有効", "dmarc_invalid": "DMARC 不正",
        "dmarc_none": "DMARC p=none", "dmarc_quarantine": "DMARC p=quarantine",
        "dmarc_reject": "DMARC p=reject", "dmarc_enforcing": "DMARC 強制ポリシー",
        "dmarc_rua": "DMARC rua あり",
        "dkim_domainkey": "DKIM _domainkey あり", "dkim_selector": "DKIM 鍵を検出",
        "mta_sts": "MTA-STS 有効", "tlsrpt": "TLS-RPT 有効", "bimi": "BIMI 有効",
        "bimi_declined": "BIMI 辞退（l= 空）",
        "mta_sts_enforce": "MTA-STS 強制（enforce）", "mta_sts_mismatch": "MTA-STS MX 不一致",
        "starttls": "STARTTLS（全 MX）", "dane": "DANE（全 MX）", "dnssec": "DNSSEC 検証済み",
        "nxdomain": "NXDOMAIN（存在しない）", "servfail": "SERVFAIL", "timeout": "タイムアウト",
        "refused": "REFUSED", "error": "その他のエラー",
    },
}  # fmt: skip

GROUP_LABELS: dict[str, dict[str, str]] = {
    "en": {
        **{c: f"{c}.jp" for c in CATEGORIES[:9]},
        "general": "General-use JP", "prefecture": "Prefecture-type", "geographic": "Geographic-type",
        "other": "Other (not .jp)", TOTAL: "Total",
    },
    "ja": {
        **{c: f"属性型 {c}.jp" for c in CATEGORIES[:8]},
        "lg": "地方公共団体 lg.jp",
        "general": "汎用JP", "prefecture": "都道府県型", "geographic": "地域型",
        "other": "その他（.jp 以外）", TOTAL: "合計",
    },
}  # fmt: skip

PROVIDER_LABELS: dict[str, dict[str, str]] = {
    "en": {
        SELF_HOSTED: "Self-hosted", OTHER: "Other providers", NONE: "No provider", TOTAL: "Total",
    },
    "ja": {SELF_HOSTED: "自社運用", OTHER: "その他の事業者", NONE: "事業者なし", TOTAL: "合計"},
}  # fmt: skip

#: Labels of the rows of a grouping by a list's own column.
ATTRIBUTE_LABELS: dict[str, dict[str, str]] = {
    "en": {NONE: "(none)", TOTAL: "Total"},
    "ja": {NONE: "（なし）", TOTAL: "合計"},
}

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "metric": "Metric", "category": "category", "mx_provider": "MX provider",
        "dns_provider": "DNS provider", "snapshot": "snapshot", "listed": "Domains listed",
        "measured": "  measured", "measured_cell": "{k} of {n}",
        "by": "by {by}",
        "sec_domains": "Domains and MX", "sec_spf": "SPF", "sec_dmarc": "DMARC",
        "sec_dkim": "DKIM and BIMI", "sec_transport": "Transport security", "sec_errors": "Errors",
        "cell_note": "Cells: count and % of the domains that exist{mx}; NXDOMAIN and errors: % of "
        "the domains listed.",
        "cell_note_mx": "Cells: count and % of the domains with MX (With MX, Null MX: % of the "
        "domains that exist); NXDOMAIN and errors: % of the domains listed.",
        "ci_note": " In brackets: the 95% Wilson score interval.",
        "shared_note": "{n:,} domains are in several groups (rows of a list that share a "
        "domain): each counts once in every group it is in, and once in the total.",
        "small_note": "† fewer than {n} domains: a share of so few is imprecise (--ci shows its "
        "95% interval).",
        "unmeasured_note": "— not measured: {reasons}.",
        "why_smtp": "--probe-smtp not used",
        "why_ad": "the resolver set no AD flag on any answer (it does not validate DNSSEC)",
        "why_policy": "MTA-STS policy fetch off (--no-mta-sts-policy)",
        "why_none": "no domain of the group has a definite value",
        "methods": "Methods", "scanned": "scanned {start} – {end} UTC",
        "listed_exist": "{listed} domains listed, {exist} exist",
        "resolvers": "resolvers {r}", "validated": "DNSSEC validated: {v}",
        "probes": "probes: MTA-STS policy {policy}, SMTP STARTTLS {smtp}",
        "psl": "PSL {psl}", "list": "list {name} (SHA-256 {sha})",
        "dkim": "DKIM keys looked for at {n} selectors ({names}): a lower bound",
        "dkim_brief": "DKIM: {n} selectors probed (a lower bound)",
        "yes": "yes", "no": "no", "on": "on", "off": "off", "unknown": "unknown",
        "gained": "Gained", "lost": "Lost", "transitions": "transitions",
        "domains_note": "domains: {a} in {la}, {b} in {lb}, {both} in both",
        "rows_a": "rows: {a}, columns: {b}",
    },
    "ja": {
        "metric": "指標", "category": "種別", "mx_provider": "MX 事業者",
        "dns_provider": "DNS 事業者", "snapshot": "スナップショット", "listed": "リスト件数",
        "measured": "  うち測定済み", "measured_cell": "{n} 中 {k}",
        "by": "{by}ごと",
        "sec_domains": "ドメインと MX", "sec_spf": "SPF", "sec_dmarc": "DMARC",
        "sec_dkim": "DKIM と BIMI", "sec_transport": "通信の暗号化", "sec_errors": "エラー",
        "cell_note": "セル: 件数と、存在するドメインに占める割合{mx}。NXDOMAIN とエラーはリスト"
        "全体に占める割合。",
        "cell_note_mx": "セル: 件数と、MX を持つドメインに占める割合（MX あり・Null MX は存在する"
        "ドメインに占める割合）。NXDOMAIN とエラーはリスト全体に占める割合。",
        "ci_note": "括弧内は 95% 信頼区間（Wilson）。",
        "shared_note": "{n:,} ドメインは複数のグループに属する（リストの複数の行が同じドメイン）:"
        " 属する各グループで 1 回ずつ、合計では 1 回だけ数える。",
        "small_note": "† {n} ドメイン未満: 割合の精度が低い（--ci で 95% 信頼区間を表示）。",
        "unmeasured_note": "未測定: {reasons}。",
        "why_smtp": "--probe-smtp を指定していない",
        "why_ad": "リゾルバがどの応答にも AD フラグを付けなかった（DNSSEC を検証していない）",
        "why_policy": "MTA-STS ポリシーを取得していない（--no-mta-sts-policy）",
        "why_none": "このグループに確定した値を持つドメインがない",
        "methods": "調査方法", "scanned": "調査 {start}〜{end} UTC",
        "listed_exist": "リスト {listed} 件、存在 {exist} 件",
        "resolvers": "リゾルバ {r}", "validated": "DNSSEC 検証: {v}",
        "probes": "プローブ: MTA-STS ポリシー {policy}、SMTP STARTTLS {smtp}",
        "psl": "PSL {psl}", "list": "リスト {name}（SHA-256 {sha}）",
        "dkim": "DKIM 鍵は {n} 個のセレクタ（{names}）で確認（下限値）",
        "dkim_brief": "DKIM: {n} セレクタで確認（下限値）",
        "yes": "あり", "no": "なし", "on": "実施", "off": "未実施", "unknown": "不明",
        "gained": "新規採用", "lost": "採用終了", "transitions": "の遷移",
        "domains_note": "ドメイン数: {la} {a}件、{lb} {b}件、両方 {both}件",
        "rows_a": "行: {a}、列: {b}",
    },
}  # fmt: skip


def _check_lang(lang: str) -> None:
    if lang not in LANGS:
        raise ReportError(f"unknown language {lang!r}: use ja or en")


def metric_label(metric: str, lang: str = "en") -> str:
    _check_lang(lang)
    return METRIC_LABELS[lang].get(metric, metric)


def group_label(group: str, by: str = "category", lang: str = "en") -> str:
    """A row's label for people: category names in the language, provider names as they are."""
    _check_lang(lang)
    if by == "category":
        labels = GROUP_LABELS[lang]
    elif by in PROVIDER_GROUPINGS:
        labels = PROVIDER_LABELS[lang]
    else:
        labels = ATTRIBUTE_LABELS[lang]
    return labels.get(group, group)


def unmeasured_reason(metric: str, facts: Mapping[str, Any] | None, lang: str = "en") -> str:
    """Why a partial metric was not measured, from the snapshot's `methods` facts."""
    t = TEXT[lang]
    probes = (facts or {}).get("probes") or {}
    if metric == "starttls" and probes.get("probe_smtp") is not True:
        return t["why_smtp"]
    if metric in ("dane", "dnssec") and (facts or {}).get("validated") is False:
        return t["why_ad"]
    if metric in ("mta_sts_enforce", "mta_sts_mismatch") and probes.get("mta_sts_policy") is False:
        return t["why_policy"]
    return t["why_none"]


# --- rendering ---------------------------------------------------------------------------------

FORMATS = ("table", "csv", "markdown", "json", "xlsx")
#: Width of the people's table when the output is not a terminal and COLUMNS is not set.
DEFAULT_WIDTH = 100

#: The people's table: metrics as rows in these sections (``_listed``: all domains listed).
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sec_domains", ("_listed", "domains", "nxdomain", "has_mx", "null_mx")),
    ("sec_spf", ("spf_valid", "spf_permerror", "spf_all_fail", "spf_all_softfail",
                 "spf_all_neutral", "spf_all_pass", "spf_all_none")),
    ("sec_dmarc", ("dmarc_valid", "dmarc_invalid", "dmarc_none", "dmarc_quarantine",
                   "dmarc_reject", "dmarc_enforcing", "dmarc_rua")),
    ("sec_dkim", ("dkim_domainkey", "dkim_selector", "bimi", "bimi_declined")),
    ("sec_transport", ("mta_sts", "tlsrpt", "mta_sts_enforce", "mta_sts_mismatch", "starttls",
                       "dane", "dnssec")),
    ("sec_errors", ("servfail", "timeout", "refused", "error")),
)  # fmt: skip

#: Shares of the domains that exist whatever the denominator asked (of MX they are 100 or 0).
_OF_DOMAINS = ("has_mx", "null_mx")


def _json_value(value: Any) -> Any:
    if (
        value is None
        or value is pd.NA
        or (isinstance(value, float | np.floating) and math.isnan(value))
    ):
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def to_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts (numpy scalars to Python, NaN/NA to None), columns in order."""
    return [
        {c: _json_value(v) for c, v in zip(df.columns, row, strict=True)}
        for row in df.itertuples(index=False)
    ]


def _share_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c.endswith(("_pct", "_pct_lo", "_pct_hi"))]


def to_csv(df: pd.DataFrame) -> str:
    """CSV of the rows, shares rounded to one decimal (JSON keeps full precision)."""
    rounded = df.copy()
    for c in _share_columns(rounded):
        rounded[c] = rounded[c].round(1)
    return rounded.to_csv(index=False, lineterminator="\n")


def is_null(value: Any) -> bool:
    """None, pandas' NA or NaN: a figure that was not measured (never 0)."""
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _pct(value: Any) -> str:
    return "—" if is_null(value) else f"{value:.1f}%"


def terminal_width() -> int:
    """COLUMNS, else the width of the terminal the table is read in: standard output's, or
    standard error's when the output goes through a pipe (`report | less`); else
    `DEFAULT_WIDTH` (a file, no terminal)."""
    import os
    import shutil
    import sys

    columns = shutil.get_terminal_size((0, 0)).columns
    if columns > 0:
        return columns
    try:
        columns = os.get_terminal_size(sys.__stderr__.fileno()).columns
    except (AttributeError, OSError, ValueError):
        columns = 0
    return columns if columns > 0 else DEFAULT_WIDTH


def group_keys(table: pd.DataFrame) -> list[str]:
    """The grouping key columns of an adoption table (between ``snapshot`` and ``label``)."""
    cols = list(table.columns)
    start = 1 if cols and cols[0] == "snapshot" else 0
    end = cols.index("label") if "label" in cols else start + 1
    return cols[start:end]


#: A table's cell for a metric that was not measured.
UNMEASURED = {"en": "—", "ja": "未測定"}


def _cell(
    row: Mapping[str, Any],
    metric: str,
    denominator: str = "domains",
    ci: bool = False,
    lang: str = "en",
) -> str:
    """One metric of one group: "count share" (and "[lo–hi]" with ci); "—" when not measured."""
    if metric == "_listed":
        return f"{listed_domains(row):,}"
    count = row[metric]
    if is_null(count):
        return UNMEASURED[lang]
    if metric == "domains":
        return f"{int(count):,}"
    column = f"{metric}_pct"
    if denominator == "mx" and metric not in ERROR_METRICS and metric not in _OF_DOMAINS:
        column = f"{metric}_mx_pct"
        if not is_null(row[column]) and not is_null(row["has_mx"]):
            count = round(row[column] * row["has_mx"] / 100)  # the count among MX domains
    text = f"{int(count):,} {_pct(row[column])}"
    if ci and not is_null(row.get(f"{column}_lo")):
        text += f" [{row[f'{column}_lo']:.1f}–{row[f'{column}_hi']:.1f}]"
    return text


def listed_domains(row: Mapping[str, Any]) -> int:
    """A table row's listed domains: those that exist and those that ended in an error."""
    return int(row["domains"]) + sum(int(row[m]) for m in ERROR_METRICS)


def _measured_cell(row: Mapping[str, Any], metric: str, lang: str) -> str:
    k, n = row.get(f"{metric}_measured"), row["domains"]
    if is_null(k):
        return ""
    return TEXT[lang]["measured_cell"].format(k=f"{int(k):,}", n=f"{int(n):,}")


def _people_rows(
    records: Sequence[Mapping[str, Any]],
    metrics: Sequence[str] | None,
    lang: str,
    denominator: str,
    ci: bool,
) -> list[tuple[str, list[list[str]]]]:
    """(section title, rows) for the people's table; a partial metric measured for only part of
    a group gets a "measured" row below it."""
    chosen = set(metrics) if metrics else None
    out = []
    for key, names in SECTIONS:
        rows = []
        for m in names:
            if chosen is not None and m not in chosen:
                continue
            if m != "_listed" and m not in records[0]:
                continue
            label = TEXT[lang]["listed"] if m == "_listed" else metric_label(m, lang)
            rows.append([label, *(_cell(r, m, denominator, ci, lang) for r in records)])
            partly = [
                not is_null(r.get(f"{m}_measured"))
                and 0 < int(r[f"{m}_measured"]) < int(r["domains"])
                for r in records
            ]
            if m in PARTIAL_METRICS and any(partly):
                rows.append(
                    [TEXT[lang]["measured"], *(_measured_cell(r, m, lang) for r in records)]
                )
        if rows:
            out.append((TEXT[lang][key], rows))
    return out


def _footnotes(
    records: Sequence[Mapping[str, Any]],
    metrics: Sequence[str],
    lang: str,
    denominator: str,
    ci: bool,
    facts: Mapping[str, Mapping[str, Any]],
    small: bool,
) -> list[str]:
    t = TEXT[lang]
    notes = [t["cell_note_mx"]] if denominator == "mx" else [t["cell_note"].format(mx="")]
    if ci:
        notes[0] += t["ci_note"]
    if small:
        notes.append(t["small_note"].format(n=SMALL_GROUP))
    reasons: dict[str, list[str]] = {}
    for m in metrics:
        if m in PARTIAL_METRICS and any(is_null(r.get(m)) for r in records):
            snap = next((r.get("snapshot") for r in records if is_null(r.get(m))), None)
            why = unmeasured_reason(m, facts.get(snap) if snap in facts else None, lang)
            reasons.setdefault(why, []).append(metric_label(m, lang))
    if reasons:
        sep = "; " if lang == "en" else "。"
        comma = ", " if lang == "en" else "、"
        text = sep.join(f"{comma.join(ms)}: {why}" for why, ms in reasons.items())
        notes.append(t["unmeasured_note"].format(reasons=text))
    return notes


def methods_text(facts: Mapping[str, Any], lang: str = "en", brief: bool = False) -> str:
    """The methods block of one snapshot, one paragraph: everything from the manifest.

    ``brief`` (a chart's footnote, three lines at most): the DKIM selectors counted, not named.
    """
    t = TEXT[lang]

    def when(value: Any) -> str:
        return str(value).replace("T", " ").replace("+00:00", "")[:16] if value else "?"

    start, end = when(facts.get("started_at")), when(facts.get("finished_at"))
    if start[:10] == end[:10] and len(end) == 16:
        end = end[11:]  # the same day: its time only

    def onoff(value: Any) -> str:
        return t["unknown"] if value is None else t["on"] if value else t["off"]

    probes = facts.get("probes") or {}
    parts = [
        f"{t['snapshot']} {facts.get('snapshot')}",
        t["listed_exist"].format(
            listed=f"{facts.get('listed') or 0:,}", exist=f"{facts.get('exist') or 0:,}"
        ),
    ]
    if facts.get("started_at"):
        parts.insert(1, t["scanned"].format(start=start, end=end))
    if facts.get("incomplete"):
        parts.append(facts["incomplete"])
    resolvers = facts.get("resolvers") or []
    if resolvers:
        shown = ", ".join(resolvers[:4]) + (
            f" (+{len(resolvers) - 4})" if len(resolvers) > 4 else ""
        )
        parts.append(t["resolvers"].format(r=shown))
    validated = facts.get("validated")
    parts.append(
        t["validated"].format(
            v=t["unknown"] if validated is None else t["yes"] if validated else t["no"]
        )
    )
    parts.append(
        t["probes"].format(
            policy=onoff(probes.get("mta_sts_policy")), smtp=onoff(probes.get("probe_smtp"))
        )
    )
    selectors = facts.get("dkim_selectors")
    if selectors:
        key = "dkim_brief" if brief else "dkim"
        parts.append(t[key].format(n=len(selectors), names=", ".join(selectors)))
    if facts.get("psl"):
        parts.append(t["psl"].format(psl=facts["psl"]))
    for item in facts.get("lists") or []:
        sha = (item.get("sha256") or "?")[:12]
        parts.append(t["list"].format(name=item.get("name"), sha=sha))
    sep = "; " if lang == "en" else "、"
    return f"{t['methods']}: " + sep.join(parts) + ("." if lang == "en" else "。")


def _rich_tables(
    header: Sequence[str],
    sections: Sequence[tuple[str, Sequence[Sequence[str]]]],
    width: int,
) -> list[Any]:
    """The people's table split by columns into as many rich tables as ``width`` needs; the
    first column (the row names) repeats in each."""
    from rich.cells import cell_len
    from rich.table import Table

    all_rows = [r for _, rows in sections for r in rows]
    widths = [
        max([cell_len(header[i]), *(cell_len(r[i]) for r in all_rows)]) for i in range(len(header))
    ]
    chunks: list[list[int]] = [[]]
    used = widths[0] + 4  # borders and padding of the first column
    for i in range(1, len(header)):
        need = widths[i] + 3
        if chunks[-1] and used + need > width:
            chunks.append([])
            used = widths[0] + 4
        chunks[-1].append(i)
        used += need
    tables = []
    for chunk in chunks:
        table = Table(header_style="bold", show_edge=True, pad_edge=True)
        table.add_column(header[0], no_wrap=True)
        for i in chunk:
            table.add_column(header[i], justify="right", no_wrap=True)
        for s, (_, rows) in enumerate(sections):
            if s:
                table.add_section()
            for row in rows:
                table.add_row(row[0], *(row[i] for i in chunk))
        tables.append(table)
    return tables


def _print_people(
    title: str,
    header: Sequence[str],
    sections: Sequence[tuple[str, Sequence[Sequence[str]]]],
    notes: Sequence[str],
    width: int,
) -> str:
    from rich.console import Console
    from rich.text import Text

    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, highlight=False)
    if title:
        console.print(Text(title, style="bold"))
    for table in _rich_tables(header, sections, width):
        console.print(table)
    for note in notes:
        console.print(Text(note))
    return _rstrip_lines(buffer.getvalue())


def _rstrip_lines(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.split("\n"))


def _markdown(
    title: str,
    header: Sequence[str],
    sections: Sequence[tuple[str, Sequence[Sequence[str]]]],
    notes: Sequence[str],
) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    lines = [f"### {esc(title)}", ""] if title else []
    lines.append("| " + " | ".join(esc(h) for h in header) + " |")
    lines.append("|" + "|".join([" --- "] + [" ---: "] * (len(header) - 1)) + "|")
    for name, rows in sections:
        if len(sections) > 1:
            lines.append("| " + " | ".join([f"**{esc(name)}**"] + [""] * (len(header) - 1)) + " |")
        lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    for note in notes:
        lines += ["", esc(note)]
    return "\n".join(lines) + "\n"


def _check_format(fmt: str, allowed: Sequence[str] = FORMATS) -> None:
    if fmt not in allowed:
        raise ReportError(f"unknown format {fmt!r}: use one of {', '.join(allowed)}")


def _facts_of(table: pd.DataFrame, facts: Mapping[str, Mapping[str, Any]] | None) -> dict:
    return dict(facts if facts is not None else table.attrs.get("methods") or {})


def render(
    table: pd.DataFrame,
    fmt: str = "table",
    lang: str = "en",
    title: str = "",
    *,
    metrics: Sequence[str] | None = None,
    ci: bool = False,
    denominator: str = "domains",
    width: int | None = None,
    facts: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """An adoption table as text: the JSON array / CSV of its rows, or a table for people.

    The people's table (``table``, ``markdown``) has the metrics as rows in sections and the
    groups as columns; ``table`` is split into as many tables as ``width`` (default
    `terminal_width`) needs. It ends with the footnotes (denominators, small groups, what was
    not measured and why) and the methods block of each snapshot (``facts``, default
    ``table.attrs["methods"]``). ``metrics`` picks rows (and JSON/CSV columns).
    """
    _check_format(fmt, ("table", "csv", "markdown", "json"))
    _check_lang(lang)
    if denominator not in ("domains", "mx"):
        raise ReportError(f"unknown denominator {denominator!r}: use domains or mx")
    chosen = check_metrics(metrics)
    keys = group_keys(table)
    if metrics:
        fixed = [c for c in table.columns if c in ("snapshot", "label") or c in keys]
        keep = metric_columns(dict.fromkeys(["domains", *chosen]))  # domains: the n of shares
        table = table[fixed + [c for c in keep if c in table.columns]]
    if fmt in ("json", "csv"):
        hidden = [m for m in TABLE_ONLY if not metrics or m not in metrics]
        table = table.drop(columns=metric_columns(hidden), errors="ignore")
        if fmt == "json":
            return json.dumps(to_records(table), ensure_ascii=False, indent=2) + "\n"
        return to_csv(table)
    facts = _facts_of(table, facts)
    labels = list(dict.fromkeys(table["snapshot"])) if "snapshot" in table.columns else [None]
    parts = []
    for label in labels:
        part = table if len(labels) == 1 else table[table["snapshot"] == label]
        parts.append(
            _render_one(part, keys, fmt, lang, title or _default_title(label, keys, facts, lang),
                        chosen if metrics else None, ci, denominator, width, facts, label)
        )  # fmt: skip
    return "\n".join(parts)


def _default_title(
    label: str | None, keys: Sequence[str], facts: Mapping[str, Any], lang: str
) -> str:
    by = " × ".join(TEXT[lang].get(k, k) for k in keys)
    text = f"{label}, {TEXT[lang]['by'].format(by=by)}" if label else TEXT[lang]["by"].format(by=by)
    note = (facts.get(label) or {}).get("incomplete") if label else ""
    return f"{text} ({note})" if note else text


def _render_one(
    table: pd.DataFrame,
    keys: Sequence[str],
    fmt: str,
    lang: str,
    title: str,
    metrics: Sequence[str] | None,
    ci: bool,
    denominator: str,
    width: int | None,
    facts: Mapping[str, Mapping[str, Any]],
    label: str | None,
) -> str:
    records = table.to_dict("records")
    names = [
        str(r["label"]) if "label" in r else group_label(str(r[keys[0]]), keys[0], lang)
        for r in records
    ]
    small = [int(r["domains"]) < SMALL_GROUP for r in records]
    header = [
        TEXT[lang]["metric"],
        *(n + (" †" if s else "") for n, s in zip(names, small, strict=True)),
    ]
    sections = _people_rows(records, metrics, lang, denominator, ci)
    shown = [
        m
        for _, rows in sections
        for m in METRICS
        if any(r[0] == metric_label(m, lang) for r in rows)
    ]
    notes = _footnotes(records, shown, lang, denominator, ci, facts, any(small))
    if table.attrs.get("shared_domains"):
        notes.append(TEXT[lang]["shared_note"].format(n=table.attrs["shared_domains"]))
    if label in facts:
        notes.append(methods_text(facts[label], lang))
    if fmt == "markdown":
        return _markdown(title, header, sections, notes)
    return _print_people(title, header, sections, notes, width or terminal_width())


def render_trend(
    table: pd.DataFrame,
    fmt: str = "table",
    lang: str = "en",
    *,
    ci: bool = False,
    denominator: str = "domains",
    width: int | None = None,
    facts: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """A `trend` table as text; for people, one table per metric (groups × snapshots)."""
    _check_format(fmt, ("table", "csv", "markdown", "json"))
    _check_lang(lang)
    if fmt in ("json", "csv"):
        return render(table, fmt, lang)
    facts = _facts_of(table, facts)
    keys = group_keys(table)
    key = keys[0]
    snaps = list(dict.fromkeys(table["snapshot"]))
    groups = list(dict.fromkeys(table[key]))
    indexed = {(r["snapshot"], r[key]): r for r in table.to_dict("records")}
    label_of = {r[key]: r["label"] for r in indexed.values()}
    metrics = [m for m in METRICS if m in table.columns]
    width = width or terminal_width()
    parts = []
    any_small = False
    for metric in metrics:
        name = TEXT[lang].get(key, key)
        header = [name[:1].upper() + name[1:], *snaps]
        rows = []
        for g in groups:
            cells = []
            for s in snaps:
                r = indexed.get((s, g))
                if r is None:
                    cells.append("")
                    continue
                small = (
                    "domains" in r and not is_null(r["domains"]) and int(r["domains"]) < SMALL_GROUP
                )
                any_small |= small
                cells.append(_cell(r, metric, denominator, ci, lang) + (" †" if small else ""))
            rows.append([str(label_of[g]), *cells])
        title = metric_label(metric, lang)
        if fmt == "markdown":
            parts.append(_markdown(title, header, [("", rows)], []))
        else:
            parts.append(_print_people(title, header, [("", rows)], [], width))
    records = table.to_dict("records")
    notes = _footnotes(records, metrics, lang, denominator, ci, facts, any_small)
    notes += [methods_text(facts[s], lang) for s in snaps if s in facts]
    if fmt == "markdown":
        parts.append("\n\n".join(notes) + "\n")
    else:
        from rich.console import Console
        from rich.text import Text

        buffer = io.StringIO()
        console = Console(file=buffer, width=width, color_system=None, highlight=False)
        for note in notes:
            console.print(Text(note))
        parts.append(buffer.getvalue())
    return "\n".join(parts)


def _table_text(
    title: str, header: Sequence[str], rows: Sequence[Sequence[str]], fmt: str, note: str = ""
) -> str:
    """One plain table for people (`diff`): markdown, or a rich table fitted to the width."""
    notes = [note] if note else []
    if fmt == "markdown":
        return _markdown(title, header, [("", rows)], notes)
    return _print_people(title, header, [("", rows)], notes, terminal_width())


def diff_records(result: Mapping[str, Any]) -> dict[str, Any]:
    """A `diff` result as JSON-ready data (matrices as {from: {to: count}})."""
    out: dict[str, Any] = {k: result[k] for k in ("a", "b", "domains")}
    out["changes"] = to_records(result["changes"])
    out["gained"], out["lost"] = result["gained"], result["lost"]
    for key in ("dmarc_policy", "spf_all"):
        matrix: pd.DataFrame = result[key]
        out[key] = {
            str(i): {str(c): int(v) for c, v in row.items()} for i, row in matrix.iterrows()
        }
    out["noise_test"] = f"two-sided pooled two-proportion z-test, alpha {ALPHA}"
    return out


STATE_LABELS: dict[str, dict[str, str]] = {
    "en": {},
    "ja": {
        "absent": "なし", "invalid": "不正", "permerror": "恒久エラー", "no all": "all なし",
        "nxdomain": "存在しない", "unknown": "不明（エラー）",
    },
}  # fmt: skip

DIFF_TEXT: dict[str, dict[str, str]] = {
    "en": {
        "change": "Change", "noise": "Beyond noise", "yes": "yes", "no": "no",
        "dmarc_policy": "DMARC policy transitions", "spf_all": "SPF all transitions",
        "noise_note": "Shares of the domains that exist in each snapshot (NXDOMAIN and errors: of "
        "those listed); change in points. Beyond noise: a two-sided two-proportion z-test at the "
        "5% level. Gained/lost: domains listed in both with a definite answer in both.",
    },
    "ja": {
        "change": "増減（ポイント）", "noise": "誤差を超える変化", "yes": "あり", "no": "なし",
        "dmarc_policy": "DMARC ポリシーの遷移", "spf_all": "SPF all の遷移",
        "noise_note": "各スナップショットで存在するドメインに占める割合（NXDOMAIN とエラーはリスト"
        "全体に占める割合）と、その増減（ポイント）。誤差を超える変化: 二標本比率の z 検定（両側、"
        "有意水準 5%）。新規採用・採用終了: 両方のリストにあり、両方で値が確定したドメイン。",
    },
}  # fmt: skip


def _state(state: str, lang: str) -> str:
    return STATE_LABELS[lang].get(state, state)


def _diff_tables(
    result: Mapping[str, Any], lang: str
) -> list[tuple[str, list[str], list[list[str]], str]]:
    """(title, header, rows, note) of each table of a diff, for people."""
    t, d = TEXT[lang], DIFF_TEXT[lang]
    a, b = result["a"], result["b"]
    counts = result["domains"]
    note = t["domains_note"].format(
        a=f"{counts['a']:,}", b=f"{counts['b']:,}", both=f"{counts['both']:,}", la=a, lb=b
    )
    rows = []
    for r in result["changes"].to_dict("records"):
        m = r["metric"]
        noise = "" if r["beyond_noise"] is None else d["yes"] if r["beyond_noise"] else d["no"]
        change = "—" if is_null(r["change_points"]) else f"{r['change_points']:+.1f}"
        gained = f"{len(result['gained'][m]):,}" if m in result["gained"] else ""
        lost = f"{len(result['lost'][m]):,}" if m in result["lost"] else ""
        if is_null(r["a_pct"]) or is_null(r["b_pct"]):
            gained = lost = "—" if m in result["gained"] else ""
        rows.append(
            [metric_label(m, lang), _pct(r["a_pct"]), _pct(r["b_pct"]), change, noise, gained, lost]
        )
    header = [t["metric"], a, b, d["change"], d["noise"], t["gained"], t["lost"]]
    tables = [(f"{a} → {b}", header, rows, f"{note}. {d['noise_note']}")]
    for key in ("dmarc_policy", "spf_all"):
        matrix: pd.DataFrame = result[key]
        header = [f"{a} \\ {b}", *(_state(str(c), lang) for c in matrix.columns)]
        mrows = [
            [_state(str(src), lang), *(f"{int(n):,}" for n in row)]
            for src, row in matrix.iterrows()
        ]
        tables.append((d[key], header, mrows, t["rows_a"].format(a=a, b=b)))
    return tables


def render_diff(result: Mapping[str, Any], fmt: str = "table", lang: str = "en") -> str:
    """A `diff` result as text. JSON holds the domain lists; the other formats the counts.

    CSV is long ("tidy"): ``table,row,column,value`` with the changes (rows metrics; columns
    ``a_pct``, ``b_pct``, ``change_points``, ``p_value``, ``beyond_noise``), the adopters
    (columns gained/lost) and both transition matrices (rows A states, columns B states).
    """
    _check_format(fmt, ("table", "csv", "markdown", "json"))
    _check_lang(lang)
    if fmt == "json":
        return json.dumps(diff_records(result), ensure_ascii=False, indent=2) + "\n"
    if fmt == "csv":
        lines = ["table,row,column,value"]
        for r in to_records(result["changes"]):
            for col in ("a_pct", "b_pct", "change_points", "p_value", "beyond_noise"):
                v = r[col]
                v = (
                    ""
                    if v is None
                    else round(v, 1)
                    if col != "p_value" and isinstance(v, float)
                    else v
                )
                lines.append(f"changes,{r['metric']},{col},{v}")
        for metric in ADOPTION_METRICS:
            lines.append(f"adopters,{metric},gained,{len(result['gained'][metric])}")
            lines.append(f"adopters,{metric},lost,{len(result['lost'][metric])}")
        for key in ("dmarc_policy", "spf_all"):
            for src, row in result[key].iterrows():
                lines += [f"{key},{src},{dst},{int(n)}" for dst, n in row.items()]
        return "\n".join(lines) + "\n"
    parts = [_table_text(ti, h, r, fmt, n) for ti, h, r, n in _diff_tables(result, lang)]
    facts = result.get("methods") or {}
    notes = [methods_text(f, lang) for f in facts.values()]
    if notes:
        parts.append(
            "\n\n".join(notes) + "\n" if fmt == "markdown" else _notes_text(notes, terminal_width())
        )
    return "\n".join(parts)


def _notes_text(notes: Sequence[str], width: int) -> str:
    from rich.console import Console
    from rich.text import Text

    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, highlight=False)
    for note in notes:
        console.print(Text(note))
    return _rstrip_lines(buffer.getvalue())


# --- xlsx --------------------------------------------------------------------------------------


def _methods_rows(facts: Mapping[str, Mapping[str, Any]], lang: str) -> list[list[Any]]:
    rows: list[list[Any]] = [["snapshot", "fact", "value"]]
    for label, f in facts.items():
        for key, value in f.items():
            if isinstance(value, dict):
                for k, v in value.items():
                    rows.append([label, f"{key}.{k}", _json_value(v)])
            elif isinstance(value, list):
                shown = [
                    f"{v.get('name')} sha256:{v.get('sha256')}" if isinstance(v, dict) else str(v)
                    for v in value
                ]
                rows.append([label, key, ", ".join(shown)])
            else:
                rows.append([label, key, _json_value(value)])
        rows.append([label, "text", methods_text(f, lang)])
    return rows


def _xlsx_value(value: Any) -> Any:
    value = _json_value(value)
    return value if value is None or isinstance(value, int | float | str | bool) else str(value)


def write_workbook(
    sheets: Mapping[str, pd.DataFrame],
    out: str | Path,
    facts: Mapping[str, Mapping[str, Any]],
    lang: str = "en",
) -> Path:
    """One sheet per table (its rows as in JSON: null cells empty) plus a ``methods`` sheet."""
    from openpyxl import Workbook
    from openpyxl.utils import get_column_letter

    out = Path(out)
    if out.suffix.lower() != ".xlsx":
        raise ReportError(f"{out}: the file name must end in .xlsx")
    if not out.parent.is_dir():
        raise ReportError(f"{out.parent}: no such directory")
    book = Workbook()
    book.remove(book.active)
    for name, frame in sheets.items():
        sheet = book.create_sheet(name[:31])
        sheet.append([str(c) for c in frame.columns])
        for row in frame.itertuples(index=False):
            sheet.append([_xlsx_value(v) for v in row])
        sheet.freeze_panes = "A2"
        for i, c in enumerate(frame.columns, start=1):
            sheet.column_dimensions[get_column_letter(i)].width = max(8, min(40, len(str(c)) + 2))
    methods_sheet = book.create_sheet("methods")
    for row in _methods_rows(facts, lang):
        methods_sheet.append(row)
    methods_sheet.column_dimensions["B"].width = 24
    methods_sheet.column_dimensions["C"].width = 100
    try:
        book.save(out)
    except OSError as exc:
        raise ReportError(f"{out}: cannot write ({exc.strerror or exc})") from None
    return out


def write_xlsx(tables: Mapping[str, pd.DataFrame], out: str | Path, lang: str = "en") -> Path:
    """`report`/`trend` tables as a workbook: one sheet per table, and ``methods``."""
    facts: dict[str, Any] = {}
    for table in tables.values():
        facts |= table.attrs.get("methods") or {}
    return write_workbook(tables, out, facts, lang)


def write_diff_xlsx(result: Mapping[str, Any], out: str | Path, lang: str = "en") -> Path:
    """A `diff` as a workbook: changes, adopters, both transition matrices, and ``methods``."""
    adopters = pd.DataFrame(
        {
            "metric": list(ADOPTION_METRICS),
            "gained": [len(result["gained"][m]) for m in ADOPTION_METRICS],
            "lost": [len(result["lost"][m]) for m in ADOPTION_METRICS],
        }
    )
    sheets = {"changes": result["changes"], "adopters": adopters}
    for key in ("dmarc_policy", "spf_all"):
        matrix = result[key].copy()
        matrix.insert(0, f"{result['a']} \\ {result['b']}", matrix.index.astype(str))
        sheets[key] = matrix.reset_index(drop=True)
    return write_workbook(sheets, out, result.get("methods") or {}, lang)
