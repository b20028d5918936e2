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

from ..answers import AnswerSet, domain_exists, normalize_name, txt_query, valid_qname
from ._syntax import EXTENSION, split_fields

COLUMNS = ("mta_sts_status", "mta_sts_id")

_VERSION = re.compile(r"v=STSv1[ \t]*;")
_ID = re.compile(r"[A-Za-z0-9]{1,32}")


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
        elif EXTENSION.fullmatch(f):
            name, value = f.split("=", 1)
            rec.extensions.setdefault(name, value)
            hint = " (field names are case-sensitive: id=)" if name.lower() == "id" else ""
            rec.warnings.append(f"RFC 8461 3.1: extension field {name!r} ignored{hint}")
        else:
            rec.errors.append(f"RFC 8461 3.1: field {f[:60]!r} is not name=value")
    if id_fields == 0:
        rec.errors.append("RFC 8461 3.1: the id field is required")
    return rec


#: Where the MTA-STS TXT record is (RFC 8461 3.1).
PREFIX = "_mta-sts"


def first_queries(name: str, dns: AnswerSet) -> tuple[tuple[str, str], ...]:
    """Its own TXT record, what :func:`analyze` asks first and alone (analysis.analyze_parts)."""
    return txt_query(PREFIX, name)


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
    qname = f"{PREFIX}.{name}"
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


# --- The HTTPS policy (RFC 8461 3.2, 3.3, 4.1) ----------------------------------------------------
#
# Pure functions over a stored :class:`~mailauth_survey.probes.results.PolicyFetch`; the fetch
# itself is in ``probes.https``. ``policy_columns`` is what the domains table gets; ``reanalyze``
# can rebuild it from the probes table with no network.

POLICY_COLUMNS = ("mta_sts_policy_status", "mta_sts_mode", "mta_sts_max_age", "mta_sts_mx_match")

#: ``mta_sts_policy_status`` words. ``none``: no valid ``_mta-sts`` TXT record, so senders do not
#: look for a policy (RFC 8461 3.1); ``valid``/``invalid``: a policy was served (HTTP 200) and
#: parses cleanly / does not; the others say why no policy could be had: ``redirect`` (3xx, never
#: followed), ``http-error`` (another status, or a broken HTTP response), ``too-large`` (over
#: 64 KiB), ``tls-error`` (certificate invalid or for another name, handshake failure),
#: ``timeout``, ``error`` (policy host without address, DNS failure, connection refused or
#: unreachable), ``skipped`` (not fetched by the scanner's choice: opt-out list or a non-global
#: address). Null when a valid TXT record was found but no fetch was made, or the TXT lookup
#: itself failed (unknown, never "none").
POLICY_STATUSES = (
    "none",
    "valid",
    "invalid",
    "redirect",
    "http-error",
    "too-large",
    "tls-error",
    "timeout",
    "error",
    "skipped",
)

MAX_AGE_LIMIT = 31557600  # RFC 8461 3.2: about one year
POLICY_MODES = ("enforce", "testing", "none")

_POLICY_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}")
_MAX_AGE = re.compile(r"[0-9]{1,10}")
_LDH_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_FETCH_STATUS_TO_POLICY = {
    "redirect": "redirect",
    "http-error": "http-error",
    "too-large": "too-large",
    "tls-error": "tls-error",
    "timeout": "timeout",
    "skipped": "skipped",
}


@dataclass
class PolicyRecord:
    """One ``mta-sts.txt`` policy body (RFC 8461 3.2)."""

    text: str
    version: str | None = None
    mode: str | None = None
    max_age: int | None = None
    mx: list[str] = field(default_factory=list)
    extensions: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.errors


def _valid_mx_pattern(pattern: str) -> bool:
    """``["*."] Domain`` (RFC 8461 3.2): LDH labels. RFC 5321 4.1.2's ``Domain = sub-domain
    *("." sub-domain)`` takes one label as well as several, so ``mx: localhost`` is grammatical
    (it matches an MX host of that name only)."""
    name = pattern[2:] if pattern.startswith("*.") else pattern
    return 0 < len(name) <= 253 and all(_LDH_LABEL.fullmatch(lb) for lb in name.split("."))


def parse_policy(text: str) -> PolicyRecord:
    """Parse a policy body; never raises.

    RFC 8461 3.2: lines end with LF or CRLF; each is ``key: value`` (``field-delim = ":" *WSP``,
    white space allowed at the end of a line); keys are case-sensitive; ``version: STSv1``,
    ``mode`` (enforce, testing, none) and ``max_age`` (1-10 digits, at most 31557600) are
    required, ``mx`` patterns (``["*."] Domain``) too unless the mode is ``none``. Unknown keys
    are ignored (a warning); a non-repeated key given twice keeps its first value (a warning).
    The ABNF does not fix the order of fields, so ``version`` not first is only a warning (some
    validators require it first). Empty lines are tolerated. Anything that is not ``key: value``
    is an error, as are bad values of the known keys.
    """
    rec = PolicyRecord(text=text)
    if not isinstance(text, str):
        rec.errors.append("RFC 8461 3.2: the policy is not text")
        return rec
    lines = text.split("\n")
    seen: set[str] = set()
    first_key: str | None = None
    for number, raw in enumerate(lines, 1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if line.strip(" \t") == "":
            continue
        key, sep, value = line.partition(":")
        if not sep or not _POLICY_KEY.fullmatch(key):
            rec.errors.append(f"RFC 8461 3.2: line {number} {line[:60]!r} is not 'key: value'")
            continue
        value = value.strip(" \t")
        if first_key is None:
            first_key = key
        if key in seen and key != "mx":
            rec.warnings.append(f"RFC 8461 3.2: {key} repeated on line {number}; first one used")
            continue
        seen.add(key)
        if key == "version":
            if value == "STSv1":
                rec.version = value
            else:
                rec.errors.append(f"RFC 8461 3.2: version {value[:40]!r} is not 'STSv1'")
        elif key == "mode":
            if value in POLICY_MODES:
                rec.mode = value
            else:
                rec.errors.append(
                    f"RFC 8461 3.2: mode {value[:40]!r} is not enforce, testing or none"
                )
        elif key == "max_age":
            if _MAX_AGE.fullmatch(value) and int(value) <= MAX_AGE_LIMIT:
                rec.max_age = int(value)
            else:
                rec.errors.append(
                    f"RFC 8461 3.2: max_age {value[:40]!r} is not an integer 0-{MAX_AGE_LIMIT}"
                )
        elif key == "mx":
            pattern = value.lower()
            if pattern.endswith(".") and _valid_mx_pattern(pattern[:-1]):
                rec.warnings.append(f"RFC 8461 3.2: mx {value[:60]!r} has a trailing dot")
                pattern = pattern[:-1]
            if _valid_mx_pattern(pattern):
                rec.mx.append(pattern)
            else:
                rec.errors.append(f"RFC 8461 3.2: mx {value[:60]!r} is not a host name pattern")
        else:
            rec.extensions.setdefault(key, value)
            hint = " (keys are case-sensitive)" if key.lower() in _KNOWN_KEYS else ""
            rec.warnings.append(f"RFC 8461 3.2: unknown key {key[:32]!r} ignored{hint}")
    for key in ("version", "mode", "max_age"):
        if key not in seen:
            rec.errors.append(f"RFC 8461 3.2: the {key} field is required")
    if rec.mode in ("enforce", "testing") and "mx" not in seen:
        rec.errors.append("RFC 8461 3.2: mx patterns are required unless the mode is none")
    if first_key is not None and first_key != "version" and "version" in seen:
        rec.warnings.append("RFC 8461 3.2: version is not the first field")
    return rec


_KNOWN_KEYS = frozenset({"version", "mode", "max_age", "mx"})


def mx_matches(mx_host: str, pattern: str) -> bool:
    """Whether an MX host name matches a policy ``mx`` pattern (RFC 8461 4.1).

    Exact match, or ``*.`` + suffix where the wildcard stands for exactly one whole leftmost
    label: ``*.example.jp`` matches ``mx1.example.jp``, not ``example.jp`` nor ``a.b.example.jp``.
    Case-insensitive; trailing dots ignored. Also used for certificate names (RFC 6125 with the
    same restriction). Never raises.
    """
    if not isinstance(mx_host, str) or not isinstance(pattern, str):
        return False
    host = normalize_name(mx_host)
    pat = normalize_name(pattern)
    if not host or not pat or "*" in host:
        return False
    if pat.startswith("*."):
        suffix = pat[1:]
        if "*" in suffix or len(suffix) < 2:
            return False
        label = host[: -len(suffix)] if host.endswith(suffix) else ""
        return bool(label) and "." not in label
    return "*" not in pat and host == pat


def policy_status(txt_status: str | None, fetch: Any) -> tuple[str | None, PolicyRecord | None]:
    """(``mta_sts_policy_status``, the parsed policy when one was served) — see POLICY_STATUSES."""
    if txt_status != "valid":
        return (None if txt_status in (None, "temperror") else "none"), None
    if fetch is None:
        return None, None
    if fetch.status == "ok":
        rec = parse_policy(fetch.body or "")
        ctype = (fetch.content_type or "").split(";")[0].strip().lower()
        if ctype != "text/plain":
            rec.warnings.append(
                f"RFC 8461 3.3: media type {(fetch.content_type or '')[:60]!r} is not text/plain"
            )
        return ("valid" if rec.valid else "invalid"), rec
    return _FETCH_STATUS_TO_POLICY.get(fetch.status, "error"), None


def policy_columns(
    domain: str, txt_status: str | None, fetch: Any, mx_hosts: list[str] | None
) -> dict[str, Any]:
    """The MTA-STS policy columns of one domain, from stored results only (pure).

    ``txt_status`` is the domain's ``mta_sts_status``; ``fetch`` the stored ``PolicyFetch`` of
    ``https://mta-sts.<domain>/.well-known/mta-sts.txt`` (None when none was made); ``mx_hosts``
    the domain's ``mx_hosts``. ``mta_sts_mode`` and ``mta_sts_max_age`` are those of a valid
    policy. ``mta_sts_mx_match``: every MX host matches a pattern of a valid policy whose mode is
    not ``none``; null when there is no such policy or the domain's MX hosts are unknown or empty.
    """
    status, rec = policy_status(txt_status, fetch)
    out: dict[str, Any] = {
        "mta_sts_policy_status": status,
        "mta_sts_mode": None,
        "mta_sts_max_age": None,
        "mta_sts_mx_match": None,
    }
    if status != "valid" or rec is None:
        return out
    out["mta_sts_mode"] = rec.mode
    out["mta_sts_max_age"] = rec.max_age
    if rec.mode != "none" and mx_hosts:
        out["mta_sts_mx_match"] = all(
            any(mx_matches(host, pattern) for pattern in rec.mx) for host in mx_hosts
        )
    return out
