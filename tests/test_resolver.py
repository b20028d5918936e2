"""The resolver fleet over real sockets: junk, drops, truncation without TCP, dead members."""

from __future__ import annotations

import asyncio
import gc

import pytest

from mailauth_survey.resolver import Fleet, NoResolverAnswering, _Query, parse_address
from tests.fakedns import FakeDns


@pytest.fixture
def fake():
    servers: list[FakeDns] = []

    def start(mode: str, **kw) -> FakeDns:
        s = FakeDns(mode, **kw)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("[::1]:54", ("::1", 54)),
        ("::1", ("::1", 53)),
    ],
)
def test_parse_address(text, expected) -> None:
    assert parse_address(text) == expected


async def test_junk_replies_rejected_and_counted_real_answer_kept(fake) -> None:
    server = fake("junk")
    fleet = Fleet([server.address], timeout=1.0, retries=0)
    try:
        lk = await fleet.resolve("a.jp", "MX")
    finally:
        fleet.close()
    assert lk.answer.rcode == "NOERROR"
    assert lk.answer.rdata("MX") == ["10 mx.a.jp."]
    assert fleet.stats.junk >= 4  # random, short, wrong id, absurd counts, QR=0


async def test_only_junk_ends_as_timeout_never_an_answer(fake) -> None:
    server = fake("junk-only")
    fleet = Fleet([server.address], timeout=0.2, retries=1)
    try:
        lk = await fleet.resolve("a.jp", "MX")
    finally:
        fleet.close()
    assert lk.answer.rcode == "TIMEOUT"
    assert lk.attempts == 2
    assert lk.answer.records == ()


async def test_dropped_first_attempt_is_retried(fake) -> None:
    server = fake("drop", drop_first=1)
    fleet = Fleet([server.address], timeout=0.2, retries=2)
    try:
        lk = await fleet.resolve("b.jp", "MX")
    finally:
        fleet.close()
    assert lk.answer.rcode == "NOERROR" and lk.attempts == 2


async def test_truncated_without_tcp_is_error_not_absent(fake) -> None:
    server = fake("tc")
    fleet = Fleet([server.address], timeout=0.3, retries=1)
    try:
        lk = await fleet.resolve("c.jp", "MX")
    finally:
        fleet.close()
    assert lk.answer.rcode == "ERROR"  # TC set, TCP refused: the answer is unknown


async def test_nxdomain_kept_apart(fake) -> None:
    server = fake("good")
    fleet = Fleet([server.address], timeout=0.5)
    try:
        lk = await fleet.resolve("x.example", "MX")
    finally:
        fleet.close()
    assert lk.answer.rcode == "NXDOMAIN"


async def test_dead_member_set_aside_and_load_moves(fake, silent_resolver) -> None:
    good = fake("good")
    fleet = Fleet([silent_resolver, good.address], timeout=3.0, retries=3, down_threshold=2)
    try:
        results = await asyncio.gather(*(fleet.resolve(f"d{i}.jp", "MX") for i in range(60)))
    finally:
        fleet.close()
    assert all(r.answer.rcode == "NOERROR" for r in results)
    dead = fleet.upstreams[0]
    assert dead.down_until > 0 or dead.consecutive_timeouts > 0


async def test_no_resolver_answering_is_detected(silent_resolver) -> None:
    fleet = Fleet([silent_resolver], timeout=0.05, retries=0, dead_after=0.2)
    try:
        await fleet.resolve("a.jp", "MX")
        await asyncio.sleep(0.25)
        with pytest.raises(NoResolverAnswering):
            fleet.check_alive()
    finally:
        fleet.close()


async def test_cache_only_for_shared_names_and_only_definite_answers(fake) -> None:
    server = fake("good")
    fleet = Fleet([server.address], timeout=0.5)
    try:
        first = await fleet.resolve("_spf.provider.jp", "MX", shared=True)
        second = await fleet.resolve("_spf.provider.jp", "MX", shared=True)
        unshared = await fleet.resolve("_spf.provider.jp", "MX")
    finally:
        fleet.close()
    assert first.transport == "udp" and second.transport == "cache" and unshared.transport == "udp"
    assert second.answer == first.answer
    assert server.seen[("_spf.provider.jp.", 15)] == 2


def test_scan_against_junk_only_resolver_ends_timeout_with_junk_counted(tmp_path, fake) -> None:
    from mailauth_survey.collect import ScanOptions, scan
    from tests.conftest import write_list

    server = fake("junk-only", silent=("quiet.jp",))
    lst = write_list(tmp_path / "l.txt", ["a.jp", "b.jp", "quiet.jp"])
    # (b.jp answered by a second, good resolver: a scan with no reply at all is never complete)
    good = fake("good", silent=("a.jp", "quiet.jp"))
    m = scan(
        [lst],
        tmp_path / "out",
        snapshot="j",
        options=ScanOptions(resolvers=[server.address, good.address], timeout=0.2, retries=1),
    )
    assert m["status_counts"] == {"ok": 1, "timeout": 2}
    assert m["queries"]["junk"] >= 3 * 4  # a.jp's apex queries x junk kinds, at least


async def test_answers_carry_the_normalized_question(fake) -> None:
    """The collector files the fleet's answers under their own qname/qtype as given
    (AnswerSet.add_normalized): the fleet must hand back lower-case names, upper-case types."""
    server = fake("good")
    fleet = Fleet([server.address], timeout=0.5)
    try:
        await fleet.open()
        lks = await fleet.lookup_all(
            [("X.Example.", "mx", False), ("_SPF.Provider.JP", "txt", True)]
        )
    finally:
        fleet.close()
    assert [(lk.answer.qname, lk.answer.qtype) for lk in lks] == [
        ("x.example", "MX"),
        ("_spf.provider.jp", "TXT"),
    ]


async def test_answered_queries_are_not_kept_for_their_timeout(fake) -> None:
    """The timer wheel names an attempt by resolver, id and serial, not by the query object:
    an answered query is freed at once, not ``timeout`` seconds later (a scan's worth of them
    alive was most of what each garbage-collection pass walked)."""
    server = fake("good")
    fleet = Fleet([server.address], timeout=30.0, retries=0)
    try:
        await fleet.open()
        found = await fleet.lookup_all([(f"q{i}.jp", "MX", False) for i in range(20)])
        alive = [o for o in gc.get_objects() if isinstance(o, _Query)]
        pending = fleet.pending_timers
    finally:
        fleet.close()
    assert [lk.answer.rcode for lk in found] == ["NOERROR"] * 20
    assert pending == 20  # the entries are still there, until their deadline
    assert alive == []


async def test_port_unreachable_everywhere_fails_every_lookup_at_once() -> None:
    """ICMP port unreachable (ECONNREFUSED on the connected socket) from every resolver before
    any reply: nothing listens there. Every lookup fails with NoResolverAnswering, those asked
    later too, instead of each ending as a TIMEOUT after all its attempts."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{s.getsockname()[1]}"
    fleet = Fleet([closed], timeout=30.0, retries=2)
    try:
        with pytest.raises(NoResolverAnswering, match="connection refused"):
            await asyncio.gather(*(fleet.resolve(f"d{i}.jp", "MX") for i in range(5)))
        with pytest.raises(NoResolverAnswering):
            await fleet.resolve("later.jp", "MX")
        with pytest.raises(NoResolverAnswering):
            fleet.check_alive()
    finally:
        fleet.close()
