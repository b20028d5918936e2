"""DANE for SMTP and DNSSEC: TLSA parsing, the column rules, and a real validating resolver.

The unit tests name the RFC section whose rule they pin down (RFC 7672 DANE for SMTP, RFC 6698
TLSA, RFC 4035 validation, RFC 6840 5.7 the AD bit). The integration tests run Unbound as a
validating resolver in front of NSD serving zones signed here (tests/unbound.py): a signed
``jp.`` is the only trust anchor, and its children are secure, insecure, islands or bogus.
"""

from __future__ import annotations

import hashlib
import struct

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TLSA
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailauth_survey import policies, wire
from mailauth_survey.analysis import analyze_domain, answers_by_domain
from mailauth_survey.answers import Answer, AnswerSet
from mailauth_survey.policies import dane
from mailauth_survey.policies.dane import (
    DANE,
    NOT_DANE,
    UNKNOWN,
    analyze,
    host_state,
    parse_tlsa,
)
from mailauth_survey.resolver import Fleet
from tests import builders
from tests.conftest import scan_domains
from tests.nsd import zone
from tests.unbound import Child, DnssecLab, missing_tools, tamper_rrset

SHA256 = hashlib.sha256(b"mx.example.jp SPKI").hexdigest()
SHA512 = hashlib.sha512(b"mx.example.jp SPKI").hexdigest()

# --------------------------------------------------------------------------------------------
# parse_tlsa (RFC 6698 2.1, 2.2; RFC 7672 3.1)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        f"3 1 1 {SHA256}",  # DANE-EE SPKI SHA2-256: RFC 7672 3.1.1's recommendation
        f"2 0 1 {SHA256.upper()}",  # DANE-TA Cert SHA2-256; hex is case-insensitive
        f"3 1 2 {SHA512}",
        "3 0 0 308201",  # Full: the certificate itself
        f"3 1 1 {SHA256[:32]} {SHA256[32:]}",  # hex split by white space (RFC 6698 2.2)
        f"( 3 1 1\n {SHA256} )",
    ],
)
def test_rfc6698_2_2_and_rfc7672_3_1_usable_records(text) -> None:
    rec = parse_tlsa(text)
    assert rec.usable, rec.problems
    assert rec.usage in (2, 3)
    assert rec.data.hex() in text.replace(" ", "").lower().replace("\n", "")


def test_rfc6698_2_2_fields() -> None:
    rec = parse_tlsa(f"3 1 1 {SHA256}")
    assert (rec.usage, rec.selector, rec.mtype, rec.data) == (3, 1, 1, bytes.fromhex(SHA256))
    assert rec.params == "DANE-EE(3) SPKI(1) SHA2-256(1)"


@pytest.mark.parametrize("usage", [0, 1])
def test_rfc7672_3_1_3_pkix_usages_are_not_for_smtp(usage) -> None:
    rec = parse_tlsa(f"{usage} 1 1 {SHA256}")
    assert not rec.usable
    assert rec.usage == usage
    assert any("RFC 7672 3.1.3" in p for p in rec.problems)


@pytest.mark.parametrize(
    ("text", "section"),
    [
        (f"4 1 1 {SHA256}", "2.1.1"),  # undefined usage
        (f"255 1 1 {SHA256}", "2.1.1"),  # PrivCert: nothing a survey can use
        (f"3 2 1 {SHA256}", "2.1.2"),  # undefined selector
        (f"3 1 3 {SHA256}", "2.1.3"),  # undefined matching type
        (f"3 1 1 {SHA256[:-2]}", "2.1.3"),  # 31 bytes of SHA2-256
        (f"3 1 2 {SHA256}", "2.1.3"),  # 32 bytes of SHA2-512
        ("3 1 1 abc", "2.2"),  # odd number of hex digits
        ("3 1 1 zz", "2.2"),
        ("3 1 1", "2.1.4"),  # no data
        ("3 1", "2.2"),
        ("", "2.2"),
        ("three 1 1 00", "2.2"),
        ("256 1 1 00", "2.2"),
        ("-1 1 1 00", "2.2"),
    ],
)
def test_rfc6698_malformed_or_undefined_is_unusable(text, section) -> None:
    rec = parse_tlsa(text)
    assert not rec.usable
    assert any(f"RFC 6698 {section}:" in p for p in rec.problems), rec.problems


def test_rfc3597_generic_rdata() -> None:
    raw = bytes([3, 1, 1]) + bytes.fromhex(SHA256)
    rec = parse_tlsa(f"\\# {len(raw)} {raw.hex()}")
    assert rec.usable and (rec.usage, rec.selector, rec.mtype) == (3, 1, 1)
    assert not parse_tlsa(f"\\# {len(raw) + 1} {raw.hex()}").usable
    assert not parse_tlsa("\\# 2 0301").usable
    assert not parse_tlsa("\\# x 00").usable
    assert not parse_tlsa("\\# \u00b2 00").usable


@st.composite
def _tlsa_fields(draw) -> tuple[int, int, int, bytes]:
    mtype = draw(st.sampled_from([0, 1, 2]) | st.integers(0, 255))
    size = {1: 32, 2: 64}.get(mtype)
    data = draw(
        st.binary(min_size=size, max_size=size) if size else st.binary(min_size=1, max_size=96)
    )
    return draw(st.integers(0, 255)), draw(st.integers(0, 255)), mtype, data


@settings(max_examples=300)
@given(_tlsa_fields())
def test_rfc6698_2_2_agrees_with_dnspython(fields) -> None:
    usage, selector, mtype, data = fields
    rd = dns.rdtypes.ANY.TLSA.TLSA(
        dns.rdataclass.IN, dns.rdatatype.TLSA, usage, selector, mtype, data
    )
    rec = parse_tlsa(rd.to_text())
    assert (rec.usage, rec.selector, rec.mtype, rec.data) == (usage, selector, mtype, data)
    assert rec.usable == (usage in (2, 3) and selector in (0, 1) and mtype in (0, 1, 2))


@settings(max_examples=500)
@given(st.text(max_size=200))
def test_parse_tlsa_never_raises(text) -> None:
    rec = parse_tlsa(text)
    assert rec.usable == (not rec.problems)


@settings(max_examples=300)
@given(
    st.lists(
        st.sampled_from(["3", "1", "0", "\\#", "35", "(", ")", "ab", "zz", "\u0663", "\u00b2", " "])
        | st.text(alphabet="0123456789abcdefABCDEF\\# ()", max_size=12),
        max_size=8,
    )
)
def test_parse_tlsa_never_raises_on_near_misses(tokens) -> None:
    parse_tlsa(" ".join(tokens))


# --------------------------------------------------------------------------------------------
# the column rules over hand-made answers
# --------------------------------------------------------------------------------------------

D = "example.jp"


def dnssec_status(domain: str, dns: AnswerSet) -> bool | None:
    return analyze(domain, dns)["dnssec"]


def dane_status(domain: str, dns: AnswerSet) -> bool | None:
    return analyze(domain, dns)["dane"]


def ans(name: str, rtype: str, *rdatas: str, rcode: str = "NOERROR", ad: bool = True) -> Answer:
    """Validated (AD) unless said otherwise: the DANE rules start from signed answers."""
    return builders.ans(name, rtype, *rdatas, rcode=rcode, ad=ad)


def world(
    mx: tuple[str, ...] = ("10 mx.example.jp.",),
    *,
    apex_ad: bool = True,
    mx_rcode: str = "NOERROR",
    hosts: dict[str, dict] | None = None,
    probe: Answer | None = None,
) -> AnswerSet:
    """A domain's answers: apex MX/TXT/NS, and for each host its A, AAAA and TLSA.

    ``hosts``: {host: {"addr_ad": bool, "tlsa": [rdata], "tlsa_ad": bool, "tlsa_rcode": str}}.
    """
    dns_ = AnswerSet(
        [
            ans(D, "MX", *mx, rcode=mx_rcode, ad=apex_ad),
            ans(D, "TXT", '"v=spf1 -all"', ad=apex_ad),
            ans(D, "NS", "ns1.example-dns.net.", ad=apex_ad),
        ]
    )
    for host, h in (hosts or {}).items():
        dns_.add(ans(host, "A", "192.0.2.1", ad=h.get("addr_ad", True)))
        dns_.add(ans(host, "AAAA", ad=h.get("addr_ad", True)))
        if "tlsa" in h or "tlsa_rcode" in h:
            dns_.add(
                ans(
                    f"_25._tcp.{host}",
                    "TLSA",
                    *h.get("tlsa", ()),
                    rcode=h.get("tlsa_rcode", "NOERROR"),
                    ad=h.get("tlsa_ad", True),
                )
            )
    if probe is not None:
        dns_.add(probe)
    return dns_


GOOD = {"tlsa": [f"3 1 1 {SHA256}"]}
JP_SIGNED = Answer(
    "jp", "SOA", "NOERROR", (builders.rr("jp", "SOA", "z.dns.jp. root.dns.jp. 1 2 3 4 5"),), True
)
JP_UNVALIDATED = Answer("jp", "SOA", "NOERROR", JP_SIGNED.records, False)


def test_rfc7672_2_2_1_secure_mx_and_usable_secure_tlsa_is_dane() -> None:
    dns_ = world(hosts={"mx.example.jp": GOOD})
    assert analyze(D, dns_) == {"dane": True, "dnssec": True}
    assert not dns_.missing


def test_rfc7672_2_2_3_dane_ta_counts() -> None:
    dns_ = world(hosts={"mx.example.jp": {"tlsa": [f"2 0 1 {SHA256}"]}})
    assert dane_status(D, dns_) is True


def test_rfc7672_2_2_1_insecure_mx_is_not_dane_and_tlsa_is_not_asked() -> None:
    dns_ = world(apex_ad=False, hosts={"mx.example.jp": {}}, probe=JP_SIGNED)
    assert analyze(D, dns_) == {"dane": False, "dnssec": False}
    assert ("_25._tcp.mx.example.jp", "TLSA") not in dns_.missing


def test_rfc7672_2_2_3_insecure_host_addresses_no_tlsa_lookup() -> None:
    dns_ = world(hosts={"mx.example.jp": {"addr_ad": False}})
    assert dane_status(D, dns_) is False
    assert ("_25._tcp.mx.example.jp", "TLSA") not in dns_.missing
    assert host_state("mx.example.jp", dns_).state == NOT_DANE


def test_rfc7672_2_2_3_insecure_tlsa_is_not_counted() -> None:
    dns_ = world(hosts={"mx.example.jp": {**GOOD, "tlsa_ad": False}})
    assert dane_status(D, dns_) is False
    assert "not secure" in " ".join(host_state("mx.example.jp", dns_).findings)


def test_rfc7672_2_2_3_secure_denial_of_tlsa_is_not_dane() -> None:
    dns_ = world(hosts={"mx.example.jp": {"tlsa_rcode": "NXDOMAIN"}})
    assert dane_status(D, dns_) is False
    dns_ = world(hosts={"mx.example.jp": {"tlsa": []}})
    assert dane_status(D, dns_) is False


def test_rfc7672_3_1_3_only_pkix_usages_is_not_dane() -> None:
    dns_ = world(hosts={"mx.example.jp": {"tlsa": [f"1 1 1 {SHA256}", f"0 0 1 {SHA256}"]}})
    assert dane_status(D, dns_) is False
    findings = host_state("mx.example.jp", dns_).findings
    assert any("RFC 7672 3.1.3" in f for f in findings)


def test_rfc7672_3_1_one_usable_record_among_unusable_is_enough() -> None:
    dns_ = world(hosts={"mx.example.jp": {"tlsa": [f"1 1 1 {SHA256}", f"3 1 1 {SHA256}"]}})
    assert dane_status(D, dns_) is True


def test_rfc7672_2_2_1_every_mx_host_must_be_dane() -> None:
    mx = ("10 mx1.example.jp.", "20 mx2.example.jp.")
    both = world(mx, hosts={"mx1.example.jp": GOOD, "mx2.example.jp": GOOD})
    assert dane_status(D, both) is True
    one = world(mx, hosts={"mx1.example.jp": GOOD, "mx2.example.jp": {"tlsa": []}})
    assert dane_status(D, one) is False
    states = {h.host: h.state for h in dane.host_states(D, one)}
    assert states == {"mx1.example.jp": DANE, "mx2.example.jp": NOT_DANE}


def test_rfc7672_2_1_1_failed_tlsa_lookup_is_unknown_never_absent() -> None:
    dns_ = world(hosts={"mx.example.jp": {"tlsa_rcode": "SERVFAIL"}})
    assert dane_status(D, dns_) is None
    assert host_state("mx.example.jp", dns_).state == UNKNOWN
    # ... unless another host already settles it.
    mx = ("10 mx1.example.jp.", "20 mx2.example.jp.")
    dns_ = world(mx, hosts={"mx1.example.jp": {"tlsa_rcode": "TIMEOUT"}, "mx2.example.jp": {}})
    dns_.add(ans("_25._tcp.mx2.example.jp", "TLSA", rcode="NXDOMAIN"))
    assert dane_status(D, dns_) is False


def test_address_lookup_failure_is_unknown() -> None:
    dns_ = world(hosts={})
    dns_.add(ans("mx.example.jp", "A", rcode="SERVFAIL", ad=False))
    dns_.add(ans("mx.example.jp", "AAAA", rcode="TIMEOUT", ad=False))
    assert dane_status(D, dns_) is None


def test_rfc7505_null_mx_and_no_mx_are_not_applicable() -> None:
    assert dane_status(D, world(("0 .",))) is None
    assert dane_status(D, world(())) is None
    assert dnssec_status(D, world(())) is True


def test_rfc7672_2_2_1_tlsa_asked_only_for_secure_mx_and_at_most_ten_hosts() -> None:
    mx = tuple(f"{i} mx{i:02d}.example.jp." for i in range(12))
    dns_ = world(mx)
    assert dane_status(D, dns_) is None  # addresses not collected yet
    asked = {k for k in dns_.missing if k[1] in ("A", "AAAA")}
    assert len(asked) == 20  # the ten most preferred hosts
    for host, _t in asked:
        dns_.add(ans(host, "A", "192.0.2.7"))
        dns_.add(ans(host, "AAAA"))
    dns_.missing.clear()
    assert dane_status(D, dns_) is None
    tlsa = {k for k in dns_.missing if k[1] == "TLSA"}
    assert tlsa == {(f"_25._tcp.mx{i:02d}.example.jp", "TLSA") for i in range(10)}


def test_rfc4035_5_5_bogus_apex_servfail_is_unknown() -> None:
    dns_ = world(mx_rcode="SERVFAIL", apex_ad=True)
    assert analyze(D, dns_) == {"dane": None, "dnssec": None}


def test_nxdomain_domain_is_not_applicable() -> None:
    dns_ = AnswerSet([ans(D, t, rcode="NXDOMAIN") for t in ("MX", "TXT", "NS")])
    assert analyze(D, dns_) == {"dane": None, "dnssec": None}


def test_rfc4035_3_2_3_no_ad_is_insecure_only_from_a_validating_resolver() -> None:
    # No AD anywhere: the analysis asks the TLD's SOA to learn whether the resolver validates.
    dns_ = world(apex_ad=False, hosts={"mx.example.jp": GOOD})
    assert analyze(D, dns_) == {"dane": None, "dnssec": None}
    assert ("jp", "SOA") in dns_.missing
    # A validating resolver: jp. is signed, so its SOA came with AD.
    assert dnssec_status(D, world(apex_ad=False, probe=JP_SIGNED)) is False
    # A resolver that does not validate (or strips AD): no verdict.
    dns_ = world(apex_ad=False, hosts={"mx.example.jp": GOOD}, probe=JP_UNVALIDATED)
    assert analyze(D, dns_) == {"dane": None, "dnssec": None}
    failed = Answer("jp", "SOA", "SERVFAIL")
    assert dnssec_status(D, world(apex_ad=False, probe=failed)) is None


def test_ad_on_the_apex_needs_no_probe() -> None:
    dns_ = world(hosts={"mx.example.jp": GOOD})
    analyze(D, dns_)
    assert ("jp", "SOA") not in dns_.missing


def test_disagreeing_ad_is_no_verdict() -> None:
    dns_ = world(probe=JP_SIGNED)
    dns_.add(ans(D, "TXT", '"v=spf1 -all"', ad=False))
    assert dnssec_status(D, dns_) is None


def test_collection_plan_converges() -> None:
    """Run the analysis as the collector does: fetch what it missed until it asks nothing."""
    net = {
        (D, "MX"): ans(D, "MX", "10 mx.example.jp.", "20 mx.other.jp."),
        (D, "TXT"): ans(D, "TXT"),
        (D, "NS"): ans(D, "NS", "ns1.example-dns.net."),
        ("mx.example.jp", "A"): ans("mx.example.jp", "A", "192.0.2.1"),
        ("mx.example.jp", "AAAA"): ans("mx.example.jp", "AAAA"),
        ("mx.other.jp", "A"): ans("mx.other.jp", "A", "192.0.2.2"),
        ("mx.other.jp", "AAAA"): ans("mx.other.jp", "AAAA", "2001:db8::2"),
        ("_25._tcp.mx.example.jp", "TLSA"): ans(
            "_25._tcp.mx.example.jp", "TLSA", f"3 1 1 {SHA256}"
        ),
        ("_25._tcp.mx.other.jp", "TLSA"): ans("_25._tcp.mx.other.jp", "TLSA", f"2 1 2 {SHA512}"),
    }
    dns_ = AnswerSet()
    asked: list[tuple[str, str]] = []
    for _ in range(10):
        result = analyze(D, dns_)
        if not dns_.missing:
            break
        for key in sorted(dns_.missing):
            asked.append(key)
            dns_.add(net.get(key, Answer(key[0], key[1], "NXDOMAIN", (), True)))
        dns_.missing.clear()
    assert result == {"dane": True, "dnssec": True}
    assert sorted(asked) == sorted(net)  # no probe: the apex carried AD


# --------------------------------------------------------------------------------------------
# a real validating resolver: Unbound in front of NSD, zones signed by the test
# --------------------------------------------------------------------------------------------

requires_tools = pytest.mark.skipif(
    bool(missing_tools()),
    reason=f"needs {', '.join(missing_tools())} (apt-get install unbound ldnsutils)",
)


def _host_zone(origin: str, *extra: str, tlsa: str | None = f"3 1 1 {SHA256}") -> str:
    records = ["@ MX 10 mx", '@ TXT "v=spf1 mx -all"', "mx A 192.0.2.25", "mx AAAA 2001:db8::25"]
    if tlsa:
        records.append(f"_25._tcp.mx TLSA {tlsa}")
    return zone(origin, *records, *extra)


def _break_tlsa(text: str) -> str:
    return tamper_rrset(text, "_25._tcp.mx.badtlsa.jp", "TLSA", lambda r: f"3 1 1 {'0' * 64}")


def _break_mx(text: str) -> str:
    return tamper_rrset(text, "tampered.jp", "MX", lambda r: "10 evil.example.")


CHILDREN = {
    # secure, TLSA 3 1 1 at its MX host: DANE
    "signed.jp": Child(_host_zone("signed.jp")),
    # secure, no TLSA
    "notlsa.jp": Child(_host_zone("notlsa.jp", tlsa=None)),
    # secure, but only a PKIX-EE TLSA record (RFC 7672 3.1.3)
    "pkix.jp": Child(_host_zone("pkix.jp", tlsa=f"1 1 1 {SHA256}")),
    # secure, MX host in another secure zone
    "hosted.jp": Child(zone("hosted.jp", "@ MX 10 mx.signed.jp.")),
    # secure, one DANE host and one insecure host
    "mixed.jp": Child(zone("mixed.jp", "@ MX 10 mx.signed.jp.", "@ MX 20 mx.plain.jp.")),
    # secure, no mail
    "nomx.jp": Child(zone("nomx.jp", '@ TXT "v=spf1 -all"')),
    # secure zone whose TLSA RRset does not match its signature: bogus TLSA
    "badtlsa.jp": Child(_host_zone("badtlsa.jp"), tamper=_break_tlsa),
    # unsigned (insecure: jp.'s NSEC proves no DS), with a TLSA record that protects nothing
    "plain.jp": Child(_host_zone("plain.jp"), signed=False),
    # signed by its own key, no DS in jp.: an island, insecure
    "island.jp": Child(_host_zone("island.jp"), ds=False),
    # signatures expired a month ago: everything bogus
    "expired.jp": Child(_host_zone("expired.jp"), expired=True),
    # the MX RRset changed after signing: bogus MX, the rest fine
    "tampered.jp": Child(_host_zone("tampered.jp"), tamper=_break_mx),
    # secure, two TLSA records: a SHA2-256 "digest" of 2 bytes (unusable) and a good one
    "shortdigest.jp": Child(_host_zone("shortdigest.jp", "_25._tcp.mx TLSA 3 1 1 abcd")),
}

#: domain: (status, dane, dnssec)
EXPECTED = {
    "signed.jp": ("ok", True, True),
    "notlsa.jp": ("ok", False, True),
    "pkix.jp": ("ok", False, True),
    "hosted.jp": ("ok", True, True),
    "mixed.jp": ("ok", False, True),
    "nomx.jp": ("ok", None, True),
    "badtlsa.jp": ("ok", None, True),
    "plain.jp": ("ok", False, False),
    "island.jp": ("ok", False, False),
    "expired.jp": ("servfail", None, None),
    "tampered.jp": ("ok", None, None),
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if missing_tools():
        pytest.skip(f"needs {', '.join(missing_tools())} (apt-get install unbound ldnsutils)")
    server = DnssecLab(tmp_path_factory.mktemp("dnssec"), "jp", zone("jp"), CHILDREN)
    yield server
    server.stop()


def _asks_ad() -> bool:
    return bool(struct.unpack("!H", wire.make_query(1, "jp", "SOA")[2:4])[0] & 0x0020)


@pytest.fixture
def ad_queries(monkeypatch):
    """Queries with AD=1 (RFC 6840 5.7), until ``wire.make_query`` sets it itself."""
    if not _asks_ad():
        original = wire.make_query

        def with_ad(*args, **kwargs) -> bytes:
            data = bytearray(original(*args, **kwargs))
            data[3] |= 0x20
            return bytes(data)

        monkeypatch.setattr(wire, "make_query", with_ad)


def _ask(lab, name: str, rtype: str, *, ad: bool = False, do: bool = False):
    q = dns.message.make_query(name, rtype, want_dnssec=do)
    if ad:
        q.flags |= dns.flags.AD
    return dns.query.udp(q, "127.0.0.1", port=lab.unbound.port, timeout=3)


@requires_tools
def test_lab_starts_quickly(lab) -> None:
    assert lab.startup_seconds < 15


@requires_tools
def test_rfc6840_5_7_unbound_sets_ad_only_when_the_query_asks(lab) -> None:
    plain = _ask(lab, "signed.jp", "MX")
    assert dns.rcode.to_text(plain.rcode()) == "NOERROR" and plain.answer
    assert not plain.flags & dns.flags.AD  # neither AD nor DO in the query: no AD
    with_ad = _ask(lab, "signed.jp", "MX", ad=True)
    assert with_ad.flags & dns.flags.AD
    assert len(with_ad.answer) == 1  # AD=1 without DO: no RRSIGs in the answer
    with_do = _ask(lab, "signed.jp", "MX", do=True)
    assert with_do.flags & dns.flags.AD
    assert any(rrset.rdtype == dns.rdatatype.RRSIG for rrset in with_do.answer)


@requires_tools
@pytest.mark.parametrize(
    ("name", "rcode", "ad"),
    [
        ("jp", "NOERROR", True),
        ("signed.jp", "NOERROR", True),
        ("plain.jp", "NOERROR", False),  # RFC 4035 5.2: no DS, proven: insecure
        ("island.jp", "NOERROR", False),  # signed by its own key only: insecure
        ("expired.jp", "SERVFAIL", False),  # RFC 4035 5.3.1: signature validity ended: bogus
        ("tampered.jp", "SERVFAIL", False),  # RFC 4035 5.3.3: signature does not match
    ],
)
async def test_rfc4035_fleet_reads_ad_from_the_validating_resolver(
    lab, ad_queries, name, rcode, ad
) -> None:
    fleet = Fleet([lab.address], timeout=2.0, retries=1)
    try:
        lk = await fleet.resolve(name, "SOA" if name == "jp" else "MX")
    finally:
        fleet.close()
    assert lk.answer.rcode == rcode  # a bogus answer is SERVFAIL, never "absent"
    assert lk.answer.ad is ad
    assert all("RRSIG" not in r for r in lk.answer.records)


@requires_tools
@pytest.mark.xfail(
    not _asks_ad(),
    reason="wire.make_query does not set AD=1 yet, so Unbound never returns AD (RFC 6840 5.7)",
    strict=True,
)
async def test_rfc6840_5_7_fleet_queries_ask_for_ad(lab) -> None:
    fleet = Fleet([lab.address], timeout=2.0, retries=1)
    try:
        lk = await fleet.resolve("signed.jp", "MX")
    finally:
        fleet.close()
    assert lk.answer.ad is True


@pytest.fixture
def with_dane(monkeypatch):
    """The collector running the dane module as one of its policy modules."""
    if dane not in policies.MODULES:
        monkeypatch.setattr(policies, "MODULES", (*policies.MODULES, dane))


@requires_tools
async def test_scan_through_validating_resolver_dane_and_dnssec(lab, ad_queries, with_dane) -> None:
    fleet = Fleet([lab.address], timeout=2.0, retries=1)
    try:
        results = await scan_domains(sorted(EXPECTED), fleet)
    finally:
        fleet.close()
    got = {
        row["domain"]: (row["status"], row["dane"], row["dnssec"])
        for row, _recs, _probes in results
    }
    assert got == EXPECTED
    by_domain = {row["domain"]: recs for row, recs, _probes in results}
    # TLSA asked only below a secure MX RRset and secure addresses (RFC 7672 2.2.1, 2.2.3).
    tlsa_asked = {r["qname"] for recs in by_domain.values() for r in recs if r["qtype"] == "TLSA"}
    assert "_25._tcp.mx.signed.jp" in tlsa_asked
    assert "_25._tcp.mx.plain.jp" not in tlsa_asked  # insecure MX (plain) or addresses (mixed)
    assert "_25._tcp.mx.island.jp" not in tlsa_asked
    # The validation probe only where no apex answer carried AD.
    probed = {d for d, recs in by_domain.items() if any(r["qname"] == "jp" for r in recs)}
    assert probed == {"plain.jp", "island.jp"}
    # reanalyze: the same columns from the stored records alone.
    rows = [r for _row, recs, _probes in results for r in recs]
    for domain, (dns_, when) in answers_by_domain(rows).items():
        row = analyze_domain(domain, dns_, when)
        assert (row["status"], row["dane"], row["dnssec"]) == EXPECTED[domain]


@requires_tools
async def test_non_validating_resolver_gives_no_verdict(lab, ad_queries, with_dane) -> None:
    """NSD answers authoritatively and never sets AD: dnssec and dane stay unknown, not False."""
    fleet = Fleet([lab.authoritative], timeout=2.0, retries=1)
    try:
        results = await scan_domains(["signed.jp", "plain.jp"], fleet)
    finally:
        fleet.close()
    for row, _recs, _probes in results:
        assert row["status"] == "ok"
        assert (row["dane"], row["dnssec"]) == (None, None), row["domain"]


def _wire_rejects_bad_digest_length() -> bool:
    try:
        wire._tlsa_text(bytes([3, 1, 1, 0xAB, 0xCD]), 0, 5)
    except wire.WireError:
        return True
    return False


@requires_tools
@pytest.mark.xfail(
    _wire_rejects_bad_digest_length(),
    reason="wire rejects the whole reply when one TLSA digest has the wrong length (junk, "
    "then TIMEOUT), so the good record next to it is lost",
    strict=True,
)
async def test_rfc6698_2_1_3_wrong_digest_length_does_not_hide_the_good_record(
    lab, ad_queries, with_dane
) -> None:
    fleet = Fleet([lab.address], timeout=0.5, retries=0)
    try:
        [(row, _recs, _probes)] = await scan_domains(["shortdigest.jp"], fleet)
        lk = await fleet.resolve("_25._tcp.mx.shortdigest.jp", "TLSA")
    finally:
        fleet.close()
    records = [parse_tlsa(r) for r in lk.answer.rdata("TLSA")]
    assert sorted(r.usable for r in records) == [False, True]
    assert (row["dane"], row["dnssec"]) == (True, True)
