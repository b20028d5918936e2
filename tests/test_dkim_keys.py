"""DKIM key records (RFC 6376 3.6.1) with keys of each kind made by cryptography (RSA-PSS by
openssl): type and size from the key itself, the RFC 8301 3.2 limits, Ed25519 (RFC 8463), and
encodings a verifier must refuse, which a hand-written DER reader let through. Never a raise."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailauth_survey.policies import dkim

RSA1024_SPKI = (
    "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCulQ9F6jgaNCdV+rrJGlCGezYLhoUGe+a6kQ0teY7235XzCT24GTGN"
    "r49J4EUpx4Ux3cyUo4PwlMihiJIfOes5l0alNkS1FTrlpk4gEGzaLK0E059UEWn2CgUbPmcS1b1AJGMfdQ745U9sWLt1"
    "QzxivV20ICsYVu3pgBGM/SEBlwIDAQAB"
)
RSA2048_SPKI = (
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAkCnpZtMQ2qoQSmc//zcOehHBodnbr57kDE7Moh8VhfyNZnZ5"
    "pyvv3y+TS2w16oIcMfkm2vMJZG2vOJDtnM55MH3N2rD2XiOBVd6fstp7PwUMqro5WFgYODLj7GV+pAJiPLFQ8ljtt5aa"
    "bshsv3VVfUgG6t8RWQNWAZ+6ZXsyVVoG/06rRo0qXKhTc82QGm1bbKsYwGkijFLE7MaWX42W26Z2hxnjVUTFU/sOkju8"
    "jo65+tHQ27LZMHC6qjsER3eLqtBpKhp5wQHEno0ybW7ZkCusZ9Alp6pELAp/8NvotV4KiP7ZAgcguiRE4p9jsfd3FDfZ"
    "mmDDZdUFl1jjxWmtgwIDAQAB"
)
RSA2048_PKCS1 = (
    "MIIBCgKCAQEAkCnpZtMQ2qoQSmc//zcOehHBodnbr57kDE7Moh8VhfyNZnZ5pyvv3y+TS2w16oIcMfkm2vMJZG2vOJDt"
    "nM55MH3N2rD2XiOBVd6fstp7PwUMqro5WFgYODLj7GV+pAJiPLFQ8ljtt5aabshsv3VVfUgG6t8RWQNWAZ+6ZXsyVVoG"
    "/06rRo0qXKhTc82QGm1bbKsYwGkijFLE7MaWX42W26Z2hxnjVUTFU/sOkju8jo65+tHQ27LZMHC6qjsER3eLqtBpKhp5"
    "wQHEno0ybW7ZkCusZ9Alp6pELAp/8NvotV4KiP7ZAgcguiRE4p9jsfd3FDfZmmDDZdUFl1jjxWmtgwIDAQAB"
)
RSA4096_SPKI = (
    "MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEAw07pSN+YC8wjhP6KXnvf658cGxZITDkIew73xW5VkB3SfXvi"
    "P6DJLY1NIhpZnMkQ+WEnqBec9WIVEvRDdSr4zTxBcMvO4+4dCLsEdS0y5WeKPW/l6r9gvdejJsTsQO4wrQ9FqiQZCRhp"
    "VOoiIBAkF/Ngc3SlSSPNIBc9k61b8yzfds0XWymjaO3gU0/qPzZ+0el4SPanvX8ntGMszrUlDrSRs7VHmG/t8a+toCZ6"
    "+vQsYSQoUWOBfW3tbTaK0jGZRKe5ehrVrmF9t1u2RDmkXjaWX2lKJJ9rQZMV8DAegvbi9taUQJYgwQ2Ukz3j7xfn8p0i"
    "jeRPxShBHsKPrG7gOwGkQXljQY0/IbVw+w2rNdD1EFIPfavCxJE+au8DUuZ5hcbvDByanbWP02jLf9wkuzzMqRNV8bUK"
    "kFhPj22DZ1Zr1Lhk/quo6METUP2YKOS71QH+tITYIKZbjTvyUnhYkSfSvtg6kKYjls4ji8d/bhskF7R+vB5Q62mEerVm"
    "jjNwGmd6XKo+WWLcPT5eWhyo/E+vZopA6L6WsADLNW3LTvZ45l1e2Evy8IjFH5LjxLkCoFwJ6ks9yVfra10JRr/TX0Y3"
    "M5WpaATMZoFUCcxs+xbrAThALPFqV2cy6UW2ZVucDS96TYLu7JZqJntwgh6gKmbwkSfaQbVbVH2QozTuyu0CAwEAAQ=="
)
ED25519_RAW = (
    "ys0KW4K4UFt9/Bpc5gLDjFM80z26I5V+Tr/eX48XGMA="
)
ED25519_SPKI = (
    "MCowBQYDK2VwAyEAys0KW4K4UFt9/Bpc5gLDjFM80z26I5V+Tr/eX48XGMA="
)
EC_P256_SPKI = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEltL7ILvcVzGeuCMJ/yCXuT6kXqbYeJlwaETpSyIhkhanob5Gt5ywojbE"
    "dWCCP4/pfIWXFI3LEat3wD1Mj5RQng=="
)
RSA_PSS_1024_SPKI = (
    "MIGdMAsGCSqGSIb3DQEBCgOBjQAwgYkCgYEArVJNr+d7ga6Hk62itN+xEYVQfaMjASXO3QTPBwPPtYDA+T5cC3SSJ8qs"
    "i5/JqLRvk3fKBS3Y+5n8BL4KeN1m4D6froeyICeeClLTX0G/HQdCSTyPLQxJvHGpqFfa+oMgker3MDCaa8dc3VKrj03o"
    "jww/kKwIWjxa2CVaMFITavsCAwEAAQ=="
)


def _b64(der: bytes) -> str:
    return base64.b64encode(der).decode()


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    length = bytes([n]) if n < 0x80 else bytes([0x82]) + n.to_bytes(2, "big")
    return bytes([tag]) + length + body


def _pkcs1(modulus: bytes, exponent: bytes = b"\x01\x00\x01") -> bytes:
    return _der(0x30, _der(0x02, modulus) + _der(0x02, exponent))


_SPKI_2048 = base64.b64decode(RSA2048_SPKI)
_PKCS1_2048 = base64.b64decode(RSA2048_PKCS1)
_MODULUS = _PKCS1_2048[8:265]  # the modulus INTEGER's content: a zero, then 256 octets


@pytest.mark.parametrize(
    ("p", "bits"), [(RSA1024_SPKI, 1024), (RSA2048_SPKI, 2048), (RSA4096_SPKI, 4096)]
)
def test_rfc6376_3_6_1_spki_rsa_keys_of_each_size(p, bits):
    rec = dkim.parse_key_record(f"v=DKIM1; k=rsa; p={p}")
    assert rec.usable and rec.key_type == "rsa" and rec.key_bits == bits
    assert dkim.rsa_key_bits(base64.b64decode(p)) == (bits, True)
    # RFC 8301 3.2: 1024 bits is accepted with a note; 2048 and more, silently
    assert [w for w in rec.warnings if "RFC 8301" in w] == (
        ["RFC 8301 3.2: 1024-bit RSA key; signers should use at least 2048 bits"]
        if bits < 2048
        else []
    )


def test_rfc8017_a_1_1_bare_pkcs1_rsa_public_key_is_read_and_noted():
    rec = dkim.parse_key_record(f"v=DKIM1; p={RSA2048_PKCS1}")
    assert rec.usable and rec.key_bits == 2048
    assert any("bare RSAPublicKey" in w for w in rec.warnings)
    assert dkim.rsa_key_bits(_PKCS1_2048) == (2048, False)


def test_rfc8463_4_2_ed25519_bare_key_usable_and_spki_wrapped_named():
    rec = dkim.parse_key_record(f"v=DKIM1; k=ed25519; p={ED25519_RAW}")
    assert rec.usable and rec.key_type == "ed25519" and rec.key_bits == 256
    wrapped = dkim.parse_key_record(f"v=DKIM1; k=ed25519; p={ED25519_SPKI}")
    assert not wrapped.usable
    assert wrapped.errors == [
        "RFC 8463 4.2: an ed25519 p= must be the bare 32-byte key, "
        "got an ed25519 SubjectPublicKeyInfo"
    ]


@pytest.mark.parametrize(
    ("p", "kind"),
    [(ED25519_SPKI, "an ed25519 key"), (EC_P256_SPKI, "an EC key")],
    ids=["ed25519", "ec-p256"],
)
def test_rfc6376_3_6_1_other_key_types_under_k_rsa_are_named(p, kind):
    rec = dkim.parse_key_record(f"v=DKIM1; k=rsa; p={p}")
    assert not rec.usable and rec.key_bits is None
    assert rec.errors == [f"RFC 6376 3.6.1: p= is not a readable RSA public key ({kind})"]


def test_rfc3279_2_3_1_rsassa_pss_key_is_not_an_rsa_encryption_key():
    """rsa-sha256 signatures are RSASSA-PKCS1-v1_5 (RFC 8017 8.2); an RSASSA-PSS key (its own
    OID, RFC 4055 1.2) may not make them, so a verifier cannot use it under k=rsa."""
    rec = dkim.parse_key_record(f"v=DKIM1; k=rsa; p={RSA_PSS_1024_SPKI}")
    assert not rec.usable and rec.key_bits is None


@pytest.mark.parametrize(
    ("der", "why"),
    [
        (b"garbage, not a key", "not DER"),
        (_SPKI_2048[: len(_SPKI_2048) // 2], "truncated"),
        (_SPKI_2048 + b"\x00\x00", "trailing octets after the key (X.690 8.1.1: one TLV)"),
        (_PKCS1_2048 + b"junk", "trailing octets after a bare key"),
        (
            b"\x30\x84" + (len(_PKCS1_2048) - 4).to_bytes(4, "big") + _PKCS1_2048[4:],
            "non-minimal length octets (X.690 10.1: DER uses the fewest)",
        ),
        (
            b"\x30\x85" + (len(_PKCS1_2048) - 4).to_bytes(5, "big") + _PKCS1_2048[4:],
            "a five-octet length",
        ),
        (_pkcs1(_MODULUS[1:]), "a negative modulus (RFC 8017 3.1: n is a positive integer)"),
        (_pkcs1(b"\x00" + _MODULUS), "a modulus INTEGER with a redundant zero octet"),
        (_pkcs1(_MODULUS, b"\x02"), "exponent 2 (RFC 8017 3.1: e is odd, at least 3)"),
        (b"\x30\x00", "an empty SEQUENCE"),
    ],
)
def test_rfc6376_3_6_1_garbage_is_no_key_and_never_raises(der, why):
    rec = dkim.parse_key_record(f"v=DKIM1; k=rsa; p={_b64(der)}")
    assert not rec.usable and rec.key_bits is None, why
    assert any(e.startswith("RFC 6376 3.6.1: p=") for e in rec.errors), why
    with pytest.raises(ValueError):
        dkim.rsa_key_bits(der)


@settings(max_examples=300)
@given(st.binary(max_size=600), st.sampled_from(["rsa", "ed25519"]))
def test_any_key_bytes_give_a_record_never_an_exception(blob, k):
    rec = dkim.parse_key_record(f"v=DKIM1; k={k}; p={_b64(blob)}")
    assert rec.revoked == (not blob)  # RFC 6376 3.6.1: an empty p= revokes the key
    # random octets are no RSA key; any 32 octets are an ed25519 key, and only those
    assert rec.usable == (k == "ed25519" and len(blob) == 32)
