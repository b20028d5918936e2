"""SMTP TLS Reporting (RFC 8460): the ``_smtp._tls`` TXT record.

RFC 8460 3: only records beginning with ``v=TLSRPTv1;`` count (others are ignored, so a near
miss leaves the status ``none``); exactly one must remain. It needs a ``rua`` field: a
comma-separated list of URIs, at least one of them ``mailto:`` or ``https:`` (the schemes RFC
8460 3 defines); a URI of another scheme is kept with a warning. The ABNF (``tlsrpt-record =
tlsrpt-version 1*(field-delim tlsrpt-field) [field-delim]``) lets ``rua`` repeat: every field's
URIs count, in published order. An empty ``rua=`` (or an empty URI in the list) matches neither
``tlsrpt-rua`` (which needs a URI) nor an extension (whose value is ``1*``), so it is a syntax
error, and any syntax error makes the record ``invalid`` ("syntactically invalid": senders
assume no TLSRPT). ``tlsrpt_rua`` lists the URIs as published, for a valid record only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..answers import AnswerSet, domain_exists, normalize_name, txt_query, valid_qname
from ._syntax import EXTENSION, check_uri, split_fields, split_uri_list

COLUMNS = ("tlsrpt_status", "tlsrpt_rua")

_VERSION = re.compile(r"v=TLSRPTv1[ \t]*;")
_SCHEMES = ("mailto:", "https:")


@dataclass
class TlsRptRecord:
    """One ``_smtp._tls`` TXT record (RFC 8460 3)."""

    text: str
    is_tlsrpt: bool = False
    rua: list[str] = field(default_factory=list)
    extensions: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.is_tlsrpt and not self.errors


def is_tlsrpt_record(text: str) -> bool:
    return bool(_VERSION.match(text))


def parse_record(text: str) -> TlsRptRecord:
    """Parse a ``_smtp._tls`` TXT record; never raises."""
    rec = TlsRptRecord(text=text)
    if not is_tlsrpt_record(text):
        rec.errors.append("RFC 8460 3: not a TLSRPT record: it must begin with 'v=TLSRPTv1;'")
        return rec
    rec.is_tlsrpt = True
    fields = split_fields(text)
    if fields is None:
        rec.errors.append("RFC 8460 3: empty field or no field after v=TLSRPTv1 (rua is required)")
        return rec
    seen_rua = False
    for f in fields:
        if f.startswith("rua="):
            seen_rua = True  # (the field may repeat: 1*(field-delim tlsrpt-field))
            _read_rua(rec, f[4:])
        elif EXTENSION.fullmatch(f):
            name, value = f.split("=", 1)
            rec.extensions.setdefault(name, value)
            rec.warnings.append(f"RFC 8460 3: extension field {name!r} ignored")
        else:
            rec.errors.append(f"RFC 8460 3: field {f[:60]!r} is not name=value")
    if not seen_rua:
        rec.errors.append("RFC 8460 3: the rua field is required")
    elif rec.rua and not any(u.lower().startswith(_SCHEMES) for u in rec.rua):
        rec.errors.append("RFC 8460 3: no rua URI is mailto: or https:")
    return rec


def _read_rua(rec: TlsRptRecord, value: str) -> None:
    """One rua field's URIs, added to those of the fields before it."""
    for uri in split_uri_list(value):
        problem, _host = check_uri(uri)
        if problem:
            rec.errors.append(f"RFC 8460 3: rua URI {uri!r} {problem}")
            continue
        if not uri.lower().startswith(_SCHEMES):
            rec.warnings.append(f"RFC 8460 3: rua URI {uri!r} is neither mailto: nor https:")
        rec.rua.append(uri)


#: Where the TLS-RPT TXT record is (RFC 8460 3).
PREFIX = "_smtp._tls"


def first_queries(name: str, dns: AnswerSet) -> tuple[tuple[str, str], ...]:
    """Its own TXT record, what :func:`analyze` asks first and alone (analysis.analyze_parts)."""
    return txt_query(PREFIX, name)


def analyze(domain: str, dns: AnswerSet) -> dict[str, Any]:
    """``tlsrpt_status`` and ``tlsrpt_rua`` from ``_smtp._tls.<domain>`` TXT."""
    name = normalize_name(domain)
    if not valid_qname(name):
        return {"tlsrpt_status": "none", "tlsrpt_rua": []}
    exists = domain_exists(name, dns)
    if exists is None:
        return {"tlsrpt_status": "temperror", "tlsrpt_rua": None}
    qname = f"{PREFIX}.{name}"
    if exists is False or not valid_qname(qname):
        return {"tlsrpt_status": "none", "tlsrpt_rua": []}
    answer = dns.get(qname, "TXT")
    if answer.failed:
        return {"tlsrpt_status": "temperror", "tlsrpt_rua": None}
    records = [t for t in answer.txt() if is_tlsrpt_record(t)]
    if not records:
        return {"tlsrpt_status": "none", "tlsrpt_rua": []}
    if len(records) > 1:
        return {"tlsrpt_status": "invalid", "tlsrpt_rua": []}
    rec = parse_record(records[0])
    if not rec.valid:
        return {"tlsrpt_status": "invalid", "tlsrpt_rua": []}
    return {"tlsrpt_status": "valid", "tlsrpt_rua": list(rec.rua)}
