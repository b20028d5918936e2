"""The embedded authoritative server, queried over real UDP and TCP sockets.

Expected behaviour is that of RFC 1034 4.3.2 (closest zone, CNAME, referrals), RFC 2308 (SOA in
negative answers), RFC 4592 (wildcards), RFC 8020 (empty non-terminals), RFC 6891 (EDNS payload,
BADVERS), RFC 7766 (TCP framing). Where NSD is installed the same questions are also put to NSD
serving the same zones, and the two must agree.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
import struct
from collections.abc import AsyncIterator

import dns.asyncquery
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest

from mailauth_survey.synthetic.authserver import (
    AuthServer,
    Responder,
    ServerThread,
    ZoneError,
    parse_zone,
)

DKIM_KEY = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDhwSLZtFiE0x3ZmfJULhnc53px8JABfEysVEcCY77q37405oUrfgros7NtPafeoup6Uct2j5ENLm7wywg3LfTACldd9XjjrM+aA0lhomSYc8RfBAriG7Bq+1xuaCMZwbharXTw7TnEL4FLn0NtsaNFiJSA+XFkIt1s4RyjdF04iQIDAQAB"
BIG_TXT = " ".join(f'"{"x" * 200}-{i}"' for i in range(4))  # about 820 bytes: over 512, under 1232


def _zone(origin: str, *records: str) -> str:
    return "\n".join(
        [
            f"$ORIGIN {origin}.",
            "$TTL 3600",
            f"@ IN SOA ns1.{origin}. hostmaster.{origin}. 1 3600 900 604800 300",
            f"@ IN NS ns1.{origin}.",
            *records,
        ]
    )


ZONES = {
    "jp": _zone("jp"),
    "example.jp": _zone(
        "example.jp",
        "@ IN A 192.0.2.1",
        "@ IN MX 10 mail.example.jp.",
        '@ IN TXT "v=spf1 mx -all"',
        "ns1 IN A 192.0.2.53",
        "mail IN A 192.0.2.25",
        f'sel._domainkey IN TXT "v=DKIM1; k=rsa; p={DKIM_KEY}"',
        "_dmarc IN CNAME example-jp.dmarc.provider.net.",
        "www IN CNAME @",
        "loop1 IN CNAME loop2",
        "loop2 IN CNAME loop1",
        "dangling IN CNAME nothing.example.jp.",
        "away IN CNAME somewhere.example.org.",
        "*.wild IN A 192.0.2.80",
        '*.wild IN TXT "synthesized"',
        "*.cn IN CNAME www",
        f"big IN TXT {BIG_TXT}",
        "sub IN NS ns.sub.example.jp.",
        "ns.sub IN A 192.0.2.99",
        "child IN NS ns1.example.jp.",
    ),
    "child.example.jp": _zone("child.example.jp", "@ IN A 192.0.2.7"),
    "provider.net": _zone(
        "provider.net", 'example-jp.dmarc IN TXT "v=DMARC1; p=none; rua=mailto:r@provider.net"'
    ),
    "net": _zone("net"),
}


@pytest.fixture
async def server() -> AsyncIterator[AuthServer]:
    async with AuthServer(ZONES) as srv:
        yield srv


async def udp(
    srv: AuthServer, name: str, rdtype: str, *, payload: int | None = 1232, **kw
) -> dns.message.Message:
    q = dns.message.make_query(
        name, rdtype, use_edns=0 if payload else False, payload=payload or 512
    )
    for key, value in kw.items():
        setattr(q, key, value)
    return await dns.asyncquery.udp(q, "127.0.0.1", port=srv.port, timeout=2)


async def tcp(srv: AuthServer, name: str, rdtype: str) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, use_edns=0)
    return await dns.asyncquery.tcp(q, "127.0.0.1", port=srv.port, timeout=2)


def texts(section: list[dns.rrset.RRset]) -> set[str]:
    return {line for rrset in section for line in rrset.to_text().splitlines()}


# -- answers ------------------------------------------------------------------------------------


async def test_noerror_with_data_is_authoritative_without_recursion(server: AuthServer) -> None:
    r = await udp(server, "example.jp", "MX")
    assert r.rcode() == dns.rcode.NOERROR
    assert r.flags & dns.flags.AA
    assert not r.flags & dns.flags.RA  # RD is not honoured
    assert r.flags & dns.flags.RD  # but copied (RFC 1035 4.1.1)
    assert texts(r.answer) == {"example.jp. 3600 IN MX 10 mail.example.jp."}


async def test_nodata_has_soa_with_negative_ttl(server: AuthServer) -> None:
    r = await udp(server, "example.jp", "AAAA")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer
    assert r.flags & dns.flags.AA
    [soa] = r.authority
    assert soa.rdtype == dns.rdatatype.SOA and soa.ttl == 300  # min(TTL, MINIMUM), RFC 2308


async def test_nxdomain_has_soa(server: AuthServer) -> None:
    r = await udp(server, "nope.example.jp", "TXT")
    assert r.rcode() == dns.rcode.NXDOMAIN and not r.answer
    assert r.flags & dns.flags.AA
    assert [rr.rdtype for rr in r.authority] == [dns.rdatatype.SOA]
    assert str(r.authority[0].name) == "example.jp."
    # Names under the TLD zone but in no registered zone: NXDOMAIN from the TLD zone.
    r = await udp(server, "unregistered.co.jp", "MX")
    assert r.rcode() == dns.rcode.NXDOMAIN and str(r.authority[0].name) == "jp."


async def test_refused_outside_every_zone(server: AuthServer) -> None:
    r = await udp(server, "example.org", "A")
    assert r.rcode() == dns.rcode.REFUSED
    assert not r.flags & dns.flags.AA and not r.answer


async def test_empty_non_terminal_is_nodata(server: AuthServer) -> None:
    r = await udp(server, "_domainkey.example.jp", "TXT")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer  # RFC 8020
    assert r.authority[0].rdtype == dns.rdatatype.SOA
    r = await udp(server, "sel._domainkey.example.jp", "TXT")
    assert b"".join(r.answer[0][0].strings).startswith(b"v=DKIM1")
    r = await udp(server, "nosel._domainkey.example.jp", "TXT")
    assert r.rcode() == dns.rcode.NXDOMAIN


async def test_cname_chain_across_two_zones(server: AuthServer) -> None:
    r = await udp(server, "_dmarc.example.jp", "TXT")
    assert r.rcode() == dns.rcode.NOERROR
    assert [rr.rdtype for rr in r.answer] == [dns.rdatatype.CNAME, dns.rdatatype.TXT]
    assert str(r.answer[1].name) == "example-jp.dmarc.provider.net."
    r = await udp(server, "_dmarc.example.jp", "CNAME")
    assert texts(r.answer) == {"_dmarc.example.jp. 3600 IN CNAME example-jp.dmarc.provider.net."}


async def test_cname_edge_cases(server: AuthServer) -> None:
    r = await udp(server, "www.example.jp", "A")
    assert texts(r.answer) == {
        "www.example.jp. 3600 IN CNAME example.jp.",
        "example.jp. 3600 IN A 192.0.2.1",
    }
    r = await udp(server, "dangling.example.jp", "TXT")  # RFC 6604: rcode of the last name
    assert r.rcode() == dns.rcode.NXDOMAIN and len(r.answer) == 1
    r = await udp(server, "away.example.jp", "A")  # the target is not served: stop there
    assert r.rcode() == dns.rcode.NOERROR and len(r.answer) == 1
    r = await udp(server, "loop1.example.jp", "A")  # a loop ends, bounded
    assert r.rcode() == dns.rcode.NOERROR and len(r.answer) == 2


async def test_wildcard_synthesis(server: AuthServer) -> None:
    r = await udp(server, "anything.wild.example.jp", "A")
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
    assert texts(r.answer) == {"anything.wild.example.jp. 3600 IN A 192.0.2.80"}
    r = await udp(server, "a.b.wild.example.jp", "TXT")  # matches several labels
    assert texts(r.answer) == {'a.b.wild.example.jp. 3600 IN TXT "synthesized"'}
    r = await udp(server, "anything.wild.example.jp", "MX")  # wildcard NODATA
    assert r.rcode() == dns.rcode.NOERROR and not r.answer
    r = await udp(server, "wild.example.jp", "A")  # the wildcard's parent is an ENT
    assert r.rcode() == dns.rcode.NOERROR and not r.answer
    r = await udp(server, "x.cn.example.jp", "A")  # a CNAME at a wildcard is followed
    assert texts(r.answer) == {
        "x.cn.example.jp. 3600 IN CNAME www.example.jp.",
        "www.example.jp. 3600 IN CNAME example.jp.",
        "example.jp. 3600 IN A 192.0.2.1",
    }


async def test_referral_and_more_specific_zone(server: AuthServer) -> None:
    r = await udp(server, "host.sub.example.jp", "A")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer
    assert not r.flags & dns.flags.AA
    assert texts(r.authority) == {"sub.example.jp. 3600 IN NS ns.sub.example.jp."}
    assert texts(r.additional) == {"ns.sub.example.jp. 3600 IN A 192.0.2.99"}
    # child.example.jp is delegated in example.jp but served too: the child zone answers.
    r = await udp(server, "child.example.jp", "A")
    assert r.flags & dns.flags.AA
    assert texts(r.answer) == {"child.example.jp. 3600 IN A 192.0.2.7"}


async def test_letter_case_of_the_question_is_kept(server: AuthServer) -> None:
    q = dns.message.make_query("ExAmPle.JP", "A")
    raw = await dns.asyncquery.udp(q, "127.0.0.1", port=server.port, timeout=2)
    assert str(raw.question[0].name) == "ExAmPle.JP."


# -- sizes and transports ---------------------------------------------------------------------


async def test_truncation_over_udp_and_full_answer_over_tcp(server: AuthServer) -> None:
    r = await udp(server, "big.example.jp", "TXT", payload=512)
    assert r.flags & dns.flags.TC and not r.answer
    r = await udp(server, "big.example.jp", "TXT", payload=None)  # no EDNS: 512
    assert r.flags & dns.flags.TC and not r.answer
    r = await udp(server, "big.example.jp", "TXT", payload=1232)
    assert not r.flags & dns.flags.TC and len(r.answer[0][0].strings) == 4
    r = await tcp(server, "big.example.jp", "TXT")
    assert not r.flags & dns.flags.TC and len(r.answer[0][0].strings) == 4


async def test_several_queries_on_one_tcp_connection(server: AuthServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    names = ["example.jp", "mail.example.jp", "big.example.jp"]
    queries = [dns.message.make_query(n, "A" if i < 2 else "TXT") for i, n in enumerate(names)]
    for q in queries:  # pipelined: all sent before any answer is read
        wire = q.to_wire()
        writer.write(struct.pack("!H", len(wire)) + wire)
    await writer.drain()
    for q in queries:
        length = struct.unpack("!H", await reader.readexactly(2))[0]
        r = dns.message.from_wire(await reader.readexactly(length))
        assert r.id == q.id and r.rcode() == dns.rcode.NOERROR and r.answer
    writer.close()
    await writer.wait_closed()


async def test_other_opcodes_are_not_implemented(server: AuthServer) -> None:
    q = dns.message.make_query("example.jp", "SOA")
    q.set_opcode(dns.opcode.NOTIFY)
    r = await dns.asyncquery.udp(q, "127.0.0.1", port=server.port, timeout=2)
    assert r.rcode() == dns.rcode.NOTIMP and r.opcode() == dns.opcode.NOTIFY


async def test_unknown_edns_version_is_badvers(server: AuthServer) -> None:
    q = dns.message.make_query("example.jp", "A", use_edns=1)
    r = await dns.asyncquery.udp(q, "127.0.0.1", port=server.port, timeout=2)
    assert r.rcode() == dns.rcode.BADVERS


async def test_malformed_packets_do_not_kill_the_server(server: AuthServer) -> None:
    loop = asyncio.get_running_loop()
    replies: list[bytes] = []

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            replies.append(data)

    transport, _ = await loop.create_datagram_endpoint(
        Client, remote_addr=("127.0.0.1", server.port)
    )
    good = dns.message.make_query("example.jp", "A").to_wire()
    junk = [b"", b"\x12", b"\x12\x34\x01\x00\x00\x01", good[:-3], good + b"\x00", b"\xff" * 40]
    rng = random.Random(7)
    junk += [bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 80))) for _ in range(200)]
    for packet in junk:
        transport.sendto(packet)
    await asyncio.sleep(0.2)
    transport.close()
    formerr = [r for r in replies if r[3] & 0x0F == dns.rcode.FORMERR]
    assert formerr  # the truncated question got FORMERR
    # Over TCP too: a junk message, then a good one on the same connection.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    for packet in (b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05abc", good):
        writer.write(struct.pack("!H", len(packet)) + packet)
    length = struct.unpack("!H", await reader.readexactly(2))[0]
    assert (await reader.readexactly(length))[3] & 0x0F == dns.rcode.FORMERR
    length = struct.unpack("!H", await reader.readexactly(2))[0]
    assert dns.message.from_wire(await reader.readexactly(length)).answer
    writer.close()
    r = await udp(server, "example.jp", "A")
    assert r.rcode() == dns.rcode.NOERROR and r.answer


def test_random_bytes_never_raise() -> None:
    responder = Responder()
    responder.add_zone(ZONES["example.jp"], "example.jp")
    good = dns.message.make_query("example.jp", "A", use_edns=0).to_wire()
    rng = random.Random(11)
    for _ in range(3000):
        packet = bytearray(good)
        for _ in range(rng.randrange(1, 6)):
            packet[rng.randrange(len(packet))] = rng.getrandbits(8)
        packet = packet[: rng.randrange(len(packet) + 1)]
        reply = responder.respond(bytes(packet), udp=True)
        assert reply is None or len(reply) >= 12


# -- the thread wrapper and zone loading ------------------------------------------------------


def test_server_thread_for_synchronous_callers() -> None:
    with ServerThread(ZONES) as st:
        host, port = st.address.split(":")
        assert host == "127.0.0.1" and int(port) == st.port > 0
        r = dns.query.udp(
            dns.message.make_query("mail.example.jp", "A"), host, port=st.port, timeout=2
        )
        assert texts(r.answer) == {"mail.example.jp. 3600 IN A 192.0.2.25"}
        r = dns.query.tcp(
            dns.message.make_query("mail.example.jp", "A"), host, port=st.port, timeout=2
        )
        assert r.answer
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", st.port), timeout=1):
        pass


def test_fast_reader_agrees_with_dnspython() -> None:
    """The plain-form reader and dnspython's zone reader give the same records."""
    text = ZONES["example.jp"] + '\nesc IN TXT "a\\"b" "c\\059d" plain\nsrv IN SRV 0 5 25 mail\n'
    mine = parse_zone(text, "example.jp")
    got = {
        (owner, rdtype, rr.ttl, rdata)
        for owner, node in mine.nodes.items()
        for rdtype, rr in node.items()
        for rdata in rr.rdatas
    }
    zone = dns.zone.from_text(text, "example.jp.", relativize=False)
    want = {
        (name.canonicalize().to_wire(), int(rd.rdtype), ttl, rd.to_wire())
        for name, ttl, rd in zone.iterate_rdatas()
    }
    assert got == want


def test_zone_files_in_other_forms_fall_back_to_dnspython() -> None:
    text = """$ORIGIN example.com.
@ 1h IN SOA ns1 hostmaster (
        1 ; serial
        3600 900 604800 300 )
@ 1h IN NS ns1
ns1 1h IN A 192.0.2.1
"""
    zone = parse_zone(text, "example.com")
    assert len(zone.nodes) == 2


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("$ORIGIN example.jp.\n$TTL 60\n@ IN NS ns1.example.jp.\n", "SOA"),
        (_zone("example.jp", "www.example.org. IN A 192.0.2.1"), "outside"),
        (_zone("example.jp", "www IN CNAME @", "www IN A 192.0.2.1"), "CNAME and other data"),
        (_zone("example.jp", "www IN A 300.1.1.1"), "example.jp"),
    ],
)
def test_bad_zones_are_refused_at_load(text: str, problem: str) -> None:
    with pytest.raises(ZoneError, match=problem):
        parse_zone(text, "example.jp")


# -- the same questions to NSD ----------------------------------------------------------------

QUESTIONS = [
    ("example.jp", "MX"),
    ("example.jp", "AAAA"),
    ("nope.example.jp", "TXT"),
    ("unregistered.co.jp", "MX"),
    ("_domainkey.example.jp", "TXT"),
    ("sel._domainkey.example.jp", "TXT"),
    ("_dmarc.example.jp", "TXT"),
    ("_dmarc.example.jp", "CNAME"),
    ("www.example.jp", "A"),
    ("dangling.example.jp", "TXT"),
    ("anything.wild.example.jp", "A"),
    ("a.b.wild.example.jp", "TXT"),
    ("anything.wild.example.jp", "MX"),
    ("wild.example.jp", "A"),
    ("x.cn.example.jp", "A"),
    ("host.sub.example.jp", "A"),
    ("sub.example.jp", "NS"),
    ("child.example.jp", "A"),
    ("child.example.jp", "SOA"),
    ("big.example.jp", "TXT"),
    ("example.net", "A"),
    ("away.example.jp", "A"),
    ("nosel._domainkey.example.jp", "TXT"),
    ("child.example.jp", "DS"),
    ("ns.sub.example.jp", "A"),
    ("EXAMPLE.jp", "TXT"),
]


@pytest.mark.skipif(shutil.which("nsd") is None, reason="nsd is not installed")
async def test_answers_agree_with_nsd(server: AuthServer, tmp_path) -> None:
    from tests.nsd import Nsd

    nsd = Nsd(tmp_path / "nsd", ZONES)
    try:
        for name, rdtype in QUESTIONS:
            q = dns.message.make_query(name, rdtype, use_edns=0, payload=1232)
            ours = await dns.asyncquery.udp(q, "127.0.0.1", port=server.port, timeout=2)
            theirs = await dns.asyncquery.udp(q, "127.0.0.1", port=nsd.port, timeout=2)
            where = f"{name} {rdtype}"
            assert ours.rcode() == theirs.rcode(), where
            assert ours.flags & dns.flags.AA == theirs.flags & dns.flags.AA, where
            assert texts(ours.answer) == texts(theirs.answer), where
            if not theirs.answer:  # NSD also puts the zone's NS beside positive answers
                assert {(rr.name, rr.rdtype) for rr in ours.authority} == {
                    (rr.name, rr.rdtype) for rr in theirs.authority
                }, where
    finally:
        nsd.stop()
