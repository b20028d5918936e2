"""Adaptive retransmission, SERVFAIL retried once, lame domains: the fleet against NSD behind a
fault-injecting proxy of the tests' own (tests/faultproxy.py). No timing is asserted: only what
was sent, what came back, and what is stored."""

from __future__ import annotations

import pytest

from mailauth_survey.resolver import RTO_FLOOR, Fleet, Upstream
from tests.conftest import scan_domains
from tests.nsd import zone

ZONES = {
    "jp": zone("jp"),
    "a.jp": zone(
        "a.jp",
        "@ MX 10 mx.a.jp.",
        "mx A 192.0.2.25",
        '@ TXT "v=spf1 -all"',
        '_dmarc TXT "v=DMARC1; p=reject"',
    ),
    "lame.jp": zone("lame.jp", "@ MX 10 mx.a.jp."),
}


@pytest.fixture(scope="module")
def nsd(tmp_path_factory):
    from tests.nsd import Nsd

    server = Nsd(tmp_path_factory.mktemp("nsd"), ZONES)
    yield server
    server.stop()


def test_rfc6298_estimator_first_sample_then_smoothing_and_bounds() -> None:
    up = Upstream(0, "127.0.0.1", 53, None)  # type: ignore[arg-type]
    up.sample(0.1, 0.0, 10.0)  # RFC 6298 2.2: SRTT = R, RTTVAR = R/2, RTO = SRTT + 4 RTTVAR
    assert up.srtt == pytest.approx(0.1) and up.rttvar == pytest.approx(0.05)
    assert up.rto == pytest.approx(0.3)
    up.sample(0.3, 0.0, 10.0)  # 2.3: RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R|, SRTT = 7/8 SRTT + 1/8 R
    assert up.rttvar == pytest.approx(0.75 * 0.05 + 0.25 * 0.2)
    assert up.srtt == pytest.approx(0.875 * 0.1 + 0.125 * 0.3)
    up.sample(0.001, 0.2, 10.0)
    assert up.rto >= 0.2  # the floor
    up.sample(5.0, 0.2, 0.5)
    assert up.rto == 0.5  # the cap (all attempts must fit in the timeout)


async def test_late_reply_to_the_first_attempt_completes_the_query(nsd, fault_proxy) -> None:
    """Replies held 0.5 s: the first attempt is late by the measure (cap 0.8/4 = 0.2 s) and sent
    again, and the reply to the first attempt, when it comes, completes the query."""
    proxy = fault_proxy(nsd.address, {"a.jp": "delay:0.5"})
    fleet = Fleet([proxy.address], timeout=0.8, retries=2)
    try:
        lk = await fleet.resolve("a.jp", "MX")
    finally:
        fleet.close()
    assert lk.answer.rcode == "NOERROR" and lk.answer.rdata() == ["10 mx.a.jp."]
    assert lk.attempts >= 2
    assert fleet.stats.retransmits >= 1 and fleet.stats.late_replies >= 1
    assert proxy.seen[("a.jp", 15)] == lk.attempts


async def test_replies_to_every_attempt_after_a_late_one_completed_the_query(
    nsd, fault_proxy
) -> None:
    """The reply to attempt 1 completes the query; the replies to attempts 2 and 3 come after.

    Every attempt leaves the resolver's ID map when the query ends, so the later replies are
    junk (a second reply), not a crash of the loop's reader: an exception there skipped the rest
    of the sweep (the due checks and the dispatch) and left attempts in the map for good.
    """
    import asyncio

    proxy = fault_proxy(nsd.address, {"a.jp": "delay:0.5"})
    fleet = Fleet([proxy.address], timeout=0.8, retries=2)
    errors: list[dict] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        lk = await fleet.resolve("a.jp", "MX")
        sent = proxy.seen[("a.jp", 15)]
        await asyncio.sleep(0.5 + 0.3)  # every reply to every attempt has come by now
        fleet._tick()  # a sweep reads what the socket holds
    finally:
        fleet.close()
        loop.set_exception_handler(None)
    assert lk.answer.rcode == "NOERROR" and lk.attempts == sent >= 2
    assert errors == []
    assert fleet.upstreams[0].pending == {}
    assert fleet.stats.late_replies == 1 and fleet.stats.junk == sent - 1
    assert fleet.stats.by_rcode == {"NOERROR": 1}


async def test_lost_datagram_is_sent_again_to_another_resolver(nsd, fault_proxy) -> None:
    dropping = fault_proxy(nsd.address, {"jp": "drop"})
    good = fault_proxy(nsd.address)
    fleet = Fleet([dropping.address, good.address], timeout=2.0, retries=2)
    try:
        await fleet.open()
        found = await fleet.lookup_all([(f"n{i}.a.jp", "A", False) for i in range(12)])
    finally:
        fleet.close()
    assert [lk.answer.rcode for lk in found] == ["NXDOMAIN"] * 12
    assert all(lk.resolver == good.address for lk in found)
    # never twice to the resolver that lost it while another one was untried
    assert max(dropping.seen.values(), default=0) <= 1
    assert fleet.stats.retransmits == sum(dropping.seen.values())


async def test_no_loss_no_retransmission(nsd) -> None:
    """Nothing is sent more often than once when nothing is lost (a loopback NSD)."""
    fleet = Fleet([nsd.address], timeout=2.5, retries=2)
    try:
        await fleet.open()
        found = await fleet.lookup_all([(f"n{i}.a.jp", "TXT", False) for i in range(200)])
    finally:
        fleet.close()
    assert {lk.answer.rcode for lk in found} == {"NXDOMAIN"}
    assert fleet.stats.queries == 200 and fleet.stats.retransmits == 0
    assert fleet.upstreams[0].rto == RTO_FLOOR  # loopback round trips: the floor


async def test_transient_servfail_is_asked_again_and_the_answer_kept(nsd, fault_proxy) -> None:
    proxy = fault_proxy(nsd.address, {"_dmarc.a.jp": "servfail-once"})
    fleet = Fleet([proxy.address], timeout=2.0, retries=2)
    try:
        [(row, records, _)] = await scan_domains(["a.jp"], fleet)
    finally:
        fleet.close()
    assert row["dmarc_status"] == "valid" and row["dmarc_policy"] == "reject"
    [rec] = [r for r in records if r["qname"] == "_dmarc.a.jp"]
    assert rec["rcode"] == "NOERROR" and rec["attempts"] == 2  # the records table keeps both
    assert fleet.stats.servfail_retries == 1 and proxy.faults["servfail"] == 1


async def test_persistent_servfail_is_stored_after_one_retry(nsd, fault_proxy) -> None:
    proxy = fault_proxy(nsd.address, {"_dmarc.a.jp": "servfail"})
    fleet = Fleet([proxy.address], timeout=2.0, retries=2)
    try:
        lk = await fleet.resolve("_dmarc.a.jp", "TXT")
    finally:
        fleet.close()
    assert lk.answer.rcode == "SERVFAIL" and lk.attempts == 2
    assert proxy.seen[("_dmarc.a.jp", 16)] == 2


async def test_servfail_retried_on_another_resolver_of_the_fleet(nsd, fault_proxy) -> None:
    failing = fault_proxy(nsd.address, {"a.jp": "servfail"})
    good = fault_proxy(nsd.address)
    fleet = Fleet([failing.address, good.address], timeout=2.0, retries=2)
    try:
        await fleet.open()
        found = await fleet.lookup_all([(f"s{i}.a.jp", "TXT", False) for i in range(10)])
    finally:
        fleet.close()
    assert [lk.answer.rcode for lk in found] == ["NXDOMAIN"] * 10
    assert sum(failing.seen.values()) == fleet.stats.servfail_retries


async def test_servfail_not_retried_with_retries_zero(nsd, fault_proxy) -> None:
    proxy = fault_proxy(nsd.address, {"a.jp": "servfail-once"})
    fleet = Fleet([proxy.address], timeout=1.0, retries=0)
    try:
        lk = await fleet.resolve("a.jp", "MX")
    finally:
        fleet.close()
    assert lk.answer.rcode == "SERVFAIL" and lk.attempts == 1


async def test_lame_domain_costs_its_apex_queries_only(nsd, fault_proxy) -> None:
    """Every query to a lame domain is dropped: its three apex queries end TIMEOUT after every
    attempt, nothing else is asked, the status is timeout; its neighbour is unaffected."""
    proxy = fault_proxy(nsd.address, {"lame.jp": "drop"})
    fleet = Fleet([proxy.address], timeout=0.7, retries=2)
    try:
        results = await scan_domains(["lame.jp", "a.jp"], fleet)
    finally:
        fleet.close()
    (lame, lame_records, _), (good, _, _) = results
    assert lame["status"] == "timeout" and good["status"] == "ok"
    assert sorted((r["qname"], r["qtype"], r["rcode"]) for r in lame_records) == [
        ("lame.jp", t, "TIMEOUT") for t in ("MX", "NS", "TXT")
    ]
    assert {r["attempts"] for r in lame_records} == {3}
    assert sum(n for (name, _), n in proxy.seen.items() if name.endswith("lame.jp")) == 9
    assert lame["spf_status"] == "temperror" and lame["dkim_selectors"] is None


async def test_sweep_drain_passes_port_unreachable_on() -> None:
    """The sweep reads the sockets itself; an ICMP port unreachable it reads there must still
    set the resolver aside (the transport's error_received never sees it then)."""
    import time

    from tests.nsd import free_port

    port = free_port()  # nothing listens there
    fleet = Fleet([f"127.0.0.1:{port}"], timeout=1.0, retries=0)
    try:
        await fleet.open()
        up = fleet.upstreams[0]
        up.sock.send(b"\x00" * 12)
        time.sleep(0.1)  # (blocking: the loop does not read the error first)
        up.drain()
        assert up.refused and up.down_until > 0
    finally:
        fleet.close()
