"""The collector's first round: modules that would only ask their first queries are not run.

A module's ``first_queries`` must be exactly what its ``analyze`` asks first (and alone), or
skipping it would change what the scan asks: checked per module here, then over whole
collections, round by round, against the same collection without the skip.
"""

from __future__ import annotations

import pytest

from mailauth_survey import analysis
from mailauth_survey.analysis import analyze_parts, domain_row
from mailauth_survey.answers import APEX_QTYPES, Answer, AnswerSet
from mailauth_survey.collect.domain import MAX_ROUNDS
from mailauth_survey.policies import bimi, dane, dkim, dmarc, mta_sts, tlsrpt
from tests.builders import txt

MODULES = (dmarc, dkim, mta_sts, tlsrpt, bimi, dane)
LONG = ".".join(["a" * 60] * 4)[:241].rstrip(".") + ".jp"  # _dmarc.<it> fits, _smtp._tls.<it> not


def apex(name: str, *, mx: str | None = "10 mx1.example.net.", ad=(False, False, False)):
    mx_rrs = (f"{name}. 300 IN MX {mx}",) if mx else ()
    return [
        Answer(name, "MX", "NOERROR", mx_rrs, ad[0]),
        txt(name, "v=spf1 -all", ad=ad[1]),
        Answer(name, "NS", "NOERROR", (f"{name}. 300 IN NS ns1.example.net.",), ad[2]),
    ]


APEX_STATES = {
    "mx, unsigned": {},
    "no mx": {"mx": None},
    "null mx": {"mx": "0 ."},
    "signed": {"ad": (True, True, True)},
    "partly signed": {"ad": (True, False, False)},
}


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.split(".")[-1])
@pytest.mark.parametrize("state", APEX_STATES)
@pytest.mark.parametrize("name", ["example.jp", "shop.example.co.jp", LONG])
def test_first_queries_are_all_a_first_run_asks(module, state, name) -> None:
    dns = AnswerSet(apex(name, **APEX_STATES[state]))
    first = module.first_queries(name, dns)
    assert not dns.missing  # (it only reads the apex)
    module.analyze(name, dns)
    if first:  # (none: the module is run as always)
        assert dns.missing == set(first)


def test_first_queries_name_what_the_rfcs_say_is_read_first() -> None:
    """RFC 9989 4.10 step 1 (_dmarc.<domain>), RFC 8461 3.1, RFC 8460 3, RFC 8020 for
    _domainkey; DANE: the resolver probe while the MX RRset is insecure (RFC 7672 2.2.1)."""
    dns = AnswerSet(apex("example.jp"))
    assert dmarc.first_queries("example.jp", dns) == (("_dmarc.example.jp", "TXT"),)
    assert dkim.first_queries("example.jp", dns) == (("_domainkey.example.jp", "TXT"),)
    assert mta_sts.first_queries("example.jp", dns) == (("_mta-sts.example.jp", "TXT"),)
    assert tlsrpt.first_queries("example.jp", dns) == (("_smtp._tls.example.jp", "TXT"),)
    assert bimi.first_queries("example.jp", dns) == (("default._bimi.example.jp", "TXT"),)
    assert dane.first_queries("example.jp", dns) == (("jp", "SOA"),)
    assert tlsrpt.first_queries(LONG, dns) == ()  # _smtp._tls.<LONG> is over 253 bytes
    assert dmarc.first_queries(LONG, dns) == ((f"_dmarc.{LONG}", "TXT"),)
    signed = AnswerSet(apex("example.jp", ad=(True, False, False)))
    assert dane.first_queries("example.jp", signed) == ()  # a validated MX: TLSA next


# --- whole collections, with and without the skip ---------------------------------------------

RSA = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwq3Pt5rLd4TUm9Kq7O5Hv0b8Mjv8d8C9x3tHnBf4nQj6PXJ"
WORLD = {
    (a.qname, a.qtype): a
    for a in [
        *apex("example.co.jp"),
        txt("_spf.provider.jp", "v=spf1 ip4:192.0.2.0/24 include:_spf2.provider.jp ~all"),
        txt("_spf2.provider.jp", "v=spf1 a:relay.provider.jp -all"),
        Answer("relay.provider.jp", "A", "NOERROR", ("relay.provider.jp. 300 IN A 192.0.2.9",)),
        txt("_dmarc.example.co.jp", "v=DMARC1; p=reject; rua=mailto:d@reports.example.net"),
        txt("example.co.jp._report._dmarc.reports.example.net", "v=DMARC1"),
        Answer("_domainkey.example.co.jp", "TXT", "NOERROR"),
        txt("selector1._domainkey.example.co.jp", f"v=DKIM1; k=rsa; p={RSA}"),
        txt("_mta-sts.example.co.jp", "v=STSv1; id=20240101"),
        Answer(
            "mta-sts.example.co.jp", "A", "NOERROR", ("mta-sts.example.co.jp. 300 IN A 192.0.2.5",)
        ),
        txt("_smtp._tls.example.co.jp", "v=TLSRPTv1; rua=mailto:t@example.co.jp"),
        txt("default._bimi.example.co.jp", "v=BIMI1; l=https://example.co.jp/logo.svg"),
        Answer("mx1.example.net", "A", "NOERROR", ("mx1.example.net. 300 IN A 192.0.2.1",)),
        Answer("jp", "SOA", "NOERROR", ("jp. 300 IN SOA a.dns.jp. root.dns.jp. 1 2 3 4 5",)),
        txt("mail.example.co.jp", "v=spf1 redirect=example.co.jp"),
        *apex("signed.jp", ad=(True, True, True)),
        Answer(
            "_25._tcp.mx1.example.net",
            "TLSA",
            "NOERROR",
            ("_25._tcp.mx1.example.net. 300 IN TLSA 3 1 1 " + "ab" * 32,),
            True,
        ),  # fmt: skip
        *[Answer("broken.jp", t, "SERVFAIL") for t in APEX_QTYPES],
    ]
}
WORLD[("example.co.jp", "TXT")] = txt("example.co.jp", "v=spf1 include:_spf.provider.jp mx -all")
DOMAINS = ["example.co.jp", "mail.example.co.jp", "signed.jp", "gone.jp", "broken.jp", LONG]


def collect(domain: str, planning: bool) -> tuple[list[list], dict]:
    """scan_domain's loop over WORLD (anything not in it: NXDOMAIN)."""
    dns, memo = AnswerSet(), {}
    need = [(domain, t) for t in APEX_QTYPES]
    rounds = []
    for r in range(MAX_ROUNDS):
        rounds.append(sorted(need))
        for q in need:
            dns.add(WORLD.get(q) or Answer(q[0], q[1], "NXDOMAIN"))
        parts = analyze_parts(domain, dns, memo, planning=planning and r + 1 < MAX_ROUNDS)
        if not dns.missing:
            break
        need = sorted(dns.missing)
        dns.missing.clear()
    return rounds, domain_row(domain, parts, memo)


@pytest.mark.parametrize("domain", DOMAINS)
def test_planning_asks_the_same_queries_in_the_same_rounds(domain) -> None:
    assert collect(domain, planning=True) == collect(domain, planning=False)


def test_planning_skips_the_first_runs(monkeypatch) -> None:
    runs: dict[str, int] = {}

    def counted(module):
        real = module.analyze

        def analyze(domain, dns):
            runs[module.__name__] = runs.get(module.__name__, 0) + 1
            return real(domain, dns)

        return analyze

    for module in MODULES:
        monkeypatch.setattr(module, "analyze", counted(module))
    monkeypatch.setattr(analysis, "_PARTS_CACHE", {})
    collect("example.co.jp", planning=False)
    plain, runs = runs, {}
    collect("example.co.jp", planning=True)
    assert {m: plain[m] - runs[m] for m in plain} == {m.__name__: 1 for m in MODULES}
