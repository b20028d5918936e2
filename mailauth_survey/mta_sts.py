"""MTA-STS (RFC 8461): the ``_mta-sts`` TXT record. The HTTPS policy is added later here.

RFC 8461 3.1 is strict and so is this module: only records beginning with ``v=STSv1;`` (white
space allowed before the ``;`` by the ABNF) are STS records; others are ignored, even ones that
nearly match (``v=STSv1 id=...``, ``v=stsv1;``), which leave the status ``none``. Exactly one STS
record must remain, with exactly one ``id`` of 1-32 letters and digits; extension fields are
allowed. Anything else means senders assume no policy: ``invalid``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .answers import AnswerSet, domain_exists, normalize_name, valid_qname

COLUMNS = ("mta_sts_status", "mta_sts_id")

_VERSION = re.compile(r"v=STSv1[ \t]*;")
_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_EXTENSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}=[\x21-\x3a\x3c\x3e-\x7e]+")


@dataclass
class StsRecord:
    """One ``_mta-sts`` TXT record (RFC 8461 3.1)."""

    text: str
    is_sts: bool = False
    id: str | None = None
    extensions: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.is_sts and not self.errors


def is_sts_record(text: str) -> bool:
    """Whether the record begins with ``v=STSv1`` and its separator (RFC 8461 3.1)."""
    return bool(_VERSION.match(text))


def split_fields(text: str) -> list[str] | None:
    """The fields after the version, or None when the field delimiters are broken.

    ``field-delim = *WSP ";" *WSP``; one trailing delimiter is allowed, empty fields are not.
    """
    parts = [p.strip(" \t") for p in text.split(";")][1:]
    if parts and parts[-1] == "":
        parts.pop()
    if not parts or any(p == "" for p in parts):
        return None
    return parts


def parse_record(text: str) -> StsRecord:
    """Parse an ``_mta-sts`` TXT record; never raises."""
    rec = StsRecord(text=text)
    if not is_sts_record(text):
        rec.errors.append("RFC 8461 3.1: not an STS record: it must begin with 'v=STSv1;'")
        return rec
    rec.is_sts = True
    fields = split_fields(text)
    if fields is None:
        rec.errors.append("RFC 8461 3.1: empty field or no field after v=STSv1 (an id is required)")
        return rec
    id_fields = 0
    for f in fields:
        if f.startswith("id="):
            id_fields += 1
            value = f[3:]
            if id_fields > 1:
                rec.errors.append("RFC 8461 3.1: more than one id field")
            elif _ID.fullmatch(value):
                rec.id = value
            else:
                rec.errors.append(f"RFC 8461 3.1: id {value!r} is not 1-32 letters and digits")
        elif _EXTENSION.fullmatch(f):
            name, value = f.split("=", 1)
            rec.extensions.setdefault(name, value)
            hint = " (field names are case-sensitive: id=)" if name.lower() == "id" else ""
            rec.warnings.append(f"RFC 8461 3.1: extension field {name!r} ignored{hint}")
        else:
            rec.errors.append(f"RFC 8461 3.1: field {f[:60]!r} is not name=value")
    if id_fields == 0:
        rec.errors.append("RFC 8461 3.1: the id field is required")
    return rec


def analyze(domain: str, dns: AnswerSet) -> dict[str, Any]:
    """``mta_sts_status`` and ``mta_sts_id`` from ``_mta-sts.<domain>`` TXT."""
    status, rec = lookup(domain, dns)
    return {"mta_sts_status": status, "mta_sts_id": rec.id if rec and rec.valid else None}


def lookup(domain: str, dns: AnswerSet) -> tuple[str, StsRecord | None]:
    """(status, the single STS record if there is one) for ``domain``."""
    name = normalize_name(domain)
    if not valid_qname(name):
        return "none", None
    exists = domain_exists(name, dns)
    if exists is None:
        return "temperror", None
    qname = f"_mta-sts.{name}"
    if exists is False or not valid_qname(qname):
        return "none", None
    answer = dns.get(qname, "TXT")
    if answer.failed:
        return "temperror", None
    records = [t for t in answer.txt() if is_sts_record(t)]
    if not records:
        return "none", None
    if len(records) > 1:
        return "invalid", None
    rec = parse_record(records[0])
    return ("valid" if rec.valid else "invalid"), rec
