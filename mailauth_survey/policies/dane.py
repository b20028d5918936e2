"""DANE for SMTP (RFC 7672) and DNSSEC, from the AD flag of a validating resolver.

The scanner does not validate: it trusts the AD flag of its resolver (RFC 7672 2.1.3 and RFC 4035
3.2.3: a validating resolver sets AD on answers it proved secure; RFC 6840 5.7: it does so when
the query sets AD or DO, so the scanner's queries set AD). Signatures are never fetched or
checked here: a stub that looked at RRSIGs itself would take a zone signed by its own key for a
chain of trust.

Columns
=======

``dnssec`` (bool, null when unknown or not applicable): whether the domain's answers validate.

* True: the apex answers (MX, TXT, NS) are all definite (NOERROR/NXDOMAIN) and all carry AD.
* False: all definite, none carries AD, and the resolver is known to validate.
* None: the domain does not exist; an apex query failed (a validating resolver answers SERVFAIL
  for bogus data, RFC 4035 5.5, so a broken signature is never read as "unsigned"); the answers
  disagree (some AD, some not); or the resolver is not known to validate.

*Is the resolver validating?* An AD on any apex answer proves it. Otherwise the analysis asks for
the SOA of the domain's top-level domain (``jp.`` for a .jp survey): every TLD the survey covers
is signed and chained to the root, so a validating resolver answers it with AD. The collector
fetches that name once per scan (a name outside the domain: the shared cache answers it for every
other domain) and stores it with each domain's records, so ``reanalyze`` decides the same way.
A resolver that does not validate (or strips AD) gives AD=0 there, and then ``dnssec`` and
``dane`` are None, never False. An unsigned TLD gives None too, the safe side.

``dane`` (bool, null when unknown or not applicable): the domain's mail is DANE-protected.
True when the MX RRset is secure and **every** MX host (the first :data:`MAX_MX_HOSTS` by
preference) is a DANE host:

* RFC 7672 2.2.1: DANE applies only when the MX RRset is secure (AD); an insecure MX RRset makes
  the domain not DANE-protected (False, when the resolver is known to validate).
* RFC 7672 2.2.3: a host's TLSA RRset is looked up at ``_25._tcp.<host>`` only when the host's
  address records are secure; insecure addresses make the host not DANE. TLSA records that are
  not secure (AD=0) are not counted either (a TLSA record without DNSSEC protects nothing).
* RFC 7672 3.1 and RFC 6698 2.1: a host is DANE when its secure TLSA RRset holds at least one
  *usable* record: usage DANE-TA(2) or DANE-EE(3), selector Cert(0) or SPKI(1), matching type
  Full(0), SHA2-256(1) or SHA2-512(2), with data of the right length. PKIX-TA(0) and PKIX-EE(1)
  are not for SMTP (RFC 7672 3.1.3): an RRset of only those is "unusable", and RFC 7672 2.2 then
  asks for encryption without authentication, which is not DANE.
* Why every host: a sender that cannot reach one MX host tries the next (RFC 5321 5.1), so an
  attacker who blocks the DANE hosts gets the mail sent to the others: a domain is protected
  only when all of its MX hosts are. (Surveys that count "at least one" overstate protection.)
* A failed lookup (SERVFAIL, timeout) on an MX host's addresses or TLSA makes that host unknown:
  ``dane`` is then None unless another host already makes it False. RFC 7672 2.1.1: a bogus TLSA
  RRset means "defer delivery", not "no DANE".
* No MX (NODATA, null MX, RFC 7505) or no domain: None. RFC 7672 2.2.2 (DANE for the domain's
  own address when it has no MX) is out of scope of an MX survey.

TLSA is asked at ``_25._tcp.<MX host>`` (a CNAME there is followed by the resolver). When the MX
host name itself is an alias, RFC 7672 2.2.3 looks at the alias target's TLSA name first; the
survey asks only the MX host's own name, so a host relying on that is missed (a lower bound).
:func:`host_states` gives each host's verdict and findings for notebooks.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from ..answers import (
    APEX_QTYPES,
    MISSING,
    NOERROR,
    Answer,
    AnswerSet,
    domain_exists,
    normalize_name,
    valid_qname,
)
from .apex import MAX_MX_HOSTS, exchanges

COLUMNS = ("dane", "dnssec")


#: SMTP's TLSA prefix (RFC 7672 2.2.3: port 25, TCP).
TLSA_PREFIX = "_25._tcp."

# RFC 7218 acronyms of the RFC 6698 parameters.
USAGES = {0: "PKIX-TA", 1: "PKIX-EE", 2: "DANE-TA", 3: "DANE-EE", 255: "PrivCert"}
SELECTORS = {0: "Cert", 1: "SPKI", 255: "PrivSel"}
MATCHING_TYPES = {0: "Full", 1: "SHA2-256", 2: "SHA2-512", 255: "PrivMatch"}
#: Digest length of each hash matching type (RFC 6698 2.1.3).
_DIGEST_LEN = {1: 32, 2: 64}

_UINT8 = re.compile(r"[0-9]{1,3}\Z")
_UINT = re.compile(r"[0-9]{1,5}\Z")
_HEX = re.compile(r"[0-9A-Fa-f]*\Z")

# Host states.
DANE = "dane"  # secure TLSA RRset with a usable record
NOT_DANE = "not-dane"  # insecure addresses or TLSA, no TLSA, or only unusable records
UNKNOWN = "unknown"  # a lookup failed or is not collected yet


@dataclass(frozen=True, slots=True)
class Tlsa:
    """One TLSA record (RFC 6698 2.1). ``problems`` empty means usable for SMTP (RFC 7672 3.1)."""

    text: str
    usage: int | None = None
    selector: int | None = None
    mtype: int | None = None
    data: bytes = b""
    problems: tuple[str, ...] = ()

    @property
    def usable(self) -> bool:
        return not self.problems

    @property
    def params(self) -> str:
        """``DANE-EE(3) SPKI(1) SHA2-256(1)`` style, for findings and reports."""
        return " ".join(
            f"{names.get(v, '?')}({v})" if v is not None else "?"
            for v, names in (
                (self.usage, USAGES),
                (self.selector, SELECTORS),
                (self.mtype, MATCHING_TYPES),
            )
        )


def parse_tlsa(text: str) -> Tlsa:
    """Parse TLSA rdata in presentation format (RFC 6698 2.2, or RFC 3597 ``\\# n hex``).

    Never raises. A record that cannot be read, or that SMTP must not use, comes back with
    ``problems`` saying why (and ``usable`` False).
    """
    if not isinstance(text, str):
        return Tlsa(str(text), problems=("RFC 6698 2.2: TLSA rdata is not text",))
    tokens = text.replace("(", " ").replace(")", " ").split()
    if tokens[:1] == ["\\#"]:
        return _from_generic(text, tokens[1:])
    if len(tokens) < 3 or not all(_UINT8.match(t) and int(t) <= 255 for t in tokens[:3]):
        return Tlsa(
            text,
            problems=(
                "RFC 6698 2.2: expected 'usage selector matching-type data' with numbers 0-255",
            ),
        )
    hexdata = "".join(tokens[3:])
    if not _HEX.match(hexdata) or len(hexdata) % 2:
        return Tlsa(
            text,
            int(tokens[0]),
            int(tokens[1]),
            int(tokens[2]),
            problems=("RFC 6698 2.2: certificate association data is not an even run of hex",),
        )
    return _checked(text, int(tokens[0]), int(tokens[1]), int(tokens[2]), bytes.fromhex(hexdata))


def _from_generic(text: str, rest: list[str]) -> Tlsa:
    """RFC 3597 5 unknown-type form: ``\\# <length> <hex>``."""
    bad = Tlsa(text, problems=("RFC 3597 5: malformed generic rdata",))
    if not rest or not _UINT.match(rest[0]):
        return bad
    try:
        raw = binascii.unhexlify("".join(rest[1:]))
    except (binascii.Error, ValueError):
        return bad
    if len(raw) != int(rest[0]) or len(raw) < 3:
        return bad
    return _checked(text, raw[0], raw[1], raw[2], raw[3:])


def _checked(text: str, usage: int, selector: int, mtype: int, data: bytes) -> Tlsa:
    problems: list[str] = []
    if usage in (0, 1):
        problems.append(
            f"RFC 7672 3.1.3: usage {USAGES[usage]}({usage}) is not for SMTP (unusable)"
        )
    elif usage not in (2, 3):
        problems.append(f"RFC 6698 2.1.1: usage {usage} is not a defined certificate usage")
    if selector not in (0, 1):
        problems.append(f"RFC 6698 2.1.2: selector {selector} is not defined")
    if mtype not in (0, 1, 2):
        problems.append(f"RFC 6698 2.1.3: matching type {mtype} is not defined")
    if not data:
        problems.append("RFC 6698 2.1.4: empty certificate association data")
    elif mtype in _DIGEST_LEN and len(data) != _DIGEST_LEN[mtype]:
        problems.append(
            f"RFC 6698 2.1.3: {MATCHING_TYPES[mtype]} data is {len(data)} bytes, "
            f"not {_DIGEST_LEN[mtype]}"
        )
    return Tlsa(text, usage, selector, mtype, data, tuple(problems))


# --- per host -------------------------------------------------------------------------------


@dataclass
class HostDane:
    """One MX host's DANE verdict (:data:`DANE`, :data:`NOT_DANE` or :data:`UNKNOWN`)."""

    host: str
    state: str
    records: list[Tlsa] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)


def tlsa_name(host: str) -> str:
    return TLSA_PREFIX + normalize_name(host)


def host_state(host: str, dns: AnswerSet) -> HostDane:
    """DANE for one MX host of a domain whose MX RRset is secure (RFC 7672 2.2.3, 3.1)."""
    host = normalize_name(host)
    out = HostDane(host, UNKNOWN)
    addrs = [dns.get(host, "A"), dns.get(host, "AAAA")]
    if any(a.rcode == MISSING for a in addrs):
        return out
    if not any(a.rcode == NOERROR and a.ad and a.rdata() for a in addrs):
        if any(a.rcode == NOERROR and a.rdata() for a in addrs):
            out.state = NOT_DANE
            out.findings.append("RFC 7672 2.2.3: address records not secure, so no TLSA lookup")
        elif any(a.failed for a in addrs):
            out.findings.append("address lookup failed")
        else:
            out.state = NOT_DANE
            out.findings.append("the MX host has no address records")
        return out
    qname = tlsa_name(host)
    if not valid_qname(qname):
        out.state = NOT_DANE
        out.findings.append("the TLSA name is too long to ask")
        return out
    answer = dns.get(qname, "TLSA")
    if answer.rcode == MISSING:
        return out
    if answer.failed:
        out.findings.append(
            f"RFC 7672 2.1.1: TLSA lookup {answer.rcode} (bogus or failed: delivery would defer)"
        )
        return out
    out.records = [parse_tlsa(r) for r in answer.rdata("TLSA")]
    out.state = NOT_DANE
    if not out.records:
        out.findings.append("no TLSA records")
    elif not answer.ad:
        out.findings.append("RFC 7672 2.2.3: TLSA records not secure (no AD): not counted")
    elif any(r.usable for r in out.records):
        out.state = DANE
    else:
        out.findings.append("RFC 7672 2.2: TLSA records present but none usable")
    for r in out.records:
        out.findings += [f"{r.params}: {p}" for p in r.problems]
    return out


def mx_hosts(dns: AnswerSet, domain: str) -> list[str]:
    """Real exchanges of a NOERROR MX answer, by preference then name, null MX excluded."""
    return exchanges(dns.get(domain, "MX"))


def host_states(domain: str, dns: AnswerSet) -> list[HostDane]:
    """Each examined MX host's verdict; empty unless the MX RRset is secure (RFC 7672 2.2.1)."""
    name = normalize_name(domain)
    mx = dns.get(name, "MX")
    if mx.rcode != NOERROR or not mx.ad:
        return []
    return [host_state(h, dns) for h in mx_hosts(dns, name)[:MAX_MX_HOSTS]]


# --- the columns ----------------------------------------------------------------------------


def validation_probe(domain: str) -> tuple[str, str]:
    """The signed name whose AD tells whether the resolver validates: the TLD's SOA."""
    return normalize_name(domain).rsplit(".", 1)[-1], "SOA"


def resolver_validates(
    domain: str, dns: AnswerSet, apex: list[Answer] | None = None
) -> bool | None:
    """Whether the resolver validates, as far as ``dns`` shows.

    True when an apex answer or the TLD probe carries AD; False when the probe answered without
    it; None when the probe failed (or is not collected yet).
    """
    name = normalize_name(domain)
    if apex is None:
        apex = [dns.get(name, t) for t in APEX_QTYPES]
    if any(a.ok and a.ad for a in apex):
        return True
    probe = dns.get(*validation_probe(name))
    if probe.failed:
        return None
    return probe.ad




def _dnssec(name: str, dns: AnswerSet, apex: list[Answer]) -> bool | None:
    if any(a.failed for a in apex):
        return None
    if all(a.ad for a in apex):
        return True
    if any(a.ad for a in apex):
        return None  # disagreeing answers (a mixed fleet, or an odd zone): not a verdict
    return False if resolver_validates(name, dns, apex) else None


def _dane(name: str, dns: AnswerSet, apex: list[Answer]) -> bool | None:
    mx = apex[APEX_QTYPES.index("MX")]
    if mx.rcode != NOERROR or not mx_hosts(dns, name):
        return None
    if not mx.ad:
        # RFC 7672 2.2.1: an insecure MX RRset: DANE does not apply.
        return False if resolver_validates(name, dns, apex) else None
    states = [h.state for h in host_states(name, dns)]
    if NOT_DANE in states:
        return False
    if UNKNOWN in states:
        return None
    return True


def first_queries(name: str, dns: AnswerSet) -> tuple[tuple[str, str], ...]:
    """What :func:`analyze` asks first and alone (analysis.analyze_parts): the resolver probe,
    when no apex answer is validated (nor failed). The MX RRset is then insecure (RFC 7672
    2.2.1) and both columns wait on whether the resolver validates at all."""
    apex = [dns.get(name, t) for t in APEX_QTYPES]
    if any(a.failed or a.ad for a in apex):
        return ()
    return (validation_probe(name),)


def analyze(domain: str, dns: AnswerSet) -> dict[str, Any]:
    """``dane`` and ``dnssec`` of ``domain`` from its stored answers; never raises.

    Both read the same apex answers, taken once: this runs for every domain in every collection
    round until its answers are in.
    """
    name = normalize_name(domain)
    if not valid_qname(name) or domain_exists(name, dns) is not True:
        return {"dane": None, "dnssec": None}
    apex = [dns.get(name, t) for t in APEX_QTYPES]
    return {"dane": _dane(name, dns, apex), "dnssec": _dnssec(name, dns, apex)}
