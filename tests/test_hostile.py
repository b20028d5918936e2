"""Hostile zones: nothing a zone publishes can crash, hang, or grow the scan without bound."""

from __future__ import annotations

import pandas as pd
import pytest

from mailauth_survey.collect import ScanOptions, scan
from mailauth_survey.collect.domain import MAX_QUERIES_PER_DOMAIN
from mailauth_survey.resolver import MAX_ANSWER_RECORDS, MAX_CNAME_CHAIN, Fleet
from tests.conftest import write_list
from tests.fakedns import FakeDns
from tests.nsd import Nsd, zone

DEEP = [f'l{i} TXT "v=spf1 include:l{i + 1}.deep.jp -all"' for i in range(30)] + [
    'l30 TXT "v=spf1 -all"'
]
WIDE = [f'w{i} TXT "v=spf1 include:w{i}a.wide.jp include:w{i}b.wide.jp -all"' for i in range(40)]

ZONES = {
    "jp": zone("jp"),
    # Far more TXT records than any real apex (answered over TCP).
    "manytxt.jp": zone(
        "manytxt.jp", *[f'@ TXT "junk-{i:04d}-{"x" * 40}"' for i in range(MAX_ANSWER_RECORDS + 50)]
    ),
    # An include chain far deeper than RFC 7208's 10 lookups, and a wide tree.
    "deep.jp": zone("deep.jp", '@ TXT "v=spf1 include:l0.deep.jp -all"', *DEEP),
    "wide.jp": zone("wide.jp", '@ TXT "v=spf1 include:w0.wide.jp include:w1.wide.jp -all"', *WIDE),
    # Fifty exchanges.
    "manymx.jp": zone("manymx.jp", *[f"@ MX {i} mx{i:02d}.manymx.jp." for i in range(50)]),
    # Binary junk in TXT strings and a 255-byte string.
    "binary.jp": zone(
        "binary.jp",
        '@ TXT "v=spf1 \\000\\255\\"\\\\ -all"',
        f'_dmarc TXT "v=DMARC1; p=none; {"x" * 200}" "{"y" * 250}"',
    ),
}


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    server = Nsd(base / "nsd", ZONES)
    try:
        lst = write_list(base / "l.txt", [z for z in ZONES if z != "jp"])
        scan(
            [lst],
            base / "out",
            snapshot="h",
            options=ScanOptions(resolvers=[server.address], timeout=1.0),
        )
    finally:
        server.stop()
    d = pd.read_parquet(base / "out" / "domains").set_index("domain")
    r = pd.read_parquet(base / "out" / "records")
    return d, r


def test_absurd_answer_is_an_error_not_a_truncated_set(scanned) -> None:
    d, r = scanned
    apex = r.query("qname == 'manytxt.jp' and qtype == 'TXT'").iloc[0]
    assert apex["rcode"] == "ERROR" and len(apex["answers"]) == 0
    assert d.loc["manytxt.jp", "spf_status"] == "temperror"  # unknown, never "none"


async def test_endless_cname_chain_is_bounded() -> None:
    """A server that answers every name with a CNAME to another: the chase stops."""
    server = FakeDns("cname")
    fleet = Fleet([server.address], timeout=0.5)
    try:
        lk = await fleet.resolve("start.jp", "TXT")
    finally:
        fleet.close()
        server.stop()
    cnames = [a for a in lk.answer.records if " CNAME " in a]
    assert len(cnames) == MAX_CNAME_CHAIN + 1  # the first answer and MAX_CNAME_CHAIN more steps
    assert lk.attempts == MAX_CNAME_CHAIN + 1
    assert lk.answer.rcode == "NOERROR" and lk.answer.txt() == []


def test_deep_and_wide_spf_trees_stop_at_the_limit_rfc7208_4_6_4(scanned) -> None:
    d, r = scanned
    for name in ("deep.jp", "wide.jp"):
        assert d.loc[name, "spf_status"] == "permerror"
        assert d.loc[name, "spf_lookups"] <= 11
        assert (r["domain"] == name).sum() < 40  # the walk stopped; it did not fetch the tree


def test_many_mx_listed_but_only_ten_resolved(scanned) -> None:
    d, r = scanned
    assert len(d.loc["manymx.jp", "mx_hosts"]) == 50
    a = r.query("domain == 'manymx.jp' and qtype == 'A' and qname.str.startswith('mx')")
    assert len(a) == 10


def test_binary_txt_is_data_not_a_crash(scanned) -> None:
    d, _ = scanned
    assert d.loc["binary.jp", "spf_status"] == "permerror"  # non-ASCII (RFC 7208 3.1 / 4.5)
    assert d.loc["binary.jp", "dmarc_status"] == "valid"


def test_per_domain_query_budget(scanned) -> None:
    _, r = scanned
    assert r.groupby("domain").size().max() <= MAX_QUERIES_PER_DOMAIN
