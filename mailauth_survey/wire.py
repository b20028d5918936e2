"""DNS wire format: building queries and reading responses on the scanner's hot path.

The scanner needs little of a response: header flags, rcode, the question (to match the reply
to its query) and the answer section as presentation-format records. This module is the seam
between the network and the data model; it raises :class:`WireError` on anything malformed so
that junk replies are counted and retried, never stored.

Why hand-written: dnspython's message parser is too slow for the scanner's target rate
(``benchmarks/wire_bench.py``). This reader decodes only what is needed, with small decoders for
the record types the survey asks for, and renders every record byte for byte as dnspython's
``rrset.to_text()`` would, so the records table keeps dnspython's format. Anything unusual in the
answer section -- other record types, other classes -- is handed to dnspython one record at a
time, so exotic data costs time but never changes the output. ``tests/test_wire.py`` checks the
equivalence differentially against dnspython.
"""

from __future__ import annotations

import re
import socket
import struct
from dataclasses import dataclass
from functools import lru_cache

import dns.exception
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from .answers import NAME_ESCAPES, NAME_UNSAFE


class WireError(ValueError):
    """A reply that is not a well-formed DNS response (or a query that cannot be built)."""


@dataclass(slots=True)
class Response:
    id: int
    rcode: str  # "NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", ...
    tc: bool
    ad: bool
    qname: str  # lower case, no trailing dot
    qtype: str
    records: tuple[str, ...]  # answer section: "owner. TTL CLASS TYPE rdata"


# --- constants ----------------------------------------------------------------------------------

_HEADER = struct.Struct("!HHHHHH")
_RR_HEAD = struct.Struct("!HHIH")  # type, class, ttl, rdlength (after the owner name)
_TYPE_CLASS = struct.Struct("!HH")
_U16 = struct.Struct("!H")
_SOA_INTS = struct.Struct("!IIIII")

_QR = 0x8000
_TC = 0x0200
_RD = 0x0100
_AD = 0x0020
_DO = 0x8000  # in the OPT TTL field

_IN = 1
_T_A, _T_NS, _T_CNAME, _T_SOA, _T_PTR, _T_MX, _T_TXT = 1, 2, 5, 6, 12, 15, 16
_T_AAAA, _T_OPT, _T_TLSA, _T_TSIG = 28, 41, 52, 250

#: dnspython keeps one RR only in an RRset of these types (the last one read wins).
_SINGLETONS = frozenset(int(t) for t in dns.rdatatype.RdataType if dns.rdatatype.is_singleton(t))

#: dnspython's limit on compression pointers followed for one name (dns.name).
_MAX_POINTER_HOPS = 16

#: Smallest possible RR: root owner (1 byte) + type, class, TTL, rdlength (10 bytes).
_MIN_RR = 11

# Bytes a name label can show as themselves (dns.name._escapify), and the escapes of the rest:
# answers.NAME_UNSAFE / NAME_ESCAPES, the same table answers.valid_qname reads names by.
_NAME_UNSAFE = NAME_UNSAFE  # '.' passes; see _name_text
_NAME_ESCAPES = NAME_ESCAPES

# Bytes a TXT string can show as themselves (dns.rdata._escapify): printable ASCII and space,
# except '"' and '\\'.
_TXT_UNSAFE = re.compile(rb"[^ !#-\[\]-~]")
_TXT_ESCAPES = {
    b: ("\\" + chr(b) if b in b'"\\' else f"\\{b:03d}")
    for b in range(256)
    if b in b'"\\' or not 0x20 <= b < 0x7F
}


# --- text caches (dnspython is the authority for mnemonics) ------------------------------------

_rcode_text: dict[int, str] = {}
_type_text: dict[int, str] = {}
_class_text: dict[int, str] = {}


def _rcode_name(value: int) -> str:
    text = _rcode_text.get(value)
    if text is None:
        text = _rcode_text[value] = dns.rcode.to_text(dns.rcode.Rcode.make(value))
    return text


def _type_name(value: int) -> str:
    text = _type_text.get(value)
    if text is None:
        text = _type_text[value] = dns.rdatatype.to_text(dns.rdatatype.RdataType.make(value))
    return text


def _class_name(value: int) -> str:
    text = _class_text.get(value)
    if text is None:
        text = _class_text[value] = dns.rdataclass.to_text(dns.rdataclass.RdataClass.make(value))
    return text


# --- queries ------------------------------------------------------------------------------------


def make_query(
    qid: int,
    qname: str,
    qtype: str,
    *,
    payload: int = 1232,
    dnssec_ok: bool = False,
    ad: bool = True,
) -> bytes:
    """A recursive query with EDNS0 advertising ``payload`` bytes (0: no EDNS).

    ``ad`` sets AD in the query, which asks a validating resolver to say whether the answer
    validated (RFC 6840 5.7) without the size of DO's signatures. ``dnssec_ok`` sets the DO bit,
    which lives in the OPT record, so it needs ``payload > 0``.
    """
    if not 0 <= qid <= 0xFFFF:
        raise WireError(f"query id out of range: {qid}")
    head, tail = query_frame(payload, dnssec_ok, ad)
    return qid.to_bytes(2, "big") + head + question(qname, qtype) + tail


@lru_cache(maxsize=64)
def query_frame(
    payload: int = 1232, dnssec_ok: bool = False, ad: bool = True
) -> tuple[bytes, bytes]:
    """What surrounds the question in a query of :func:`make_query`'s options: the header after
    the 2-byte ID, and the additional section (the OPT record). The same for every query of a
    scan, so the resolver builds each query as ID + head + question + tail."""
    flags = _RD | _AD if ad else _RD
    if not payload:
        if dnssec_ok:
            raise WireError("dnssec_ok needs EDNS (payload > 0)")
        return _HEADER.pack(0, flags, 1, 0, 0, 0)[2:], b""
    return _HEADER.pack(0, flags, 1, 0, 0, 1)[2:], _opt_rr(payload, dnssec_ok)


def question(qname: str, qtype: str) -> bytes:
    """Question section for ``qname``/``qtype`` (what :func:`parse_response` compares an echo with).

    Not cached: a scan asks each name once (retries are rare), so a cache only costs.
    """
    return _encode_name(qname) + _TYPE_CLASS.pack(_qtype_code(qtype), _IN)


@lru_cache(maxsize=64)
def _opt_rr(payload: int, dnssec_ok: bool) -> bytes:
    if not 0 < payload <= 0xFFFF:  # (servers read values below 512 as 512, RFC 6891)
        raise WireError(f"EDNS payload out of range: {payload}")
    return b"\x00" + _RR_HEAD.pack(_T_OPT, payload, _DO if dnssec_ok else 0, 0)


@lru_cache(maxsize=256)
def _qtype_code(qtype: str) -> int:
    try:
        return int(dns.rdatatype.from_text(qtype))
    except (dns.exception.DNSException, ValueError) as exc:
        raise WireError(f"unknown query type {qtype!r}") from exc


def _encode_name(qname: str) -> bytes:
    """Wire form of an A-label name; zone-file escapes (rare) are left to dnspython."""
    if not qname.isascii():
        raise WireError(f"non-ASCII name {qname!r} (expected A-labels)")
    if qname == ".":
        return b"\x00"
    if "\\" in qname:
        try:
            return dns.name.from_text(qname).to_wire()  # type: ignore[return-value]
        except (dns.exception.DNSException, ValueError) as exc:
            raise WireError(f"invalid name {qname!r}: {exc.__class__.__name__}") from None
    text = qname[:-1] if qname.endswith(".") else qname
    parts = []
    for label in text.encode("ascii").split(b"."):
        size = len(label)
        if not 0 < size <= 63:
            raise WireError(f"invalid name {qname!r}: label of {size} bytes")
        parts.append(_LENGTH_BYTE[size])
        parts.append(label)
    parts.append(b"\x00")
    out = b"".join(parts)
    if len(out) > 255:
        raise WireError(f"invalid name {qname!r}: {len(out)} bytes in wire form")
    return out


_LENGTH_BYTE = [bytes((n,)) for n in range(64)]


# --- responses ----------------------------------------------------------------------------------


def parse_response(
    data: bytes, question: bytes | None = None, qname: str = "", qtype: str = ""
) -> Response:
    """Read a reply; raise :class:`WireError` when it is not a usable response.

    ``question`` is the question section that was sent (of the lower-case ``qname`` and
    ``qtype``): a reply that echoes it byte for byte, as servers do, is read without decoding
    the question name again. Any other reply is read in full; either way the result is the same
    (tests compare the two on generated and mutated replies).
    """
    try:
        if question is not None:
            fast = _parse_echo(data, question, qname, qtype)
            if fast is not None:
                return fast
        return _parse(data)
    except WireError:
        raise
    except (IndexError, struct.error, ValueError, UnicodeError, RecursionError) as exc:
        # Every read is bounds-checked; these are a safety net that keeps the promise that
        # junk yields WireError and nothing else.
        raise WireError(f"malformed reply: {exc.__class__.__name__}") from None


def _parse(data: bytes) -> Response:
    if len(data) < 12:
        raise WireError("short header")
    qid, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    if not flags & _QR:
        raise WireError("not a response (QR=0)")
    if qdcount != 1:
        raise WireError(f"{qdcount} questions")
    size = len(data)
    qlabels, pos = _read_name(data, 12, size)
    if pos + 4 > size:
        raise WireError("truncated question")
    qtype, _qclass = _TYPE_CLASS.unpack_from(data, pos)
    pos += 4
    if (ancount + nscount + arcount) * _MIN_RR > size - pos:
        raise WireError(f"record counts exceed the message ({ancount}/{nscount}/{arcount})")

    qname_text = _name_text(qlabels)
    records, pos = _read_answer(data, pos, ancount, qlabels, qname_text)
    ext_rcode = _skip_to_opt(data, pos, nscount, arcount)
    # For the root, dnspython's to_text(omit_final_dot=True) gives ".".
    qname = qname_text[:-1].lower() if qlabels else "."
    return _response(qid, flags, ext_rcode, qname, _type_name(qtype), records)


def _response(
    qid: int, flags: int, ext_rcode: int, qname: str, qtype: str, records: tuple[str, ...]
) -> Response:
    # (positional arguments: cheaper than keywords, once per reply)
    rcode = _rcode_name((flags & 0xF) | ext_rcode)
    return Response(qid, rcode, bool(flags & _TC), bool(flags & _AD), qname, qtype, records)


def _parse_echo(data: bytes, question: bytes, qname: str, qtype: str) -> Response | None:
    """:func:`_parse` for a reply echoing ``question`` byte for byte; else None.

    The question name is then the one that was sent: its text is ``qname`` itself when every
    character shows as itself (no escapes in presentation form), as in almost every survey name.
    """
    end = 12 + len(question)
    if len(data) < end or data[12:end] != question:
        return None
    qid, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    if qdcount != 1 or not flags & _QR:
        return None  # (the full parse reads it, or says what is wrong)
    if (ancount + nscount + arcount) * _MIN_RR > len(data) - end:
        return None
    records: tuple[str, ...] = ()
    pos = end
    if ancount:
        if qname == "." or _NAME_UNSAFE.search(qname.encode("ascii")) is not None:
            return None
        records, pos = _read_answer(data, end, ancount, None, qname + ".")
    ext_rcode = _skip_to_opt(data, pos, nscount, arcount)
    return _response(qid, flags, ext_rcode, qname, qtype, records)


def _read_name(data: bytes, pos: int, end: int) -> tuple[list[bytes], int]:
    """Labels of the (possibly compressed) name at ``pos`` and the offset just past it.

    Applies dnspython's rules, so both accept the same names: a pointer must point before the
    start of the stretch of labels it ends (so chains are finite and cannot loop), labels read
    after a jump must not run into the stretch that jumped, at most 16 jumps, at most 255
    bytes in wire form. ``end`` bounds the first stretch (the message, or the rdata).
    """
    labels: list[bytes] = []
    seg_start = pos
    after = -1  # offset after the first pointer: where the next field starts
    hops = 0
    wire_len = 1
    while True:
        if pos >= end:
            raise WireError("name runs past its bounds")
        n = data[pos]
        if n == 0:
            pos += 1
            break
        if n < 64:
            stop = pos + 1 + n
            if stop > end:
                raise WireError("label runs past its bounds")
            labels.append(data[pos + 1 : stop])
            wire_len += n + 1
            if wire_len > 255:
                raise WireError("name longer than 255 bytes")
            pos = stop
        elif n >= 0xC0:
            if pos + 2 > end:
                raise WireError("truncated compression pointer")
            target = ((n & 0x3F) << 8) | data[pos + 1]
            if target >= seg_start:
                raise WireError("compression pointer does not point backwards")
            hops += 1
            if hops > _MAX_POINTER_HOPS:
                raise WireError("compression pointer chain too long")
            if after < 0:
                after = pos + 2
            end = seg_start
            seg_start = pos = target
        else:
            raise WireError(f"bad label type 0x{n:02x}")
    return labels, (pos if after < 0 else after)


def _skip_name(data: bytes, pos: int, end: int) -> int:
    """Offset just past the name at ``pos``, without decoding it (sections we do not read)."""
    while True:
        if pos >= end:
            raise WireError("name runs past the message")
        n = data[pos]
        if n == 0:
            return pos + 1
        if n < 64:
            pos += n + 1
        elif n >= 0xC0:
            return pos + 2
        else:
            raise WireError(f"bad label type 0x{n:02x}")


def _name_text(labels: list[bytes]) -> str:
    """Absolute presentation form with dnspython's escaping, e.g. ``Example.jp.``."""
    if not labels:
        return "."
    joined = b".".join(labels)
    # Common case: only plain characters and no dot inside a label.
    if _NAME_UNSAFE.search(joined) is None and joined.count(b".") == len(labels) - 1:
        return joined.decode("ascii") + "."
    return ".".join(label.decode("latin-1").translate(_NAME_ESCAPES) for label in labels) + "."


def _txt_text(data: bytes, pos: int, end: int) -> str:
    """TXT rdata as dnspython renders it: each string quoted, with \\\\, \\" and \\DDD escapes."""
    parts = []
    while pos < end:
        stop = pos + 1 + data[pos]
        if stop > end:
            raise WireError("TXT string runs past its rdata")
        s = data[pos + 1 : stop]
        if _TXT_UNSAFE.search(s) is None:
            parts.append('"' + s.decode("ascii") + '"')
        else:
            parts.append('"' + s.decode("latin-1").translate(_TXT_ESCAPES) + '"')
        pos = stop
    if not parts:
        raise WireError("empty TXT rdata")  # dnspython rejects it too
    return " ".join(parts)


def _rdata_name(
    data: bytes, pos: int, end: int, qlabels: list[bytes] | None, qtext: str
) -> tuple[str, int]:
    labels, pos = _read_name(data, pos, end)
    return (qtext if labels == qlabels else _name_text(labels)), pos


def _read_answer(
    data: bytes, pos: int, count: int, qlabels: list[bytes] | None, qtext: str
) -> tuple[tuple[str, ...], int]:
    """Render the answer section as dnspython's RRsets would print.

    dnspython merges RRs into RRsets by (owner, class, type, covered type) ignoring case,
    drops duplicate rdata (names compared case-insensitively), keeps only the last RR of a
    singleton type such as CNAME, gives the set the smallest TTL (TTLs above 2**31-1 read as
    0), and prints sets in order of first appearance; this does the same.

    ``qlabels`` (None: not decoded) only saves rendering names equal to the question's.
    """
    if not count:
        return (), pos
    size = len(data)
    # key -> [owner text, ttl, class, type, {dedup key: rdata text}]
    rrsets: dict[tuple[str, int, int, int], list] = {}
    for _ in range(count):
        if data[pos] == 0xC0 and pos + 1 < size and data[pos + 1] == 12:
            # The usual case, worth a shortcut: the owner is a pointer to the question name.
            # Exact: pointers in the question name can only lead into the 12-byte header (at
            # most 6 hops), so one more hop never reaches the limit.
            owner = qtext
            pos += 2
        else:
            labels, pos = _read_name(data, pos, size)
            owner = qtext if labels == qlabels else _name_text(labels)
        if pos + 10 > size:
            raise WireError("truncated RR header")
        rtype, rclass, ttl, rdlen = _RR_HEAD.unpack_from(data, pos)
        pos += 10
        end = pos + rdlen
        if end > size:
            raise WireError("rdata runs past the message")
        if rtype in (_T_OPT, _T_TSIG):
            raise WireError(f"{_type_name(rtype)} record in the answer section")
        if ttl > 0x7FFFFFFF:
            ttl = 0
        text, dkey, covers = _rdata(data, pos, end, rtype, rclass, qlabels, qtext)
        pos = end

        key = (owner.lower(), rclass, rtype, covers)
        rrset = rrsets.get(key)
        if rrset is None:
            rrsets[key] = [owner, ttl, rclass, rtype, {dkey: text}]
            continue
        if ttl < rrset[1]:
            rrset[1] = ttl
        rdatas = rrset[4]
        if rtype in _SINGLETONS:
            rdatas.clear()
        if dkey not in rdatas:
            rdatas[dkey] = text

    records: list[str] = []
    for owner, ttl, rclass, rtype, rdatas in rrsets.values():
        prefix = f"{owner} {ttl} {_class_name(rclass)} {_type_name(rtype)} "
        for text in rdatas.values():
            records.append(prefix + text)
    return tuple(records), pos


def _rdata(
    data: bytes,
    pos: int,
    end: int,
    rtype: int,
    rclass: int,
    qlabels: list[bytes] | None,
    qtext: str,
) -> tuple[str, object, int]:
    """(presentation text, key for duplicate detection, covered type) of one rdata.

    The duplicate key stands in for dnspython's rdata equality: the text itself, lower-cased
    where the type's canonical form lower-cases embedded names.
    """
    if rclass == _IN:
        if rtype == _T_TXT:
            text = _txt_text(data, pos, end)
            return text, text, 0
        if rtype == _T_A:
            if end - pos != 4:
                raise WireError("A rdata is not 4 bytes")
            text = socket.inet_ntoa(data[pos:end])
            return text, text, 0
        if rtype == _T_AAAA:
            if end - pos != 16:
                raise WireError("AAAA rdata is not 16 bytes")
            # glibc's inet_ntop follows the same RFC 5952 / BIND rules as dns.ipv6.inet_ntoa
            # (including ::a.b.c.d and ::ffff:a.b.c.d); ipaddress does not.
            text = socket.inet_ntop(socket.AF_INET6, data[pos:end])
            return text, text, 0
        if rtype in (_T_CNAME, _T_NS, _T_PTR):
            text, stop = _rdata_name(data, pos, end, qlabels, qtext)
            if stop != end:
                raise WireError("junk after the name in rdata")
            return text, text.lower(), 0
        if rtype == _T_MX:
            if end - pos < 3:
                raise WireError("short MX rdata")
            exchange, stop = _rdata_name(data, pos + 2, end, qlabels, qtext)
            if stop != end:
                raise WireError("junk after the name in MX rdata")
            text = f"{_U16.unpack_from(data, pos)[0]} {exchange}"
            return text, text.lower(), 0
        if rtype == _T_SOA:
            mname, stop = _rdata_name(data, pos, end, qlabels, qtext)
            rname, stop = _rdata_name(data, stop, end, qlabels, qtext)
            if end - stop != 20:
                raise WireError("bad SOA rdata length")
            serial, refresh, retry, expire, minimum = _SOA_INTS.unpack_from(data, stop)
            text = f"{mname} {rname} {serial} {refresh} {retry} {expire} {minimum}"
            return text, text.lower(), 0
        if rtype == _T_TLSA:
            text = _tlsa_text(data, pos, end)
            return text, text, 0
    return _fallback_rdata(data, pos, end, rtype, rclass)


def _tlsa_text(data: bytes, pos: int, end: int) -> str:
    if end - pos < 3:
        raise WireError("short TLSA rdata")
    usage, selector, mtype = data[pos], data[pos + 1], data[pos + 2]
    cert = data[pos + 3 : end]
    # A digest of the wrong length for its matching type is rendered as it is (dnspython
    # refuses it): one bad TLSA record must not make the whole reply junk; dane.parse_tlsa
    # reports it.
    hexed = cert.hex()
    if len(hexed) > 128:  # dnspython breaks hex into 128-character words
        hexed = " ".join(hexed[i : i + 128] for i in range(0, len(hexed), 128))
    return f"{usage} {selector} {mtype} {hexed}"


def _fallback_rdata(
    data: bytes, pos: int, end: int, rtype: int, rclass: int
) -> tuple[str, object, int]:
    """Any other type or class: let dnspython decode and print this one record."""
    try:
        rd = dns.rdata.from_wire(rclass, rtype, data, pos, end - pos)
        return rd.to_text(), rd.to_digestable(dns.name.root), int(rd.covers())
    except Exception as exc:  # dnspython raises a variety of types on bad rdata
        raise WireError(f"bad {_type_name(rtype)} rdata: {exc.__class__.__name__}") from None


def _skip_to_opt(data: bytes, pos: int, nscount: int, arcount: int) -> int:
    """Walk authority and additional without decoding; return the OPT's extended rcode bits.

    Applies dnspython's structural rules so a reply it would refuse is refused here too: no
    OPT or TSIG outside additional, at most one OPT and owned by the root, no TSIG (we hold no
    key).
    """
    size = len(data)
    ext_rcode = 0
    seen_opt = False
    for i in range(nscount + arcount):
        start = pos
        pos = _skip_name(data, pos, size)
        if pos + 10 > size:
            raise WireError("truncated RR header")
        rtype, _rclass, ttl, rdlen = _RR_HEAD.unpack_from(data, pos)
        pos += 10 + rdlen
        if pos > size:
            raise WireError("rdata runs past the message")
        if rtype == _T_OPT:
            if i < nscount or seen_opt or _read_name(data, start, size)[0]:
                raise WireError("misplaced or duplicate OPT record")
            seen_opt = True
            ext_rcode = (ttl >> 20) & 0xFF0
        elif rtype == _T_TSIG:
            raise WireError("TSIG-signed reply (no key configured)")
    return ext_rcode
