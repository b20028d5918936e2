"""The apex columns: whether the domain exists, its mail exchanges and its name servers.

Also the one reader of MX rdata (:func:`mx_records`), which the SPF ``mx`` mechanism and DANE
use as well: an exchange parsed one way here and another way there would make the columns
disagree about the same answer.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from typing import Any

from ..answers import (
    APEX_QTYPES,
    NOERROR,
    NXDOMAIN,
    REFUSED,
    SERVFAIL,
    TIMEOUT,
    Answer,
    AnswerSet,
    domain_exists,
    normalize_name,
)
from ..domains import registrable_domain

COLUMNS = (
    "status", "mx_status", "mx_hosts", "mx_null", "has_mx", "mx_provider", "ns_hosts",
    "dns_provider",
)  # fmt: skip

#: MX hosts whose addresses (and TLSA, SMTP) the survey follows: RFC 7208 4.6.4 caps an SPF
#: ``mx`` mechanism at 10 exchanges, and the survey follows as many.
MAX_MX_HOSTS = 10

_STATUS_OF_RCODE = {SERVFAIL: "servfail", REFUSED: "refused", TIMEOUT: "timeout"}


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


def mx_records(rdatas: list[str]) -> list[tuple[int, str]]:
    """(preference, exchange) of each MX rdata text, by preference then name.

    The exchange is in normal form (lower case, no trailing dot), so the null MX of RFC 7505
    (exchange ".") reads as ``""``. Rdata that is not ``<0-65535> <name>`` is skipped.
    """
    found: list[tuple[int, str]] = []
    for text in rdatas:
        parts = text.split()
        if len(parts) == 2 and parts[0].isascii() and parts[0].isdigit():
            preference = int(parts[0])
            if preference <= 0xFFFF:
                found.append((preference, normalize_name(parts[1])))
    found.sort()
    return found


def parse_mx(rdatas: list[str]) -> tuple[list[str], bool]:
    """(exchanges by preference then name, each once; null MX seen) from MX rdata texts.

    RFC 7505 3: the null MX is the exchange "." (the root); it is reported apart and never listed
    as an exchange.
    """
    ordered: list[str] = []
    null = False
    for _pref, host in mx_records(rdatas):
        if host == "":
            null = True
        elif host not in ordered:
            ordered.append(host)
    return ordered, null


def _parsed_mx(answer: Answer) -> tuple[list[str], bool]:
    return parse_mx(answer.rdata("MX"))


def exchanges(answer: Answer) -> list[str]:
    """The real exchanges of an MX answer (:func:`parse_mx`), parsed once per answer."""
    return answer.derived("mx exchanges", _parsed_mx)[0]


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
        hosts, null = answer.derived("mx exchanges", _parsed_mx)
        cols.update(mx_hosts=list(hosts), mx_null=null, has_mx=bool(hosts))
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


def analyze(domain: str, dns: AnswerSet) -> dict[str, Any]:
    """Status, MX and NS columns (the apex answers)."""
    return {
        "status": domain_status(domain, dns),
        **mx_columns(domain, dns),
        **ns_columns(domain, dns),
    }
