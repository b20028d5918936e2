"""Each record kind read against its own ABNF, one rule a test (the section is in each name).

Where a grammar writes a literal as a quoted string it is case-insensitive (RFC 5234 2.3); where
it writes ``%s"..."`` (RFC 7405) or hex values, it is case-sensitive. The kinds differ on purpose:
DKIM key tags and MTA-STS/TLS-RPT fields are case-sensitive, DMARC and BIMI tag names are not.
"""

from __future__ import annotations

from mailauth_survey.policies import bimi, dkim, dmarc, mta_sts, spf, tlsrpt
from mailauth_survey.policies._syntax import parse_tag_list
from tests.test_policy_e2e import KEY  # a real 2048-bit RSA SubjectPublicKeyInfo


def test_rfc6376_3_2_tag_list_names_case_sensitive_unless_the_kind_folds() -> None:
    """RFC 6376 3.2: "Tags MUST be interpreted in a case-sensitive manner"; DMARC and BIMI ask
    the same parser to fold names (their ABNF writes them as quoted strings)."""
    assert parse_tag_list("P=x; p=y").tags == {"P": "x", "p": "y"}
    folded = parse_tag_list("P=x; p=y", fold_case=True)
    assert folded.tags == {"p": "x"} and folded.duplicates == ["p"]


def test_rfc6376_3_6_1_dkim_key_tags_are_case_sensitive_the_exception() -> None:
    """RFC 6376 3.6.1: key-p-tag = %x70 ..., key-v-tag = %x76 ... %x44.4B.49.4D.31: hex values,
    so "P=" is no public key and "v=dkim1" no version (the exception among the kinds)."""
    assert dkim.parse_key_record(f"v=DKIM1; k=rsa; p={KEY}").usable
    upper = dkim.parse_key_record(f"v=DKIM1; k=rsa; P={KEY}")
    assert not upper.usable and any("p= tag" in e for e in upper.errors)
    assert not dkim.parse_key_record(f"v=dkim1; p={KEY}").usable
    # key-k-tag-type = "rsa" is a quoted string: its value is case-insensitive.
    assert dkim.parse_key_record(f"v=DKIM1; k=RSA; p={KEY}").usable


def test_rfc8461_3_1_sts_fields_are_case_sensitive() -> None:
    """RFC 8461 3.1: sts-version = %s"v=STSv1", sts-id = %s"id=" 1*32(ALPHA / DIGIT)."""
    assert mta_sts.parse_record("v=STSv1; id=20240601").valid
    assert not mta_sts.is_sts_record("V=STSv1; id=20240601")
    assert not mta_sts.parse_record("v=STSv1; ID=20240601").valid  # an extension, and no id
    assert not mta_sts.parse_record("v=STSv1; id=2024-06-01").valid  # ALPHA / DIGIT only


def test_rfc8460_3_tlsrpt_fields_are_case_sensitive() -> None:
    """RFC 8460 3: tlsrpt-version = %s"v=TLSRPTv1", tlsrpt-rua = %s"rua=" ...: "RUA=" is an
    extension field, so the record has no rua."""
    assert not tlsrpt.is_tlsrpt_record("V=TLSRPTv1; rua=mailto:a@example.jp")
    rec = tlsrpt.parse_record("v=TLSRPTv1; RUA=mailto:a@example.jp")
    assert not rec.valid and "RUA" in rec.extensions


def test_rfc7489_6_4_dmarc_tag_names_fold_version_value_does_not() -> None:
    """RFC 7489 6.4 / RFC 9989 4.8: "v" equals %s"DMARC1"; every tag name a quoted string."""
    assert dmarc.parse_record("V = DMARC1; Sp=Reject; P=none; Psd=n").valid
    assert dmarc.parse_record("V = DMARC1; Sp=Reject; P=none").sp == "reject"
    assert not dmarc.is_dmarc_record("v=Dmarc1; p=none")


def test_bimi_draft_4_3_lps_and_avp_values_are_case_sensitive() -> None:
    """BIMI draft 4.3: local-part-selector = "lps" ... %s "true"/"false"; bimi-logo-preference
    = "avp" ... %s "personal"/"brand": the names fold, the values do not."""
    logo = "https://example.jp/logo.svg"
    assert bimi.parse_record(f"v=BIMI1; l={logo}; LPS=true").lps is True
    assert not bimi.parse_record(f"v=BIMI1; l={logo}; lps=True").valid
    rec = bimi.parse_record(f"v=BIMI1; l={logo}; AVP=Personal")
    assert rec.valid and rec.avp == "brand" and rec.warnings  # ignored, as 4.3 says


def test_rfc8461_3_2_mx_pattern_may_be_one_label_rfc5321_4_1_2() -> None:
    """RFC 8461 3.2: sts-policy-mx-value = ["*."] Domain, and RFC 5321 4.1.2's Domain is
    sub-domain *("." sub-domain): one label is grammatical (it was an invalid policy)."""
    rec = mta_sts.parse_policy("version: STSv1\nmode: enforce\nmx: localhost\nmax_age: 86400\n")
    assert rec.valid and rec.mx == ["localhost"]
    rec = mta_sts.parse_policy("version: STSv1\nmode: enforce\nmx: *.internal\nmax_age: 86400\n")
    assert rec.valid and mta_sts.mx_matches("mx1.internal", "*.internal")
    for bad in ("*", "*.", "mx_1", "-mx"):  # still LDH (RFC 5321 4.1.2 sub-domain)
        text = f"version: STSv1\nmode: enforce\nmx: {bad}\nmax_age: 86400\n"
        assert not mta_sts.parse_policy(text).valid, bad


def test_rfc7208_12_qnum_and_cidr_lengths_have_no_leading_zeros() -> None:
    """RFC 7208 12: qnum = DIGIT / %x31-39 DIGIT / "1" 2DIGIT / ...; ip6-cidr-length = "/"
    ("0" / %x31-39 0*2DIGIT): "01" and "/0128" are not in the grammar (a permerror, 4.6)."""
    assert spf.parse_record("v=spf1 ip4:192.168.01.1 -all").errors
    assert spf.parse_record("v=spf1 ip6:2001:db8::/0128 -all").errors
    assert not spf.parse_record("v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 a/0//0 -all").errors


def test_rfc7208_12_domain_end_needs_a_toplabel_with_a_letter() -> None:
    """RFC 7208 12: domain-end = ( "." toplabel [ "." ] ) / macro-expand, toplabel = ( *alphanum
    ALPHA *alphanum ) / ...: a bare name or an all-digit last label is no domain-spec; the
    labels before it are macro-literals, any visible character (%x21-24 / %x26-7E)."""
    for bad in ("a:localhost", "a:example.123", "include:%{d}."):
        assert spf.parse_record(f"v=spf1 {bad} -all").errors, bad
    for good in ("a:1com.example.4x", "a:%{d}", "a:ex_ample.-foo.example.com", "a:x.example.com."):
        assert not spf.parse_record(f"v=spf1 {good} -all").errors, good
