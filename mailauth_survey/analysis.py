"""One domain's row of the domains table, as a pure function of its stored answers.

``analyze_domain`` is what both the scan and ``reanalyze`` call, so a snapshot rebuilt from its
records table equals the one the scan wrote. Each policy module (spf, dmarc, dkim, mta_sts,
tlsrpt, bimi) contributes its own columns and asks the AnswerSet for what it needs; whatever it
asks and does not find is the collector's next round of queries.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import store
from .answers import (
    APEX_QTYPES,
    MISSING,
    NOERROR,
    NXDOMAIN,
    REFUSED,
    SERVFAIL,
    TIMEOUT,
    Answer,
    AnswerSet,
    domain_exists,
    normalize_name,
    valid_qname,
)
from .domains import category, registrable_domain, to_unicode
from .policies import bimi, dane, dkim, dmarc, mta_sts, spf, tlsrpt
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

#: RFC 7208 4.6.4 caps an ``mx`` mechanism at 10 exchanges; the survey follows as many.
MAX_MX_HOSTS = 10

_STATUS_OF_RCODE = {SERVFAIL: "servfail", REFUSED: "refused", TIMEOUT: "timeout"}

POLICY_MODULES = (spf, dmarc, dkim, mta_sts, tlsrpt, bimi, dane)


def domain_status(domain: str, dns: AnswerSet) -> str:
    """``ok`` when the name exists, ``nxdomain`` when it does not, else the apex failure.

    The failure is that of the MX query (then TXT, NS): a timeout stays a timeout.
    """
    exists = domain_exists(domain, dns)
    if exists is True:
        return "ok"
    if exists is False:
        return "nxdomain"
    for qtype in APEX_QTYPES:
        rcode = dns.get(domain, qtype).rcode
        if rcode in _STATUS_OF_RCODE:
            return _STATUS_OF_RCODE[rcode]
    return "error"


def parse_mx(rdatas: list[str]) -> tuple[list[str], bool]:
    """(exchanges by preference then name, null MX seen) from MX rdata texts.

    RFC 7505 3: the null MX is the exchange "." (the root); it is reported apart and never listed
    as an exchange. Unparsable rdata is skipped.
    """
    hosts: list[tuple[int, str]] = []
    null = False
    for text in rdatas:
        parts = text.split()
        if len(parts) != 2 or not (parts[0].isascii() and parts[0].isdigit()):
            continue
        exchange = normalize_name(parts[1])
        if exchange == "":
            null = True
            continue
        hosts.append((int(parts[0]), exchange))
    hosts.sort()
    ordered: list[str] = []
    for _pref, host in hosts:
        if host not in ordered:
            ordered.append(host)
    return ordered, null


def mx_columns(domain: str, dns: AnswerSet) -> dict[str, Any]:
    answer = dns.get(domain, "MX")
    cols: dict[str, Any] = {
        "mx_status": answer.rcode if answer.rcode != "MISSING" else None,
        "mx_hosts": None,
        "mx_null": None,
        "has_mx": None,
        "mx_provider": None,
    }
    if answer.rcode == NXDOMAIN:
        cols.update(mx_hosts=[], mx_null=False, has_mx=False)
    elif answer.rcode == NOERROR:
        hosts, null = parse_mx(answer.rdata("MX"))
        cols.update(mx_hosts=hosts, mx_null=null, has_mx=bool(hosts))
        if hosts:
            cols["mx_provider"] = registrable_domain(hosts[0]) or hosts[0]
    return cols


def ask_mx_addresses(mx_hosts: list[str] | None, dns: AnswerSet) -> None:
    """Ask for the exchanges' addresses: stored for transport security (DANE, STARTTLS).

    Apart from :func:`mx_columns`, whose columns do not depend on them (so they are final, and
    kept, as soon as the apex answers are in).
    """
    for host in (mx_hosts or [])[:MAX_MX_HOSTS]:
        dns.get(host, "A")
        dns.get(host, "AAAA")


def ns_columns(domain: str, dns: AnswerSet) -> dict[str, Any]:
    answer = dns.get(domain, "NS")
    if answer.rcode == NXDOMAIN:
        return {"ns_hosts": [], "dns_provider": None}
    if answer.rcode != NOERROR:
        return {"ns_hosts": None, "dns_provider": None}
    hosts = sorted({normalize_name(r) for r in answer.rdata("NS")} - {""})
    return {"ns_hosts": hosts, "dns_provider": _provider_of(tuple(hosts))}


def dns_provider(ns_hosts: list[str]) -> str | None:
    """The most common registrable domain of the name servers; ties go to the first by name."""
    counts = Counter(registrable_domain(h) or h for h in ns_hosts)
    if not counts:
        return None
    return min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]


@lru_cache(maxsize=4096)
def _provider_of(ns_hosts: tuple[str, ...]) -> str | None:
    """:func:`dns_provider`, cached: a DNS host's name server set is shared by its customers."""
    return dns_provider(list(ns_hosts))


def identity_columns(domain: str) -> dict[str, Any]:
    return {"domain": domain, "domain_unicode": to_unicode(domain), "category": category(domain)}


def apex_columns(domain: str, dns: AnswerSet) -> dict[str, Any]:
    """Status, MX and NS columns (the apex answers and the exchanges' addresses)."""
    return {
        "status": domain_status(domain, dns),
        **mx_columns(domain, dns),
        **ns_columns(domain, dns),
    }


_PARTS_CACHE: dict[tuple, list[tuple[str, Any, Any]]] = {}
_MTA_STS = mta_sts.__name__


def _parts() -> list[tuple[str, Any, Any]]:
    """(memo key, function, its first_queries or None) of each part after the identity columns."""
    key = (apex_columns, POLICY_MODULES)  # (either may be swapped by a test)
    parts = _PARTS_CACHE.get(key)
    if parts is None:
        parts = [("apex", apex_columns, None)] + [
            (m.__name__, m.analyze, getattr(m, "first_queries", None)) for m in POLICY_MODULES
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
    for part in store.probes_dir(out, label).glob("part-*.parquet"):
        for r in store.read_table(part).to_pylist():
            if r["kind"] == KIND_POLICY and r["domain"]:
                policies[r["domain"]] = from_row(r)
            elif r["kind"] == KIND_SMTP and r["host"]:
                smtp[r["host"]].append(from_row(r))
    return policies, dict(smtp)


def domain_probes(
    domain: str,
    mx_hosts: list[str] | None,
    policies: dict[str, PolicyFetch],
    smtp: dict[str, list[SmtpProbe]] | None,
) -> DomainProbes:
    """The probes of one domain among a snapshot's (``smtp`` None: SMTP was not probed)."""
    hosts = (mx_hosts or [])[:MAX_MX_HOSTS]
    found = None if smtp is None else [p for h in hosts for p in smtp.get(h, ())]
    return DomainProbes(policies.get(domain), found)


def reanalyze(out: str | Path | store.Location, label: str) -> int:
    """Rebuild the domains table of snapshot ``label`` from its records and probes, no network.

    ``out`` is a local folder or an fsspec URL. Each records part becomes the domains part of the
    same name (written atomically). Returns the number of domains written.
    """
    ddir, rdir = store.snapshot_dirs(out, label)
    parts = rdir.glob("part-*.parquet")
    if not parts:
        raise FileNotFoundError(f"snapshot {label} has no records in {rdir}")
    manifest = store.read_manifest(out, label) or {}
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
        store.write_part(ddir, part.name, rows, store.DOMAINS_SCHEMA)
        total += len(rows)
    return total
