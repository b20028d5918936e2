"""DKIM: does the domain publish keys (RFC 6376), as far as DNS alone can tell.

A scanner cannot list a domain's selectors, so two lower bounds are measured:

* ``dkim_domainkey``: ``_domainkey.<domain>`` answers NOERROR (RFC 8020: a NOERROR, even with no
  data, means the name exists, so something is published below it); NXDOMAIN means nothing is,
  and then no selector is probed.
* ``dkim_selectors``: which of :data:`SELECTORS` hold a key a verifier could use.

A selector counts only when its key record is usable: a revoked key (empty ``p=``, RFC 6376
3.6.1) says the selector is *not* signing, and a record a verifier must reject (bad ``v=``,
unknown ``k=``, undecodable key, RSA under 1024 bits per RFC 8301 3.2, ``s=`` without email) is
no key either. Findings for each record are available from :func:`parse_key_record`.

The RFC 6376 3.2 tag-value syntax, which DMARC and BIMI records reuse, is in :mod:`._syntax`.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from ..answers import (
    AnswerSet,
    domain_exists,
    normalize_name,
    text_cache,
    txt_query,
    valid_qname,
)
from ._syntax import WSP as _WSP
from ._syntax import TagList, parse_tag_list

#: The selectors probed on every domain (common defaults of hosting panels and providers).
SELECTORS = ("default", "selector1", "selector2", "google", "k1", "k2", "s1", "s2", "dkim", "mail")

COLUMNS = ("dkim_domainkey", "dkim_selectors")

# --- key records ------------------------------------------------------------------------------

_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


@dataclass
class KeyRecord:
    """One DKIM key record (RFC 6376 3.6.1) with what a verifier would make of it."""

    text: str
    tags: dict[str, str] = field(default_factory=dict)
    version: str | None = None
    key_type: str | None = None  # "rsa", "ed25519", or the unknown k= value
    key_bits: int | None = None
    revoked: bool = False
    hash_algs: list[str] | None = None  # None: any (h= absent)
    service_types: list[str] = field(default_factory=lambda: ["*"])
    flags: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def testing(self) -> bool:
        return "y" in self.flags

    @property
    def usable(self) -> bool:
        """A key a verifier could check an email signature with."""
        return not self.errors and not self.revoked


def parse_key_record(text: str) -> KeyRecord:
    """Parse a DKIM key record's TXT text; never raises."""
    rec = KeyRecord(text=text)
    tl = parse_tag_list(text)
    rec.tags = tl.tags
    rec.errors += [f"RFC 6376 3.2: {e}" for e in tl.errors]
    for name in tl.duplicates:
        rec.errors.append(
            f"RFC 6376 3.2: tag {name!r} appears more than once; the record is invalid"
        )
    _check_version(rec, tl)
    _check_lists(rec)
    if "g" in rec.tags:
        rec.warnings.append("RFC 6376 C.1: the g= tag of RFC 4871 was removed and is ignored")
    rec.key_type = rec.tags.get("k", "rsa").strip(_WSP).lower() or "rsa"
    if rec.key_type not in ("rsa", "ed25519"):
        rec.errors.append(
            f"RFC 6376 3.6.1: unknown key type k={rec.key_type}; verifiers ignore the key"
        )
    if "p" not in rec.tags:
        rec.errors.append("RFC 6376 3.6.1: the p= tag (public key) is required")
        return rec
    data = "".join(rec.tags["p"].split())
    if not data:
        rec.revoked = True
        rec.warnings.append("RFC 6376 3.6.1: empty p= means the key has been revoked")
        return rec
    if not _B64.fullmatch(data):
        rec.errors.append("RFC 6376 3.6.1: p= is not base64")
        return rec
    try:
        der = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        rec.errors.append("RFC 6376 3.6.1: p= is not valid base64 (bad padding or length)")
        return rec
    if rec.key_type == "rsa":
        _check_rsa(rec, der)
    elif rec.key_type == "ed25519":
        _check_ed25519(rec, der)
    if rec.testing:
        rec.warnings.append("RFC 6376 3.6.1: t=y, the domain is testing DKIM")
    return rec


def _check_version(rec: KeyRecord, tl: TagList) -> None:
    if "v" not in tl.tags:
        return
    rec.version = tl.tags["v"]
    if tl.names[0] != "v":
        rec.errors.append("RFC 6376 3.6.1: v= must be the first tag when present")
    elif rec.version != "DKIM1":
        rec.errors.append(f"RFC 6376 3.6.1: v={rec.version} is not DKIM1; the record is discarded")


def _colon_list(value: str) -> list[str]:
    return [v.strip(_WSP).lower() for v in value.split(":") if v.strip(_WSP)]


def _check_lists(rec: KeyRecord) -> None:
    """h=, s= and t=: unknown values are ignored, but a key may exclude email or SHA-256."""
    if "h" in rec.tags:
        rec.hash_algs = _colon_list(rec.tags["h"])
        if "sha256" not in rec.hash_algs:
            rec.errors.append(
                f"RFC 8301 3.1: h={rec.tags['h']} excludes sha256, and sha1 must not be used"
            )
    if "s" in rec.tags:
        rec.service_types = _colon_list(rec.tags["s"])
        if not {"*", "email"} & set(rec.service_types):
            rec.errors.append(f"RFC 6376 3.6.1: s={rec.tags['s']} does not include email or *")
    if "t" in rec.tags:
        rec.flags = _colon_list(rec.tags["t"])


# --- public keys, read by cryptography --------------------------------------------------------

#: What a key that is not RSA is called in a finding.
_KEY_NAMES = (
    (ed25519.Ed25519PublicKey, "an ed25519 key"),
    (ed448.Ed448PublicKey, "an ed448 key"),
    (ec.EllipticCurvePublicKey, "an EC key"),
    (dsa.DSAPublicKey, "a DSA key"),
)


def _load_public_key(der: bytes) -> PublicKeyTypes:
    """The key in ``der``: a SubjectPublicKeyInfo, or a bare PKCS#1 RSAPublicKey (the DER loader
    has read both since cryptography 1.x); ValueError for anything else, whatever the library
    raised (a key record is hostile input)."""
    try:
        return serialization.load_der_public_key(der)
    except Exception as exc:
        why = str(exc).split("\n", 1)[0].split(". ", 1)[0][:200]  # its first sentence
        raise ValueError(why or "not a public key") from None


def rsa_key_bits(der: bytes) -> tuple[int, bool]:
    """(modulus bits, wrapped in SubjectPublicKeyInfo) of an RSA key; raises ValueError.

    RFC 6376 3.6.1 asks for SubjectPublicKeyInfo; a bare RSAPublicKey is accepted by many
    verifiers, so it is read too and reported by the flag. DER has one encoding per value, so
    the input must be exactly one of the key's two encodings: this tells the forms apart and
    refuses what the loader takes but a DKIM verifier must not, such as an RSASSA-PSS key (its
    own OID, not rsaEncryption with NULL parameters as RFC 3279 2.3.1 asks).
    """
    key = _load_public_key(der)
    if not isinstance(key, rsa.RSAPublicKey):
        kind = next((name for cls, name in _KEY_NAMES if isinstance(key, cls)), "not RSA")
        raise ValueError(kind)
    encoding = serialization.Encoding.DER
    if der == key.public_bytes(encoding, serialization.PublicFormat.SubjectPublicKeyInfo):
        return key.key_size, True
    if der == key.public_bytes(encoding, serialization.PublicFormat.PKCS1):
        return key.key_size, False
    raise ValueError("not an rsaEncryption SubjectPublicKeyInfo or an RSAPublicKey in DER")


def _check_rsa(rec: KeyRecord, der: bytes) -> None:
    try:
        bits, spki = rsa_key_bits(der)
    except ValueError as exc:
        rec.errors.append(f"RFC 6376 3.6.1: p= is not a readable RSA public key ({exc})")
        return
    rec.key_bits = bits
    if not spki:
        rec.warnings.append(
            "RFC 6376 3.6.1: p= is a bare RSAPublicKey, not SubjectPublicKeyInfo; some verifiers reject it"
        )
    if bits < 1024:
        rec.errors.append(
            f"RFC 8301 3.2: {bits}-bit RSA key; verifiers must not accept keys under 1024 bits"
        )
    elif bits < 2048:
        rec.warnings.append(
            f"RFC 8301 3.2: {bits}-bit RSA key; signers should use at least 2048 bits"
        )


def _check_ed25519(rec: KeyRecord, der: bytes) -> None:
    if len(der) == 32:
        try:
            ed25519.Ed25519PublicKey.from_public_bytes(der)
        except Exception as exc:  # (any 32 bytes load today; a stricter library may refuse)
            rec.errors.append(f"RFC 8463 4.2: p= is not an ed25519 public key ({exc})")
            return
        rec.key_bits = 256
        return
    try:
        wrapped = isinstance(_load_public_key(der), ed25519.Ed25519PublicKey)
    except ValueError:
        wrapped = False
    form = "an ed25519 SubjectPublicKeyInfo" if wrapped else f"{len(der)} bytes"
    rec.errors.append(f"RFC 8463 4.2: an ed25519 p= must be the bare 32-byte key, got {form}")


# --- analysis ---------------------------------------------------------------------------------


#: The node above every selector: asked first (RFC 8020: when it does not exist, no key does).
PREFIX = "_domainkey"


def first_queries(name: str, dns: AnswerSet) -> tuple[tuple[str, str], ...]:
    """Its own TXT record, what :func:`analyze` asks first and alone (analysis.analyze_parts)."""
    return txt_query(PREFIX, name)


def analyze(domain: str, dns: AnswerSet) -> dict[str, Any]:
    """``dkim_domainkey`` and ``dkim_selectors`` of ``domain`` (see the module docstring).

    Asks ``_domainkey.<domain>`` first; only when it exists are the selectors asked, all at once
    (they are independent). ``dkim_selectors`` is None (unknown) when ``_domainkey`` failed, or
    when a selector query failed and no key was found: the failed one may hold a key, so an
    empty list would be a false "no DKIM". With a key found the list stays (a lower bound).
    """
    name = normalize_name(domain)
    if not valid_qname(name):
        return {"dkim_domainkey": "error", "dkim_selectors": None}
    exists = domain_exists(name, dns)
    if exists is None:
        return {"dkim_domainkey": "error", "dkim_selectors": None}
    if exists is False:
        return {"dkim_domainkey": "nxdomain", "dkim_selectors": []}
    base = f"{PREFIX}.{name}"
    if not valid_qname(base):
        return {"dkim_domainkey": "nxdomain", "dkim_selectors": []}
    answer = dns.get(base, "TXT")
    if answer.failed:
        return {"dkim_domainkey": "error", "dkim_selectors": None}
    if answer.nxdomain:  # RFC 8020: nothing below exists, so no selector is asked
        return {"dkim_domainkey": "nxdomain", "dkim_selectors": []}
    found = []
    unknown = False
    for sel in SELECTORS:
        has = selector_key(sel, name, dns)
        if has:
            found.append(sel)
        elif has is None:
            unknown = True
    return {
        "dkim_domainkey": "exists",
        "dkim_selectors": None if unknown and not found else sorted(found),
    }


def selector_key(selector: str, domain: str, dns: AnswerSet) -> bool | None:
    """Whether ``<selector>._domainkey.<domain>`` holds a usable key record (any of its TXTs);
    None when its query failed (SERVFAIL, timeout...) or is not collected yet."""
    qname = f"{selector}._domainkey.{domain}"
    if not valid_qname(qname):
        return False
    answer = dns.get(qname, "TXT")
    if answer.failed:
        return None
    if answer.nxdomain:
        return False
    return any(_usable(text) for text in answer.txt())


@text_cache
def _usable(text: str) -> bool:
    """Cached: a provider's key (behind each customer's selector CNAME) recurs across domains."""
    return parse_key_record(text).usable
