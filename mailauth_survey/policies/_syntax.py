"""The record grammar several policy modules share, in one place.

* the RFC 6376 3.2 tag-list (``tag=value; ...``) that DKIM key records, DMARC (RFC 9989 4.7) and
  BIMI (draft 4.3) records are written in;
* URIs and comma-separated URI lists (RFC 3986), as DMARC ``rua``/``ruf``, TLS-RPT ``rua`` and
  BIMI ``l``/``a`` hold them;
* the ``field-delim`` fields and extension fields that MTA-STS (RFC 8461 3.1) and TLS-RPT (RFC
  8460 3) records share.

Parsing only: each module decides what its tags mean. Nothing here touches the network or raises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..answers import normalize_name

# --- RFC 6376 3.2 tag-value lists --------------------------------------------------------------

WSP = " \t\r\n"
_TAG_SPEC = re.compile(
    r"[ \t\r\n]*([A-Za-z][A-Za-z0-9_]*)[ \t\r\n]*=[ \t\r\n]*(.*?)[ \t\r\n]*", re.S
)
# tag-value: VALCHARs (%x21-3A / %x3C-7E) separated by white space.
_TAG_VALUE = re.compile(r"[\x21-\x3a\x3c-\x7e \t\r\n]*")


@dataclass
class TagList:
    """A parsed tag-list: tags in published order, and what could not be read.

    ``errors`` are tag-specs that were skipped (malformed, bad characters); ``duplicates`` are
    tag names seen more than once, which RFC 6376 3.2 says make the whole list invalid.
    """

    tags: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return list(self.tags)


def parse_tag_list(text: str, *, fold_case: bool = False) -> TagList:
    """Split ``tag=value; ...`` per RFC 6376 3.2; never raises.

    Tag names are case-sensitive in DKIM (RFC 6376 3.2). ``fold_case``: the record kind writes
    its tag names as ABNF quoted strings, which are case-insensitive (RFC 5234 2.3): names come
    back lower case, and ``P=`` after ``p=`` is a duplicate (DMARC, RFC 9989 4.8; BIMI draft
    4.3). The first value of a duplicated tag is kept so a caller that chooses to go on has
    something sensible. A trailing ``;`` is allowed.
    """
    out = TagList()
    specs = text.split(";")
    for i, spec in enumerate(specs):
        if not spec.strip(WSP):
            if i != len(specs) - 1:
                out.errors.append("empty tag-spec between ';' separators")
            continue
        m = _TAG_SPEC.fullmatch(spec)
        if not m:
            out.errors.append(f"malformed tag-spec {spec.strip(WSP)[:60]!r} (expected name=value)")
            continue
        name, value = m.group(1), m.group(2)
        if fold_case:
            name = name.lower()
        if not _TAG_VALUE.fullmatch(value):
            out.errors.append(f"tag {name!r} has characters outside printable ASCII")
            continue
        if name in out.tags:
            if name not in out.duplicates:
                out.duplicates.append(name)
            continue
        out.tags[name] = value
    return out


# --- URIs ---------------------------------------------------------------------------------------

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):(.*)", re.S)
_URI_CHARS = re.compile(r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_PORT = re.compile(r":[0-9]*$")
_PATH_START = re.compile(r"[/?#]")


def valid_hostname(host: str) -> bool:
    """An LDH host name of two or more labels (RFC 5321 4.1.2 Domain), trailing dot allowed."""
    host = host[:-1] if host.endswith(".") else host
    labels = host.split(".")
    return len(labels) > 1 and len(host) <= 253 and all(_LABEL.fullmatch(x) for x in labels)


def check_uri(uri: str) -> tuple[str | None, str | None]:
    """(problem, destination host) of a URI; problem is None when the URI is well formed.

    Generic RFC 3986 syntax for any scheme; ``mailto:`` needs ``local@host`` and ``http(s):``
    an authority with a host name. The host is lower case, without trailing dot, and known only
    for those schemes.
    """
    m = _SCHEME.fullmatch(uri)
    if not m:
        return "is not a URI (RFC 3986 3: no scheme)", None
    scheme, rest = m.group(1).lower(), m.group(2)
    if not rest:
        return "is empty after its scheme", None
    if not _URI_CHARS.fullmatch(rest):
        return "has characters not allowed in a URI (RFC 3986 2)", None
    if scheme == "mailto":
        local, at, host = rest.split("?", 1)[0].rpartition("@")
        if not at or not local or not valid_hostname(host):
            return "is not mailto:local@host (RFC 6068 2)", None
        return None, normalize_name(host)
    if scheme in ("http", "https"):
        if not rest.startswith("//"):
            return f"has no authority after {scheme}: (RFC 3986 3.2)", None
        authority = _PATH_START.split(rest[2:], maxsplit=1)[0]
        host = _PORT.sub("", authority.rpartition("@")[2])
        if not valid_hostname(host):
            return f"has no valid host name in {authority!r} (RFC 3986 3.2.2)", None
        return None, normalize_name(host)
    return None, None


def split_uri_list(value: str) -> list[str]:
    """Comma-separated URIs with optional white space around the commas."""
    return [u.strip(" \t") for u in value.split(",")]


# --- MTA-STS / TLS-RPT fields -------------------------------------------------------------------

#: ``sts-ext`` / ``tlsrpt-extension``: ``ext-name "=" ext-value`` (RFC 8461 3.1, RFC 8460 3).
EXTENSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}=[\x21-\x3a\x3c\x3e-\x7e]+")


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
