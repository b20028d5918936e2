"""BIMI (draft-brand-indicators-for-message-identification): the ``default._bimi`` record.

Assertion Record Discovery (draft 7.2): ``default._bimi.<domain>``; only when no record starting
with ``v=BIMI1`` is there, ``default._bimi.<organizational domain>`` (by the Public Suffix List,
as the draft imports it from RFC 7489). More than one record → ``invalid`` (7.2 step 9).

The record (draft 4.3) uses the DKIM tag-value syntax: ``v=BIMI1`` first; ``l=`` required,
empty or one ``https:`` URI not naming another image format than SVG (4.3.2); ``a=`` optional,
empty or one ``https:`` URI; ``lps=`` true/false; an invalid ``avp=`` is ignored; unknown tags
are ignored.

Case: the draft's ABNF writes tag names as quoted strings (``"v"``, ``"l"``, ``"lps"``), which are
case-insensitive (RFC 5234 2.3), so ``V=BIMI1; L=...`` is a record. Values are not repaired
(4.3: "MUST NOT attempt to fix ... capitalization errors"): the version value must be exactly
``BIMI1`` ("MUST match precisely"), and ``lps``/``avp`` values are ``%s`` strings.

A declination (4.3.1: ``l=`` and ``a=`` both empty, ``a=`` absent counting as empty, e.g.
``v=BIMI1; l=;``) is ``declined``: the draft calls it distinct from publishing no record. It is
not adoption (not in the ``bimi`` metric), and, being a record, it stops the fallback to the
organizational domain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..answers import AnswerSet, domain_exists, normalize_name, txt_query, valid_qname
from ..domains import registrable_domain
from ._syntax import check_uri, parse_tag_list

COLUMNS = ("bimi_status",)
#: Every ``bimi_status`` (SPEC.md).
STATUSES = ("none", "valid", "declined", "invalid", "temperror")
SELECTOR = "default"
#: Where the default BIMI Assertion Record of a domain is.
PREFIX = f"{SELECTOR}._bimi"

_VERSION = re.compile(r"[ \t]*[vV][ \t]*=[ \t]*BIMI1[ \t]*(?:;|$)")
_OTHER_IMAGE = re.compile(r"\.(png|jpe?g|gif|bmp|webp|ico|tiff?|heic|avif)$", re.I)
_KNOWN_TAGS = frozenset({"v", "l", "a", "lps", "avp"})


@dataclass
class BimiRecord:
    """One BIMI Assertion Record."""

    text: str
    is_bimi: bool = False
    location: str | None = None  # l=, None when empty
    evidence: str | None = None  # a=, None when empty or absent
    lps: bool = False
    avp: str = "brand"
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def declined(self) -> bool:
        """The explicit declination to publish of draft 4.3.1."""
        return self.valid and self.location is None and self.evidence is None

    @property
    def valid(self) -> bool:
        return self.is_bimi and not self.errors

    @property
    def status(self) -> str:
        if not self.valid:
            return "invalid"
        return "declined" if self.declined else "valid"


def is_bimi_record(text: str) -> bool:
    """Whether the record starts with ``v=BIMI1`` (draft 4.3, 7.2 step 4; ``V=`` too)."""
    return bool(_VERSION.match(text))


def parse_record(text: str) -> BimiRecord:
    """Parse a BIMI Assertion Record; never raises."""
    rec = BimiRecord(text=text)
    if not is_bimi_record(text):
        rec.errors.append("BIMI draft 4.3: not a BIMI record: it must start with v=BIMI1")
        return rec
    rec.is_bimi = True
    tl = parse_tag_list(text, fold_case=True)  # names are ABNF quoted strings (draft 4.3)
    rec.errors += [f"BIMI draft 4.3 (RFC 6376 3.2): {e}" for e in tl.errors]
    rec.errors += [
        f"BIMI draft 4.3 (RFC 6376 3.2): tag {n!r} appears more than once" for n in tl.duplicates
    ]
    tags = tl.tags
    if "l" not in tags:
        rec.errors.append("BIMI draft 4.3: the l= tag is required (empty to decline)")
    else:
        rec.location = _https_uri(rec, "l", tags["l"])
        if rec.location and _OTHER_IMAGE.search(rec.location.split("?", 1)[0]):
            rec.errors.append(
                f"BIMI draft 4.3.2: l= {rec.location!r} names an image format other than SVG"
            )
    if "a" in tags:
        rec.evidence = _https_uri(rec, "a", tags["a"])
    if "lps" in tags:
        if tags["lps"] in ("true", "false"):
            rec.lps = tags["lps"] == "true"
        else:
            rec.errors.append(f"BIMI draft 4.3: lps={tags['lps']!r} is not true or false")
    if "avp" in tags:
        if tags["avp"] in ("brand", "personal"):
            rec.avp = tags["avp"]
        else:
            rec.warnings.append(
                f"BIMI draft 4.3: avp={tags['avp']!r} is not brand or personal; ignored"
            )
    for name in tags:
        if name not in _KNOWN_TAGS:
            rec.warnings.append(f"BIMI draft 4.3: unknown tag {name!r} ignored")
    if rec.declined:
        rec.warnings.append("BIMI draft 4.3.1: l= and a= are empty: the domain declines to publish")
    return rec


def _https_uri(rec: BimiRecord, name: str, value: str) -> str | None:
    """The single https URI of l= or a=, None when empty; an error otherwise."""
    value = value.strip(" \t\r\n")
    if not value:
        return None
    problem, _host = check_uri(value)
    if problem is None and not value.lower().startswith("https://"):
        problem = "is not an https: URI"
    if problem is None and "," in value:
        problem = "must be a single URI (commas must be encoded)"
    if problem:
        rec.errors.append(f"BIMI draft 4.3: {name}= {value[:80]!r} {problem}")
        return None
    return value


def first_queries(name: str, dns: AnswerSet) -> tuple[tuple[str, str], ...]:
    """Its own TXT record, what :func:`analyze` asks first and alone (analysis.analyze_parts)."""
    return txt_query(PREFIX, name)


def analyze(domain: str, dns: AnswerSet) -> dict[str, Any]:
    """``bimi_status`` of ``domain`` (see the module docstring)."""
    name = normalize_name(domain)
    if not valid_qname(name):
        return {"bimi_status": "none"}
    exists = domain_exists(name, dns)
    if exists is None:
        return {"bimi_status": "temperror"}
    if exists is False:
        return {"bimi_status": "none"}
    status = _status_at(name, dns)
    org = registrable_domain(name)
    if status is None and org and org != name:
        status = _status_at(org, dns)
    return {"bimi_status": status or "none"}


def _status_at(domain: str, dns: AnswerSet) -> str | None:
    """The status of ``default._bimi.<domain>``, None when it holds no BIMI record."""
    qname = f"{PREFIX}.{domain}"
    if not valid_qname(qname):
        return None
    answer = dns.get(qname, "TXT")
    if answer.failed:
        return "temperror"
    records = [t for t in answer.txt() if is_bimi_record(t)]
    if not records:
        return None
    if len(records) > 1:
        return "invalid"
    return parse_record(records[0]).status
