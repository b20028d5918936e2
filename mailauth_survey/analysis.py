"""One domain's row of the domains table, as a pure function of its stored answers.

``analyze_domain`` is what both the scan and ``reanalyze`` call, so a snapshot rebuilt from its
records table equals the one the scan wrote. The apex columns come first
(:mod:`.policies.apex`), then each policy module of the registry (:data:`.policies.MODULES`)
contributes its own columns and asks the AnswerSet for what it needs; whatever it asks and does
not find is the collector's next round of queries.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from . import policies, store
from .answers import (
    APEX_QTYPES,
    MISSING,
    Answer,
    AnswerSet,
    domain_exists,
    normalize_name,
    valid_qname,
)
from .domains import category, to_unicode
from .policies import apex, mta_sts
from .policies.apex import MAX_MX_HOSTS, ask_mx_addresses
from .probes.results import (
    KIND_POLICY,
    KIND_SMTP,
    DomainProbes,
    PolicyFetch,
    SmtpProbe,
    from_row,
    transport_columns,
)

DOMAIN_COLUMNS = store.DOMAIN_COLUMNS


def identity_columns(domain: str) -> dict[str, Any]:
    return {"domain": domain, "domain_unicode": to_unicode(domain), "category": category(domain)}


_PARTS_CACHE: dict[tuple, list[tuple[str, Any, Any]]] = {}
_MTA_STS = mta_sts.__name__


def _parts() -> list[tuple[str, Any, Any]]:
    """(memo key, function, its first_queries or None) of each part after the identity columns."""
    key = (apex.analyze, policies.MODULES)  # (either may be swapped by a test)
    parts = _PARTS_CACHE.get(key)
    if parts is None:
        parts = [("apex", apex.analyze, None)] + [
            (m.__name__, m.analyze, m.first_queries) for m in policies.MODULES
        ]
        _PARTS_CACHE.clear()
        _PARTS_CACHE[key] = parts
    return parts


def analyze_domain(
    domain: str,
    dns: AnswerSet,
    scanned_at: datetime | None = None,
    memo: dict[str, dict[str, Any]] | None = None,
    probes: DomainProbes | None = None,
) -> dict[str, Any]:
    """The full domains-table row of ``domain`` from ``dns``; ``dns.missing`` says what to fetch.

    The apex answers come first: until they are in, nothing else is asked, so a name that does
    not exist costs three queries (RFC 8020: nothing exists below an NXDOMAIN).

    ``memo`` (the collector's, across its rounds) keeps each part's columns once the part ran
    without missing an answer: answers are only ever added, so those columns are final, and later
    rounds skip the part. The result is the same with or without it.
    """
    memo = {} if memo is None else memo
    parts = analyze_parts(domain, dns, memo)
    row = domain_row(domain, parts, memo, scanned_at)
    if parts is not None and not dns.missing:  # (a row still missing answers is only a plan)
        row.update(transport_columns(domain, row, probes))
    return row


def analyze_parts(
    domain: str, dns: AnswerSet, memo: dict[str, dict[str, Any]], *, planning: bool = False
) -> list[dict[str, Any]] | None:
    """Each part's columns (apex, then each policy module), asking what they miss in ``dns``.

    None while the apex answers are not all in. The collector calls this once per round and
    builds the row (:func:`domain_row`) once, when nothing more is missing.

    ``planning``: the caller will ask what is missing and call again, whatever this finds. In
    the first round with the apex answers in, a module whose first queries are not all in is
    then not run, only those queries asked: a run would ask them and nothing else, and its
    columns would be thrown away. Its columns are ``{}``; ``dns.missing`` ends the same as
    without it. A module's ``first_queries(name, dns)`` must say exactly that: what its
    ``analyze`` asks first, for an existing ``name`` (normal form) whose apex answers are in,
    when it asks nothing else while one of them is missing (tests check each module).
    """
    name_ = ""
    if "apex" not in memo:
        for qtype in APEX_QTYPES:
            dns.get(domain, qtype)
        if dns.missing:
            return None
        if planning:
            name_ = normalize_name(domain)
            planning = valid_qname(name_) and domain_exists(name_, dns) is True
    else:
        planning = False  # later rounds run every module: their first queries were asked
    found = []
    sts_status = None
    for name, part, first in _parts():
        cols = memo.get(name)
        if cols is None and planning and first is not None:
            missed = [q for q in first(name_, dns) if dns.get(*q).rcode == MISSING]
            if missed:
                found.append({})
                continue
        if cols is None:
            before = dns.misses
            cols = part(domain, dns)
            if dns.misses == before:
                memo[name] = cols
        found.append(cols)
        if name == _MTA_STS:
            sts_status = cols.get("mta_sts_status")
    ask_mx_addresses(found[0]["mx_hosts"], dns)
    if sts_status == "valid":
        # Where the policy is served: the collector fetches it from these addresses.
        dns.get(f"mta-sts.{domain}", "A")
        dns.get(f"mta-sts.{domain}", "AAAA")
    return found


def domain_row(
    domain: str,
    parts: list[dict[str, Any]] | None,
    memo: dict[str, dict[str, Any]],
    scanned_at: datetime | None = None,
) -> dict[str, Any]:
    """The row from :func:`analyze_parts`' columns (identity columns alone when None)."""
    row: dict[str, Any] = dict.fromkeys(DOMAIN_COLUMNS)
    if "identity" not in memo:
        memo["identity"] = identity_columns(domain)
    row.update(memo["identity"])
    row["scanned_at"] = scanned_at
    for cols in parts or ():
        row.update(cols)
    return row


def answers_by_domain(
    batch_rows: list[dict[str, Any]],
) -> dict[str, tuple[AnswerSet, datetime | None]]:
    """Rebuild each domain's AnswerSet (and its scan time) from records-table rows."""
    grouped: dict[str, tuple[AnswerSet, datetime | None]] = {}
    for r in batch_rows:
        dns, latest = grouped.get(r["domain"], (None, None))
        if dns is None:
            dns = AnswerSet()
        dns.add(
            Answer(r["qname"], r["qtype"], r["rcode"], tuple(r["answers"] or ()), bool(r["ad"]))
        )
        when = r["queried_at"]
        grouped[r["domain"]] = (dns, when if latest is None or (when and when > latest) else latest)
    return grouped


def load_probes(
    out: str | Path | store.Location, label: str
) -> tuple[dict[str, PolicyFetch], dict[str, list[SmtpProbe]]]:
    """A snapshot's stored probes: policy fetches by domain, SMTP probes by MX host.

    ``out`` is a local folder or an fsspec URL (``s3://bucket/prefix``...).
    """
    policies: dict[str, PolicyFetch] = {}
    smtp: dict[str, list[SmtpProbe]] = defaultdict(list)
    for part in store.Snapshot(out, label).probes.glob("part-*.parquet"):
        for r in store.read_table(part).to_pylist():
            if r["kind"] == KIND_POLICY and r["domain"]:
                policies[r["domain"]] = from_row(r)
            elif r["kind"] == KIND_SMTP and r["host"]:
                # (a row with a domain is an opt-out's own ``skipped`` row: that domain's only)
                key = f"{r['domain']}/{r['host']}" if r["domain"] else r["host"]
                smtp[key].append(from_row(r))
    return policies, dict(smtp)


def domain_probes(
    domain: str,
    mx_hosts: list[str] | None,
    policies: dict[str, PolicyFetch],
    smtp: dict[str, list[SmtpProbe]] | None,
) -> DomainProbes:
    """The probes of one domain among a snapshot's (``smtp`` None: SMTP was not probed)."""
    hosts = (mx_hosts or [])[:MAX_MX_HOSTS]
    found = (
        None
        if smtp is None
        else [p for h in hosts for p in smtp.get(f"{domain}/{h}") or smtp.get(h, ())]
    )
    return DomainProbes(policies.get(domain), found)


def reanalyze(out: str | Path | store.Location, label: str) -> int:
    """Rebuild the domains table of snapshot ``label`` from its records and probes, no network.

    ``out`` is a local folder or an fsspec URL. Each records part becomes the domains part of the
    same name (written atomically). Returns the number of domains written.
    """
    snap = store.Snapshot(out, label)
    parts = snap.records.glob("part-*.parquet")
    if not parts:
        raise FileNotFoundError(f"snapshot {label} has no records in {snap.records}")
    manifest = snap.read_manifest() or {}
    policies, smtp = load_probes(out, label)
    smtp_probed = bool(manifest.get("options", {}).get("probe_smtp"))
    total = 0
    for part in parts:
        grouped = answers_by_domain(store.read_table(part).to_pylist())
        rows = []
        for domain in sorted(grouped):
            dns, when = grouped[domain]
            row = analyze_domain(domain, dns, when)
            probes = domain_probes(domain, row["mx_hosts"], policies, smtp if smtp_probed else None)
            row.update(transport_columns(domain, row, probes))
            rows.append(row)
        store.write_part(snap.domains, part.name, rows, store.DOMAINS_SCHEMA)
        total += len(rows)
    return total
