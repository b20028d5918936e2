"""A failed query is never "absent": SERVFAIL and timeouts injected on each name a verdict reads.

NSD serves the zones; a proxy of the tests' own (tests/faultproxy.py) answers SERVFAIL for, or
drops every query to, one name at a time. Each verdict that read the failed name must say
unknown (null, ``temperror``, ``error``), never "none" or an empty list.
"""

from __future__ import annotations

import pytest

from mailauth_survey.resolver import Fleet
from tests.conftest import scan_domains
from tests.nsd import zone
from tests.test_policy_e2e import KEY

ZONES = {
    "jp": zone("jp"),
    "co.jp": zone("co.jp"),
    "provider.net": zone(
        "provider.net",
        '_spf TXT "v=spf1 ip4:203.0.113.0/24 -all"',
        "mx A 203.0.113.25",
    ),
    "reports.example": zone("reports.example", '*._report._dmarc TXT "v=DMARC1"'),
    "full.co.jp": zone(
        "full.co.jp",
        "@ MX 10 mx.provider.net.",
        '@ TXT "v=spf1 include:_spf.provider.net -all"',
        '_dmarc TXT "v=DMARC1; p=reject; rua=mailto:agg@reports.example"',
        f'selector1._domainkey TXT "v=DKIM1; k=rsa; p={KEY[:200]}" "{KEY[200:]}"',
        '_mta-sts TXT "v=STSv1; id=20240601T000000"',
        '_smtp._tls TXT "v=TLSRPTv1; rua=mailto:tls@full.co.jp"',
        'default._bimi TXT "v=BIMI1; l=https://full.co.jp/logo.svg; a="',
        # a subdomain without its own _dmarc: the RFC 9989 tree walk reaches full.co.jp
        "sub MX 10 mx.provider.net.",
    ),
}

#: (name whose queries fail, domain scanned, {column: value when it fails}).
CASES = [
    # DKIM: the only key's selector failed: unknown, never [] (issue 22's false absence)
    ("selector1._domainkey.full.co.jp", "full.co.jp", {"dkim_selectors": None}),
    # SPF: an include target failed: temperror (RFC 7208 5.2, 4.4), never none/permerror
    ("_spf.provider.net", "full.co.jp", {"spf_status": "temperror"}),
    # DMARC at the domain itself, and at the organizational domain of the tree walk
    ("_dmarc.full.co.jp", "full.co.jp", {"dmarc_status": "temperror"}),
    ("_dmarc.full.co.jp", "sub.full.co.jp", {"dmarc_status": "temperror"}),
    # the rua destination's authorization (RFC 7489 7.1): unknown, not "unauthorized"
    ("full.co.jp._report._dmarc.reports.example", "full.co.jp", {"dmarc_rua_authorized": None}),
    ("_mta-sts.full.co.jp", "full.co.jp", {"mta_sts_status": "temperror"}),
    ("_smtp._tls.full.co.jp", "full.co.jp", {"tlsrpt_status": "temperror"}),
    ("default._bimi.full.co.jp", "full.co.jp", {"bimi_status": "temperror"}),
]

#: What the same columns say when nothing fails (so each case's verdict is a real change).
TRUTH = {
    "dkim_selectors": ["selector1"],
    "spf_status": "valid",
    "dmarc_status": "valid",
    "dmarc_rua_authorized": True,
    "mta_sts_status": "valid",
    "tlsrpt_status": "valid",
    "bimi_status": "valid",
}


@pytest.fixture(scope="module")
def nsd(tmp_path_factory):
    from tests.nsd import Nsd

    server = Nsd(tmp_path_factory.mktemp("nsd"), ZONES)
    yield server
    server.stop()


async def _scan(address: str, domain: str) -> tuple[dict, list[dict]]:
    fleet = Fleet([address], timeout=0.6, retries=1)
    try:
        [(row, records, _)] = await scan_domains([domain], fleet)
    finally:
        fleet.close()
    return row, records


async def test_truth_without_faults(nsd, fault_proxy) -> None:
    proxy = fault_proxy(nsd.address)
    for domain in ("full.co.jp", "sub.full.co.jp"):
        row, _ = await _scan(proxy.address, domain)
        assert row["status"] == "ok"
        for column, value in TRUTH.items():
            if domain == "sub.full.co.jp" and column != "dmarc_status":
                continue
            assert row[column] == value, (domain, column)


@pytest.mark.parametrize("fault", ["servfail", "drop"])
@pytest.mark.parametrize(("name", "domain", "expected"), CASES, ids=[c[0] for c in CASES])
async def test_failed_query_is_unknown_never_absent(
    nsd, fault_proxy, fault, name, domain, expected
) -> None:
    proxy = fault_proxy(nsd.address, {name: fault})
    row, records = await _scan(proxy.address, domain)
    assert proxy.faults[fault] > 0, "the failing name was asked"
    assert row["status"] == "ok"
    for column, value in expected.items():
        assert row[column] == value, column
    failed = [r for r in records if r["qname"] == name]
    assert failed and {r["rcode"] for r in failed} == {
        "SERVFAIL" if fault == "servfail" else "TIMEOUT"
    }
