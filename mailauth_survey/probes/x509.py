"""The facts of a server's leaf certificate that the probes table records, read by ``cryptography``.

Certificates come from any server on the internet, so they are read by the field's ASN.1/X.509
library (pyca ``cryptography``) rather than by hand. Reading never raises: what cannot be read is
left out (None, or no names) and said in :attr:`LeafFacts.error`, which the probe records as a
finding (``cert_error``).

The subject CN is not read as a name: like Python's own host name check (and RFC 9525, which
drops the CN fallback of RFC 6125), names come from the subjectAltName extension only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import SignatureAlgorithmOID

#: Key sizes of the key types that have no ``key_size`` (bits of the public key).
_FIXED_BITS = {"ed25519": 256, "ed448": 456}

#: Signature algorithms by the names of cryptography's constants: ``rsa-with-sha256``,
#: ``ecdsa-with-sha384``, ``rsassa-pss``, ``ed25519``...; others are recorded as their OID.
_SIGNATURE_NAMES = {
    oid: name.lower().replace("_", "-")
    for name, oid in vars(SignatureAlgorithmOID).items()
    if isinstance(oid, x509.ObjectIdentifier)
}


@dataclass
class LeafFacts:
    """What was read from one DER certificate; None (or empty) where it could not be read."""

    dns_names: list[str] = field(default_factory=list)  # subjectAltName dNSName, lower case
    names_read: bool = False  # the extensions were read (no subjectAltName: no names)
    not_before: datetime | None = None
    not_after: datetime | None = None
    issuer: str | None = None  # RFC 4514 string, e.g. "CN=R11,O=Let's Encrypt,C=US"
    key_type: str | None = None  # "rsa", "ec", "ed25519", "ed448", "dsa", or the OID
    key_bits: int | None = None
    signature_algorithm: str | None = None  # e.g. "rsa-with-sha256", or the OID
    error: str | None = None  # why (a part of) the certificate could not be read


def read_leaf(der: bytes) -> LeafFacts:
    """The facts of a DER certificate; never raises.

    Each field is read on its own, so one malformed part (an extension, the key) costs that
    part only, and every failure is named in ``error``.
    """
    facts = LeafFacts()
    problems: list[str] = []
    try:
        cert = x509.load_der_x509_certificate(bytes(der))
    except Exception as exc:  # ValueError for bad DER; anything else is as unreadable
        facts.error = f"certificate not readable: {_why(exc)}"
        return facts
    for part, read in (
        ("validity", _read_validity),
        ("issuer", _read_issuer),
        ("subjectAltName", _read_names),
        ("public key", _read_key),
        ("signature algorithm", _read_signature_algorithm),
    ):
        try:
            read(cert, facts)
        except Exception as exc:
            problems.append(f"{part} not readable: {_why(exc)}")
    facts.error = "; ".join(problems)[:500] or None
    return facts


def _why(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__)[:200]


def _read_validity(cert: x509.Certificate, facts: LeafFacts) -> None:
    facts.not_before = cert.not_valid_before_utc
    facts.not_after = cert.not_valid_after_utc


def _read_issuer(cert: x509.Certificate, facts: LeafFacts) -> None:
    facts.issuer = cert.issuer.rfc4514_string()[:500]


def _read_names(cert: x509.Certificate, facts: LeafFacts) -> None:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        facts.names_read = True
        return
    facts.dns_names = [name.lower() for name in san.get_values_for_type(x509.DNSName)]
    facts.names_read = True


def _read_key(cert: x509.Certificate, facts: LeafFacts) -> None:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        facts.key_type, facts.key_bits = "rsa", key.key_size
    elif isinstance(key, ec.EllipticCurvePublicKey):
        facts.key_type, facts.key_bits = "ec", key.key_size
    elif isinstance(key, ed25519.Ed25519PublicKey):
        facts.key_type, facts.key_bits = "ed25519", _FIXED_BITS["ed25519"]
    elif isinstance(key, ed448.Ed448PublicKey):
        facts.key_type, facts.key_bits = "ed448", _FIXED_BITS["ed448"]
    elif isinstance(key, dsa.DSAPublicKey):
        facts.key_type, facts.key_bits = "dsa", key.key_size
    else:
        facts.key_type = cert.public_key_algorithm_oid.dotted_string


def _read_signature_algorithm(cert: x509.Certificate, facts: LeafFacts) -> None:
    oid = cert.signature_algorithm_oid
    facts.signature_algorithm = _SIGNATURE_NAMES.get(oid, oid.dotted_string)
