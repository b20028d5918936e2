"""Answers the scan's cache already holds are read in the round that asks for them.

A provider's SPF include or ``_dmarc.jp`` is answered from the per-scan cache for every domain
after the first. The collector hands such answers to the analysis as it asks (``AnswerSet.fill``)
instead of noting them missing and waiting a round for them. Checked here against a real NSD:
the same rows as a scan with a cold cache, in fewer rounds, with every answer read stored as a
cache row; names under the domain itself are never taken from the cache; the domain's query
budget holds.
"""

from __future__ import annotations

import pytest

from mailauth_survey.analysis import analyze_domain, answers_by_domain
from mailauth_survey.answers import MISSING, Answer, AnswerSet
from mailauth_survey.collect import domain as collect
from mailauth_survey.collect.domain import scan_domain
from mailauth_survey.resolver import Fleet
from tests.nsd import zone

# Two customers of one mail provider: its SPF include chain, its MX, and no DMARC record of
# their own, so the DMARC tree walk reaches _dmarc.jp (RFC 9989 4.10).
CHAIN = [f"_spf{i}.provider.ne.jp" for i in range(5)]
ZONES = {
    "jp": zone("jp", '_dmarc TXT "v=DMARC1; p=none"'),
    "provider.ne.jp": zone(
        "provider.ne.jp",
        *[f'{n}. TXT "v=spf1 include:{m} ~all"' for n, m in zip(CHAIN, CHAIN[1:], strict=False)],
        f'{CHAIN[-1]}. TXT "v=spf1 ip4:192.0.2.0/24 -all"',
        "mx A 192.0.2.25",
    ),
    **{
        d: zone(d, "@ MX 10 mx.provider.ne.jp.", f'@ TXT "v=spf1 include:{CHAIN[0]} -all"')
        for d in ("first.jp", "second.jp")
    },
    "example.jp": zone("example.jp", '_dmarc TXT "v=DMARC1; p=reject"', "sub A 192.0.2.7"),
}


def test_answerset_fill_answers_a_miss_at_once() -> None:
    held = Answer("_dmarc.jp", "TXT", "NOERROR", ('_dmarc.jp. 300 IN TXT "v=DMARC1; p=none"',))
    asked: list[tuple[str, str]] = []

    def fill(key):
        asked.append(key)
        return held if key == ("_dmarc.jp", "TXT") else None

    dns = AnswerSet()
    dns.fill = fill
    assert dns.get("_DMARC.jp.", "txt") is held  # (asked in normal form)
    assert dns.get("_dmarc.jp", "TXT") is held  # kept: fill is not asked twice
    assert dns.get("other.jp", "TXT").rcode == MISSING
    assert asked == [("_dmarc.jp", "TXT"), ("other.jp", "TXT")]
    assert dns.missing == {("other.jp", "TXT")}
    assert dns.misses == 1  # a filled answer is no miss: nothing read it as missing


def counting(fleet: Fleet) -> list[int]:
    """Count the collector's rounds: one ``lookup_all`` call each."""
    rounds: list[int] = []
    real = fleet.lookup_all

    def lookup_all(queries, **kw):
        queries = list(queries)
        rounds.append(len(queries))
        return real(queries, **kw)

    fleet.lookup_all = lookup_all  # type: ignore[method-assign]
    return rounds


async def scan_with(address: str, domains: list[str]):
    """Scan ``domains`` one after the other through one fleet (one cache); the last's results."""
    fleet = Fleet([address], timeout=2.0, retries=1)
    await fleet.open()
    try:
        for d in domains[:-1]:
            await scan_domain(d, fleet)
        rounds = counting(fleet)
        row, records, _ = await scan_domain(domains[-1], fleet)
    finally:
        fleet.close()
    return row, records, rounds


@pytest.fixture
def server(nsd_factory):
    return nsd_factory(ZONES)


async def test_cached_answers_are_read_in_the_round_that_asks(server) -> None:
    cold_row, cold_records, cold_rounds = await scan_with(server.address, ["second.jp"])
    row, records, rounds = await scan_with(server.address, ["first.jp", "second.jp"])
    assert cold_row["spf_status"] == "valid" and cold_row["spf_lookups"] == 5
    assert cold_row["dmarc_p"] == "none"  # from _dmarc.jp
    cold_row.pop("scanned_at"), row.pop("scanned_at")
    assert row == cold_row
    # The include chain was one round per link cold; warm, it is read in the first round.
    assert len(rounds) < len(cold_rounds) - 3
    # What the analysis read is stored, as cache rows: the same queries, none sent.
    assert sorted(r[1:3] for r in records) == sorted(r[1:3] for r in cold_records)
    by_name = {r[1]: r[9] for r in records}
    assert {by_name[n] for n in CHAIN} == {"cache"}
    assert by_name["_dmarc.jp"] == by_name["mx.provider.ne.jp"] == "cache"
    assert by_name["second.jp"] == by_name["_dmarc.second.jp"] == "udp"
    # reanalyze: the stored records alone give the same row.
    dicts = [collect.record_dict(r) for r in records]
    dns, when = answers_by_domain(dicts)["second.jp"]
    again = analyze_domain("second.jp", dns, when)
    again.pop("scanned_at")
    assert {k: again[k] for k in row} == row


async def test_names_under_the_domain_never_come_from_the_cache(server) -> None:
    # sub.example.jp's DMARC tree walk asks _dmarc.example.jp: shared for it, so cached.
    _, records, _ = await scan_with(server.address, ["sub.example.jp", "example.jp"])
    own = [r for r in records if r[1] == "_dmarc.example.jp"]
    assert [r[9] for r in own] == ["udp"]  # example.jp's own record is asked, never reused


async def test_the_domain_query_budget_holds_with_cached_answers(server, monkeypatch) -> None:
    fleet = Fleet([server.address], timeout=2.0, retries=1)
    await fleet.open()
    try:
        await scan_domain("first.jp", fleet)  # the include chain and the MX address cached
        monkeypatch.setattr(collect, "MAX_QUERIES_PER_DOMAIN", 6)
        _, records, _ = await scan_domain("second.jp", fleet)
    finally:
        fleet.close()
    # The apex (3), then cached answers only while the budget lasts (7 are held).
    assert len(records) == 6
    assert [r[9] for r in records[3:]] == ["cache"] * 3
