"""Adoption figures from snapshots: the engine behind `report`, `trend`, `diff` and `chart`.

Notebooks use the same functions as the command line::

    from mailauth_survey import report
    df = report.load("results")                      # every snapshot, one row per domain
    table = report.adoption(report.load("results", "2024-06-01"))
    table = report.adoption(df, by="mx_provider", top=10)
    report.trend("results", ["dmarc_valid"])         # one row per snapshot and category
    report.diff("results", "2024-03-01", "2024-06-01")

Metrics (SPEC.md, "Metrics"). Every metric is a count of domains; each comes with two
percentages, always with the same denominators so that they compare across rows and quarters:

* ``<metric>_pct``: of ``domains`` (the group's domains with ``status == ok``);
* ``<metric>_mx_pct``: of ``has_mx`` (the ok domains with a real exchange), the numerator being
  restricted to those domains too, so it never exceeds 100 (the WIDE/JPRS "÷ domains with MX").

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
* ``mta_sts``, ``tlsrpt``, ``bimi``: the record's status is ``valid``;
* ``mta_sts_enforce``: a valid MTA-STS policy (fetched over HTTPS) in mode ``enforce``;
  ``starttls``: every MX address that spoke SMTP did STARTTLS (only with ``--probe-smtp``);
  ``dane``: every MX host has a validated, usable TLSA RRset; ``dnssec``: the apex answers were
  validated (AD from a validating resolver). Unprobed or unknown is never counted as "no";
* a record-level ``temperror`` (e.g. ``spf_status == "temperror"`` on an ok domain) stays in the
  denominator, as SPEC.md fixes it to ``status == ok``, and counts in no metric of that record.

Groups: ``by="category"`` gives the categories that have at least one listed domain, in
`domains.CATEGORIES` order. ``by="mx_provider"`` or ``"dns_provider"`` gives the ``top`` providers
(default 20) with the most ``domains`` (ties by name), then ``other`` (every smaller provider
together) and ``none`` (domains without a provider: no MX, no name servers, or not resolved);
provider names are registrable domains, so they never clash with these words. A ``total`` row ends
every table. The group key is in a column named as ``by``.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from . import store
from .domains import CATEGORIES

# --- metrics -----------------------------------------------------------------------------------

#: Every metric, in SPEC.md order (report columns, JSON keys, table rows).
METRICS: tuple[str, ...] = (
    "domains", "has_mx", "null_mx",
    "spf_valid", "spf_permerror",
    "spf_all_fail", "spf_all_softfail", "spf_all_neutral", "spf_all_pass", "spf_all_none",
    "dmarc_valid", "dmarc_invalid",
    "dmarc_none", "dmarc_quarantine", "dmarc_reject", "dmarc_enforcing", "dmarc_rua",
    "dkim_domainkey", "dkim_selector",
    "mta_sts", "tlsrpt", "bimi",
    "mta_sts_enforce", "starttls", "dane", "dnssec",
    "nxdomain", "servfail", "timeout", "refused", "error",
)  # fmt: skip

#: Metrics that count a final status; their percentages are of all listed domains.
ERROR_METRICS: tuple[str, ...] = ("nxdomain", "servfail", "timeout", "refused", "error")

#: The adoption metrics a domain can gain or lose between snapshots (`diff`).
ADOPTION_METRICS: tuple[str, ...] = tuple(
    m for m in METRICS if m != "domains" and m not in ERROR_METRICS
)

GROUPINGS: tuple[str, ...] = ("category", "mx_provider", "dns_provider")
DEFAULT_TOP = 20
TOTAL, OTHER, NONE = "total", "other", "none"

#: Columns of the domains table the metrics read (what `report` and `trend` load).
METRIC_COLUMNS: tuple[str, ...] = (
    "domain", "category", "status", "mx_status", "has_mx", "mx_null", "mx_provider", "dns_provider",
    "spf_status", "spf_all", "dmarc_status", "dmarc_policy", "dmarc_rua",
    "dkim_domainkey", "dkim_selectors", "mta_sts_status", "tlsrpt_status", "bimi_status",
    "mta_sts_policy_status", "mta_sts_mode", "starttls", "dane", "dnssec",
)  # fmt: skip

_SPF_ALL = {
    "spf_all_fail": "-all",
    "spf_all_softfail": "~all",
    "spf_all_neutral": "?all",
    "spf_all_pass": "+all",
}


class ReportError(ValueError):
    """A problem with the input a report was asked for (missing folder, unknown snapshot...)."""


def _is(series: pd.Series, value: str) -> np.ndarray:
    """Element-wise ``== value``, nulls False (string, object, categorical or Arrow columns)."""
    return series.eq(value).to_numpy(dtype=bool, na_value=False)


def _true(series: pd.Series) -> np.ndarray:
    """A nullable boolean column with nulls as False."""
    return series.eq(True).to_numpy(dtype=bool, na_value=False)


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
    m["mta_sts_enforce"] = (
        ok & _is(df["mta_sts_policy_status"], "valid") & _is(df["mta_sts_mode"], "enforce")
    )
    for flag in ("starttls", "dane", "dnssec"):
        m[flag] = ok & _true(df[flag])
    for status in ERROR_METRICS:
        m[status] = _is(df["status"], status)
    return m


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
    known["bimi"] = fine("bimi_status", "temperror")
    policy = df["mta_sts_policy_status"]
    known["mta_sts_enforce"] = ok & (
        _isin(policy, ("valid", "invalid", "none", "redirect", "http-error", "too-large"))
    )
    for flag in ("starttls", "dane", "dnssec"):
        known[flag] = ok & df[flag].notna().to_numpy()
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
    """Labels of the snapshots under DIR, oldest first; an error when there are none."""
    _domains_dir(directory)
    labels = store.list_snapshots(directory)
    if not labels:
        raise ReportError(f"{directory}: no snapshots under domains/")
    return labels


def resolve_snapshot(directory: str | Path, label: str | None) -> str:
    """The label asked for, checked, or the newest snapshot's label when None."""
    labels = snapshots(directory)
    if label is None:
        return labels[-1]
    if label not in labels:
        raise ReportError(f"no snapshot {label!r} in {directory} (have: {', '.join(labels)})")
    return label


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
        df["category"] = pd.Categorical(df["category"], categories=list(CATEGORIES))
    return df


def load(
    directory: str | Path | store.Location,
    snapshot: str | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The domains table of every snapshot (oldest first), or of one, as a DataFrame.

    ``snapshot`` is a plain string column; ``category`` a Categorical in `CATEGORIES` order; list
    columns hold numpy arrays (as `pandas.read_parquet` gives them); timestamps are UTC. The
    snapshot label is always read as a string (a hive reader would turn ``2024-06-01`` into a date).
    ``columns`` limits the columns read (the ``snapshot`` column is always there). ``directory``
    is a local folder or any fsspec URL (``s3://bucket/prefix``, ``file:///abs/path``...).
    """
    labels = (
        [resolve_snapshot(directory, snapshot)] if snapshot is not None else snapshots(directory)
    )
    tables = [_read_snapshot(directory, label, columns) for label in labels]
    return _to_pandas(pa.concat_tables(tables), arrow_lists=False)


def _load_for_metrics(directory: str | Path | store.Location, label: str) -> pd.DataFrame:
    """Only the columns the metrics read, list columns kept in Arrow (cheap at 1.8M rows)."""
    return _to_pandas(_read_snapshot(directory, label, METRIC_COLUMNS), arrow_lists=True)


# --- adoption ----------------------------------------------------------------------------------


def _group_codes(
    df: pd.DataFrame, by: str, top: int | None, counted: np.ndarray
) -> tuple[np.ndarray, list[str]]:
    """Each domain's group as an index into the group names returned (-1: in no group)."""
    if by == "category":
        codes = pd.Categorical(df["category"], categories=list(CATEGORIES)).codes.astype(np.int64)
        present = np.unique(codes[codes >= 0])
        lookup = np.full(len(CATEGORIES) + 1, -1)  # the last slot maps -1 (unknown) to -1
        lookup[present] = np.arange(len(present))
        return lookup[codes], [CATEGORIES[i] for i in present]
    if by not in ("mx_provider", "dns_provider"):
        raise ReportError(f"cannot group by {by!r}: use one of {', '.join(GROUPINGS)}")
    top = DEFAULT_TOP if top is None else top
    if top < 1:
        raise ReportError("top must be at least 1")
    codes, uniques = pd.factorize(
        df[by].to_numpy(dtype=object, na_value=None), use_na_sentinel=True
    )
    has = codes >= 0
    sizes = np.bincount(codes[has], weights=counted[has], minlength=len(uniques))
    ranked = sorted(range(len(uniques)), key=lambda i: (-sizes[i], uniques[i]))[:top]
    names = [str(uniques[i]) for i in ranked]
    other, none = len(names), len(names) + 1
    lookup = np.full(len(uniques) + 1, other)
    lookup[ranked] = np.arange(len(names))
    lookup[-1] = none  # code -1: no provider
    group = lookup[codes]
    used = np.bincount(group, minlength=none + 1) > 0
    for index, name in ((other, OTHER), (none, NONE)):
        if used[index]:
            names.append(name)
    if not used[other]:  # keep the indexes dense
        group = np.where(group == none, other, group)
    return group, names


def adoption(df: pd.DataFrame, by: str = "category", top: int | None = None) -> pd.DataFrame:
    """The adoption table of a domains frame: one row per group plus ``total``.

    Columns: ``by`` (the group), then per metric its count, ``<metric>_pct`` and
    ``<metric>_mx_pct`` (see the module docstring for definitions and denominators). ``top`` is the
    number of providers shown by name when grouping by provider (default 20); categories ignore it.
    """
    masks = metric_masks(df)
    group, names = _group_codes(df, by, top, masks["domains"])
    in_group = group >= 0
    size = len(names)

    def count(mask: np.ndarray) -> np.ndarray:
        """Per group, then the total (which includes a domain of an unknown category)."""
        return np.append(np.bincount(group[mask & in_group], minlength=size), mask.sum())

    has_mx = masks["has_mx"]
    listed = count(np.ones(len(df), dtype=bool))
    n = {metric: count(mask) for metric, mask in masks.items()}
    columns: dict[str, Any] = {by: [*names, TOTAL]}
    for metric in METRICS:
        columns[metric] = n[metric]
        if metric in ERROR_METRICS:
            columns[f"{metric}_pct"] = _percent(n[metric], listed)
            columns[f"{metric}_mx_pct"] = np.full(size + 1, np.nan)
        else:
            columns[f"{metric}_pct"] = _percent(n[metric], n["domains"])
            columns[f"{metric}_mx_pct"] = _percent(count(masks[metric] & has_mx), n["has_mx"])
    return pd.DataFrame(columns).astype({by: object})


def _percent(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """100 * num / den, NaN where den is 0 (no domain to take a share of)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, 100.0 * num / np.maximum(den, 1), np.nan)


def metric_columns(metrics: Iterable[str]) -> list[str]:
    """The columns of some metrics: each count with its two percentages."""
    return [c for m in metrics for c in (m, f"{m}_pct", f"{m}_mx_pct")]


def check_metrics(metrics: Iterable[str] | None) -> list[str]:
    """The metrics asked for, checked (all of them when None), in the order given."""
    if not metrics:
        return list(METRICS)
    asked = list(dict.fromkeys(metrics))
    unknown = [m for m in asked if m not in METRICS]
    if unknown:
        raise ReportError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
    return asked


def report(
    directory: str | Path, snapshot: str | None = None, by: str = "category", top: int | None = None
) -> pd.DataFrame:
    """`adoption` of one snapshot read from DIR (default: the newest)."""
    label = resolve_snapshot(directory, snapshot)
    return adoption(_load_for_metrics(directory, label), by=by, top=top)


def trend(directory: str | Path, metrics: Iterable[str] | None = None) -> pd.DataFrame:
    """The adoption table by category of every snapshot, oldest first, with a ``snapshot`` column.

    One snapshot is in memory at a time. ``metrics`` limits the metric columns (all by default).
    """
    chosen = check_metrics(metrics)
    frames = []
    for label in snapshots(directory):
        table = adoption(_load_for_metrics(directory, label))
        table.insert(0, "snapshot", label)
        frames.append(table[["snapshot", "category", *metric_columns(chosen)]])
    return pd.concat(frames, ignore_index=True)


# --- diff --------------------------------------------------------------------------------------

#: States of a domain in the DMARC policy transition matrix, weakest first.
DMARC_STATES: tuple[str, ...] = ("absent", "invalid", "none", "quarantine", "reject", "unknown")
#: States of a domain in the SPF ``all`` transition matrix (``none``: valid, no ``all``).
SPF_STATES: tuple[str, ...] = (
    "absent",
    "permerror",
    "+all",
    "none",
    "?all",
    "~all",
    "-all",
    "unknown",
)


def _state_codes(
    df: pd.DataFrame,
    status_column: str,
    value_column: str,
    values: Sequence[str],
    states: Sequence[str],
    missing: str,
) -> np.ndarray:
    """Each domain's state as an index into ``states``; ``values`` map to the states of the same
    name (a valid record with another value or none is ``missing``), and an error (the domain's or
    the record's) is ``unknown``."""
    index = {s: i for i, s in enumerate(states)}
    status = df[status_column]
    value = pd.Categorical(df[value_column], categories=list(values)).codes
    value_state = np.array([index[v] for v in values] + [index[missing]])[value]  # -1: last
    unknown = ~_is(df["status"], "ok") | _is(status, "temperror")
    conditions = [
        unknown,
        _is(status, "valid"),
        _is(status, "invalid"),
        _is(status, "permerror"),
        _is(status, "none"),
    ]
    choices = [
        index["unknown"],
        value_state,
        index.get("invalid", -1),
        index.get("permerror", -1),
        index["absent"],
    ]
    codes = np.select(conditions, choices, default=index["unknown"])
    return np.where(codes < 0, index["unknown"], codes)  # a status word this matrix does not have


def dmarc_state(df: pd.DataFrame) -> pd.Series:
    """Each domain's DMARC state (`DMARC_STATES`): its applied policy, absent, invalid, or
    unknown (the domain or the DMARC query ended in an error)."""
    codes = _state_codes(
        df,
        "dmarc_status",
        "dmarc_policy",
        ("none", "quarantine", "reject"),
        DMARC_STATES,
        "unknown",
    )
    return pd.Series(pd.Categorical.from_codes(codes, DMARC_STATES), index=df.index)


def spf_state(df: pd.DataFrame) -> pd.Series:
    """Each domain's SPF state (`SPF_STATES`): its effective ``all`` (``none``: a valid record
    without one), absent, permerror, or unknown (an error)."""
    codes = _state_codes(
        df, "spf_status", "spf_all", ("+all", "?all", "~all", "-all", "none"), SPF_STATES, "none"
    )
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


def diff(directory: str | Path, a: str, b: str) -> dict[str, Any]:
    """What changed from snapshot A to snapshot B, over the domains listed in both.

    Returns a dict: ``a``, ``b`` (labels); ``domains`` (counts: ``a``, ``b``, ``both``,
    ``only_a``, ``only_b``); ``gained`` and ``lost`` ({metric: sorted domains} for every adoption
    metric); ``dmarc_policy`` and ``spf_all`` (transition matrices, rows A, columns B, over
    `DMARC_STATES` / `SPF_STATES`). A domain is gained or lost for a metric only when its answer
    for that metric is definite in both snapshots: a record that timed out in B is not "lost", it
    is ``unknown`` in the matrices.
    """
    label_a, label_b = resolve_snapshot(directory, a), resolve_snapshot(directory, b)
    df_a = _unique_domains(_load_for_metrics(directory, label_a))
    df_b = _unique_domains(_load_for_metrics(directory, label_b))
    position = pd.Index(df_a["domain"]).get_indexer(df_b["domain"])  # row in A of each B row
    ib = np.flatnonzero(position >= 0)
    domains = df_b["domain"].to_numpy(dtype=object)[ib]
    order = np.argsort(domains, kind="stable")  # sort once: every list below comes out sorted
    ib, domains = ib[order], domains[order]
    ia = position[ib]
    masks_a, masks_b = metric_masks(df_a), metric_masks(df_b)
    known_a, known_b = _known_masks(df_a), _known_masks(df_b)
    gained: dict[str, list[str]] = {}
    lost: dict[str, list[str]] = {}
    for metric in ADOPTION_METRICS:
        definite = known_a[metric][ia] & known_b[metric][ib]
        was, now = masks_a[metric][ia], masks_b[metric][ib]
        gained[metric] = domains[definite & ~was & now].tolist()
        lost[metric] = domains[definite & was & ~now].tolist()
    both = len(ib)
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
        "gained": gained,
        "lost": lost,
        "dmarc_policy": _transitions(
            dmarc_state(df_a).iloc[ia], dmarc_state(df_b).iloc[ib], label_a, label_b
        ),
        "spf_all": _transitions(
            spf_state(df_a).iloc[ia], spf_state(df_b).iloc[ib], label_a, label_b
        ),
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
        "mta_sts_enforce": "MTA-STS enforce", "starttls": "STARTTLS (all MX)",
        "dane": "DANE (all MX)", "dnssec": "DNSSEC validated",
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
        "mta_sts_enforce": "MTA-STS enforce", "starttls": "STARTTLS（全 MX）",
        "dane": "DANE（全 MX）", "dnssec": "DNSSEC 検証済み",
        "nxdomain": "NXDOMAIN", "servfail": "SERVFAIL", "timeout": "タイムアウト",
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
    "en": {OTHER: "Other providers", NONE: "No provider", TOTAL: "Total"},
    "ja": {OTHER: "その他の事業者", NONE: "事業者なし", TOTAL: "合計"},
}

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "metric": "Metric", "category": "Category", "mx_provider": "MX provider",
        "dns_provider": "DNS provider", "snapshot": "Snapshot",
        "cell_note": "count (% of domains that exist, MX % of domains with MX); errors: % of listed domains",
        "gained": "Gained", "lost": "Lost", "transitions": "transitions",
        "domains_note": "domains: {a} in {la}, {b} in {lb}, {both} in both",
        "rows_a": "rows: {a}, columns: {b}",
    },
    "ja": {
        "metric": "指標", "category": "種別", "mx_provider": "MX 事業者",
        "dns_provider": "DNS 事業者", "snapshot": "スナップショット",
        "cell_note": "件数（存在するドメインに占める割合、MX: MX を持つドメインに占める割合）。エラーは全リスト件数に占める割合",
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
    labels = GROUP_LABELS[lang] if by == "category" else PROVIDER_LABELS[lang]
    return labels.get(group, group)


# --- rendering ---------------------------------------------------------------------------------

FORMATS = ("table", "csv", "markdown", "json")


def _json_value(value: Any) -> Any:
    if value is None or (isinstance(value, float | np.floating) and math.isnan(value)):
        return None
    if isinstance(value, np.integer | bool | np.bool_):
        return int(value) if not isinstance(value, bool | np.bool_) else bool(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def to_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts (numpy scalars to Python, NaN to None), columns in order."""
    return [
        {c: _json_value(v) for c, v in zip(df.columns, row, strict=True)}
        for row in df.itertuples(index=False)
    ]


def _pct(value: float) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.1f}%"


def _cell(row: Mapping[str, Any], metric: str) -> str:
    count = f"{int(row[metric]):,}"
    if metric in ERROR_METRICS:
        return f"{count} ({_pct(row[f'{metric}_pct'])})"
    return f"{count} ({_pct(row[f'{metric}_pct'])}, MX {_pct(row[f'{metric}_mx_pct'])})"


def _table_text(
    title: str, header: Sequence[str], rows: Sequence[Sequence[str]], fmt: str, note: str = ""
) -> str:
    """One table for people: a rich table (``table``) or GitHub Markdown (``markdown``)."""
    if fmt == "markdown":

        def esc(s: str) -> str:
            return s.replace("|", "\\|")

        lines = [f"### {esc(title)}", ""] if title else []
        lines.append("| " + " | ".join(esc(h) for h in header) + " |")
        lines.append("|" + "|".join([" --- "] + [" ---: "] * (len(header) - 1)) + "|")
        lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
        if note:
            lines += ["", f"_{note}_"]
        return "\n".join(lines) + "\n"
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title or None, header_style="bold")
    table.add_column(header[0], no_wrap=True)
    for h in header[1:]:
        table.add_column(h, justify="right")
    for row in rows:
        table.add_row(*row)
    buffer = io.StringIO()
    # Wide enough that the table keeps its lines whole when the output is a pipe or a file.
    console = Console(file=buffer, width=max(100, _table_width(header, rows)), color_system=None)
    console.print(table)
    if note:
        console.print(note, highlight=False)
    return buffer.getvalue()


def _table_width(header: Sequence[str], rows: Sequence[Sequence[str]]) -> int:
    from rich.cells import cell_len

    widths = [cell_len(h) for h in header]
    for row in rows:
        widths = [max(w, cell_len(c)) for w, c in zip(widths, row, strict=True)]
    return sum(widths) + 3 * len(widths) + 1


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ReportError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")


def render(table: pd.DataFrame, fmt: str = "table", lang: str = "en", title: str = "") -> str:
    """An adoption table as text: JSON array / CSV of the rows as they are, or a people's table.

    The people's table turns the rows into columns (one line per metric, one column per group),
    which stays readable with 27 metrics.
    """
    _check_format(fmt)
    _check_lang(lang)
    if fmt == "json":
        return json.dumps(to_records(table), ensure_ascii=False, indent=2) + "\n"
    if fmt == "csv":
        return table.to_csv(index=False, lineterminator="\n")
    by = "snapshot" if table.columns[0] == "snapshot" else table.columns[0]
    metrics = [m for m in METRICS if m in table.columns]
    header = [TEXT[lang]["metric"], *(group_label(g, by, lang) for g in table[by])]
    records = table.to_dict("records")
    rows = [[metric_label(m, lang), *(_cell(r, m) for r in records)] for m in metrics]
    return _table_text(title, header, rows, fmt, TEXT[lang]["cell_note"])


def render_trend(table: pd.DataFrame, fmt: str = "table", lang: str = "en") -> str:
    """A `trend` table as text; for people, one table per metric (groups × snapshots)."""
    _check_format(fmt)
    _check_lang(lang)
    if fmt in ("json", "csv"):
        return render(table, fmt, lang)
    labels = list(dict.fromkeys(table["snapshot"]))
    groups = list(dict.fromkeys(table["category"]))
    indexed = {(r["snapshot"], r["category"]): r for r in table.to_dict("records")}
    parts = []
    for metric in (m for m in METRICS if m in table.columns):
        header = [TEXT[lang]["category"], *labels]
        rows = [
            [
                group_label(g, "category", lang),
                *(_cell(indexed[(s, g)], metric) if (s, g) in indexed else "—" for s in labels),
            ]
            for g in groups
        ]
        parts.append(_table_text(metric_label(metric, lang), header, rows, fmt))
    parts.append(
        ("_" + TEXT[lang]["cell_note"] + "_\n")
        if fmt == "markdown"
        else TEXT[lang]["cell_note"] + "\n"
    )
    return "\n".join(parts)


def diff_records(result: Mapping[str, Any]) -> dict[str, Any]:
    """A `diff` result as JSON-ready data (matrices as {from: {to: count}})."""
    out: dict[str, Any] = {k: result[k] for k in ("a", "b", "domains", "gained", "lost")}
    for key in ("dmarc_policy", "spf_all"):
        matrix: pd.DataFrame = result[key]
        out[key] = {
            str(i): {str(c): int(v) for c, v in row.items()} for i, row in matrix.iterrows()
        }
    return out


def render_diff(result: Mapping[str, Any], fmt: str = "table", lang: str = "en") -> str:
    """A `diff` result as text. JSON holds the domain lists; the other formats the counts.

    CSV is long ("tidy"): ``table,row,column,count`` with the adopters table (rows metrics,
    columns gained/lost) and both transition matrices (rows A states, columns B states).
    """
    _check_format(fmt)
    _check_lang(lang)
    if fmt == "json":
        return json.dumps(diff_records(result), ensure_ascii=False, indent=2) + "\n"
    a, b = result["a"], result["b"]
    if fmt == "csv":
        lines = ["table,row,column,count"]
        for metric in ADOPTION_METRICS:
            lines.append(f"adopters,{metric},gained,{len(result['gained'][metric])}")
            lines.append(f"adopters,{metric},lost,{len(result['lost'][metric])}")
        for key in ("dmarc_policy", "spf_all"):
            for src, row in result[key].iterrows():
                lines += [f"{key},{src},{dst},{int(n)}" for dst, n in row.items()]
        return "\n".join(lines) + "\n"
    t = TEXT[lang]
    counts = result["domains"]
    note = t["domains_note"].format(
        a=f"{counts['a']:,}", b=f"{counts['b']:,}", both=f"{counts['both']:,}", la=a, lb=b
    )
    rows = [
        [metric_label(m, lang), f"{len(result['gained'][m]):,}", f"{len(result['lost'][m]):,}"]
        for m in ADOPTION_METRICS
    ]
    parts = [_table_text(f"{a} → {b}", [t["metric"], t["gained"], t["lost"]], rows, fmt, note)]
    for key, name in (
        ("dmarc_policy", "DMARC policy" if lang == "en" else "DMARC ポリシー"),
        ("spf_all", "SPF all"),
    ):
        matrix: pd.DataFrame = result[key]
        header = [f"{a} \\ {b}", *matrix.columns]
        rows = [[str(src), *(f"{int(n):,}" for n in row)] for src, row in matrix.iterrows()]
        title = f"{name} transitions" if lang == "en" else f"{name}{t['transitions']}"
        parts.append(_table_text(title, header, rows, fmt, t["rows_a"].format(a=a, b=b)))
    return "\n".join(parts)
