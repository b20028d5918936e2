"""The single-TXT policy records: MTA-STS (RFC 8461 3.1), TLS-RPT (RFC 8460 3) and BIMI (draft)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mailauth_survey.answers import Answer, AnswerSet
from mailauth_survey.policies import bimi, mta_sts, tlsrpt
from tests.builders import apex, txt, txt_rr

DOMAIN = "example.jp"
STATUSES = ("none", "valid", "invalid", "temperror")


def zone(*answers: Answer, domain: str = DOMAIN, rcode: str = "NOERROR") -> AnswerSet:
    return AnswerSet([*apex(domain, rcode), *answers])


# --- MTA-STS: RFC 8461 3.1 ---------------------------------------------------------------------

STS = f"_mta-sts.{DOMAIN}"


def test_rfc8461_3_1_valid_record_and_id():
    out = mta_sts.analyze(DOMAIN, zone(txt(STS, "v=STSv1; id=20240101T000000")))
    assert out == {"mta_sts_status": "valid", "mta_sts_id": "20240101T000000"}


def test_rfc8461_3_1_field_delimiter_white_space_and_trailing_semicolon():
    rec = mta_sts.parse_record("v=STSv1 ;\tid=abc123 ;")
    assert rec.valid and rec.id == "abc123"


def test_rfc8461_3_1_id_is_1_to_32_alphanumerics():
    assert mta_sts.parse_record("v=STSv1; id=" + "a" * 32).valid
    for bad in ("a" * 33, "2024-01-01", "", "abc def", "ｉｄ"):
        rec = mta_sts.parse_record(f"v=STSv1; id={bad}")
        assert not rec.valid and rec.id is None, bad


def test_rfc8461_3_1_id_is_required_and_case_sensitive():
    for text in ("v=STSv1;", "v=STSv1; ID=abc", "v=STSv1; ext=1"):
        assert not mta_sts.parse_record(text).valid, text
    assert any("case-sensitive" in w for w in mta_sts.parse_record("v=STSv1; ID=abc").warnings)


def test_rfc8461_3_1_extension_fields_are_allowed():
    rec = mta_sts.parse_record("v=STSv1; id=1; ext-field.x_1=value!; other=2")
    assert rec.valid and rec.extensions == {"ext-field.x_1": "value!", "other": "2"}


def test_rfc8461_3_1_malformed_fields_make_the_record_invalid():
    for text in (
        "v=STSv1; id=1;; ext=1",
        "v=STSv1; id = 1",
        "v=STSv1; id=1; ext=a=b",
        "v=STSv1; id=1; id=2",
        "v=STSv1; id=1; " + "e" * 33 + "=1",
    ):
        assert not mta_sts.parse_record(text).valid, text


def test_rfc8461_3_1_records_not_beginning_with_version_are_ignored():
    out = mta_sts.analyze(
        DOMAIN,
        zone(
            txt(
                STS,
                "v=spf1 -all",
                "v=STSv1 id=1",
                "v=stsv1; id=2",
                "v=STSv10; id=3",
                "v=STSv1; id=4",
            )
        ),
    )
    assert out == {"mta_sts_status": "valid", "mta_sts_id": "4"}
    out = mta_sts.analyze(DOMAIN, zone(txt(STS, "v=STSv1 id=1", "id=2; v=STSv1;")))
    assert out == {"mta_sts_status": "none", "mta_sts_id": None}


def test_rfc8461_3_1_more_than_one_sts_record_is_invalid():
    out = mta_sts.analyze(DOMAIN, zone(txt(STS, "v=STSv1; id=1", "v=STSv1; id=2")))
    assert out == {"mta_sts_status": "invalid", "mta_sts_id": None}


def test_rfc8461_3_1_invalid_single_record():
    out = mta_sts.analyze(DOMAIN, zone(txt(STS, "v=STSv1; id=not-valid")))
    assert out == {"mta_sts_status": "invalid", "mta_sts_id": None}


def test_mta_sts_absent_timeout_missing_and_nonexistent_domain():
    assert mta_sts.analyze(DOMAIN, zone(txt(STS, rcode="NXDOMAIN")))["mta_sts_status"] == "none"
    assert mta_sts.analyze(DOMAIN, zone(txt(STS)))["mta_sts_status"] == "none"
    for rcode in ("TIMEOUT", "SERVFAIL"):
        assert mta_sts.analyze(DOMAIN, zone(txt(STS, rcode=rcode)))["mta_sts_status"] == "temperror"
    dns = zone()
    assert mta_sts.analyze(DOMAIN, dns)["mta_sts_status"] == "temperror"
    assert dns.missing == {(STS, "TXT")}
    dns = zone(rcode="NXDOMAIN")
    assert mta_sts.analyze(DOMAIN, dns)["mta_sts_status"] == "none" and dns.missing == set()
    dns = zone(rcode="TIMEOUT")
    assert mta_sts.analyze(DOMAIN, dns)["mta_sts_status"] == "temperror" and dns.missing == set()


def test_rfc8461_3_1_cname_and_split_strings():
    target = "example-jp.sts.provider.example"
    chain = Answer(
        STS,
        "TXT",
        "NOERROR",
        (f"{STS}. 300 IN CNAME {target}.", txt_rr(target, "v=STSv1; ", "id=77")),
    )
    assert mta_sts.analyze(DOMAIN, zone(chain)) == {"mta_sts_status": "valid", "mta_sts_id": "77"}


# --- TLS-RPT: RFC 8460 3 -----------------------------------------------------------------------

TLS = f"_smtp._tls.{DOMAIN}"


def test_rfc8460_3_valid_record_with_mailto_and_https():
    text = "v=TLSRPTv1; rua=mailto:tls@example.jp , https://reports.example.net/tls"
    out = tlsrpt.analyze(DOMAIN, zone(txt(TLS, text)))
    assert out == {
        "tlsrpt_status": "valid",
        "tlsrpt_rua": ["mailto:tls@example.jp", "https://reports.example.net/tls"],
    }


def test_rfc8460_3_rua_is_required():
    for text in ("v=TLSRPTv1;", "v=TLSRPTv1; ext=1", "v=TLSRPTv1; RUA=mailto:a@example.jp"):
        assert not tlsrpt.parse_record(text).valid, text


def test_rfc8460_3_rua_may_repeat_and_every_uri_is_kept():
    """RFC 8460 3's ABNF: tlsrpt-record = tlsrpt-version 1*(field-delim tlsrpt-field)
    [field-delim], tlsrpt-field = tlsrpt-rua / tlsrpt-extension: nothing limits tlsrpt-rua to
    one field, so two are legal and both fields' URIs are reported, in published order."""
    text = "v=TLSRPTv1; rua=mailto:a@example.jp; rua=https://r.example.net/tls,mailto:b@example.jp"
    out = tlsrpt.analyze(DOMAIN, zone(txt(TLS, text)))
    assert out == {
        "tlsrpt_status": "valid",
        "tlsrpt_rua": ["mailto:a@example.jp", "https://r.example.net/tls", "mailto:b@example.jp"],
    }


def test_rfc8460_3_an_empty_rua_field_makes_the_record_invalid():
    """RFC 8460 3: tlsrpt-rua = %s"rua=" tlsrpt-uri ... needs a URI, and an extension's value
    is 1*(...), so "rua=" with nothing after it matches no field: the record is syntactically
    invalid, and senders "MUST assume the recipient domain does not implement TLSRPT" (3),
    even beside a good rua field."""
    for text in ("v=TLSRPTv1; rua=", "v=TLSRPTv1; rua=mailto:a@example.jp; rua="):
        out = tlsrpt.analyze(DOMAIN, zone(txt(TLS, text)))
        assert out == {"tlsrpt_status": "invalid", "tlsrpt_rua": []}, text


def test_rfc8460_3_rua_uris_must_be_valid_and_one_mailto_or_https():
    assert not tlsrpt.parse_record("v=TLSRPTv1; rua=tls@example.jp").valid
    assert not tlsrpt.parse_record("v=TLSRPTv1; rua=mailto:tls@example.jp,").valid
    assert not tlsrpt.parse_record("v=TLSRPTv1; rua=ftp://example.jp/x").valid
    rec = tlsrpt.parse_record("v=TLSRPTv1; rua=mailto:a@example.jp,ftp://example.jp/x")
    assert rec.valid and any("neither" in w for w in rec.warnings)


def test_rfc8460_3_extension_fields_allowed_and_version_first():
    assert tlsrpt.parse_record("v=TLSRPTv1; rua=mailto:a@example.jp; x-ext=1;").valid
    assert not tlsrpt.parse_record("rua=mailto:a@example.jp; v=TLSRPTv1").is_tlsrpt
    assert not tlsrpt.parse_record("v=tlsrptv1; rua=mailto:a@example.jp").is_tlsrpt


def test_rfc8460_3_other_records_ignored_and_more_than_one_invalid():
    good = "v=TLSRPTv1; rua=mailto:a@example.jp"
    out = tlsrpt.analyze(DOMAIN, zone(txt(TLS, "google-site-verification=x", good)))
    assert out["tlsrpt_status"] == "valid"
    out = tlsrpt.analyze(DOMAIN, zone(txt(TLS, good, good)))
    assert out == {"tlsrpt_status": "invalid", "tlsrpt_rua": []}
    out = tlsrpt.analyze(DOMAIN, zone(txt(TLS, "v=TLSRPTv1; rua=")))
    assert out == {"tlsrpt_status": "invalid", "tlsrpt_rua": []}


def test_tlsrpt_absent_timeout_and_nonexistent_domain():
    assert tlsrpt.analyze(DOMAIN, zone(txt(TLS, rcode="NXDOMAIN"))) == {
        "tlsrpt_status": "none", "tlsrpt_rua": [],
    }  # fmt: skip
    assert tlsrpt.analyze(DOMAIN, zone(txt(TLS, rcode="SERVFAIL"))) == {
        "tlsrpt_status": "temperror", "tlsrpt_rua": None,
    }  # fmt: skip
    dns = zone(rcode="NXDOMAIN")
    assert tlsrpt.analyze(DOMAIN, dns)["tlsrpt_status"] == "none" and dns.missing == set()
    dns = zone()
    assert tlsrpt.analyze(DOMAIN, dns)["tlsrpt_status"] == "temperror"
    assert dns.missing == {(TLS, "TXT")}


# --- BIMI: draft-brand-indicators-for-message-identification -----------------------------------

BIMI = f"default._bimi.{DOMAIN}"
LOGO = "https://example.jp/logo.svg"
VMC = "https://example.jp/vmc.pem"


def test_bimi_4_3_valid_record_with_location_and_evidence():
    rec = bimi.parse_record(f"v=BIMI1; l={LOGO}; a={VMC}")
    assert rec.valid and rec.location == LOGO and rec.evidence == VMC
    assert bimi.analyze(DOMAIN, zone(txt(BIMI, f"v=BIMI1; l={LOGO}"))) == {"bimi_status": "valid"}


def test_bimi_4_3_version_first_and_exact():
    for text in (f"l={LOGO}; v=BIMI1", f"v=bimi1; l={LOGO}", f"v=BIMI10; l={LOGO}"):
        assert not bimi.parse_record(text).is_bimi, text
    assert bimi.parse_record(f"v = BIMI1 ; l = {LOGO}").valid


def test_bimi_4_3_l_is_required_and_https():
    assert not bimi.parse_record("v=BIMI1;").valid
    assert not bimi.parse_record("v=BIMI1; l=http://example.jp/logo.svg").valid
    assert not bimi.parse_record(f"v=BIMI1; l={LOGO},{LOGO}").valid
    assert not bimi.parse_record("v=BIMI1; l=https://").valid
    assert not bimi.parse_record(f"v=BIMI1; l={LOGO}; a=ftp://example.jp/vmc.pem").valid


def test_bimi_4_3_2_other_image_formats_are_an_error():
    assert not bimi.parse_record("v=BIMI1; l=https://example.jp/logo.png").valid
    assert bimi.parse_record("v=BIMI1; l=https://example.jp/logo.svgz").valid


def test_bimi_4_3_1_declination_is_declined_not_none():
    """Draft 4.3.1: l= and a= both empty (a= absent counts as empty, 4.3) is "an explicit
    refusal to participate in BIMI ... distinct from not publishing a BIMI record": SPEC.md's
    ``declined``, never ``none``."""
    for text in ("v=BIMI1; l=; a=;", "v=BIMI1; l=", "v=BIMI1; l=;", "v=BIMI1; l=; a=; lps=true"):
        rec = bimi.parse_record(text)
        assert rec.valid and rec.declined and rec.status == "declined", text
    assert bimi.analyze(DOMAIN, zone(txt(BIMI, "v=BIMI1; l=;"))) == {"bimi_status": "declined"}


def test_bimi_4_3_tag_names_are_case_insensitive_values_exact():
    """Draft 4.3's ABNF writes tag names as quoted strings ("v", "l", "a"), case-insensitive by
    RFC 5234 2.3; the version value must "match precisely" (4.3) and is not repaired."""
    rec = bimi.parse_record(f"V=BIMI1; L={LOGO}; A={VMC}")
    assert rec.is_bimi and rec.valid and rec.location == LOGO and rec.evidence == VMC
    assert bimi.analyze(DOMAIN, zone(txt(BIMI, f"V=BIMI1; L={LOGO}"))) == {"bimi_status": "valid"}
    assert not bimi.parse_record(f"v=Bimi1; l={LOGO}").is_bimi
    assert not bimi.parse_record(f"v=BIMI1; l={LOGO}; L={LOGO}").valid  # one tag given twice


def test_bimi_4_3_evidence_without_location_is_valid():
    rec = bimi.parse_record(f"v=BIMI1; l=; a={VMC}")
    assert rec.valid and not rec.declined and rec.status == "valid"


def test_bimi_4_3_optional_tags():
    assert not bimi.parse_record(f"v=BIMI1; l={LOGO}; lps=TRUE").valid  # no fixing capitalisation
    rec = bimi.parse_record(f"v=BIMI1; l={LOGO}; avp=whatever; s=x")
    assert rec.valid and rec.avp == "brand" and len(rec.warnings) == 2
    assert not bimi.parse_record(f"v=BIMI1; l={LOGO}; l={LOGO}").valid


def test_bimi_7_2_multiple_records_are_invalid_and_others_ignored():
    good = f"v=BIMI1; l={LOGO}"
    assert bimi.analyze(DOMAIN, zone(txt(BIMI, good, good))) == {"bimi_status": "invalid"}
    assert bimi.analyze(DOMAIN, zone(txt(BIMI, "hello", good))) == {"bimi_status": "valid"}


def test_bimi_7_2_falls_back_to_the_organizational_domain():
    sub = "news.example.jp"
    own = txt(f"default._bimi.{sub}", rcode="NXDOMAIN")
    dns = zone(own, domain=sub)
    assert bimi.analyze(sub, dns) == {"bimi_status": "temperror"}
    assert dns.missing == {(BIMI, "TXT")}
    dns = zone(own, txt(BIMI, f"v=BIMI1; l={LOGO}"), domain=sub)
    assert bimi.analyze(sub, dns) == {"bimi_status": "valid"}


def test_bimi_4_3_1_declination_at_the_subdomain_stops_the_fallback():
    """Draft 4.3.1: a declination lets a subdomain decline "when its organizational domain has
    default Indicators available"; 7.2 reads the organizational record only when the domain's
    own holds no BIMI record, so nothing more is asked."""
    sub = "news.example.jp"
    dns = zone(txt(f"default._bimi.{sub}", "v=BIMI1; l=; a=;"), domain=sub)
    assert bimi.analyze(sub, dns) == {"bimi_status": "declined"} and dns.missing == set()


def test_bimi_timeout_and_nonexistent_domain():
    assert bimi.analyze(DOMAIN, zone(txt(BIMI, rcode="TIMEOUT"))) == {"bimi_status": "temperror"}
    assert bimi.analyze(DOMAIN, zone(txt(BIMI, rcode="NXDOMAIN"))) == {"bimi_status": "none"}
    dns = zone(rcode="NXDOMAIN")
    assert bimi.analyze(DOMAIN, dns) == {"bimi_status": "none"} and dns.missing == set()
    dns = zone(rcode="SERVFAIL")
    assert bimi.analyze(DOMAIN, dns) == {"bimi_status": "temperror"} and dns.missing == set()


# --- never raises ------------------------------------------------------------------------------

_PIECES = st.sampled_from(
    [
        "v=STSv1", "v=TLSRPTv1", "v=BIMI1", "id=abc", "id=", "rua=mailto:a@example.jp",
        "rua=https://r.example.net/x", "rua=", f"l={LOGO}", "l=", "a=", f"a={VMC}",
        "lps=true", "avp=personal", "x=y", "=", "", " ", "\ufffd", "\x00", "id=" + "9" * 40,
    ]
)  # fmt: skip
_TEXT = st.one_of(
    st.text(max_size=150),
    st.lists(_PIECES, max_size=8).map(";".join),
    st.lists(_PIECES, max_size=8).map("; ".join),
)


@settings(max_examples=300)
@given(_TEXT)
def test_parse_record_never_raises(text):
    sts = mta_sts.parse_record(text)
    assert isinstance(sts.valid, bool) and (sts.id is None or 1 <= len(sts.id) <= 32)
    rpt = tlsrpt.parse_record(text)
    assert isinstance(rpt.valid, bool) and (not rpt.valid or rpt.rua)
    b = bimi.parse_record(text)
    assert b.status in ("valid", "declined", "invalid")


_RCODE = st.sampled_from(["NOERROR", "NXDOMAIN", "SERVFAIL", "TIMEOUT", "MISSING"])


@settings(max_examples=300)
@given(
    st.sampled_from(
        ["example.jp", "news.example.co.jp", "EXAMPLE.JP.", "", "x" * 250 + ".jp", "a..jp"]
    ),
    _RCODE,
    st.lists(
        st.tuples(st.sampled_from(["_mta-sts", "_smtp._tls", "default._bimi"]), _RCODE, _TEXT),
        max_size=5,
    ),
)
def test_analyze_never_raises_and_answers_allowed_words(domain, apex_rcode, answers):
    dns = AnswerSet(apex(domain, apex_rcode) if apex_rcode != "MISSING" else [])
    for prefix, rcode, text in answers:
        if rcode != "MISSING":
            dns.add(txt(f"{prefix}.{domain}", text, rcode=rcode))
    sts = mta_sts.analyze(domain, dns)
    assert set(sts) == set(mta_sts.COLUMNS) and sts["mta_sts_status"] in STATUSES
    assert sts["mta_sts_id"] is None or sts["mta_sts_status"] == "valid"
    rpt = tlsrpt.analyze(domain, dns)
    assert set(rpt) == set(tlsrpt.COLUMNS) and rpt["tlsrpt_status"] in STATUSES
    assert rpt["tlsrpt_status"] != "valid" or rpt["tlsrpt_rua"]
    assert bimi.analyze(domain, dns)["bimi_status"] in bimi.STATUSES
