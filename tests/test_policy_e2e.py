"""Policy verdicts end to end: zones served by NSD, scanned, and rebuilt by reanalyze."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from mailauth_survey.cli import main
from mailauth_survey.collect import ScanOptions, scan
from tests.conftest import write_list
from tests.nsd import Nsd, zone

# A real 2048-bit RSA SubjectPublicKeyInfo (openssl genrsa | openssl rsa -pubout -outform DER).
KEY = (
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAsdLjB3gz63VLZGAkhdTfL3TWyTe0KJAVmmy7GoPkBHjs9/rRx7sy"
    "05Pp/2kymNoPrYMbHMNIV6Y/TJ6jOGP+ihUHGI05lkjvThgyfEukrDoGdWwOLUc23Z8ko1uSnfQbh9jAH3+9Am8CWtGBkGfc"
    "JuKZG6w7KxJUeIkk86HsnYE5CZi5SwM6F9R985M5lUL3H/FXUr+jzTCn9Ag0f7+adPawrtTfvTtUj43eZQPQvDiyZ2SlWStC"
    "Tsew4ggeAB5DwVdefZZdaErzYhTZEax0OGDmvaFEHIofeNJ7zIOiMHzrnHLguFYMuyuhbfpO6Ka9AEAT/f1ZrLpKrfdA2Je9"
    "ewIDAQAB"
)

ZONES = {
    "jp": zone("jp"),
    "co.jp": zone("co.jp", '_dmarc TXT "v=DMARC1; p=reject; psd=y"'),
    "provider.net": zone(
        "provider.net",
        '_spf TXT "v=spf1 ip4:203.0.113.0/24 include:_spf2.provider.net ~all"',
        '_spf2 TXT "v=spf1 ip4:198.51.100.0/24 -all"',
        'nospf TXT "hello"',
        '*._report._dmarc TXT "v=DMARC1"',
        'shared-dmarc TXT "v=DMARC1; p=quarantine; rua=mailto:agg@provider.net"',
    ),
    "reports.example": zone("reports.example"),
    # SPF: an include chain across zones, -all.
    "good.co.jp": zone(
        "good.co.jp", '@ TXT "v=spf1 include:_spf.provider.net -all"', "@ MX 10 mx.provider.net."
    ),
    # SPF: include of a name that has no SPF record is a permerror (RFC 7208 5.2).
    "badinc.co.jp": zone("badinc.co.jp", '@ TXT "v=spf1 include:nospf.provider.net -all"'),
    # SPF: strings split across TXT character-strings, joined with no separator (3.3).
    "split.co.jp": zone("split.co.jp", '@ TXT "v=spf1 ip4:192.0.2.1" " ~all"'),
    # SPF: redirect= gives the effective all (6.1).
    "redir.co.jp": zone("redir.co.jp", '@ TXT "v=spf1 redirect=_spf.provider.net"'),
    # SPF: two records is a permerror (4.5); +all passes any address.
    "two.co.jp": zone("two.co.jp", '@ TXT "v=spf1 -all"', '@ TXT "v=spf1 ~all"'),
    "open.co.jp": zone("open.co.jp", '@ TXT "v=spf1 +all"'),
    # DMARC: an unrelated TXT at _dmarc does not hide the record (RFC 7489 6.6.3).
    "noise.co.jp": zone(
        "noise.co.jp",
        '_dmarc TXT "google-site-verification=abc"',
        '_dmarc TXT "v=DMARC1 ; p = reject ; rua=mailto:d@noise.co.jp"',
    ),
    # DMARC: a CNAME at _dmarc to a provider's record is followed.
    "alias.co.jp": zone("alias.co.jp", "_dmarc CNAME shared-dmarc.provider.net."),
    # DMARC: external rua authorized by a wildcard _report._dmarc; another one not authorized.
    "ext.co.jp": zone("ext.co.jp", '_dmarc TXT "v=DMARC1; p=none; rua=mailto:x@provider.net"'),
    "unauth.co.jp": zone(
        "unauth.co.jp", '_dmarc TXT "v=DMARC1; p=none; rua=mailto:x@reports.example"'
    ),
    # DMARC: a subdomain inherits the organizational domain's sp (tree walk).
    "org.co.jp": zone(
        "org.co.jp",
        '_dmarc TXT "v=DMARC1; p=reject; sp=quarantine"',
        "sub MX 10 mx.org.co.jp.",
        'sub TXT "v=spf1 -all"',
    ),
    # DKIM: keys at two probed selectors (the key split into 255-byte strings), one revoked; MTA-STS, TLS-RPT, BIMI.
    "keys.co.jp": zone(
        "keys.co.jp",
        f'selector1._domainkey TXT "v=DKIM1; k=rsa; p={KEY[:200]}" "{KEY[200:]}"',
        f'google._domainkey TXT "v=DKIM1; p={KEY[:200]}" "{KEY[200:]}"',
        'k1._domainkey TXT "v=DKIM1; p="',
        '_mta-sts TXT "v=STSv1; id=20240601T000000"',
        '_smtp._tls TXT "v=TLSRPTv1; rua=mailto:tls@keys.co.jp"',
        'default._bimi TXT "v=BIMI1; l=https://keys.co.jp/logo.svg; a="',
    ),
    # DKIM: nothing under _domainkey (NXDOMAIN there, RFC 8020).
    "nokeys.co.jp": zone(
        "nokeys.co.jp", '_mta-sts TXT "v=STSv1; id=a"', '_mta-sts TXT "v=STSv1; id=b"'
    ),
}

LIST = [z for z in ZONES if z.endswith(".co.jp") and z != "co.jp"] + ["sub.org.co.jp", "gone.co.jp"]


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    base = tmp_path_factory.mktemp("policy")
    server = Nsd(base / "nsd", ZONES)
    try:
        lst = write_list(base / "l.txt", LIST)
        scan(
            [lst],
            base / "out",
            snapshot="s",
            options=ScanOptions(resolvers=[server.address], timeout=1.0),
        )
    finally:
        server.stop()
    return base / "out", pd.read_parquet(base / "out" / "domains").set_index("domain")


def row(result, name):
    return result[1].loc[name]


def test_spf_include_chain_across_zones_rfc7208_5_2(result) -> None:
    r = row(result, "good.co.jp")
    assert r["spf_status"] == "valid" and r["spf_all"] == "-all"
    assert r["spf_lookups"] == 2  # include → include (RFC 7208 4.6.4)
    assert not r["spf_pass_any"]


def test_spf_include_without_record_is_permerror_rfc7208_5_2(result) -> None:
    assert row(result, "badinc.co.jp")["spf_status"] == "permerror"


def test_spf_split_strings_joined_rfc7208_3_3(result) -> None:
    r = row(result, "split.co.jp")
    assert r["spf_record"] == "v=spf1 ip4:192.0.2.1 ~all"
    assert r["spf_all"] == "~all"


def test_spf_redirect_effective_all_rfc7208_6_1(result) -> None:
    r = row(result, "redir.co.jp")
    assert r["spf_status"] == "valid" and r["spf_all"] == "~all"


def test_spf_two_records_permerror_rfc7208_4_5(result) -> None:
    assert row(result, "two.co.jp")["spf_status"] == "permerror"


def test_spf_plus_all_passes_any_address(result) -> None:
    r = row(result, "open.co.jp")
    assert r["spf_all"] == "+all" and r["spf_pass_any"]


def test_dmarc_unrelated_txt_does_not_hide_record_rfc7489_6_6_3(result) -> None:
    r = row(result, "noise.co.jp")
    assert r["dmarc_status"] == "valid" and r["dmarc_policy"] == "reject"
    assert r["dmarc_source"] == "domain"


def test_dmarc_cname_followed(result) -> None:
    r = row(result, "alias.co.jp")
    assert r["dmarc_status"] == "valid" and r["dmarc_p"] == "quarantine"


def test_dmarc_external_rua_authorization_rfc7489_7_1(result) -> None:
    assert row(result, "ext.co.jp")["dmarc_rua_authorized"]
    assert not row(result, "unauth.co.jp")["dmarc_rua_authorized"]


def test_dmarc_subdomain_inherits_sp_by_tree_walk_rfc9989(result) -> None:
    r = row(result, "sub.org.co.jp")
    assert r["dmarc_source"] == "organizational"
    assert r["dmarc_policy"] == "quarantine"  # sp of org.co.jp


def test_dkim_selectors_and_domainkey_rfc8020(result) -> None:
    r = row(result, "keys.co.jp")
    assert r["dkim_domainkey"] == "exists"
    assert list(r["dkim_selectors"]) == ["google", "selector1"]  # k1 is revoked (empty p=)
    n = row(result, "nokeys.co.jp")
    assert n["dkim_domainkey"] == "nxdomain" and list(n["dkim_selectors"]) == []


def test_mta_sts_tlsrpt_bimi(result) -> None:
    r = row(result, "keys.co.jp")
    assert r["mta_sts_status"] == "valid" and r["mta_sts_id"] == "20240601T000000"
    assert r["tlsrpt_status"] == "valid" and list(r["tlsrpt_rua"]) == ["mailto:tls@keys.co.jp"]
    assert r["bimi_status"] == "valid"
    # Two STS records: invalid (RFC 8461 3.1).
    assert row(result, "nokeys.co.jp")["mta_sts_status"] == "invalid"


def test_nonexistent_domain_policy_columns(result) -> None:
    r = row(result, "gone.co.jp")
    assert r["status"] == "nxdomain"
    assert r["spf_status"] == "none"
    assert r["dkim_domainkey"] == "nxdomain"


def test_reanalyze_gives_back_the_same_table(result) -> None:
    out, before = result
    res = CliRunner().invoke(main, ["reanalyze", str(out), "--snapshot", "s"])
    assert res.exit_code == 0, res.output
    after = pd.read_parquet(out / "domains").set_index("domain")
    pd.testing.assert_frame_equal(before.sort_index(), after.sort_index())


@pytest.mark.parametrize(
    ("ip", "sender", "word"),
    [
        ("203.0.113.7", "user@good.co.jp", "pass"),  # via include → include (RFC 7208 5.2)
        ("198.51.100.9", "user@good.co.jp", "pass"),  # the nested include
        ("192.0.2.99", "user@good.co.jp", "fail"),  # -all (RFC 7208 5.1)
        ("192.0.2.99", "user@redir.co.jp", "softfail"),  # redirect= to ~all (6.1)
        ("192.0.2.99", "user@badinc.co.jp", "permerror"),  # include of a name without SPF
        ("192.0.2.99", "user@gone.co.jp", "none"),  # no such domain (4.3)
    ],
)
def test_spf_check_cli_prints_result_word_first(nsd_factory, ip, sender, word) -> None:
    server = nsd_factory(ZONES)
    res = CliRunner().invoke(main, ["spf-check", ip, sender, "--resolver", server.address])
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[0] == word


def test_spf_check_cli_temperror_when_resolver_silent(silent_resolver) -> None:
    res = CliRunner().invoke(
        main,
        ["spf-check", "192.0.2.1", "a@b.co.jp", "--resolver", silent_resolver, "--timeout", "0.1"],
    )
    assert res.exit_code == 0
    assert res.stdout.splitlines()[0] == "temperror"  # a timeout is never "none" (RFC 7208 4.4)
