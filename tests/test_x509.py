"""The SMTP leaf certificate as the probes read it (cryptography.x509): certificates made by
trustme and cryptography, including the shapes a hand-written DER reader gets wrong or cannot
read, and what the probe records when a certificate cannot be read."""

from __future__ import annotations

import datetime as dt
import ssl

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

from mailauth_survey.policies.mta_sts import mx_matches
from mailauth_survey.probes.results import SmtpProbe
from mailauth_survey.probes.smtp import record_certificate
from mailauth_survey.probes.x509 import read_leaf

UTC = dt.UTC
CA_KEY = ec.generate_private_key(ec.SECP256R1())
CA_NAME = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Survey Test CA"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Survey Test CA R1"),
    ]
)


def make_cert(
    names: list[x509.GeneralName] | None = None,
    *,
    key=None,
    not_before: dt.datetime = dt.datetime(2024, 1, 1, tzinfo=UTC),
    not_after: dt.datetime = dt.datetime(2030, 1, 1, tzinfo=UTC),
    extensions: tuple[x509.ExtensionType, ...] = (),
) -> bytes:
    """A DER leaf for CN=mx1.example.jp signed by CA_KEY; ``names`` None: no subjectAltName."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mx1.example.jp")]))
        .issuer_name(CA_NAME)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if names is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    for ext in extensions:
        builder = builder.add_extension(ext, critical=False)
    return builder.sign(CA_KEY, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def trustme_der(cert: trustme.LeafCert) -> bytes:
    return ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())


def test_rfc5280_4_2_1_6_san_less_certificate_has_no_names_and_no_cn_fallback():
    """No subjectAltName: no DNS names (RFC 9525 6.3 drops the CN fallback of RFC 6125), and the
    rest of the certificate is still read; no finding, since nothing was unreadable."""
    leaf = read_leaf(make_cert(None))
    assert leaf.dns_names == [] and leaf.names_read
    assert leaf.not_after == dt.datetime(2030, 1, 1, tzinfo=UTC)
    assert leaf.issuer == "CN=Survey Test CA R1,O=Survey Test CA,C=JP"
    assert leaf.error is None


def test_idn_san_is_kept_as_the_a_label_and_matches_the_mx_host():
    """RFC 5280 7.2 (RFC 9549): an IDN in a dNSName is its A-label."""
    ca = trustme.CA()
    leaf = read_leaf(trustme_der(ca.issue_cert("例え.jp", "*.メール.jp")))
    assert leaf.dns_names == ["xn--r8jz45g.jp", "*.xn--4dkua4c.jp"]
    assert mx_matches("xn--r8jz45g.jp", leaf.dns_names[0])
    assert mx_matches("mx.xn--4dkua4c.jp", leaf.dns_names[1])


def test_utf8_bytes_in_a_dnsname_are_recorded_as_published_not_as_replacement_characters():
    """A U-label sent as raw UTF-8 (against RFC 5280's IA5String) is recorded verbatim, so the
    probes table shows what the server sent; it matches no A-label MX host."""
    der = make_cert([x509.DNSName("xxxxxx.jp")])
    der = der.replace(b"xxxxxx.jp", "例え.jp".encode())  # same length: the DER stays well-formed
    leaf = read_leaf(der)
    assert leaf.dns_names == ["例え.jp"]
    assert not mx_matches("xn--r8jz45g.jp", leaf.dns_names[0])


@pytest.mark.parametrize(
    ("not_before", "not_after"),
    [
        # RFC 5280 4.1.2.5: UTCTime through 2049 (YY >= 50 is 19YY), GeneralizedTime from 2050.
        (dt.datetime(1999, 12, 31, 23, 59, 59), dt.datetime(2049, 12, 31, 23, 59, 59)),
        (dt.datetime(2049, 12, 31, 23, 59, 59), dt.datetime(2050, 1, 1, 0, 0, 0)),
        (dt.datetime(2026, 4, 1, 9, 30, 0), dt.datetime(2151, 6, 1, 12, 34, 56)),
    ],
)
def test_rfc5280_4_1_2_5_utctime_and_generalizedtime(not_before, not_after):
    der = make_cert(
        [x509.DNSName("mx1.example.jp")],
        not_before=not_before.replace(tzinfo=UTC),
        not_after=not_after.replace(tzinfo=UTC),
    )
    leaf = read_leaf(der)
    assert (leaf.not_before, leaf.not_after) == (
        not_before.replace(tzinfo=UTC),
        not_after.replace(tzinfo=UTC),
    )


@pytest.mark.parametrize(("count", "octets"), [(1, 2), (300, 2), (1500, 3)])
def test_long_form_lengths(count, octets):
    """X.690 8.1.3.5: lengths in two and three octets (the last certificate is over 64 KiB)."""
    names = [f"{'a' * 50}{i}.mx.example.jp" for i in range(count)]
    der = make_cert([x509.DNSName(n) for n in names])
    assert der[1] == 0x80 | octets  # the outer SEQUENCE's length
    leaf = read_leaf(der)
    assert leaf.dns_names == names and leaf.error is None


@pytest.mark.parametrize(
    ("key", "key_type", "bits"),
    [
        (rsa.generate_private_key(65537, 2048), "rsa", 2048),
        (ec.generate_private_key(ec.SECP384R1()), "ec", 384),
        (ed25519.Ed25519PrivateKey.generate(), "ed25519", 256),
    ],
)
def test_key_type_size_and_signature_algorithm(key, key_type, bits):
    leaf = read_leaf(make_cert([x509.DNSName("mx1.example.jp")], key=key))
    assert (leaf.key_type, leaf.key_bits) == (key_type, bits)
    assert leaf.signature_algorithm == "ecdsa-with-sha256"  # CA_KEY signs with ECDSA/SHA-256
    assert leaf.not_before == dt.datetime(2024, 1, 1, tzinfo=UTC)


def test_rsa_signed_certificate_names_its_algorithm():
    ca = trustme.CA(key_type=trustme.KeyType.RSA)
    leaf = read_leaf(trustme_der(ca.issue_cert("mx1.example.jp", key_type=trustme.KeyType.RSA)))
    assert leaf.signature_algorithm == "rsa-with-sha256"
    assert leaf.key_type == "rsa" and leaf.key_bits == 2048


@pytest.mark.parametrize(
    "der",
    [b"", b"garbage", b"\x30\x80\x00\x00", make_cert([x509.DNSName("mx1.example.jp")])[:300]],
)
def test_unreadable_certificate_is_a_finding(der):
    leaf = read_leaf(der)
    assert leaf.error and leaf.error.startswith("certificate not readable")
    assert (leaf.dns_names, leaf.names_read, leaf.not_after, leaf.issuer) == ([], False, None, None)


def test_malformed_subject_alt_name_costs_the_names_only():
    bad_san = x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x30\x03\x82\x05")
    leaf = read_leaf(make_cert(None, extensions=(bad_san,)))
    assert leaf.dns_names == [] and not leaf.names_read
    assert leaf.error and "subjectAltName" in leaf.error
    assert leaf.not_after == dt.datetime(2030, 1, 1, tzinfo=UTC) and leaf.key_type == "ec"


def _probe() -> SmtpProbe:
    return SmtpProbe(
        host="mx1.example.jp",
        address="192.0.2.1",
        status="ok",
        cert_valid=True,
        probed_at=dt.datetime(2026, 6, 1, tzinfo=UTC),
    )


def test_probe_records_an_unreadable_certificate_as_unknown_not_as_a_mismatch():
    probe = _probe()
    record_certificate(probe, b"\x30\x03\x02\x01\x00")
    assert probe.cert_error and "not readable" in probe.cert_error
    assert probe.cert_name_match is None and probe.cert_expired is None
    assert probe.cert_valid is True  # OpenSSL's chain verdict is kept
    assert not probe.cert_ok


def test_probe_records_the_leaf_facts():
    probe = _probe()
    key = rsa.generate_private_key(65537, 2048)
    record_certificate(probe, make_cert([x509.DNSName("*.example.jp")], key=key))
    assert probe.cert_names == ["*.example.jp"] and probe.cert_name_match is True
    assert probe.cert_expired is False and probe.cert_error is None
    assert probe.cert_not_before == dt.datetime(2024, 1, 1, tzinfo=UTC)
    assert probe.cert_issuer == "CN=Survey Test CA R1,O=Survey Test CA,C=JP"
    assert (probe.cert_key_type, probe.cert_key_bits) == ("rsa", 2048)
    assert probe.cert_signature_algorithm == "ecdsa-with-sha256"
    assert probe.cert_ok


def test_probe_keeps_the_verification_failure_beside_a_reading_failure():
    probe = _probe()
    probe.cert_valid, probe.cert_error = False, "self-signed certificate"
    record_certificate(probe, b"junk")
    assert probe.cert_error.startswith("self-signed certificate; certificate not readable")
