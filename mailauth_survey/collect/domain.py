"""One domain's collection: rounds of the analysis and of the queries it asks for.

:func:`scan_domain` runs the pure analysis (:mod:`mailauth_survey.analysis`) over the answers
gathered so far, asks the fleet for what it found missing, and runs it again, until it asks for
nothing more (bounded by :data:`MAX_ROUNDS` and :data:`MAX_QUERIES_PER_DOMAIN` against hostile
zones). Every answer read becomes a records-table row, so the domains table can be rebuilt from
the records with no network (``reanalyze``).

The plain loop is :func:`mailauth_survey.collect.live.resolve_until_complete`: its semantics are
the reference. What this one adds are optimisations that leave each verdict the same (each has a
with/without test):

- fill from the cache: a shared name the fleet already holds is read in the same round;
- ``first_queries`` planning: a policy module names what it will ask for before it is asked;
- the per-part memo: a part's columns, once final, are not computed again in later rounds;
- the SPF memo: a record's evaluation is reused for another domain whose answers are the same.

Why and how each works: docs/design.md.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from .. import store
from ..analysis import analyze_parts, domain_row
from ..answers import APEX_QTYPES, Answer, AnswerSet
from ..policies.apex import MAX_MX_HOSTS
from ..probes.https import dns_failure, fetch_policy
from ..probes.results import DomainProbes, to_row, transport_columns
from ..probes.settings import ProbeSettings, domain_excluded, load_exclusions
from ..probes.smtp import SmtpProber
from ..resolver import Fleet, Lookup
from .options import ScanOptions

#: Bounds on what one domain's zone can make the scanner do (hostile zones).
MAX_ROUNDS = 30
MAX_QUERIES_PER_DOMAIN = 200


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
    rows go to the probes table with the first domain that needed them. A domain on the opt-out
    list has its own ``skipped`` rows (with its name), as its HTTPS policy fetch has.
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
                if excluded:  # the opt-out's own trace, named by domain; the host stays unprobed
                    out.extend({**to_row(p), "domain": domain} for p in probes)
                elif host not in self._emitted:
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
