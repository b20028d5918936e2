"""mailauth_survey.wire, checked differentially against dnspython.

dnspython is the reference: the stored record format is what ``rrset.to_text()`` prints, and
the hand-written parser must reproduce it byte for byte on anything dnspython accepts, and
raise only WireError on anything else.
"""

from __future__ import annotations

import io
import struct

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mailauth_survey.wire import (
    Response,
    WireError,
    make_query,
    parse_response,
    question,
)

#: Record types the survey asks for.
QTYPES = ("A", "AAAA", "MX", "NS", "TXT", "CNAME", "PTR", "TLSA", "SOA")

# --- the reference: dnspython's full parser ----------------------------------------------------


def reference(wire: bytes) -> Response | None:
    """What dnspython makes of ``wire`` (None: it refuses it), in the Response shape."""
    try:
        msg = dns.message.from_wire(wire, ignore_trailing=True, one_rr_per_rrset=False)
    except Exception:
        return None
    if not msg.flags & dns.flags.QR or len(msg.question) != 1:
        return None
    records: list[str] = []
    for rrset in msg.answer:
        records.extend(rrset.to_text().split("\n"))
    q = msg.question[0]
    return Response(
        id=msg.id,
        rcode=dns.rcode.to_text(msg.rcode()),
        tc=bool(msg.flags & dns.flags.TC),
        ad=bool(msg.flags & dns.flags.AD),
        qname=q.name.to_text(omit_final_dot=True).lower(),
        qtype=dns.rdatatype.to_text(q.rdtype),
        records=tuple(records),
    )


def parse_or_none(wire: bytes) -> Response | None:
    """Our parser, asserting the error contract: a Response or WireError, nothing else."""
    try:
        return parse_response(wire)
    except WireError:
        return None


def check_against_reference(wire: bytes) -> Response | None:
    """Whenever dnspython accepts a reply, we must accept it and read exactly the same.

    The converse holds too when there is no authority or additional section, the only parts
    whose contents we skip without checking, and no TLSA digest of the wrong length for its
    matching type: dnspython refuses the whole reply for one, we keep it for dane to report
    (test_tlsa_digest_of_wrong_length_is_rendered_not_junk).
    """
    ours = parse_or_none(wire)
    ref = reference(wire)
    if len(wire) >= 12 and (wire[2] >> 3) & 0xF == dns.opcode.UPDATE:
        return ours  # other section semantics in dnspython; never a reply to our queries
    if ref is not None:
        assert ours == ref
    if ours is not None and wire[8:12] == b"\0\0\0\0" and not wrong_length_digest(ours):
        assert ref == ours
    return ours


#: RFC 6698 2.1.3: the digest lengths of TLSA matching types 1 (SHA-256) and 2 (SHA-512).
DIGEST_HEX_LENGTH = {"1": 64, "2": 128}


def wrong_length_digest(resp: Response) -> bool:
    """Whether a TLSA record of ``resp`` has a digest of the wrong length for its matching type."""
    fields = (rr.split() for rr in resp.records)  # owner TTL class TLSA usage selector mtype hex
    return any(
        len(f) >= 7
        and f[3] == "TLSA"
        and f[6] in DIGEST_HEX_LENGTH
        and len("".join(f[7:])) != DIGEST_HEX_LENGTH[f[6]]
        for f in fields
    )


def uncompressed_wire(msg: dns.message.Message) -> bytes:
    """``msg`` in wire form without any name compression (dnspython always compresses)."""
    out = io.BytesIO()
    sections = [msg.answer, msg.authority, list(msg.additional)]
    if msg.opt is not None:
        sections[2].append(msg.opt)
    counts = [sum(len(rrset) for rrset in section) for section in sections]
    out.write(struct.pack("!HHHHHH", msg.id, msg.flags, len(msg.question), *counts))
    for q in msg.question:
        q.name.to_wire(out)
        out.write(struct.pack("!HH", q.rdtype, q.rdclass))
    for section in sections:
        for rrset in section:
            for rd in rrset:
                rrset.name.to_wire(out)
                rdata = rd.to_wire()
                out.write(struct.pack("!HHIH", rrset.rdtype, rrset.rdclass, rrset.ttl, len(rdata)))
                out.write(rdata)
    return out.getvalue()


def response(
    qname: dns.name.Name | str,
    qtype: str = "A",
    answer: list[dns.rrset.RRset] | None = None,
    authority: list[dns.rrset.RRset] | None = None,
    rcode: int = dns.rcode.NOERROR,
    edns: bool = True,
) -> dns.message.Message:
    query = dns.message.make_query(qname, qtype, use_edns=0 if edns else False)
    msg = dns.message.make_response(query)
    msg.set_rcode(rcode)
    msg.answer.extend(answer or [])
    msg.authority.extend(authority or [])
    return msg


def rrset(name: str, rtype: str, *rdatas: str, ttl: int = 300, rclass: str = "IN"):
    return dns.rrset.from_text(name, ttl, rclass, rtype, *rdatas)


# --- fixed examples ------------------------------------------------------------------------------

TXT3 = rrset(
    "example.jp.",
    "TXT",
    '"v=spf1 include:_spf.example.net -all"',
    '"google-site-verification=abc"',
    '"two" "strings \\"quoted\\" \\\\ \\000\\255 \\127"',
)
MX2 = rrset("example.jp.", "MX", "10 mx1.example.jp.", "20 MX2.Example.NET.", ttl=3600)
SOA = rrset("jp.", "SOA", "z.dns.jp. root.dns.jp. 1700000000 3600 900 1814400 900", ttl=900)

#: Types and classes the parser hands to dnspython, one record at a time.
FALLBACK = [
    ("IN", "RRSIG", "TXT 8 2 300 20250101000000 20240101000000 12345 example.jp. dGVzdA=="),
    ("IN", "RRSIG", "MX 13 2 300 20250101000000 20240101000000 54321 example.jp. dGVzdA=="),
    ("IN", "CAA", '0 issue "letsencrypt.org"'),
    ("IN", "SPF", '"v=spf1 -all"'),
    ("IN", "HINFO", '"x86" "linux"'),
    ("IN", "DNAME", "target.example."),
    ("IN", "SRV", "10 5 443 srv.example."),
    ("IN", "DS", "12345 8 2 " + "ab" * 32),
    ("IN", "TYPE65280", "\\# 3 abcdef"),
    ("IN", "NSEC", "next.example. A MX RRSIG"),
    ("IN", "HTTPS", "1 . alpn=h2"),
    ("IN", "SSHFP", "1 1 " + "ab" * 20),
    ("IN", "SMIMEA", "3 1 1 " + "ab" * 32),
    ("CH", "A", "ch.example. 1234"),
    ("CH", "TXT", '"hello"'),
    ("HS", "A", "\\# 4 01020304"),
    ("CLASS7", "MX", "10 mx.example."),
]


@pytest.mark.parametrize(
    "msg",
    [
        response("example.jp", "TXT", [TXT3]),
        response("example.jp", "MX", [MX2]),
        response("nonexistent.jp", "A", [], [SOA], rcode=dns.rcode.NXDOMAIN),
        response(
            "www.example.jp",
            "A",
            [
                rrset("www.example.jp.", "CNAME", "Web.Example.jp."),
                rrset("Web.Example.jp.", "A", "192.0.2.1", "192.0.2.2"),
            ],
        ),
        response(
            "example.jp",
            "AAAA",
            [rrset("example.jp.", "AAAA", "2001:db8::1", "::ffff:1.2.3.4", "::1.2.3.4", "::")],
        ),
        response("example.jp", "NS", [rrset("example.jp.", "NS", "a.dns.jp.", "b.dns.jp.")]),
        response(
            "1.2.0.192.in-addr.arpa",
            "PTR",
            [rrset("1.2.0.192.in-addr.arpa.", "PTR", "host.example.")],
        ),
        response(
            "_25._tcp.mx.example.jp",
            "TLSA",
            [
                rrset(
                    "_25._tcp.mx.example.jp.",
                    "TLSA",
                    "3 1 1 " + "0a" * 32,
                    "3 0 0 " + "ff" * 100,
                    "2 1 2 " + "01" * 64,
                    "\\# 3 030100",
                )
            ],
        ),
        response("example.jp", "SOA", [SOA]),
        response("example.jp", "TXT", [rrset("example.jp.", "TXT", '"' + "x" * 255 + '" "y"')]),
        response(".", "NS", [rrset(".", "NS", "a.root-servers.net.")]),
        response(
            "example.jp", "ANY", [rrset("example.jp.", t, rd, rclass=c) for c, t, rd in FALLBACK]
        ),
        response("example.jp", "TXT", [TXT3], edns=False),
    ],
    ids=lambda m: str(m.question[0]),
)
def test_examples_match_dnspython(msg: dns.message.Message) -> None:
    for wire in (msg.to_wire(), uncompressed_wire(msg)):
        ours = parse_response(wire)
        assert ours == reference(wire)


def test_example_values() -> None:
    wire = response("Example.JP.", "MX", [MX2]).to_wire()
    r = parse_response(wire)
    assert r.qname == "example.jp"
    assert r.qtype == "MX"
    assert r.rcode == "NOERROR"
    # Compression points the owner (and the suffix of mx1) at the question name, so they show
    # its case: names are printed as they are on the wire, as dnspython does.
    assert sorted(r.records) == [
        "Example.JP. 3600 IN MX 10 mx1.Example.JP.",
        "Example.JP. 3600 IN MX 20 MX2.Example.NET.",
    ]
    txt = parse_response(response("example.jp", "TXT", [TXT3]).to_wire())
    assert (
        'example.jp. 300 IN TXT "two" "strings \\"quoted\\" \\\\ \\000\\255 \\127"' in txt.records
    )


def test_rrset_merging_like_dnspython() -> None:
    """Split RRsets merge, duplicates drop, TTL is the minimum, the last CNAME wins."""
    answer = [
        rrset("a.example.", "A", "192.0.2.1", ttl=300),
        rrset("b.example.", "A", "192.0.2.9"),
        rrset("A.EXAMPLE.", "A", "192.0.2.2", "192.0.2.1", ttl=60),
        rrset("a.example.", "MX", "10 mx.example."),
        rrset("a.example.", "MX", "10 MX.EXAMPLE.", ttl=5),
        rrset("c.example.", "CNAME", "x.example."),
        rrset("C.example.", "CNAME", "y.example.", ttl=10),
        rrset("d.example.", "A", "192.0.2.1", ttl=0x80000000),
    ]
    wire = response("a.example", "A", answer).to_wire()
    ours = parse_response(wire)
    assert ours == reference(wire)
    assert ours.records == (
        "a.example. 60 IN A 192.0.2.1",
        "a.example. 60 IN A 192.0.2.2",
        "b.example. 300 IN A 192.0.2.9",
        "a.example. 5 IN MX 10 mx.example.",
        "c.example. 10 IN CNAME y.example.",
        "d.example. 0 IN A 192.0.2.1",
    )


def test_name_escaping() -> None:
    odd = dns.name.Name([b"a.b", b"sp ace", b'q"(x);@$\\', b"\x00\x1f\x7f\x80\xff", b"Caps", b""])
    answer = [
        dns.rrset.from_rdata(odd, 60, dns.rdata.from_text("IN", "CNAME", "t.example.")),
        rrset("t.example.", "MX", "1 " + odd.to_text()),
    ]
    wire = response(odd, "CNAME", answer).to_wire()
    ours = parse_response(wire)
    assert ours == reference(wire)
    assert ours.records[0].startswith(
        'a\\.b.sp\\032ace.q\\"\\(x\\)\\;\\@\\$\\\\.\\000\\031\\127\\128\\255.Caps. 60 IN CNAME'
    )
    assert ours.qname == 'a\\.b.sp\\032ace.q\\"\\(x\\)\\;\\@\\$\\\\.\\000\\031\\127\\128\\255.caps'


@pytest.mark.parametrize(
    ("rcode", "text"),
    [
        (dns.rcode.NOERROR, "NOERROR"),
        (dns.rcode.FORMERR, "FORMERR"),
        (dns.rcode.SERVFAIL, "SERVFAIL"),
        (dns.rcode.NXDOMAIN, "NXDOMAIN"),
        (dns.rcode.NOTIMP, "NOTIMP"),
        (dns.rcode.REFUSED, "REFUSED"),
        (dns.rcode.BADVERS, "BADVERS"),
        (dns.rcode.BADCOOKIE, "BADCOOKIE"),
        (24, "24"),
        (4095, "4095"),
        (15, "15"),
    ],
)
def test_rcodes_including_extended(rcode: int, text: str) -> None:
    msg = response("example.jp", "A")
    msg.set_rcode(rcode)
    wire = msg.to_wire()
    assert parse_response(wire).rcode == text == reference(wire).rcode


def test_flags() -> None:
    msg = response("example.jp", "A")
    msg.flags |= dns.flags.TC | dns.flags.AD
    msg.id = 0xBEEF
    r = parse_response(msg.to_wire())
    assert (r.id, r.tc, r.ad) == (0xBEEF, True, True)
    r = parse_response(response("example.jp", "A").to_wire())
    assert (r.tc, r.ad) == (False, False)


# --- generated messages --------------------------------------------------------------------------

plain_label = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1, max_size=20
).map(str.encode)
odd_label = st.binary(min_size=1, max_size=63)
label = st.one_of(plain_label, plain_label, plain_label, odd_label)


@st.composite
def names(draw, max_labels: int = 5) -> dns.name.Name:
    labels = draw(st.lists(label, min_size=0, max_size=max_labels))
    while sum(len(x) + 1 for x in labels) + 1 > 255:
        labels.pop()
    return dns.name.Name([*labels, b""])


def with_random_case(name: dns.name.Name, data: st.DataObject) -> dns.name.Name:
    flips = data.draw(st.lists(st.booleans(), min_size=len(name.labels), max_size=len(name.labels)))
    return dns.name.Name(
        [lb.upper() if f else lb.lower() for lb, f in zip(name.labels, flips, strict=True)]
    )


def ipv6_bytes() -> st.SearchStrategy[bytes]:
    """16 bytes, biased to runs of zero groups and the IPv4-embedding prefixes."""
    group = st.one_of(
        st.just(b"\x00\x00"),
        st.just(b"\x00\x00"),
        st.just(b"\xff\xff"),
        st.binary(min_size=2, max_size=2),
    )
    return st.one_of(
        st.lists(group, min_size=8, max_size=8).map(b"".join), st.binary(min_size=16, max_size=16)
    )


def rdatas_of(rtype: str, name_pool: list[dns.name.Name]):
    """Strategy for one rdata of ``rtype`` (class IN), names drawn from ``name_pool`` or fresh."""
    a_name = st.one_of(st.sampled_from(name_pool), names())
    u32 = st.integers(0, 2**32 - 1)
    if rtype == "A":
        return st.binary(min_size=4, max_size=4).map(
            lambda b: dns.rdata.from_wire("IN", "A", b, 0, 4)
        )
    if rtype == "AAAA":
        return ipv6_bytes().map(lambda b: dns.rdata.from_wire("IN", "AAAA", b, 0, 16))
    if rtype in ("CNAME", "NS", "PTR"):
        cls = dns.rdata.get_rdata_class(dns.rdataclass.IN, dns.rdatatype.from_text(rtype))
        return a_name.map(lambda n: cls(dns.rdataclass.IN, dns.rdatatype.from_text(rtype), n))
    if rtype == "MX":
        cls = dns.rdata.get_rdata_class(dns.rdataclass.IN, dns.rdatatype.MX)
        return st.builds(
            lambda p, n: cls(dns.rdataclass.IN, dns.rdatatype.MX, p, n),
            st.integers(0, 65535),
            a_name,
        )
    if rtype == "TXT":
        cls = dns.rdata.get_rdata_class(dns.rdataclass.IN, dns.rdatatype.TXT)
        strings = st.lists(
            st.one_of(
                st.binary(max_size=255),
                st.text(max_size=80).map(str.encode).filter(lambda b: len(b) <= 255),
            ),
            min_size=1,
            max_size=4,
        )
        return strings.map(lambda s: cls(dns.rdataclass.IN, dns.rdatatype.TXT, s))
    if rtype == "TLSA":
        cls = dns.rdata.get_rdata_class(dns.rdataclass.IN, dns.rdatatype.TLSA)

        @st.composite
        def tlsa(draw):
            mtype = draw(st.sampled_from([0, 1, 2, 3, 255]))
            size = {1: 32, 2: 64}.get(mtype)
            cert = draw(st.binary(min_size=size or 0, max_size=size or 300))
            return cls(
                dns.rdataclass.IN,
                dns.rdatatype.TLSA,
                draw(st.integers(0, 255)),
                draw(st.integers(0, 255)),
                mtype,
                cert,
            )

        return tlsa()
    if rtype == "SOA":
        cls = dns.rdata.get_rdata_class(dns.rdataclass.IN, dns.rdatatype.SOA)
        return st.builds(
            lambda m, r, *ints: cls(dns.rdataclass.IN, dns.rdatatype.SOA, m, r, *ints),
            a_name,
            a_name,
            u32,
            u32,
            u32,
            u32,
            u32,
        )
    raise AssertionError(rtype)


fallback_rdata = st.sampled_from(FALLBACK).map(lambda f: (f[0], f[1], dns.rdata.from_text(*f)))


@st.composite
def messages(draw) -> dns.message.Message:
    data = draw(st.data())
    qname = draw(names())
    qtype = draw(st.sampled_from([*QTYPES, "ANY", "TYPE65280"]))
    pool = [qname, with_random_case(qname, data), draw(names()), draw(names())]
    answer: list[dns.rrset.RRset] = []
    # A CNAME chain from the question name, as resolvers return it.
    owner = qname
    for _ in range(draw(st.integers(0, 3))):
        target = draw(names())
        answer.append(
            dns.rrset.from_rdata(
                owner,
                draw(st.integers(0, 2**32 - 1)),
                dns.rdata.from_text("IN", "CNAME", target.to_text()),
            )
        )
        pool.append(target)
        owner = target
    for _ in range(draw(st.integers(0, 4))):
        rrset_owner = draw(st.sampled_from([owner, *pool]))
        rrset_owner = with_random_case(rrset_owner, data) if draw(st.booleans()) else rrset_owner
        ttl = draw(st.one_of(st.integers(0, 86400), st.integers(0, 2**32 - 1)))
        if draw(st.integers(0, 9)) == 0:
            rclass, rtype, rd = draw(fallback_rdata)
            rds = [rd]
        else:
            rtype = draw(st.sampled_from(QTYPES))
            rds = draw(st.lists(rdatas_of(rtype, pool), min_size=1, max_size=4))
        answer.append(dns.rrset.from_rdata_list(rrset_owner, ttl, rds))
    authority = [SOA] if draw(st.booleans()) else []
    msg = response(
        qname,
        qtype,
        answer,
        authority,
        rcode=draw(st.sampled_from([0, 2, 3, 5, 16, 24])),
        edns=draw(st.booleans()),
    )
    msg.id = draw(st.integers(0, 65535))
    msg.flags |= draw(st.sampled_from([0, dns.flags.TC, dns.flags.AD, dns.flags.TC | dns.flags.AD]))
    return msg


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages(), st.booleans())
def test_generated_messages_match_dnspython(msg: dns.message.Message, compress: bool) -> None:
    try:
        wire = msg.to_wire() if compress else uncompressed_wire(msg)
    except dns.exception.DNSException:  # e.g. longer than 65535 bytes
        assume(False)
    ref = reference(wire)
    # Rarely dnspython's writer compresses a name to a pointer that its own reader refuses
    # (BadPointer: not before the previous one); such a message is no reference.
    assume(ref is not None)
    assert parse_response(wire) == ref


# --- make_query ---------------------------------------------------------------------------------

query_name = (
    st.lists(plain_label, min_size=1, max_size=4)
    .map(lambda ls: b".".join(ls).decode())
    .filter(lambda n: len(n) <= 253)
)


@given(
    st.integers(0, 65535),
    query_name,
    st.booleans(),
    st.sampled_from([*QTYPES, "txt", "ANY", "CAA", "TYPE65280"]),
    st.sampled_from([0, 512, 1232, 4096, 65535]),
    st.booleans(),
)
def test_make_query_matches_dnspython(qid, qname, dot, qtype, payload, dnssec_ok) -> None:
    assume(payload or not dnssec_ok)
    wire = make_query(
        qid, qname + ("." if dot else ""), qtype, payload=payload, dnssec_ok=dnssec_ok
    )
    msg = dns.message.from_wire(wire)
    assert msg.id == qid
    assert msg.flags == dns.flags.RD | dns.flags.AD  # AD asks for validation (RFC 6840 5.7)
    assert len(msg.question) == 1
    q = msg.question[0]
    assert q.name.to_text() == qname + "."  # case kept
    assert q.rdtype == dns.rdatatype.from_text(qtype)
    assert q.rdclass == dns.rdataclass.IN
    assert not msg.answer and not msg.authority and not msg.additional
    if payload:
        assert msg.edns == 0
        assert msg.payload == payload
        assert bool(msg.ednsflags & dns.flags.DO) == dnssec_ok
        assert not msg.options
        # Byte for byte what dnspython builds.
        ref = dns.message.make_query(
            qname, qtype, use_edns=0, payload=payload, want_dnssec=dnssec_ok
        )
        ref.id = qid
        ref.flags |= dns.flags.AD
        assert wire == ref.to_wire()
    else:
        assert msg.edns == -1


def test_make_query_special_names() -> None:
    assert dns.message.from_wire(make_query(1, ".", "NS")).question[0].name == dns.name.root
    escaped = dns.message.from_wire(make_query(1, "a\\.b.jp", "TXT")).question[0].name
    assert escaped.labels == (b"a.b", b"jp", b"")
    longest = ".".join(["a" * 63] * 3 + ["b" * 61])  # 253 characters, 255 bytes on the wire
    assert (
        dns.message.from_wire(make_query(1, longest, "A")).question[0].name.to_text()
        == longest + "."
    )


@pytest.mark.parametrize(
    "qname",
    [
        "",
        "a..jp",
        ".jp",
        "a" * 64 + ".jp",
        ".".join(["a" * 63] * 4),
        "例え.jp",
        "example.jp..",
        "a\\",
    ],
)
def test_make_query_rejects_invalid_names(qname: str) -> None:
    with pytest.raises(WireError):
        make_query(1, qname, "A")


def test_make_query_rejects_bad_arguments() -> None:
    with pytest.raises(WireError):
        make_query(1, "example.jp", "NOSUCHTYPE")
    with pytest.raises(WireError):
        make_query(65536, "example.jp", "A")
    with pytest.raises(WireError):
        make_query(1, "example.jp", "A", payload=0, dnssec_ok=True)


def test_make_query_round_trip() -> None:
    """A reply to our own query (as a server would echo it) parses to the same question."""
    wire = bytearray(make_query(7, "Mail.Example.JP", "TLSA", dnssec_ok=True))
    wire[2] |= 0x80  # QR
    r = parse_response(bytes(wire))
    assert (r.id, r.qname, r.qtype, r.rcode, r.records) == (
        7,
        "mail.example.jp",
        "TLSA",
        "NOERROR",
        (),
    )


# --- junk ---------------------------------------------------------------------------------------

SAMPLES = [
    response("example.jp", "TXT", [TXT3]).to_wire(),
    response("example.jp", "MX", [MX2]).to_wire(),
    uncompressed_wire(response("example.jp", "MX", [MX2])),
    response("nonexistent.jp", "A", [], [SOA], rcode=dns.rcode.NXDOMAIN).to_wire(),
    response(
        "example.jp", "ANY", [rrset("example.jp.", t, rd, rclass=c) for c, t, rd in FALLBACK]
    ).to_wire(),
    response(
        "_25._tcp.mx.example.jp",
        "TLSA",
        [rrset("_25._tcp.mx.example.jp.", "TLSA", "3 1 1 " + "0a" * 32)],
    ).to_wire(),
    response("example.jp", "AAAA", [rrset("example.jp.", "AAAA", "2001:db8::1")]).to_wire(),
    # Without EDNS or authority, so that every part of the message is checked both ways.
    response("example.jp", "TXT", [TXT3], edns=False).to_wire(),
    uncompressed_wire(response("example.jp", "MX", [MX2], edns=False)),
    response("example.jp", "SOA", [SOA], edns=False).to_wire(),
    response(
        "www.example.jp",
        "AAAA",
        [
            rrset("www.example.jp.", "CNAME", "Web.Example.jp."),
            rrset("web.example.jp.", "AAAA", "2001:db8::1", "::ffff:192.0.2.1"),
            rrset("web.example.jp.", "A", "192.0.2.1"),
        ],
        edns=False,
    ).to_wire(),
    response(
        "_25._tcp.mx.example.jp",
        "TLSA",
        [rrset("_25._tcp.mx.example.jp.", "TLSA", "3 1 1 " + "0a" * 32, "3 0 0 " + "0b" * 40)],
        edns=False,
    ).to_wire(),
    response(
        "example.jp", "ANY", [rrset("example.jp.", t, rd, rclass=c) for c, t, rd in FALLBACK[:6]]
    ).to_wire(),
]


@settings(max_examples=1000)
@given(st.binary(max_size=600))
def test_random_bytes_only_raise_wire_error(data: bytes) -> None:
    check_against_reference(data)


@settings(max_examples=1000)
@given(
    st.binary(min_size=0, max_size=400),
    st.integers(0, 65535),
    st.integers(0, 3),
    st.integers(0, 3),
    st.integers(0, 3),
)
def test_random_bodies_only_raise_wire_error(
    body: bytes, qid: int, an: int, ns: int, ar: int
) -> None:
    """Random bytes behind a plausible header, to get past the first checks."""
    check_against_reference(struct.pack("!HHHHHH", qid, 0x8180, 1, an, ns, ar) + body)


#: Up to four bytes of a reply overwritten: (offset, modulo the length; new value).
EDITS = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4)


@settings(max_examples=1500)
@given(st.sampled_from(SAMPLES), EDITS)
def test_mutated_replies_match_dnspython_or_fail_cleanly(wire: bytes, edits) -> None:
    buf = bytearray(wire)
    for where, value in edits:
        buf[where % len(buf)] = value
    check_against_reference(bytes(buf))


@pytest.mark.parametrize("wire", SAMPLES)
def test_every_truncation(wire: bytes) -> None:
    for cut in range(len(wire) + 1):
        check_against_reference(wire[:cut])
    assert parse_response(wire + b"trailing junk") == parse_response(wire)


def _header(an: int = 1, ns: int = 0, ar: int = 0, flags: int = 0x8180, qd: int = 1) -> bytes:
    return struct.pack("!HHHHHH", 1, flags, qd, an, ns, ar)


QUESTION = b"\x07example\x02jp\x00\x00\x01\x00\x01"  # at offset 12
A_RR_TAIL = b"\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04\xc0\x00\x02\x01"


@pytest.mark.parametrize(
    "wire",
    [
        # owner pointing at itself
        _header() + QUESTION + b"\xc0\x1d" + A_RR_TAIL,
        # owner pointing forward, past the message
        _header() + QUESTION + b"\xff\xff" + A_RR_TAIL,
        # owner pointing forward, inside the message
        _header() + QUESTION + b"\xc0\x20" + A_RR_TAIL,
        # two names pointing at each other: label + pointer to the next name, and back
        _header(an=2) + QUESTION + b"\x01a\xc0\x2d" + A_RR_TAIL + b"\x01b\xc0\x1d" + A_RR_TAIL,
        # question name pointing at itself
        _header(an=0) + b"\xc0\x0c\x00\x01\x00\x01",
        # reserved label types
        _header() + QUESTION + b"\x40" + A_RR_TAIL,
        _header() + QUESTION + b"\x80" + A_RR_TAIL,
        # absurd counts
        _header(an=65535) + QUESTION + b"\xc0\x0c" + A_RR_TAIL,
        _header(an=1, ns=65535, ar=65535) + QUESTION + b"\xc0\x0c" + A_RR_TAIL,
        # rdlength past the end
        _header() + QUESTION + b"\xc0\x0c" + A_RR_TAIL[:8] + b"\xff\xff\xc0",
        # wrong A length, empty TXT
        _header() + QUESTION + b"\xc0\x0c" + A_RR_TAIL[:8] + b"\x00\x03\x01\x02\x03",
        _header() + QUESTION + b"\xc0\x0c\x00\x10\x00\x01\x00\x00\x00\x00\x00\x00",
        # a byte after the name in CNAME rdata; an SOA with 21 bytes of numbers
        _header() + QUESTION + b"\xc0\x0c\x00\x05\x00\x01\x00\x00\x00\x00\x00\x03\xc0\x0c\x00",
        _header()
        + QUESTION
        + b"\xc0\x0c\x00\x06\x00\x01\x00\x00\x00\x00\x00\x19\x00\x00"
        + bytes(21),
        # TXT string running past its rdata
        _header() + QUESTION + b"\xc0\x0c\x00\x10\x00\x01\x00\x00\x00\x00\x00\x02\x05a",
        # name longer than 255 bytes (five 63-byte labels)
        _header(an=0) + b"\x3f" * 0 + (b"\x3f" + b"a" * 63) * 5 + b"\x00\x00\x01\x00\x01",
        # OPT in the answer section; TSIG in additional; OPT not owned by the root; two OPTs
        _header() + QUESTION + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00",
        _header(an=0, ar=1) + QUESTION + b"\x00\x00\xfa\x00\xff\x00\x00\x00\x00\x00\x00",
        _header(an=0, ar=1) + QUESTION + b"\xc0\x0c\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00",
        _header(an=0, ar=2) + QUESTION + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00" * 2,
        # QR=0, no question, two questions, short header
        _header(flags=0x0100) + QUESTION + b"\xc0\x0c" + A_RR_TAIL,
        _header(an=0, qd=0),
        _header(an=0, qd=2) + QUESTION + QUESTION,
        b"\x00\x01\x81",
        b"",
    ],
)
def test_malformed_replies_raise_wire_error(wire: bytes) -> None:
    with pytest.raises(WireError):
        parse_response(wire)
    assert reference(wire) is None


def _pointer_chain(hops: int) -> bytes:
    """A reply whose second answer owner reaches the question name through ``hops`` pointers.

    The intermediate names (each just a pointer to the previous one) are hidden in the opaque
    rdata of a first record, so the message is otherwise well formed.
    """
    links = hops - 1
    rdata_at = 12 + len(QUESTION) + 12  # after the first record's owner pointer and header
    chain = bytearray()
    target = 12
    for k in range(links):
        chain += struct.pack("!H", 0xC000 | target)
        target = rdata_at + 2 * k
    first = b"\xc0\x0c\xff\x00\x00\x01\x00\x00\x00\x00" + struct.pack("!H", len(chain)) + chain
    second = struct.pack("!H", 0xC000 | target) + A_RR_TAIL
    return _header(an=2) + QUESTION + first + second


@pytest.mark.parametrize(
    ("hops", "ok"), [(1, True), (2, True), (16, True), (17, False), (100, False)]
)
def test_pointer_chain_limit(hops: int, ok: bool) -> None:
    """Chains up to dnspython's limit of 16 pointers are followed; longer ones are refused."""
    wire = _pointer_chain(hops)
    assert (reference(wire) is not None) == ok
    if ok:
        r = parse_response(wire)
        assert r == reference(wire)
        assert r.records[-1] == "example.jp. 300 IN A 192.0.2.1"
    else:
        with pytest.raises(WireError):
            parse_response(wire)


def test_tlsa_with_no_digest_for_a_sha256_type_is_rendered_not_junk() -> None:
    """Found by the mutation test: rdata of 3 bytes (usage, selector, matching type 1, no
    digest). dnspython refuses the reply; the record is kept, its digest empty."""
    wire = (
        b"5\xfd\x81\x00\x00\x01\x00\x01\x00\x00\x00\x00\x03_25\x04_tcp\x02mx\x07example"
        b"\x02jp\x00\x004\x00\x01\xc0\x0c\x004\x00\x01\x00\x00\x01,\x00\x03\x03\x01\x01"
    )
    assert reference(wire) is None
    resp = check_against_reference(wire)
    assert resp is not None and resp.records == ("_25._tcp.mx.example.jp. 300 IN TLSA 3 1 1 ",)
    assert wrong_length_digest(resp)


def test_tlsa_digest_of_wrong_length_is_rendered_not_junk() -> None:
    """One bad TLSA record must not make a whole reply junk (dane.parse_tlsa reports it)."""
    wire = _header() + QUESTION + b"\xc0\x0c\x00\x34\x00\x01\x00\x00\x00\x00\x00\x05\x03\x01\x01ab"
    assert parse_response(wire).records[0].endswith("TLSA 3 1 1 6162")


# --- replies read against the question that was sent ---------------------------------------------


def parse_echo_or_error(wire: bytes, qname: str, qtype: str) -> Response | str:
    try:
        return parse_response(wire, question(qname, qtype), qname, qtype)
    except WireError:
        return "WireError"


def parse_full_or_error(wire: bytes) -> Response | str:
    try:
        return parse_response(wire)
    except WireError:
        return "WireError"


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages(), st.booleans())
def test_reading_against_the_sent_question_changes_nothing(msg, compress) -> None:
    """The echo shortcut (no answer records, question byte for byte) reads what the full parse
    reads; a reply it does not fit is read in full."""
    try:
        wire = msg.to_wire() if compress else uncompressed_wire(msg)
    except dns.exception.DNSException:
        assume(False)
    q = msg.question[0]
    qname = q.name.to_text(omit_final_dot=True).lower()
    qtype = dns.rdatatype.to_text(q.rdtype)
    assume(qname.isascii() and "\\" not in qname)
    assert parse_echo_or_error(wire, qname, qtype) == parse_full_or_error(wire)


@settings(max_examples=1500)
@given(st.sampled_from(SAMPLES), EDITS)
def test_mutated_replies_read_the_same_against_the_sent_question(wire: bytes, edits) -> None:
    ref = parse_response(wire)
    buf = bytearray(wire)
    for where, value in edits:
        buf[where % len(buf)] = value
    assert parse_echo_or_error(bytes(buf), ref.qname, ref.qtype) == parse_full_or_error(bytes(buf))


def test_an_echoed_nxdomain_is_read_without_the_name():
    msg = response("nope.example.jp.", "TXT", [], [SOA], rcode=3, edns=True)
    wire = msg.to_wire()
    got = parse_response(wire, question("nope.example.jp", "TXT"), "nope.example.jp", "TXT")
    assert got == parse_response(wire)
    assert (got.rcode, got.qname, got.records) == ("NXDOMAIN", "nope.example.jp", ())


def test_an_echoed_answer_renders_names_as_the_full_parse_does():
    """Owners by pointer, owners spelt out in another case, names in rdata equal to the
    question's: with the question not decoded, each is rendered as the full parse renders it."""
    q = "www.example.jp."
    answer = [
        rrset(q, "CNAME", "Mail.Example.JP."),
        rrset("Mail.Example.JP.", "MX", "10 www.example.jp."),
        rrset("WWW.example.jp.", "TXT", '"v=spf1 -all"'),
    ]
    for wire in (response(q, "MX", answer).to_wire(), uncompressed_wire(response(q, "MX", answer))):
        got = parse_response(wire, question("www.example.jp", "MX"), "www.example.jp", "MX")
        assert got == parse_response(wire)
        assert got.records[0].lower() == "www.example.jp. 300 in cname mail.example.jp."
