"""DMARC: record syntax (RFC 9989 4.7/4.8), discovery by DNS Tree Walk (4.10), policy (4.10.1),
Organizational Domain selection (4.10.2) and external report destinations (RFC 7489 7.1)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mailauth_survey.answers import Answer, AnswerSet
from mailauth_survey.policies import dmarc
from tests.builders import apex, txt, txt_rr


def nx(name: str) -> Answer:
    return Answer(name, "TXT", "NXDOMAIN")


def run(domain: str, *answers: Answer, exists: bool = True) -> tuple[dict, AnswerSet]:
    dns = AnswerSet([*apex(domain, "NOERROR" if exists else "NXDOMAIN"), *answers])
    return dmarc.analyze(domain, dns), dns


def key(qname: str) -> tuple[str, str]:
    return (qname, "TXT")


# --- RFC 9989 4.7 / 4.8: the record ---------------------------------------------------------


def test_rfc9989_4_7_version_value_is_case_sensitive_first_tag():
    """RFC 9989 4.8 (RFC 7489 6.4): dmarc-version = "v" equals %s"DMARC1"."""
    for text in (
        "v=dmarc1; p=reject",
        "V=Dmarc1; p=reject",
        "p=reject; v=DMARC1",
        "v=DMARC10; p=reject",
        "v=DMARC1 p=reject",
        "",
    ):
        rec = dmarc.parse_record(text)
        assert not rec.is_dmarc and rec.status == "invalid" and rec.errors, text
    assert dmarc.parse_record("v=DMARC1").is_dmarc


def test_rfc9989_4_8_white_space_around_equals_and_separators():
    rec = dmarc.parse_record("v = DMARC1 ;  p = reject ;\tsp=none ;")
    assert rec.valid and rec.p == "reject" and rec.sp == "none" and not rec.errors


def test_rfc9989_4_7_p_need_not_follow_v():
    rec = dmarc.parse_record("v=DMARC1; rua=mailto:d@example.jp; adkim=s; p=quarantine")
    assert rec.valid and rec.p == "quarantine" and rec.adkim == "s" and not rec.acts_as_none


def test_rfc9989_4_7_unknown_tags_ignored_with_warning():
    rec = dmarc.parse_record("v=DMARC1; p=reject; foo=bar; rau=mailto:x@example.jp")
    assert rec.valid and rec.p == "reject" and not rec.errors
    assert sum("unknown tag" in w for w in rec.warnings) == 2


def test_rfc9989_4_8_tag_names_are_case_insensitive_rfc5234_2_3():
    """RFC 9989 4.8 and RFC 7489 6.4 write every tag name as an ABNF quoted string ("v", "p",
    "adkim", ...), and ABNF quoted strings are case-insensitive (RFC 5234 2.3); only the value
    %s"DMARC1" is case-sensitive. So an upper-case record is a valid one, not "none"."""
    rec = dmarc.parse_record("V=DMARC1; P=reject; ADKIM=s; Aspf=s; RUA=mailto:d@example.jp")
    assert rec.is_dmarc and rec.valid and not rec.errors and not rec.warnings
    assert (rec.p, rec.adkim, rec.aspf, rec.rua) == ("reject", "s", "s", ["mailto:d@example.jp"])
    out, _ = run("example.jp", txt("_dmarc.example.jp", "V=DMARC1; P=reject"))
    assert (out["dmarc_status"], out["dmarc_policy"]) == ("valid", "reject")


def test_rfc9989_4_8_a_tag_named_twice_in_two_cases_is_a_duplicate():
    """Case-insensitive names (RFC 5234 2.3): p= and P= are the same tag, given twice, which
    makes the tag-list invalid (RFC 6376 3.2, RFC 9989 4.7)."""
    rec = dmarc.parse_record("v=DMARC1; p=reject; P=none")
    assert rec.status == "invalid" and any("more than once" in e for e in rec.errors)


def test_rfc7489_7_1_external_authorization_record_may_say_V_upper_case():
    """The authorizing record at <domain>._report._dmarc.<host> starts with v=DMARC1 (RFC
    7489 7.1), the same version tag: V=DMARC1 authorizes too."""
    qname = "example.jp._report._dmarc.reports.example.net"
    dns = AnswerSet([txt(qname, "V=DMARC1")])
    assert dmarc.external_authorized("example.jp", "reports.example.net", dns) is True


def test_rfc9989_4_7_tag_values_are_case_insensitive():
    rec = dmarc.parse_record("v=DMARC1; p=Reject; sp=QUARANTINE; adkim=S; aspf=s; psd=N; t=Y")
    assert (rec.p, rec.sp, rec.adkim, rec.aspf, rec.psd, rec.t) == (
        "reject", "quarantine", "s", "s", "n", "y",
    )  # fmt: skip
    assert not rec.errors


def test_rfc9989_4_7_alignment_defaults_to_relaxed():
    rec = dmarc.parse_record("v=DMARC1; p=none")
    assert (rec.adkim, rec.aspf, rec.psd, rec.t, rec.pct) == ("r", "r", "u", "n", None)


def test_rfc9989_4_10_1_missing_p_with_valid_rua_acts_as_p_none():
    rec = dmarc.parse_record("v=DMARC1; rua=mailto:dmarc@example.jp")
    assert rec.valid and rec.acts_as_none and rec.p is None
    assert (rec.effective_p, rec.effective_sp, rec.effective_np) == ("none", "none", "none")
    assert any("4.10.1" in w for w in rec.warnings)


def test_rfc9989_4_10_1_missing_p_without_rua_is_invalid():
    for text in ("v=DMARC1", "v=DMARC1; sp=reject", "v=DMARC1; rua=not-a-uri"):
        rec = dmarc.parse_record(text)
        assert rec.status == "invalid" and rec.effective_p is None, text


def test_rfc9989_4_10_1_invalid_p_falls_back_to_none_only_with_valid_rua():
    ok = dmarc.parse_record("v=DMARC1; p=block; rua=mailto:d@example.jp")
    assert ok.valid and ok.effective_p == "none" and ok.p is None
    assert any("p=" in e for e in ok.errors)
    bad = dmarc.parse_record("v=DMARC1; p=block")
    assert bad.status == "invalid"


def test_rfc9989_4_10_1_invalid_sp_or_np_makes_the_record_act_as_p_none():
    rec = dmarc.parse_record("v=DMARC1; p=reject; sp=bogus; rua=mailto:d@example.jp")
    assert rec.valid and rec.acts_as_none and rec.sp is None
    assert (rec.effective_p, rec.effective_sp) == ("none", "none")
    rec = dmarc.parse_record("v=DMARC1; p=reject; np=never; rua=mailto:d@example.jp")
    assert rec.valid and rec.effective_np == "none"
    assert dmarc.parse_record("v=DMARC1; p=reject; np=never").status == "invalid"


def test_rfc9989_4_7_sp_and_np_fall_back_to_p():
    rec = dmarc.parse_record("v=DMARC1; p=reject")
    assert (rec.effective_sp, rec.effective_np) == ("reject", "reject")
    rec = dmarc.parse_record("v=DMARC1; p=none; sp=quarantine")
    assert (rec.effective_sp, rec.effective_np) == ("quarantine", "quarantine")
    rec = dmarc.parse_record("v=DMARC1; p=none; sp=quarantine; np=reject")
    assert (rec.effective_p, rec.effective_sp, rec.effective_np) == ("none", "quarantine", "reject")


def test_rfc9989_c_5_2_pct_rf_ri_removed_but_reported():
    rec = dmarc.parse_record("v=DMARC1; p=quarantine; pct=50; rf=afrf; ri=86400")
    assert rec.valid and rec.pct == 50 and not rec.errors
    assert sum("removed" in w for w in rec.warnings) == 3


def test_rfc7489_6_3_pct_out_of_range_is_an_error_and_null():
    for value in ("150", "-1", "abc", "1000", "５０"):
        rec = dmarc.parse_record(f"v=DMARC1; p=reject; pct={value}")
        assert rec.valid and rec.pct is None and any("pct" in e for e in rec.errors), value
    assert dmarc.parse_record("v=DMARC1; p=reject; pct=0").pct == 0


def test_rfc9989_4_8_bad_single_letter_values_fall_back_to_defaults():
    rec = dmarc.parse_record("v=DMARC1; p=reject; adkim=x; aspf=relaxed; t=maybe; psd=q")
    assert rec.valid and (rec.adkim, rec.aspf, rec.t, rec.psd) == ("r", "r", "n", "u")
    assert len(rec.errors) == 4


def test_rfc9989_4_7_fo_options():
    """RFC 7489 6.4 dmarc-fo = ( "0" / "1" / "d" / "s" ) *(*WSP ":" *WSP ( "0" / "1" / "d" /
    "s" )): every option may be combined with every other, 0:1 and repeats included."""
    assert dmarc.parse_record("v=DMARC1; p=none; ruf=mailto:f@example.jp; fo=0:d:s").fo == "0:d:s"
    for good in ("0:1", "0:1:d:s", "D : S", "d:d"):
        rec = dmarc.parse_record(f"v=DMARC1; p=none; ruf=mailto:f@example.jp; fo={good}")
        assert rec.fo == good.lower().replace(" ", "") and not rec.errors, good
    for bad in ("2", "", "d:", "0;1", "ds"):
        rec = dmarc.parse_record(f"v=DMARC1; p=none; ruf=mailto:f@example.jp; fo={bad}")
        assert rec.fo == "0" and rec.errors, bad
    rec = dmarc.parse_record("v=DMARC1; p=none; fo=1")
    assert any("without a ruf" in w for w in rec.warnings)


def test_rfc9989_4_8_report_uri_lists():
    rec = dmarc.parse_record(
        "v=DMARC1; p=none; rua=mailto:a@example.jp , mailto:b@example.net!10m,https://r.example.org/x;"
        " ruf=mailto:f@example.jp"
    )
    assert rec.rua == ["mailto:a@example.jp", "mailto:b@example.net!10m", "https://r.example.org/x"]
    assert rec.rua_hosts == ["example.jp", "example.net", "r.example.org"]
    assert rec.ruf == ["mailto:f@example.jp"]
    assert any("obsolete" in w for w in rec.warnings)
    assert any("not mailto" in w for w in rec.warnings)


def test_rfc9989_4_8_invalid_report_uris_are_ignored():
    rec = dmarc.parse_record(
        "v=DMARC1; p=none; rua=dmarc@example.jp, mailto:nobody, mailto:a!b@example.jp,"
        " mailto:ok@example.jp, mailto:x@ex ample.jp,"
    )
    assert rec.rua == ["mailto:ok@example.jp"]
    assert len(rec.errors) == 5


def test_rfc6376_3_2_duplicate_tag_makes_the_dmarc_record_invalid():
    rec = dmarc.parse_record("v=DMARC1; p=none; p=reject; rua=mailto:d@example.jp")
    assert rec.status == "invalid" and any("more than once" in e for e in rec.errors)


def test_rfc9989_4_8_syntax_errors_are_discarded_not_fatal():
    rec = dmarc.parse_record("v=DMARC1; p=reject;; garbage; rua=mailto:d@example.jp")
    assert rec.valid and rec.p == "reject" and len(rec.errors) == 2


def test_rfc9989_4_8_leading_white_space_is_tolerated_with_a_warning():
    rec = dmarc.parse_record(" v=DMARC1; p=reject")
    assert rec.valid and rec.warnings


# --- RFC 9989 4.10 / 4.10.1: discovery ------------------------------------------------------


def test_rfc9989_4_10_1_own_record_source_domain_and_p_applies():
    out, dns = run(
        "example.jp",
        txt("_dmarc.example.jp", "v=DMARC1; p=quarantine; sp=reject; np=reject; pct=100"),
    )
    assert out["dmarc_status"] == "valid" and out["dmarc_source"] == "domain"
    assert (out["dmarc_p"], out["dmarc_sp"], out["dmarc_np"]) == ("quarantine", "reject", "reject")
    assert out["dmarc_policy"] == "quarantine" and out["dmarc_pct"] == 100
    assert out["dmarc_record"] == "v=DMARC1; p=quarantine; sp=reject; np=reject; pct=100"
    assert out["dmarc_rua"] == [] and out["dmarc_rua_authorized"] is None
    assert set(out) == set(dmarc.COLUMNS)
    assert dns.missing == set()


def test_rfc9989_4_5_txt_strings_are_joined_without_separator():
    name = "_dmarc.example.jp"
    answer = Answer(name, "TXT", "NOERROR", (txt_rr(name, "v=DMARC1; p=rej", "ect; adkim=s"),))
    out, _ = run("example.jp", answer)
    assert out["dmarc_policy"] == "reject" and out["dmarc_adkim"] == "s"


def test_rfc9989_4_10_step2_other_txt_records_at_dmarc_are_ignored():
    out, _ = run(
        "example.jp",
        txt("_dmarc.example.jp", "google-site-verification=abc", "v=DMARC1; p=reject", "spf?"),
    )
    assert out["dmarc_status"] == "valid" and out["dmarc_policy"] == "reject"


def test_rfc9989_4_10_step2_lookalike_record_is_ignored_and_walk_continues():
    out, _ = run(
        "example.jp",
        txt("_dmarc.example.jp", "v=dmarc1; p=reject"),
        nx("_dmarc.jp"),
    )
    assert out["dmarc_status"] == "none"
    assert any("DMARC1 is case-sensitive" in w for w in out["dmarc_warnings"])


def test_rfc9989_4_10_step2_multiple_records_make_the_domain_invalid():
    out, dns = run(
        "example.jp",
        txt("_dmarc.example.jp", "v=DMARC1; p=reject", "v=DMARC1; p=none"),
    )
    assert out["dmarc_status"] == "invalid" and out["dmarc_policy"] is None
    assert out["dmarc_source"] == "domain"
    assert dns.missing == set()


def test_rfc9989_4_10_cname_at_dmarc_is_followed():
    name, target = "_dmarc.example.jp", "example-jp.dmarc.provider.example"
    chain = Answer(
        name,
        "TXT",
        "NOERROR",
        (f"{name}. 300 IN CNAME {target}.", txt_rr(target, "v=DMARC1; p=reject")),
    )
    out, _ = run("example.jp", chain)
    assert out["dmarc_status"] == "valid" and out["dmarc_policy"] == "reject"


def test_rfc9989_4_10_1_nodata_at_own_name_walks_to_the_parent():
    out, dns = run(
        "shop.example.jp",
        txt("_dmarc.shop.example.jp"),  # NOERROR, no record
        txt("_dmarc.example.jp", "v=DMARC1; p=reject; sp=quarantine"),
        nx("_dmarc.jp"),
    )
    assert out["dmarc_status"] == "valid" and out["dmarc_source"] == "organizational"
    assert out["dmarc_p"] == "reject" and out["dmarc_policy"] == "quarantine"
    assert dns.missing == set()


def test_rfc9989_4_10_1_nxdomain_at_own_name_walks_too():
    out, _ = run(
        "shop.example.jp",
        nx("_dmarc.shop.example.jp"),
        txt("_dmarc.example.jp", "v=DMARC1; p=reject"),
        nx("_dmarc.jp"),
    )
    assert out["dmarc_source"] == "organizational" and out["dmarc_policy"] == "reject"


def test_missing_own_dmarc_is_the_only_next_query():
    dns = AnswerSet(apex("shop.example.jp"))
    out = dmarc.analyze("shop.example.jp", dns)
    assert out["dmarc_status"] == "temperror"
    assert dns.missing == {key("_dmarc.shop.example.jp")}


def test_own_nodata_makes_the_walks_levels_the_next_queries():
    """RFC 9989 4.10: no record of its own, so the walk; all its levels are asked in one round."""
    _, dns = run("shop.example.jp", txt("_dmarc.shop.example.jp"))
    assert dns.missing == {key("_dmarc.example.jp"), key("_dmarc.jp")}


def test_rfc9989_4_10_a_psd_tag_still_ends_the_walk_when_a_level_above_is_missing():
    """psd=n marks the Organizational Domain: nothing below it is asked, even ahead of time."""
    domain = "a.b.example.jp"
    out, dns = run(
        domain, nx(f"_dmarc.{domain}"), txt("_dmarc.example.jp", "v=DMARC1; p=reject; psd=n")
    )
    assert out["dmarc_status"] == "temperror"  # _dmarc.b.example.jp is not known yet
    assert dns.missing == {key("_dmarc.b.example.jp")}


def test_missing_apex_asks_only_the_apex():
    dns = AnswerSet()
    assert dmarc.analyze("example.jp", dns)["dmarc_status"] == "temperror"
    assert dns.missing == {("example.jp", t) for t in ("MX", "TXT", "NS")}


def test_rfc9989_4_10_1_timeout_is_temperror_and_never_walks_past():
    for rcode in ("TIMEOUT", "SERVFAIL", "REFUSED", "ERROR"):
        out, dns = run("shop.example.jp", txt("_dmarc.shop.example.jp", rcode=rcode))
        assert out["dmarc_status"] == "temperror", rcode
        assert out["dmarc_record"] is None and out["dmarc_rua"] is None
        assert dns.missing == set(), "the parent must not be asked as if the record were absent"


def test_rfc9989_4_10_failure_during_the_walk_is_temperror():
    """The unanswered ancestor might hold the record that applies (4.10.2 picks the shortest)."""
    out, dns = run(
        "shop.example.co.jp",
        nx("_dmarc.shop.example.co.jp"),
        txt("_dmarc.example.co.jp", "v=DMARC1; p=reject"),
        txt("_dmarc.co.jp", rcode="SERVFAIL"),
    )
    assert out["dmarc_status"] == "temperror"
    assert any("_dmarc.co.jp" in e for e in out["dmarc_errors"])
    assert dns.missing == set()


def test_rfc9989_4_10_walk_goes_down_to_the_tld_in_one_round():
    domain = "example.co.jp"
    dns = AnswerSet([*apex(domain), nx("_dmarc.example.co.jp")])
    out = dmarc.analyze(domain, dns)
    assert out["dmarc_status"] == "temperror"
    assert dns.missing == {key("_dmarc.co.jp"), key("_dmarc.jp")}
    dns = AnswerSet([*apex(domain), nx("_dmarc.example.co.jp"), nx("_dmarc.co.jp")])
    dmarc.analyze(domain, dns)
    assert dns.missing == {key("_dmarc.jp")}
    dns.add(txt("_dmarc.jp"))
    dns.missing.clear()
    out = dmarc.analyze(domain, dns)
    assert out["dmarc_status"] == "none" and out["dmarc_source"] is None
    assert out["dmarc_rua"] == [] and out["dmarc_errors"] == []
    assert dns.missing == set()


def test_rfc9989_4_10_2_record_with_fewest_labels_is_the_organizational_domain():
    """B.4.2: with records at mail.example.jp and example.jp, example.jp's applies."""
    out, dns = run(
        "a.mail.example.jp",
        nx("_dmarc.a.mail.example.jp"),
        txt("_dmarc.mail.example.jp", "v=DMARC1; p=none"),
        txt("_dmarc.example.jp", "v=DMARC1; p=reject; sp=quarantine"),
        nx("_dmarc.jp"),
    )
    assert out["dmarc_record"] == "v=DMARC1; p=reject; sp=quarantine"
    assert out["dmarc_policy"] == "quarantine"
    assert dns.missing == set()


def test_rfc9989_4_10_psd_n_stops_the_walk_and_marks_the_organizational_domain():
    out, dns = run(
        "a.mail.example.jp",
        nx("_dmarc.a.mail.example.jp"),
        txt("_dmarc.mail.example.jp", "v=DMARC1; p=quarantine; psd=n"),
    )
    assert out["dmarc_record"] == "v=DMARC1; p=quarantine; psd=n"
    assert out["dmarc_policy"] == "quarantine"
    assert dns.missing == set(), "nothing above a psd=n record is asked"


def test_rfc9989_4_10_2_psd_y_makes_its_child_the_organizational_domain():
    """B.4.3: giant.bank.example publishes, bank.example has psd=y: giant's record applies."""
    out, dns = run(
        "www.giant.bank.jp",
        nx("_dmarc.www.giant.bank.jp"),
        txt("_dmarc.giant.bank.jp", "v=DMARC1; p=quarantine"),
        txt("_dmarc.bank.jp", "v=DMARC1; p=reject; psd=y"),
    )
    assert out["dmarc_record"] == "v=DMARC1; p=quarantine"
    assert out["dmarc_policy"] == "quarantine"
    assert dns.missing == set(), "the walk stops at psd=y; _dmarc.jp is not asked"


def test_rfc9989_4_10_1_psd_policy_applies_when_the_organizational_domain_has_none():
    out, _ = run(
        "shop.example.jp",
        nx("_dmarc.shop.example.jp"),
        nx("_dmarc.example.jp"),
        txt("_dmarc.jp", "v=DMARC1; p=quarantine; sp=reject; psd=y"),
    )
    assert out["dmarc_status"] == "valid" and out["dmarc_source"] == "organizational"
    assert out["dmarc_policy"] == "reject"
    assert any("Public Suffix Domain jp" in w for w in out["dmarc_warnings"])


def test_rfc9989_4_10_1_author_domain_directly_below_a_psd_uses_its_subdomain_policy():
    out, _ = run(
        "example.jp",
        nx("_dmarc.example.jp"),
        txt("_dmarc.jp", "v=DMARC1; p=none; sp=reject; psd=y"),
    )
    assert out["dmarc_policy"] == "reject"


def test_rfc9989_4_10_eight_label_limit():
    assert dmarc.walk_targets("a.b.c.d.e.f.g.h.i.j.mail.example.com") == [
        "g.h.i.j.mail.example.com", "h.i.j.mail.example.com", "i.j.mail.example.com",
        "j.mail.example.com", "mail.example.com", "example.com", "com",
    ]  # fmt: skip
    assert dmarc.walk_targets("h.g.f.e.d.c.b.jp")[0] == "g.f.e.d.c.b.jp"  # 8 labels: the parent
    assert dmarc.walk_targets("example.jp") == ["jp"]
    domain = "a.b.c.d.e.f.g.h.example.jp"
    _, dns = run(domain, nx(f"_dmarc.{domain}"))
    assert dns.missing == {key(f"_dmarc.{t}") for t in dmarc.walk_targets(domain)}
    assert key("_dmarc.d.e.f.g.h.example.jp") in dns.missing
    assert key("_dmarc.c.d.e.f.g.h.example.jp") not in dns.missing  # beyond the 8-label limit


def test_rfc9989_4_10_at_most_eight_dmarc_queries():
    domain = "a.b.c.d.e.f.g.h.i.j.example.jp"
    asked: list[str] = []

    class Recording(AnswerSet):
        def get(self, qname, qtype):
            if qname.startswith("_dmarc."):
                asked.append(qname)
            return super().get(qname, qtype)

    dns = Recording(apex(domain))
    for _ in range(20):
        dns.missing.clear()
        dmarc.analyze(domain, dns)
        if not dns.missing:
            break
        for qname, _t in dns.missing:
            dns.add(nx(qname))
    assert dmarc.analyze(domain, dns)["dmarc_status"] == "none"
    assert len(set(asked)) == 8


def test_rfc9989_4_10_1_np_applies_to_a_non_existent_domain():
    parent = "v=DMARC1; p=none; sp=quarantine; np=reject"
    out, dns = run(
        "gone.example.jp", txt("_dmarc.example.jp", parent), nx("_dmarc.jp"), exists=False
    )
    assert out["dmarc_source"] == "organizational" and out["dmarc_policy"] == "reject"
    assert key("_dmarc.gone.example.jp") not in dns.missing, "RFC 8020: nothing below is asked"
    assert dns.missing == set()


def test_rfc9989_4_10_1_without_np_a_non_existent_domain_gets_sp_then_p():
    out, _ = run(
        "gone.example.jp",
        txt("_dmarc.example.jp", "v=DMARC1; p=none; sp=quarantine"),
        nx("_dmarc.jp"),
        exists=False,
    )
    assert out["dmarc_policy"] == "quarantine"
    out, _ = run(
        "gone.example.jp",
        txt("_dmarc.example.jp", "v=DMARC1; p=reject"),
        nx("_dmarc.jp"),
        exists=False,
    )
    assert out["dmarc_policy"] == "reject"


def test_rfc9989_4_10_1_np_does_not_apply_to_an_existing_subdomain():
    out, _ = run(
        "www.example.jp",
        nx("_dmarc.www.example.jp"),
        txt("_dmarc.example.jp", "v=DMARC1; p=none; np=reject"),
        nx("_dmarc.jp"),
    )
    assert out["dmarc_policy"] == "none"


def test_apex_unknown_is_temperror_without_any_dmarc_query():
    dns = AnswerSet(apex("example.jp", "TIMEOUT"))
    out = dmarc.analyze("example.jp", dns)
    assert out["dmarc_status"] == "temperror" and dns.missing == set()


def test_rfc9989_4_10_1_invalid_own_record_stops_discovery():
    out, dns = run("shop.example.jp", txt("_dmarc.shop.example.jp", "v=DMARC1; p=block"))
    assert out["dmarc_status"] == "invalid" and out["dmarc_source"] == "domain"
    assert out["dmarc_policy"] is None and out["dmarc_record"] == "v=DMARC1; p=block"
    assert dns.missing == set()


def test_rfc9989_4_10_1_record_without_p_but_with_rua_is_valid_p_none():
    out, _ = run("example.jp", txt("_dmarc.example.jp", "v=DMARC1; rua=mailto:d@example.jp"))
    assert out["dmarc_status"] == "valid" and out["dmarc_p"] is None
    assert out["dmarc_policy"] == "none"


def test_rfc9989_4_10_step6_multiple_records_at_an_ancestor_are_discarded():
    out, _ = run(
        "shop.example.jp",
        nx("_dmarc.shop.example.jp"),
        txt("_dmarc.example.jp", "v=DMARC1; p=reject", "v=DMARC1; p=none"),
        nx("_dmarc.jp"),
    )
    assert out["dmarc_status"] == "none"
    assert any("discarded" in w for w in out["dmarc_warnings"])


def test_rfc7489_difference_is_noted_when_the_walk_picks_another_domain():
    out, _ = run(
        "www.example.co.jp",
        nx("_dmarc.www.example.co.jp"),
        nx("_dmarc.example.co.jp"),
        txt("_dmarc.co.jp", "v=DMARC1; p=reject"),
        nx("_dmarc.jp"),
    )
    assert out["dmarc_status"] == "valid"
    assert any("RFC 7489" in w and "_dmarc.example.co.jp" in w for w in out["dmarc_warnings"])


# --- external report destinations (RFC 7489 7.1; aggregate reporting) ------------------------


def test_rfc7489_7_1_destination_inside_the_organizational_domain_needs_no_query():
    """Organizational domains are compared, not names: dmarc.example.jp is inside example.jp."""
    out, dns = run(
        "shop.example.jp",
        txt("_dmarc.shop.example.jp", "v=DMARC1; p=none; rua=mailto:agg@dmarc.example.jp"),
    )
    assert out["dmarc_rua_authorized"] is True
    assert dns.missing == set()


def test_rfc7489_7_1_external_destination_authorized_by_report_record():
    out, dns = run(
        "example.jp",
        txt("_dmarc.example.jp", "v=DMARC1; p=none; rua=mailto:agg@reports.example.net"),
        txt("example.jp._report._dmarc.reports.example.net", "v=DMARC1"),
    )
    assert out["dmarc_rua_authorized"] is True and dns.missing == set()


def test_rfc7489_7_1_external_destination_without_record_is_not_authorized():
    for answer in (
        nx("example.jp._report._dmarc.reports.example.net"),
        txt("example.jp._report._dmarc.reports.example.net"),
        txt("example.jp._report._dmarc.reports.example.net", "v=spf1 -all", "v=DMARC2"),
    ):
        out, _ = run(
            "example.jp",
            txt("_dmarc.example.jp", "v=DMARC1; p=none; rua=mailto:agg@reports.example.net"),
            answer,
        )
        assert out["dmarc_rua_authorized"] is False
        assert out["dmarc_status"] == "valid"
        assert any("reports.example.net" in w for w in out["dmarc_warnings"])


def test_rfc7489_7_1_temporary_failure_leaves_authorization_unknown():
    out, _ = run(
        "example.jp",
        txt("_dmarc.example.jp", "v=DMARC1; p=none; rua=mailto:agg@reports.example.net"),
        txt("example.jp._report._dmarc.reports.example.net", rcode="TIMEOUT"),
    )
    assert out["dmarc_rua_authorized"] is None


def test_rfc7489_7_1_every_destination_must_be_authorized():
    record = "v=DMARC1; p=none; rua=mailto:a@one.example.net,mailto:b@two.example.org"
    _, dns = run("example.jp", txt("_dmarc.example.jp", record))
    assert dns.missing == {
        key("example.jp._report._dmarc.one.example.net"),
        key("example.jp._report._dmarc.two.example.org"),
    }
    out, _ = run(
        "example.jp",
        txt("_dmarc.example.jp", record),
        txt("example.jp._report._dmarc.one.example.net", "v=DMARC1;"),
        nx("example.jp._report._dmarc.two.example.org"),
    )
    assert out["dmarc_rua_authorized"] is False


def test_rfc7489_7_1_inherited_record_is_authorized_for_the_policy_domain():
    """Step 3: prepend the domain name from which the policy was retrieved."""
    out, dns = run(
        "www.example.jp",
        nx("_dmarc.www.example.jp"),
        txt("_dmarc.example.jp", "v=DMARC1; p=none; rua=mailto:agg@reports.example.net"),
        nx("_dmarc.jp"),
        txt("example.jp._report._dmarc.reports.example.net", "v=DMARC1"),
    )
    assert out["dmarc_rua_authorized"] is True and dns.missing == set()


def test_rua_authorized_is_null_without_rua():
    out, _ = run(
        "example.jp", txt("_dmarc.example.jp", "v=DMARC1; p=reject; ruf=mailto:f@x.example.net")
    )
    assert out["dmarc_rua_authorized"] is None and out["dmarc_ruf"] == ["mailto:f@x.example.net"]


def test_rfc7489_7_1_name_too_long_for_the_dns_cannot_authorize():
    host = ".".join(["r" * 60] * 3) + ".example.net"
    domain = "d" * 60 + ".example.jp"
    out, dns = run(domain, txt(f"_dmarc.{domain}", f"v=DMARC1; p=none; rua=mailto:a@{host}"))
    assert out["dmarc_rua_authorized"] is False and dns.missing == set()


# --- the collector loop and adversarial input --------------------------------------------------


def test_collector_loop_converges_with_exactly_the_queries_needed():
    """Answers are fetched only when asked; the result equals the one-shot analysis."""
    domain = "www.shop.example.co.jp"
    zone = {
        "_dmarc.shop.example.co.jp": txt(
            "_dmarc.shop.example.co.jp", "v=DMARC1; p=reject; rua=mailto:x@rep.example.net"
        ),
        "shop.example.co.jp._report._dmarc.rep.example.net": txt(
            "shop.example.co.jp._report._dmarc.rep.example.net", "v=DMARC1"
        ),
    }
    dns = AnswerSet(apex(domain))
    fetched = []  # one set per collection round
    for _ in range(12):
        dns.missing.clear()
        out = dmarc.analyze(domain, dns)
        if not dns.missing:
            break
        fetched.append({qname for qname, _t in dns.missing})
        for qname, _t in sorted(dns.missing):
            dns.add(zone.get(qname) or nx(qname))
    assert out["dmarc_status"] == "valid" and out["dmarc_rua_authorized"] is True
    assert fetched == [
        {"_dmarc.www.shop.example.co.jp"},
        {"_dmarc.shop.example.co.jp", "_dmarc.example.co.jp", "_dmarc.co.jp", "_dmarc.jp"},
        {"shop.example.co.jp._report._dmarc.rep.example.net"},
    ]


_PIECES = st.sampled_from(
    [
        "v=DMARC1", "v = DMARC1 ", "V=DMARC1", "p=reject", "p=none", "p=quarantine", "p=",
        "sp=reject", "np=bogus", "psd=y", "psd=n", "psd=x", "t=y", "adkim=s", "aspf=q",
        "pct=50", "pct=999", "fo=0:d", "fo=0:1", "rua=mailto:a@example.jp",
        "rua=mailto:r@reports.example.net!10m", "rua=https://r.example.org/x, bad",
        "ruf=mailto:f@x.example.net", "rf=afrf", "ri=3600", "x=y", "=", "", " ", "p=ｒeject",
        "rua=mailto:\u00e9@\u4f8b.jp", "\x00", "\ufffd",
    ]
)  # fmt: skip
_RECORDS = st.one_of(
    st.text(max_size=200),
    st.lists(_PIECES, max_size=10).map("; ".join),
    st.lists(_PIECES, min_size=1, max_size=10).map(lambda xs: "v=DMARC1;" + ";".join(xs)),
)


@settings(max_examples=400)
@given(_RECORDS)
def test_parse_record_never_raises_and_uses_allowed_words(text):
    rec = dmarc.parse_record(text)
    assert rec.status in ("valid", "invalid")
    for value in (rec.p, rec.sp, rec.np, rec.effective_p, rec.effective_sp, rec.effective_np):
        assert value is None or value in dmarc.POLICIES
    assert rec.adkim in ("r", "s") and rec.aspf in ("r", "s") and rec.psd in ("y", "n", "u")
    assert rec.pct is None or 0 <= rec.pct <= 100
    if rec.valid:
        assert rec.effective_p in dmarc.POLICIES


class RandomDNS(AnswerSet):
    """Answers drawn by hypothesis the first time each name is asked (so every branch is reachable)."""

    def __init__(self, data):
        super().__init__()
        self.data = data

    def get(self, qname, qtype):
        if not self.has(qname, qtype):
            rcode = self.data.draw(
                st.sampled_from(["NOERROR", "NXDOMAIN", "SERVFAIL", "TIMEOUT", "MISSING"])
            )
            if rcode == "MISSING":
                return super().get(qname, qtype)
            texts = self.data.draw(st.lists(_RECORDS, max_size=3)) if rcode == "NOERROR" else []
            self.add(Answer(qname, qtype, rcode, tuple(txt_rr(qname, t) for t in texts)))
        return super().get(qname, qtype)


@settings(max_examples=300)
@given(
    st.sampled_from(
        [
            "example.jp",
            "a.b.example.co.jp",
            "a.b.c.d.e.f.g.h.i.example.jp",
            "EXAMPLE.JP.",
            "",
            "jp",
            "x" * 64 + ".jp",
            "é.jp",
            "a..jp",
        ]
    ),  # fmt: skip
    st.data(),
)
def test_analyze_never_raises_and_answers_allowed_words(domain, data):
    out = dmarc.analyze(domain, RandomDNS(data))
    assert tuple(out) == dmarc.COLUMNS
    assert out["dmarc_status"] in dmarc.STATUSES
    assert out["dmarc_source"] in ("domain", "organizational", None)
    for col in ("dmarc_p", "dmarc_sp", "dmarc_np", "dmarc_policy"):
        assert out[col] is None or out[col] in dmarc.POLICIES
    assert out["dmarc_adkim"] in ("r", "s", None) and out["dmarc_aspf"] in ("r", "s", None)
    assert out["dmarc_rua_authorized"] in (True, False, None)
    assert isinstance(out["dmarc_errors"], list) and isinstance(out["dmarc_warnings"], list)
    if out["dmarc_status"] == "valid":
        assert out["dmarc_policy"] in dmarc.POLICIES and out["dmarc_source"]
    if out["dmarc_status"] in ("none", "temperror"):
        assert out["dmarc_record"] is None and out["dmarc_policy"] is None
