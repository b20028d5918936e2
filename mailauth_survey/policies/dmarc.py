"""DMARC: the policy record that applies to a domain (RFC 9989, which obsoletes RFC 7489).

Discovery follows RFC 9989 4.10.1: the record at ``_dmarc.<domain>``; failing that, the DNS Tree
Walk (4.10) up to the TLD, which stops early only at a record with ``psd=y`` or ``psd=n``, and
the Organizational Domain selection of 4.10.2 (the record with the fewest labels unless a
``psd`` tag says otherwise). So a subdomain whose parent and grandparent both publish records
inherits the grandparent's, exactly as RFC 9989 B.4.2 shows. A temporary failure anywhere on
the walk makes the verdict ``temperror``: an unanswered query might have held the record.

Choices where the RFCs leave room (each also stated where it is made):

* Several DMARC records at the domain's own ``_dmarc`` make its status ``invalid`` (receivers
  discard them all, RFC 9989 4.10 step 2); at an ancestor they are discarded and the walk goes
  on, with a warning.
* Missing or invalid ``p``, or an invalid ``sp``/``np``: with a syntactically valid ``rua`` the
  record acts as ``p=none`` for the domain and its subdomains (status ``valid``, finding in
  ``dmarc_errors``/``dmarc_warnings``); without one, receivers apply no DMARC: ``invalid``.
* A duplicated tag makes the record ``invalid`` (RFC 6376 3.2 tag-list syntax, RFC 9989 4.7).
* A policy inherited from a Public Suffix Domain (``psd=y``) is reported as ``organizational``,
  with a warning naming it.
* ``dmarc_rua_authorized``: destinations are compared by PSL organizational domain
  (``registrable_domain``) on both sides; an outside destination is authorized by a
  ``v=DMARC1`` TXT at ``<policy domain>._report._dmarc.<host>`` (RFC 7489 7.1, DMARC aggregate
  reporting "Verifying External Destinations"). Any destination definitely not authorizing →
  False; otherwise any temporary failure → None (unknown); else True. None without a valid rua.
* Lists are ``[]`` when known to be empty and None when unknown (``temperror``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..answers import (
    MISSING,
    Answer,
    AnswerSet,
    domain_exists,
    normalize_name,
    text_cache,
    txt_query,
    valid_qname,
)
from ..domains import registrable_domain
from ._syntax import check_uri, parse_tag_list, split_uri_list

COLUMNS = (
    "dmarc_status", "dmarc_record", "dmarc_source", "dmarc_p", "dmarc_sp", "dmarc_np",
    "dmarc_policy", "dmarc_pct", "dmarc_adkim", "dmarc_aspf", "dmarc_rua", "dmarc_ruf",
    "dmarc_rua_authorized", "dmarc_errors", "dmarc_warnings",
)  # fmt: skip

STATUSES = ("none", "valid", "invalid", "temperror")
POLICIES = ("none", "quarantine", "reject")

#: RFC 9989 4.10: no walk makes more than eight queries; longer names are cut to seven labels.
MAX_LABELS = 8

# "v" equals %s"DMARC1" then a separator or the end (RFC 9989 4.8): the tag name is an ABNF
# quoted string, so case-insensitive (RFC 5234 2.3); only the value DMARC1 is case-sensitive.
_VERSION = re.compile(r"[ \t]*[vV][ \t]*=[ \t]*DMARC1[ \t]*(?:;|$)")
_LOOKS_LIKE = re.compile(r"\s*v\s*=\s*dmarc", re.I)
_SIZE_SUFFIX = re.compile(r"!([0-9]+)([kmgt]?)$", re.I)
_FO_VALUES = frozenset("01ds")
_KNOWN_TAGS = frozenset(
    ["v", "p", "sp", "np", "psd", "t", "adkim", "aspf", "fo", "rua", "ruf", "pct", "rf", "ri"]
)
_REMOVED_TAGS = ("pct", "rf", "ri")


# --- the record -------------------------------------------------------------------------------


@dataclass
class DmarcRecord:
    """One DMARC policy record and what a receiver makes of it (RFC 9989 4.7, 4.8, 4.10.1)."""

    text: str
    is_dmarc: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    p: str | None = None  # valid published values, lower case
    sp: str | None = None
    np: str | None = None
    psd: str = "u"
    t: str = "n"
    adkim: str = "r"
    aspf: str = "r"
    fo: str = "0"
    pct: int | None = None
    rua: list[str] = field(default_factory=list)  # syntactically valid URIs, as published
    ruf: list[str] = field(default_factory=list)
    rua_hosts: list[str] = field(default_factory=list)
    acts_as_none: bool = False  # RFC 9989 4.10.1: treated as if it said p=none
    status: str = "invalid"  # "valid" or "invalid"
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.status == "valid"

    @property
    def effective_p(self) -> str | None:
        """The policy for the domain that published the record."""
        if not self.valid:
            return None
        return "none" if self.acts_as_none else self.p

    @property
    def effective_sp(self) -> str | None:
        """The policy for existing subdomains: sp, else p."""
        if not self.valid:
            return None
        return "none" if self.acts_as_none else (self.sp or self.p)

    @property
    def effective_np(self) -> str | None:
        """The policy for non-existent subdomains: np, else sp, else p."""
        if not self.valid:
            return None
        return "none" if self.acts_as_none else (self.np or self.sp or self.p)


def is_dmarc_record(text: str) -> bool:
    """Whether a TXT record starts with the ``v=DMARC1`` tag (RFC 9989 4.7, 4.8: ``V=`` too;
    the value ``DMARC1`` is case-sensitive)."""
    return bool(_VERSION.match(text))


def parse_record(text: str) -> DmarcRecord:
    """Parse one TXT record as a DMARC policy record; never raises.

    ``status`` is ``valid`` when a receiver would apply it (possibly as ``p=none``), else
    ``invalid``; ``errors`` name what a receiver discards, ``warnings`` what is legal but
    worth knowing.
    """
    rec = DmarcRecord(text=text)
    if not is_dmarc_record(text):
        rec.errors.append(
            "RFC 9989 4.7: not a DMARC record: it must start with the tag v=DMARC1 (DMARC1 is case-sensitive)"
        )
        return rec
    rec.is_dmarc = True
    if text[:1] in (" ", "\t"):
        rec.warnings.append(
            "RFC 9989 4.8: white space before v=DMARC1 is outside the formal syntax; some receivers ignore the record"
        )
    tl = parse_tag_list(text, fold_case=True)  # RFC 9989 4.8 / RFC 7489 6.4 ABNF quoted strings
    rec.tags = tl.tags
    rec.errors += [f"RFC 9989 4.8: {e}; discarded" for e in tl.errors]
    for name in tl.duplicates:
        rec.errors.append(
            f"RFC 9989 4.7 (RFC 6376 3.2 tag-list): tag {name!r} appears more than once; the record is invalid"
        )
    _read_tags(rec)
    _decide(rec, duplicates=bool(tl.duplicates))
    return rec


def _read_tags(rec: DmarcRecord) -> None:
    tags = rec.tags
    for name in tags:
        if name not in _KNOWN_TAGS:
            rec.warnings.append(f"RFC 9989 4.7: unknown tag {name!r} ignored")
    for name in ("p", "sp", "np"):
        if name in tags:
            value = tags[name].lower()
            if value in POLICIES:
                setattr(rec, name, value)
            else:
                rec.errors.append(
                    f"RFC 9989 4.7: {name}={tags[name]!r} is not none, quarantine or reject"
                )
    rec.psd = _choice(rec, "psd", ("y", "n", "u"), "u")
    rec.t = _choice(rec, "t", ("y", "n"), "n")
    rec.adkim = _choice(rec, "adkim", ("r", "s"), "r")
    rec.aspf = _choice(rec, "aspf", ("r", "s"), "r")
    if "fo" in tags:
        _read_fo(rec, tags["fo"])
    if "rua" in tags:
        rec.rua, rec.rua_hosts = _read_uris(rec, "rua", tags["rua"])
    if "ruf" in tags:
        rec.ruf, _ = _read_uris(rec, "ruf", tags["ruf"])
    for name in _REMOVED_TAGS:
        if name in tags:
            rec.warnings.append(
                f"RFC 9989 C.5.2: the {name} tag was removed; RFC 7489 receivers may still honour {name}={tags[name]}"
            )
    if "pct" in tags:
        value = tags["pct"]
        if value.isascii() and value.isdigit() and len(value) <= 3 and int(value) <= 100:
            rec.pct = int(value)
        else:
            rec.errors.append(f"RFC 7489 6.3: pct={value!r} is not an integer from 0 to 100")
    if rec.t == "y" and "t" in tags:
        rec.warnings.append("RFC 9989 4.7: t=y asks receivers to apply one policy level less")


def _choice(rec: DmarcRecord, name: str, allowed: tuple[str, ...], default: str) -> str:
    """A single-letter tag's value, or the default with an error when it is not allowed."""
    if name not in rec.tags:
        return default
    value = rec.tags[name].lower()
    if value in allowed:
        return value
    rec.errors.append(
        f"RFC 9989 4.7: {name}={rec.tags[name]!r} is not one of {', '.join(allowed)}; default {default!r} applies"
    )
    return default


def _read_fo(rec: DmarcRecord, value: str) -> None:
    """fo: colon-separated 0, 1, d, s (RFC 9989 4.7). The ABNF (RFC 7489 6.4 dmarc-fo, kept by
    RFC 9989 4.8) is ( "0" / "1" / "d" / "s" ) *(*WSP ":" *WSP ( ... )): any of them, in any
    number, so ``0:1:d:s`` is grammatical."""
    items = [v.strip(" \t").lower() for v in value.split(":")]
    if all(v in _FO_VALUES for v in items):
        rec.fo = ":".join(items)
    else:
        rec.errors.append(
            f"RFC 9989 4.7: fo={value!r} is not a valid option list; default '0' applies"
        )
    if "ruf" not in rec.tags:
        rec.warnings.append("RFC 9989 4.7: fo is ignored without a ruf tag")


def _read_uris(rec: DmarcRecord, name: str, value: str) -> tuple[list[str], list[str]]:
    """The syntactically valid URIs of a rua/ruf list and their hosts; findings for the rest."""
    good: list[str] = []
    hosts: list[str] = []
    for uri in split_uri_list(value):
        if not uri:
            rec.errors.append(f"RFC 9989 4.8: empty URI in {name}")
            continue
        bare = uri
        size = _SIZE_SUFFIX.search(uri)
        if size:
            bare = uri[: size.start()]
            rec.warnings.append(
                f"RFC 9989 4.8: size limit {size.group(0)!r} on {name} URI is obsolete; receivers ignore it"
            )
        problem, host = check_uri(bare)
        if problem is None and "!" in bare:
            problem = "has an unencoded '!' (RFC 9989 4.8)"
        if problem:
            rec.errors.append(f"RFC 9989 4.8: {name} URI {uri!r} {problem}; ignored")
            continue
        if not bare.lower().startswith("mailto:"):
            rec.warnings.append(
                f"RFC 9989 4.7: {name} URI {uri!r} is not mailto:, the only scheme receivers must support"
            )
        good.append(uri)
        if host and host not in hosts:
            hosts.append(host)
    return good, hosts


def _decide(rec: DmarcRecord, duplicates: bool) -> None:
    """Valid or invalid, and the p=none fallback of RFC 9989 4.10.1."""
    if duplicates:
        rec.status = "invalid"
        return
    bad = []
    if rec.p is None:
        bad.append("has no valid p tag" if "p" in rec.tags else "has no p tag")
    for name in ("sp", "np"):
        if name in rec.tags and getattr(rec, name) is None:
            bad.append(f"has an invalid {name} tag")
    if not bad:
        rec.status = "valid"
        return
    what = " and ".join(bad)
    if rec.rua:
        rec.status = "valid"
        rec.acts_as_none = True
        note = f"RFC 9989 4.10.1: the record {what}; with a valid rua, receivers act as if p=none"
        if bad == ["has no p tag"]:
            rec.warnings.append(note + " (RFC 7489 receivers ignore a record without p)")
        else:
            rec.errors.append(note)
    else:
        rec.status = "invalid"
        rec.errors.append(
            f"RFC 9989 4.10.1: the record {what} and no valid rua; receivers apply no DMARC policy"
        )


# --- discovery --------------------------------------------------------------------------------


@dataclass
class _Fetch:
    """The DMARC records at one ``_dmarc`` name, or why they are unknown."""

    qname: str
    failure: str | None = None  # rcode of a temporary failure
    records: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # look like DMARC but are not


@text_cache
def _parsed(text: str) -> DmarcRecord:
    """:func:`parse_record`, cached for :func:`analyze` (which runs once per collection round
    and only reads the record; the organizational domains' records recur across domains)."""
    return parse_record(text)


def _fetch(qname: str, dns: AnswerSet) -> _Fetch:
    """Ask one ``_dmarc`` TXT and keep the records that start with v=DMARC1 (RFC 9989 4.10 step 2)."""
    answer: Answer = dns.get(qname, "TXT")
    out = _Fetch(qname)
    if answer.failed:
        out.failure = answer.rcode
        return out
    for text in answer.txt():
        if is_dmarc_record(text):
            out.records.append(text)
        elif _LOOKS_LIKE.match(text):
            out.ignored.append(text)
    return out


def _ignored_warnings(f: _Fetch) -> list[str]:
    return [
        f"RFC 9989 4.10: TXT at {f.qname} ignored: {t[:80]!r} does not start with v=DMARC1 (DMARC1 is case-sensitive)"
        for t in f.ignored
    ]


@dataclass
class _Walk:
    found: list[tuple[str, DmarcRecord]] = field(default_factory=list)  # longest name first
    failure: str | None = None
    warnings: list[str] = field(default_factory=list)


def walk_targets(domain: str) -> list[str]:
    """The names the RFC 9989 4.10 tree walk asks after the domain itself, in order.

    The parent first, or, for a name of more than eight labels, its last seven labels; then one
    label less each time, down to and including the TLD.
    """
    labels = domain.split(".")
    start = labels[1:] if len(labels) <= MAX_LABELS else labels[-(MAX_LABELS - 1) :]
    return [".".join(start[i:]) for i in range(len(start))]


def _tree_walk(domain: str, dns: AnswerSet) -> _Walk:
    """Walk the ancestors until a psd=y/psd=n record or the TLD (RFC 9989 4.10 steps 3-7)."""
    walk = _Walk()
    for target in walk_targets(domain):
        qname = f"_dmarc.{target}"
        if not valid_qname(qname):
            continue  # such a name cannot exist, so it holds no record
        f = _fetch(qname, dns)
        if f.failure:
            walk.failure = walk.failure or (
                f"{f.failure} for {qname} TXT during the RFC 9989 4.10 tree walk"
            )
            if f.failure == MISSING:
                # Not collected yet: go on, so that one round asks every level of the walk
                # (the levels below are asked anyway unless one has a psd= tag, which still
                # ends it here). The result is incomplete; the next round decides.
                continue
            return walk
        walk.warnings += _ignored_warnings(f)
        if len(f.records) > 1:
            walk.warnings.append(
                f"RFC 9989 4.10 step 6: {len(f.records)} DMARC records at {qname} are all discarded"
            )
            continue
        if f.records:
            rec = _parsed(f.records[0])
            walk.found.append((target, rec))
            if rec.psd in ("y", "n"):
                break
    return walk


def select_policy_domain(
    domain: str, found: list[tuple[str, DmarcRecord]]
) -> tuple[str, str, bool]:
    """(Organizational Domain, domain whose record applies, from a PSD) per RFC 9989 4.10.2.

    ``found`` holds the walk's records, longest name first. psd=n marks the Organizational
    Domain; psd=y marks a PSD, whose child on the path is the Organizational Domain; otherwise
    the record with the fewest labels wins. When the Organizational Domain has no record, the
    PSD's record applies (RFC 9989 4.10.1).
    """
    org = found[-1][0]
    for name, rec in found:
        if rec.psd == "n":
            org = name
            break
        if rec.psd == "y" and name != domain:
            org = ".".join(domain.split(".")[-(name.count(".") + 2) :])
            break
    names = [n for n, _ in found]
    if org in names:
        return org, org, False
    return org, found[-1][0], True


# --- the columns ------------------------------------------------------------------------------


def _columns(
    status: str, errors: list[str] | None = None, warnings: list[str] | None = None
) -> dict[str, Any]:
    cols: dict[str, Any] = dict.fromkeys(COLUMNS)
    cols["dmarc_status"] = status
    if status != "temperror":
        cols["dmarc_rua"], cols["dmarc_ruf"] = [], []
    cols["dmarc_errors"] = list(errors or [])
    cols["dmarc_warnings"] = list(warnings or [])
    return cols


def _record_columns(
    rec: DmarcRecord, source: str, policy: str | None, warnings: list[str]
) -> dict[str, Any]:
    cols = _columns(rec.status, rec.errors, warnings + rec.warnings)
    cols.update(
        dmarc_record=rec.text,
        dmarc_source=source,
        dmarc_p=rec.p,
        dmarc_sp=rec.sp,
        dmarc_np=rec.np,
        dmarc_policy=policy,
        dmarc_pct=rec.pct,
        dmarc_adkim=rec.adkim,
        dmarc_aspf=rec.aspf,
        dmarc_rua=list(rec.rua),
        dmarc_ruf=list(rec.ruf),
    )
    return cols


#: Where a domain's own DMARC record is (RFC 9989 4.10 step 1).
PREFIX = "_dmarc"


def first_queries(name: str, dns: AnswerSet) -> tuple[tuple[str, str], ...]:
    """Its own TXT record, what :func:`analyze` asks first and alone (analysis.analyze_parts)."""
    return txt_query(PREFIX, name)


def analyze(domain: str, dns: AnswerSet) -> dict[str, Any]:
    """The DMARC columns of ``domain`` (SPEC.md), asking ``dns`` only what the verdict needs."""
    name = normalize_name(domain)
    if not valid_qname(name):
        return _columns("none", [f"{domain!r} is not a valid domain name; nothing was asked"])
    exists = domain_exists(name, dns)
    if exists is None:
        return _columns(
            "temperror", [f"no definite answer at the apex of {name}; DMARC not evaluated"]
        )
    warnings: list[str] = []
    own_qname = f"{PREFIX}.{name}"
    if exists and valid_qname(own_qname):
        own = _fetch(own_qname, dns)
        if own.failure:
            return _columns(
                "temperror",
                [f"{own.failure} for {own_qname} TXT: the record is unknown, not absent"],
            )
        warnings += _ignored_warnings(own)
        if len(own.records) > 1:
            cols = _columns(
                "invalid",
                [
                    f"RFC 9989 4.10 step 2: {len(own.records)} DMARC records at {own_qname}; receivers discard them all"
                ]
                + [f"record: {t!r}" for t in own.records],
                warnings,
            )
            cols["dmarc_source"] = "domain"
            return cols
        if own.records:
            rec = _parsed(own.records[0])
            cols = _record_columns(rec, "domain", rec.effective_p, warnings)
            _authorize(cols, rec, name, dns)
            return cols
    walk = _tree_walk(name, dns)
    warnings += walk.warnings
    if walk.failure:
        return _columns(
            "temperror", [walk.failure + ": the record is unknown, not absent"], warnings
        )
    if not walk.found:
        return _columns("none", [], warnings)
    org, policy_domain, from_psd = select_policy_domain(name, walk.found)
    rec = dict(walk.found)[policy_domain]
    if from_psd:
        warnings.append(
            f"RFC 9989 4.10.1: policy from the Public Suffix Domain {policy_domain} (psd=y); "
            f"the Organizational Domain {org} publishes none"
        )
    psl_org = registrable_domain(name)
    if psl_org and psl_org != policy_domain:
        warnings.append(
            f"RFC 9989 4.10: policy from _dmarc.{policy_domain}; RFC 7489 receivers (Public Suffix List) use _dmarc.{psl_org} instead"
        )
    policy = rec.effective_np if exists is False else rec.effective_sp
    cols = _record_columns(rec, "organizational", policy, warnings)
    _authorize(cols, rec, policy_domain, dns)
    return cols


def _authorize(cols: dict[str, Any], rec: DmarcRecord, policy_domain: str, dns: AnswerSet) -> None:
    """Fill ``dmarc_rua_authorized`` for a valid record with rua (see the module docstring)."""
    if not rec.valid or not rec.rua:
        return
    own_org = registrable_domain(policy_domain) or policy_domain
    result: bool | None = True
    for host in rec.rua_hosts:
        if (registrable_domain(host) or host) == own_org:
            continue
        verdict = external_authorized(policy_domain, host, dns)
        qname = f"{policy_domain}._report._dmarc.{host}"
        if verdict is False:
            cols["dmarc_warnings"].append(
                f"RFC 7489 7.1: rua destination {host} is outside {own_org} and does not authorize "
                f"reports (no v=DMARC1 TXT at {qname}); receivers will not send them"
            )
            result = False
            break
        if verdict is None:
            cols["dmarc_warnings"].append(
                f"authorization of rua destination {host} unknown: {qname} failed"
            )
            result = None
    cols["dmarc_rua_authorized"] = result


def external_authorized(policy_domain: str, host: str, dns: AnswerSet) -> bool | None:
    """Whether ``host`` accepts reports for ``policy_domain``; None on a temporary failure.

    RFC 7489 7.1 / aggregate reporting: a TXT at ``<policy domain>._report._dmarc.<host>``
    that starts with ``v=DMARC1``. A name too long for the DNS cannot authorize.
    """
    qname = f"{policy_domain}._report._dmarc.{host}"
    if not valid_qname(qname):
        return False
    answer = dns.get(qname, "TXT")
    if answer.failed:
        return None
    return any(is_dmarc_record(t) for t in answer.txt())
