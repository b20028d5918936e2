"""DKIM: key records (RFC 6376 3.6.1, RFC 8301, RFC 8463) and the existence probes (RFC 8020)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailauth_survey.answers import Answer, AnswerSet
from mailauth_survey.policies import dkim
from tests.builders import apex, txt, txt_rr

DOMAIN = "example.jp"

# Public keys made with openssl (genrsa / genpkey) for these tests.
RSA2048_SPKI = (
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAiYlrZ97ZWgTf9PQ4kYckZGgppW5V2pmVYZnOcj0G0B2gpg6q"
    "nQDZpwWguQk73vWV8Y47G5ykGDdL+gZYMmk46v7wfslK4VQMlL0kkqmwYNKlpNFv/ub5Au+F/Fq+kIm+MvtuiRT6ZWiP"
    "CNfWwdZwjsnX2kH882s45/qZntJy/bt0d82uXVIKuR6VzX8vNwGygyIcVBhALpy9ry/u01YjDcDmPCAPQyv4AjLXWcB2"
    "KnAJEUuX/iUDvnGf7TB/4kEz9fuvggrUyjk2oUngOwcf9yMvvJKW0hqnwaPINQvARH6U6IPgW78a6kXCD/j44yH8Xw51"
    "K+H7dKfNgGG7qGlpgQIDAQAB"
)
RSA1024_SPKI = (
    "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDGfTNDQQyD5g+GZRpxS6cy6I0kwcK9dY+e1a4xq39YuxLHkiecuXvd"
    "oNjanf2WdX3W2jJ9fmbdhhqIs97e34rB666xRAki1wTG4pX3ZaoUV3VKBG6boyANeXwNBKzpRJtfsCWLcSVoBrVx2Oov"
    "7b+0piMw24un5Y0TFHMVvUbdAQIDAQAB"
)
RSA1024_PKCS1 = (
    "MIGJAoGBAMZ9M0NBDIPmD4ZlGnFLpzLojSTBwr11j57VrjGrf1i7EseSJ5y5e92g2Nqd/ZZ1fdbaMn1+Zt2GGoiz3t7f"
    "isHrrrFECSLXBMbilfdlqhRXdUoEbpujIA15fA0ErOlEm1+wJYtxJWgGtXHY6i/tv7SmIzDbi6fljRMUcxW9Rt0BAgMB"
    "AAE="
)
ED25519_RAW = "4v+r44xEUU9+52jiqCsdWdTC7wk2wQVJlZpoi2vdHxw="
ED25519_SPKI = "MCowBQYDK2VwAyEA4v+r44xEUU9+52jiqCsdWdTC7wk2wQVJlZpoi2vdHxw="


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    length = bytes([n]) if n < 0x80 else bytes([0x80 | 2]) + n.to_bytes(2, "big")
    return bytes([tag]) + length + body


def rsa_spki(bits: int) -> str:
    """A syntactically valid SubjectPublicKeyInfo with a modulus of exactly ``bits`` bits."""
    modulus = (1 << (bits - 1)) | 1
    n = modulus.to_bytes(bits // 8 + 1, "big")  # leading zero keeps the INTEGER positive
    rsa = _der(0x30, _der(0x02, n) + _der(0x02, b"\x01\x00\x01"))
    alg = _der(0x30, _der(0x06, bytes.fromhex("2a864886f70d010101")) + b"\x05\x00")
    return base64.b64encode(_der(0x30, alg + _der(0x03, b"\x00" + rsa))).decode()


def selector_answers(domain: str = DOMAIN, **records: str) -> list[Answer]:
    """Every probed selector: NXDOMAIN unless given a record."""
    out = []
    for sel in dkim.SELECTORS:
        name = f"{sel}._domainkey.{domain}"
        out.append(txt(name, records[sel]) if sel in records else txt(name, rcode="NXDOMAIN"))
    return out


# --- RFC 6376 3.2 tag lists --------------------------------------------------------------------


def test_rfc6376_3_2_tag_list_white_space_and_trailing_semicolon():
    tl = dkim.parse_tag_list(" v = DKIM1 ;k=rsa;\tp = AB CD ;")
    assert tl.tags == {"v": "DKIM1", "k": "rsa", "p": "AB CD"}
    assert not tl.errors and not tl.duplicates


def test_rfc6376_3_2_duplicate_tag_is_reported():
    tl = dkim.parse_tag_list("v=DKIM1; p=AAAA; p=BBBB")
    assert tl.duplicates == ["p"] and tl.tags["p"] == "AAAA"


def test_rfc6376_3_2_tag_names_are_case_sensitive_and_malformed_specs_skipped():
    tl = dkim.parse_tag_list("P=abc; garbage; 9x=1; k=rsa")
    assert tl.tags == {"P": "abc", "k": "rsa"}
    assert len(tl.errors) == 2


# --- RFC 6376 3.6.1 key records -----------------------------------------------------------------


def test_rfc6376_3_6_1_rsa_2048_spki_key_size_from_der():
    rec = dkim.parse_key_record(f"v=DKIM1; k=rsa; p={RSA2048_SPKI}")
    assert rec.usable and rec.key_type == "rsa" and rec.key_bits == 2048
    assert not rec.warnings


def test_rfc6376_3_6_1_key_type_defaults_to_rsa_and_p_may_be_split_by_white_space():
    """TXT strings are joined with no separator, but FWS inside p= is allowed (3.6.1 base64)."""
    spaced = " ".join(RSA2048_SPKI[i : i + 64] for i in range(0, len(RSA2048_SPKI), 64))
    rec = dkim.parse_key_record(f"p={spaced}")
    assert rec.usable and rec.key_type == "rsa" and rec.key_bits == 2048


def test_rfc8301_3_2_rsa_1024_usable_with_warning_bare_pkcs1_readable():
    spki = dkim.parse_key_record(f"k=rsa; p={RSA1024_SPKI}")
    assert spki.usable and spki.key_bits == 1024 and any("2048" in w for w in spki.warnings)
    bare = dkim.parse_key_record(f"k=rsa; p={RSA1024_PKCS1}")
    assert bare.usable and bare.key_bits == 1024
    assert any("SubjectPublicKeyInfo" in w for w in bare.warnings)


def test_rfc8301_3_2_rsa_under_1024_bits_is_not_usable():
    rec = dkim.parse_key_record(f"v=DKIM1; p={rsa_spki(512)}")
    assert rec.key_bits == 512 and not rec.usable
    assert any("RFC 8301" in e for e in rec.errors)
    assert dkim.parse_key_record(f"p={rsa_spki(4096)}").key_bits == 4096


def test_rfc8463_4_2_ed25519_is_the_bare_32_byte_key():
    rec = dkim.parse_key_record(f"v=DKIM1; k=ed25519; p={ED25519_RAW}")
    assert rec.usable and rec.key_type == "ed25519" and rec.key_bits == 256
    wrapped = dkim.parse_key_record(f"v=DKIM1; k=ed25519; p={ED25519_SPKI}")
    assert not wrapped.usable and any("RFC 8463" in e for e in wrapped.errors)


def test_rfc6376_3_6_1_ed25519_key_under_k_rsa_is_not_an_rsa_key():
    rec = dkim.parse_key_record(f"v=DKIM1; p={ED25519_SPKI}")
    assert not rec.usable and rec.key_bits is None


def test_rfc6376_3_6_1_empty_p_is_a_revoked_key():
    rec = dkim.parse_key_record("v=DKIM1; k=rsa; p=")
    assert rec.revoked and not rec.usable and not rec.errors


def test_rfc6376_3_6_1_p_is_required():
    rec = dkim.parse_key_record("v=DKIM1; k=rsa")
    assert not rec.usable and any("p= tag" in e for e in rec.errors)


def test_rfc6376_3_6_1_version_must_be_dkim1_and_first():
    assert not dkim.parse_key_record(f"v=DKIM2; p={RSA2048_SPKI}").usable
    assert not dkim.parse_key_record(f"k=rsa; v=DKIM1; p={RSA2048_SPKI}").usable
    assert dkim.parse_key_record(f"v=DKIM1; p={RSA2048_SPKI}").version == "DKIM1"


def test_rfc6376_3_6_1_unknown_key_type_is_not_usable():
    rec = dkim.parse_key_record(f"k=dsa; p={RSA2048_SPKI}")
    assert rec.key_type == "dsa" and not rec.usable


def test_rfc6376_3_6_1_hash_and_service_restrictions():
    """h= without sha256 (RFC 8301 3.1 forbids sha1) and s= without email make the key unusable."""
    assert not dkim.parse_key_record(f"h=sha1; p={RSA2048_SPKI}").usable
    assert dkim.parse_key_record(f"h=sha1:sha256:future; p={RSA2048_SPKI}").usable
    assert not dkim.parse_key_record(f"s=tlsrpt; p={RSA2048_SPKI}").usable
    assert dkim.parse_key_record(f"s=email:other; p={RSA2048_SPKI}").usable
    assert dkim.parse_key_record(f"s=*; p={RSA2048_SPKI}").usable


def test_rfc6376_3_6_1_flags_and_legacy_granularity():
    rec = dkim.parse_key_record(f"t=y:s:zz; g=*; p={RSA2048_SPKI}")
    assert rec.usable and rec.testing and rec.flags == ["y", "s", "zz"]
    assert any("g=" in w for w in rec.warnings)


def test_rfc6376_3_6_1_undecodable_key_is_an_error():
    for p in ("!!!!", "QUJD", "AAAA=", "MIIB"):
        rec = dkim.parse_key_record(f"p={p}")
        assert not rec.usable and rec.errors, p


def test_rfc6376_3_2_duplicate_p_makes_the_record_invalid():
    assert not dkim.parse_key_record(f"p={RSA2048_SPKI}; p={RSA2048_SPKI}").usable


# --- analyze: RFC 8020 existence and the selector probe ----------------------------------------


def test_selector_list_is_the_documented_one():
    assert dkim.SELECTORS == (
        "default", "selector1", "selector2", "google", "k1", "k2", "s1", "s2", "dkim", "mail",
    )  # fmt: skip


def test_rfc8020_domainkey_nxdomain_means_no_selector_is_asked():
    dns = AnswerSet([*apex(DOMAIN), txt(f"_domainkey.{DOMAIN}", rcode="NXDOMAIN")])
    assert dkim.analyze(DOMAIN, dns) == {"dkim_domainkey": "nxdomain", "dkim_selectors": []}
    assert dns.missing == set()


def test_rfc8020_domainkey_nodata_exists_and_asks_every_selector_at_once():
    dns = AnswerSet([*apex(DOMAIN), txt(f"_domainkey.{DOMAIN}")])
    dkim.analyze(DOMAIN, dns)
    assert dns.missing == {(f"{s}._domainkey.{DOMAIN}", "TXT") for s in dkim.SELECTORS}


def test_missing_domainkey_is_the_only_next_query():
    dns = AnswerSet(apex(DOMAIN))
    assert dkim.analyze(DOMAIN, dns)["dkim_domainkey"] == "error"
    assert dns.missing == {(f"_domainkey.{DOMAIN}", "TXT")}


def test_domainkey_timeout_is_error_not_nxdomain():
    for rcode in ("TIMEOUT", "SERVFAIL", "REFUSED"):
        dns = AnswerSet([*apex(DOMAIN), txt(f"_domainkey.{DOMAIN}", rcode=rcode)])
        assert dkim.analyze(DOMAIN, dns) == {"dkim_domainkey": "error", "dkim_selectors": None}
        assert dns.missing == set()


def test_rfc8020_apex_nxdomain_asks_nothing_below():
    dns = AnswerSet(apex(DOMAIN, rcode="NXDOMAIN"))
    assert dkim.analyze(DOMAIN, dns) == {"dkim_domainkey": "nxdomain", "dkim_selectors": []}
    assert dns.missing == set()


def test_apex_unknown_is_error_without_lookups():
    dns = AnswerSet(apex(DOMAIN, rcode="TIMEOUT"))
    assert dkim.analyze(DOMAIN, dns) == {"dkim_domainkey": "error", "dkim_selectors": None}
    assert dns.missing == set()


def test_selectors_hold_usable_keys_only_sorted():
    """A revoked key (RFC 6376 3.6.1), a wildcard SPF TXT and a 512-bit key (RFC 8301) don't count."""
    key = f"v=DKIM1; k=rsa; p={RSA2048_SPKI}"
    dns = AnswerSet(
        [
            *apex(DOMAIN),
            txt(f"_domainkey.{DOMAIN}"),
            *selector_answers(
                s2=key,
                google=f"v=DKIM1; k=ed25519; p={ED25519_RAW}",
                default="v=DKIM1; p=",
                mail="v=spf1 -all",
                k1=f"p={rsa_spki(512)}",
            ),
        ]
    )
    out = dkim.analyze(DOMAIN, dns)
    assert out == {"dkim_domainkey": "exists", "dkim_selectors": ["google", "s2"]}
    assert dns.missing == set()


def test_selector_cname_chain_is_followed():
    """A CNAME to a provider's key (e.g. selector1 at Microsoft 365) counts (RFC 6376 3.6.2.2)."""
    target = "selector1-example-jp._domainkey.example.onmicrosoft.com"
    sel = f"selector1._domainkey.{DOMAIN}"
    chain = Answer(
        sel,
        "TXT",
        "NOERROR",
        (f"{sel}. 300 IN CNAME {target}.", txt_rr(target, f"v=DKIM1; k=rsa; p={RSA2048_SPKI}")),
    )
    answers = [a for a in selector_answers() if a.qname != sel]
    dns = AnswerSet([*apex(DOMAIN), txt(f"_domainkey.{DOMAIN}"), *answers, chain])
    assert dkim.analyze(DOMAIN, dns)["dkim_selectors"] == ["selector1"]


def test_selector_timeout_is_left_out_but_domainkey_still_exists():
    answers = [
        txt(a.qname, rcode="TIMEOUT") if a.qname.startswith("k1.") else a
        for a in selector_answers(k2=f"p={RSA2048_SPKI}")
    ]
    dns = AnswerSet([*apex(DOMAIN), txt(f"_domainkey.{DOMAIN}"), *answers])
    assert dkim.analyze(DOMAIN, dns) == {"dkim_domainkey": "exists", "dkim_selectors": ["k2"]}


@pytest.mark.parametrize("rcode", ["TIMEOUT", "SERVFAIL", "REFUSED", "ERROR"])
def test_failed_selector_and_no_key_found_is_unknown_not_empty(rcode):
    """The failed selector may hold the domain's only key: null (unknown), never []."""
    answers = [
        txt(a.qname, rcode=rcode) if a.qname.startswith("selector1.") else a
        for a in selector_answers()
    ]
    dns = AnswerSet([*apex(DOMAIN), txt(f"_domainkey.{DOMAIN}"), *answers])
    assert dkim.analyze(DOMAIN, dns) == {"dkim_domainkey": "exists", "dkim_selectors": None}
    # every selector answered, none with a key: known to be empty
    dns = AnswerSet([*apex(DOMAIN), txt(f"_domainkey.{DOMAIN}"), *selector_answers()])
    assert dkim.analyze(DOMAIN, dns) == {"dkim_domainkey": "exists", "dkim_selectors": []}


# --- never raises ------------------------------------------------------------------------------

_KEYISH = st.one_of(
    st.text(max_size=300),
    st.builds(
        lambda v, k, p, extra: f"{v}k={k}; p={p}{extra}",
        st.sampled_from(["", "v=DKIM1; ", "v=DKIM2; ", " v = DKIM1 ;"]),
        st.sampled_from(["rsa", "ed25519", "RSA", "x", ""]),
        st.one_of(
            st.sampled_from([RSA2048_SPKI, RSA1024_PKCS1, ED25519_RAW, ED25519_SPKI, "", "===="]),
            st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode()),
            st.text(max_size=50),
        ),
        st.text(max_size=40),
    ),
)


@settings(max_examples=300)
@given(_KEYISH)
def test_parse_key_record_never_raises(text):
    rec = dkim.parse_key_record(text)
    assert isinstance(rec.usable, bool)
    assert rec.key_bits is None or rec.key_bits > 0
    assert all(isinstance(e, str) for e in rec.errors + rec.warnings)


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_der_reader_never_raises_anything_but_value_error(blob):
    try:
        bits, _spki = dkim.rsa_key_bits(blob)
    except ValueError:
        return
    assert bits >= 0


_RCODES = st.sampled_from(["NOERROR", "NXDOMAIN", "SERVFAIL", "TIMEOUT", "REFUSED", "ERROR"])


@settings(max_examples=200)
@given(
    st.sampled_from(["example.jp", "a.b.example.co.jp", "x" * 63 + ".jp", "EXAMPLE.JP.", ""]),
    _RCODES,
    _RCODES,
    st.lists(st.tuples(st.sampled_from(dkim.SELECTORS), _RCODES, _KEYISH), max_size=6),
)
def test_analyze_never_raises_and_answers_allowed_words(domain, apex_rcode, dk_rcode, sels):
    answers = [*apex(domain, apex_rcode), txt(f"_domainkey.{domain}", rcode=dk_rcode)]
    answers += [txt(f"{s}._domainkey.{domain}", body, rcode=rc) for s, rc, body in sels]
    out = dkim.analyze(domain, AnswerSet(answers))
    assert set(out) == set(dkim.COLUMNS)
    assert out["dkim_domainkey"] in ("exists", "nxdomain", "error")
    sel = out["dkim_selectors"]
    assert sel is None or (sel == sorted(sel) and set(sel) <= set(dkim.SELECTORS))
