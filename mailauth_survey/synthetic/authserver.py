"""An embedded authoritative DNS server (UDP and TCP on loopback) for the offline demo and tests.

It answers like a real authoritative server (NSD) so that the scanner meets the same cases it
meets in the field: the closest enclosing zone answers, names outside every zone get REFUSED,
NXDOMAIN and NODATA are distinct and carry the SOA, empty non-terminals exist (RFC 8020),
CNAMEs are followed within the served zones, wildcards are synthesized (RFC 4592), delegations
give referrals, and UDP answers that do not fit the client's EDNS payload are truncated (TC).

Why not dnspython's Zone and Message on the hot path: they made a demo scan take tens of
seconds (docs/design.md). So zone files in the plain one-record-a-line form are read by a small
parser here (anything else falls back to ``dns.zone.from_text``), record data is kept as wire
bytes, and every answer is built once per question and then served from a cache with only the
ID, the RD/CD flags and the question's letter case patched in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import struct
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.ttl
import dns.zone

log = logging.getLogger(__name__)

__all__ = ["AuthServer", "ServerThread", "ZoneError", "parse_zone"]

# Record types, flags and codes used below (numbers, to keep the hot path free of enums).
A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, SPF = 1, 2, 5, 6, 12, 15, 16, 28, 99
OPT, DS, IXFR, AXFR, MAILB, MAILA, ANY = 41, 43, 251, 252, 253, 254, 255
CLASS_IN = 1
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
_QR, _AA, _TC, _RD = 0x8000, 0x0400, 0x0200, 0x0100
_CD = 0x0010
_DO = 0x8000  # in the OPT record's flags

#: Longest CNAME chain followed within the served zones (NSD and BIND stop at a similar depth).
MAX_CHAIN = 8
#: The payload size this server advertises in its own OPT record (the DNS Flag Day 2020 value).
OUR_PAYLOAD = 1232
#: Questions whose built answers are kept; the cache is dropped whole when it grows past this.
CACHE_LIMIT = 200_000
#: A TCP connection with no complete query for this long is closed.
TCP_IDLE_SECONDS = 10.0

ROOT = b"\x00"


class ZoneError(ValueError):
    """A zone file that cannot be served; the message names the zone and the problem."""


# ---------------------------------------------------------------------------------------------
# Names as wire bytes. Keys are lower-case wire names: canonical, hashable, and the parent of a
# name is a slice.


def _parent(name: bytes) -> bytes:
    return name[name[0] + 1 :]


def _is_subdomain(name: bytes, origin: bytes) -> bool:
    """True when ``name`` is ``origin`` or below it (both lower-case wire names)."""
    if not name.endswith(origin):
        return False
    # The match must fall on a label boundary: walk the labels of name.
    cut = len(name) - len(origin)
    pos = 0
    while pos < cut:
        pos += name[pos] + 1
    return pos == cut


@lru_cache(maxsize=65536)
def _text_to_wire(token: str, origin: bytes) -> bytes:
    """A zone-file name (relative to ``origin`` unless it ends with a dot) as wire bytes."""
    if token == "@":
        return origin
    if token == ".":
        return ROOT
    absolute = token.endswith(".")
    body = token[:-1] if absolute else token
    out = bytearray()
    try:
        for label in body.split("."):
            raw = label.encode("ascii")
            if not 0 < len(raw) < 64:
                raise ZoneError(f"bad label in name {token!r}")
            out.append(len(raw))
            out += raw
    except UnicodeEncodeError:
        # Unicode names: let dnspython apply IDNA as it does everywhere else.
        base = dns.name.root if absolute else dns.name.from_wire(origin, 0)[0]
        return dns.name.from_text(token, base).to_wire()
    out += ROOT if absolute else origin
    if len(out) > 255:
        raise ZoneError(f"name too long: {token!r}")
    return bytes(out)


def wire_to_text(name: bytes) -> str:
    """Presentation form of a wire name (for messages and tests)."""
    return dns.name.from_wire(name, 0)[0].to_text()


# ---------------------------------------------------------------------------------------------
# Zone data


@dataclass(slots=True)
class RRset:
    """One RRset: owner (lower-case wire), type, TTL, rdata in uncompressed wire form."""

    owner: bytes
    rdtype: int
    ttl: int
    rdatas: list[bytes] = field(default_factory=list)
    targets: list[bytes] = field(default_factory=list)  # CNAME/NS/MX targets, lower-case wire

    def with_owner(self, owner: bytes) -> RRset:
        return RRset(owner, self.rdtype, self.ttl, self.rdatas, self.targets)


@dataclass(slots=True)
class Zone:
    """A loaded zone: nodes by owner, the names that exist (with empty non-terminals), cuts."""

    origin: bytes
    nodes: dict[bytes, dict[int, RRset]]
    existing: set[bytes]
    cuts: set[bytes]  # owners of NS RRsets below the apex (delegation points)
    soa: RRset
    negative_soa: RRset  # the SOA with TTL min(TTL, MINIMUM) for negative answers (RFC 2308)

    @property
    def name(self) -> str:
        return wire_to_text(self.origin)


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|;.*|[()]|[^\s";()]+')
_SPECIAL = frozenset('";()\\')
_DIRECT_TYPES = frozenset({A, AAAA, NS, CNAME, PTR, MX, TXT, SPF, SOA})
_OTHER_CLASSES = frozenset({"CH", "CHAOS", "HS", "HESIOD", "CS", "NONE", "ANY"})


class _NotSimple(Exception):
    """The zone text uses syntax the fast reader leaves to dnspython."""


@lru_cache(maxsize=512)
def _rdtype(word: str) -> int:
    return int(dns.rdatatype.from_text(word))


def _ttl(word: str) -> int:
    return int(word) if word.isdigit() else dns.ttl.from_text(word)


def _unescape(text: str) -> bytes:
    """The bytes of a quoted zone-file string (``\\X`` and ``\\DDD`` escapes)."""
    raw = text.encode("utf-8")
    if b"\\" not in raw:
        return raw
    out = bytearray()
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == 0x5C and i + 1 < len(raw):
            digits = raw[i + 1 : i + 4]
            if len(digits) == 3 and digits.isdigit():
                value = int(digits)
                if value > 255:
                    raise ZoneError(f"bad escape \\{digits.decode()}")
                out.append(value)
                i += 4
            else:
                out.append(raw[i + 1])
                i += 2
        else:
            out.append(c)
            i += 1
    return bytes(out)


def _tokens(line: str) -> list[str]:
    """The tokens of one line, comments dropped; quoted strings keep their quotes."""
    if _SPECIAL.isdisjoint(line):
        return line.split()
    bare = line.replace("\\\\", "").replace('\\"', "")
    if bare.count('"') % 2:
        raise _NotSimple("unbalanced quotes")
    tokens = []
    for tok in _TOKEN.findall(line):
        first = tok[0]
        if first == ";":
            break
        if first in "()":
            raise _NotSimple("parentheses")
        if first != '"' and "\\" in tok:
            raise _NotSimple("escape outside quotes")
        tokens.append(tok)
    return tokens


def _rdata_wire(rdtype: int, tokens: list[str], origin: bytes) -> tuple[bytes, bytes | None]:
    """Uncompressed rdata bytes and, for CNAME/NS/MX, the target name (lower case)."""
    if rdtype == A:
        return socket.inet_pton(socket.AF_INET, tokens[0]), None
    if rdtype == AAAA:
        return socket.inet_pton(socket.AF_INET6, tokens[0]), None
    if rdtype in (NS, CNAME, PTR):
        if len(tokens) != 1:
            raise ZoneError(f"expected one name, got {' '.join(tokens)!r}")
        target = _text_to_wire(tokens[0], origin)
        return target, target.lower()
    if rdtype == MX:
        if len(tokens) != 2:
            raise ZoneError(f"bad MX {' '.join(tokens)!r}")
        pref = int(tokens[0])
        if not 0 <= pref <= 0xFFFF:
            raise ZoneError(f"bad MX preference {pref}")
        target = _text_to_wire(tokens[1], origin)
        return struct.pack("!H", pref) + target, target.lower()
    if rdtype in (TXT, SPF):
        if not tokens:
            raise ZoneError("TXT record without strings")
        out = bytearray()
        for tok in tokens:
            chunk = _unescape(tok[1:-1]) if tok[0] == '"' else tok.encode("utf-8")
            if len(chunk) > 255:
                raise ZoneError("TXT string longer than 255 bytes")
            out.append(len(chunk))
            out += chunk
        return bytes(out), None
    if rdtype == SOA:
        if len(tokens) != 7:
            raise ZoneError(f"bad SOA {' '.join(tokens)!r}")
        mname = _text_to_wire(tokens[0], origin)
        rname = _text_to_wire(tokens[1], origin)
        serial = int(tokens[2])
        times = [_ttl(t) for t in tokens[3:7]]
        return mname + rname + struct.pack("!IIIII", serial, *times), None
    raise AssertionError(rdtype)


Record = tuple[bytes, int, int, bytes, "bytes | None"]


def _read_simple(text: str, origin: bytes) -> list[Record]:
    """Records of a zone file in the plain one-record-a-line form: (owner, type, ttl, rdata, target).

    Raises :class:`_NotSimple` for parentheses, ``$INCLUDE``/``$GENERATE``, classes other than
    IN, escapes outside quoted strings, or a record without a known TTL.
    """
    records: list[Record] = []
    default_ttl: int | None = None
    owner: bytes | None = None
    for line in text.splitlines():
        tokens = _tokens(line)
        if not tokens:
            continue
        first = tokens[0]
        inherit = line[0].isspace()
        if not inherit and first[0] == "$":
            directive = first.upper()
            if directive == "$ORIGIN" and len(tokens) == 2:
                origin = _text_to_wire(tokens[1], origin)
            elif directive == "$TTL" and len(tokens) == 2:
                default_ttl = _ttl(tokens[1])
            else:
                raise _NotSimple(directive)
            continue
        i = 0
        if not inherit:
            owner = _text_to_wire(first, origin)
            i = 1
        if owner is None:
            raise ZoneError("record without an owner")
        ttl = default_ttl
        rdtype: int | None = None
        while i < len(tokens) and rdtype is None:
            word = tokens[i]
            upper = word.upper()
            if word[0].isdigit():
                ttl = _ttl(word)
            elif upper == "IN":
                pass
            elif upper in _OTHER_CLASSES or upper.startswith("CLASS"):
                raise _NotSimple("class")
            elif word[0] == '"':
                raise ZoneError(f"unexpected string in {line!r}")
            else:
                rdtype = _rdtype(word)
            i += 1
        if rdtype is None:
            raise ZoneError(f"no record type in {line!r}")
        if ttl is None:
            raise _NotSimple("no TTL")
        if rdtype in _DIRECT_TYPES:
            rdata, target = _rdata_wire(rdtype, tokens[i:], origin)
        else:
            rd = dns.rdata.from_text(
                dns.rdataclass.IN,
                rdtype,
                " ".join(tokens[i:]),
                origin=dns.name.from_wire(origin, 0)[0],
                relativize=False,
            )
            rdata, target = rd.to_wire(), None
        records.append((owner, rdtype, ttl, rdata, target))
    return records


def _read_with_dnspython(text: str, origin: str) -> list[Record]:
    zone = dns.zone.from_text(text, origin, relativize=False, check_origin=False)
    records = []
    for name, ttl, rd in zone.iterate_rdatas():
        target = None
        if rd.rdtype in (CNAME, NS, PTR):
            target = rd.target.to_wire().lower()
        elif rd.rdtype == MX:
            target = rd.exchange.to_wire().lower()
        records.append((name.to_wire(), int(rd.rdtype), ttl, rd.to_wire(), target))
    return records


def parse_zone(text: str, origin: str) -> Zone:
    """Load one zone from zone-file text; raise :class:`ZoneError` when it cannot be served."""
    origin_text = origin if origin.endswith(".") else origin + "."
    try:
        origin_wire = _text_to_wire(origin_text, ROOT).lower()
    except (ZoneError, ValueError) as exc:
        raise ZoneError(f"{origin}: bad origin ({exc})") from None
    try:
        try:
            records = _read_simple(text, origin_wire)
        except _NotSimple:
            records = _read_with_dnspython(text, origin_text)
    except ZoneError as exc:
        raise ZoneError(f"{origin}: {exc}") from None
    except Exception as exc:  # dnspython's and the socket module's parse errors alike
        raise ZoneError(f"{origin}: {exc.__class__.__name__}: {exc}") from None

    nodes: dict[bytes, dict[int, RRset]] = {}
    for owner, rdtype, ttl, rdata, target in records:
        key = owner.lower()
        if not _is_subdomain(key, origin_wire):
            raise ZoneError(f"{origin}: {wire_to_text(owner)} is outside the zone")
        node = nodes.setdefault(key, {})
        rrset = node.get(rdtype)
        if rrset is None:
            rrset = node[rdtype] = RRset(key, rdtype, ttl)
        if rdata in rrset.rdatas:
            continue
        rrset.ttl = min(rrset.ttl, ttl)
        rrset.rdatas.append(rdata)
        if target is not None:
            rrset.targets.append(target)
    for key, node in nodes.items():
        if CNAME in node and (len(node) > 1 or len(node[CNAME].rdatas) > 1):
            raise ZoneError(f"{origin}: CNAME and other data at {wire_to_text(key)}")
    soa = nodes.get(origin_wire, {}).get(SOA)
    if soa is None or len(soa.rdatas) != 1:
        raise ZoneError(f"{origin}: exactly one SOA record at the apex is required")
    minimum = struct.unpack("!I", soa.rdatas[0][-4:])[0]
    negative = RRset(origin_wire, SOA, min(soa.ttl, minimum), soa.rdatas)

    existing: set[bytes] = set()
    for key in nodes:
        name = key
        while name not in existing:
            existing.add(name)
            if name == origin_wire:
                break
            name = _parent(name)
    cuts = {key for key, node in nodes.items() if NS in node and key != origin_wire}
    return Zone(origin_wire, nodes, existing, cuts, soa, negative)


# ---------------------------------------------------------------------------------------------
# Answers


@dataclass(slots=True)
class Answer:
    """What the server answers to one question, before it is put on the wire."""

    rcode: int
    aa: bool
    answer: list[RRset] = field(default_factory=list)
    authority: list[RRset] = field(default_factory=list)
    additional: list[RRset] = field(default_factory=list)


class _Lookup:
    """RFC 1034 4.3.2 over several zones, with RFC 4592 wildcards and RFC 8020 empty non-terminals."""

    def __init__(self) -> None:
        self.zones: dict[bytes, Zone] = {}

    def find_zone(self, name: bytes) -> Zone | None:
        while True:
            zone = self.zones.get(name)
            if zone is not None:
                return zone
            if name == ROOT:
                return None
            name = _parent(name)

    def answer(self, qname: bytes, qtype: int) -> Answer:
        zone = self.find_zone(qname)
        if zone is None:
            return Answer(REFUSED, False)
        if qtype == DS and qname == zone.origin and qname != ROOT:
            # DS lives on the parent side of a cut: answer it from the parent zone if served.
            parent = self.find_zone(_parent(qname))
            if parent is not None:
                zone = parent
        result = Answer(NOERROR, True)
        seen = {qname}
        name = qname
        for _hop in range(MAX_CHAIN + 1):
            cut = self._cut(zone, name, qtype)
            if cut is not None:
                if result.answer:  # a CNAME led into a delegation: the resolver goes on from here
                    return result
                return self._referral(zone, cut)
            node = zone.nodes.get(name)
            owner = name
            if node is None and name not in zone.existing:
                wildcard = self._wildcard(zone, name)
                if wildcard is None:
                    result.rcode = NXDOMAIN
                    result.authority.append(zone.negative_soa)
                    return result
                node = wildcard
            if node is None:  # an empty non-terminal
                result.authority.append(zone.negative_soa)
                return result
            if qtype == ANY:
                result.answer.extend(rr.with_owner(owner) for rr in node.values())
                return result
            rrset = node.get(qtype)
            if rrset is not None:
                result.answer.append(rrset.with_owner(owner))
                return result
            cname = node.get(CNAME)
            if cname is None:
                result.authority.append(zone.negative_soa)
                return result
            result.answer.append(cname.with_owner(owner))
            name = cname.targets[0]
            if name in seen:
                return result  # a loop: stop with what we have
            seen.add(name)
            next_zone = self.find_zone(name)
            if next_zone is None:
                return result  # the chain leaves the served space
            zone = next_zone
        return result  # chain too long

    @staticmethod
    def _cut(zone: Zone, name: bytes, qtype: int) -> bytes | None:
        """The topmost delegation point between the apex (excluded) and ``name``, if any."""
        if not zone.cuts:
            return None
        found = None
        node = name
        while node != zone.origin:
            if node in zone.cuts and not (node == name and qtype == DS):
                found = node
            node = _parent(node)
        return found

    @staticmethod
    def _referral(zone: Zone, cut: bytes) -> Answer:
        ns = zone.nodes[cut][NS]
        glue = []
        for target in ns.targets:
            if _is_subdomain(target, zone.origin) and target in zone.nodes:
                for rdtype in (A, AAAA):
                    rr = zone.nodes[target].get(rdtype)
                    if rr is not None:
                        glue.append(rr)
        return Answer(NOERROR, False, [], [ns], glue)

    @staticmethod
    def _wildcard(zone: Zone, name: bytes) -> dict[int, RRset] | None:
        """The node of the source of synthesis for ``name`` (RFC 4592 3.3.1), if there is one."""
        encloser = _parent(name)
        while encloser not in zone.existing:
            encloser = _parent(encloser)
        return zone.nodes.get(b"\x01*" + encloser)


# ---------------------------------------------------------------------------------------------
# Wire format


class _Writer:
    """Builds a response; owner names are compressed, rdata is copied as stored."""

    def __init__(self, question_name: bytes) -> None:
        self.buf = bytearray(12)
        self.offsets: dict[bytes, int] = {}
        self._name(question_name)

    def _name(self, name: bytes) -> None:
        pos = 0
        while name[pos:] != ROOT:
            suffix = name[pos:]
            at = self.offsets.get(suffix)
            if at is not None:
                self.buf += name[:pos] + struct.pack("!H", 0xC000 | at)
                return
            if len(self.buf) < 0x3FFF:
                self.offsets[suffix] = len(self.buf) + pos
            pos += name[pos] + 1
        self.buf += name

    def question(self, qtype: int, qclass: int) -> None:
        """Type and class after the question name that ``__init__`` wrote."""
        self.buf += struct.pack("!HH", qtype, qclass)

    def rrsets(self, rrsets: Iterable[RRset]) -> int:
        count = 0
        for rr in rrsets:
            for rdata in rr.rdatas:
                self._name(rr.owner)
                self.buf += struct.pack("!HHIH", rr.rdtype, CLASS_IN, rr.ttl, len(rdata))
                self.buf += rdata
                count += 1
        return count


def _opt_record(do_bit: bool, ext_rcode: int = 0) -> bytes:
    return ROOT + struct.pack("!HHBBHH", OPT, OUR_PAYLOAD, ext_rcode, 0, _DO if do_bit else 0, 0)


def _build(
    qname: bytes, qtype: int, qclass: int, ans: Answer, edns: int | None, *, additional: bool
) -> bytes:
    """The response with ID 0 and without RD/CD; ``edns`` is None or the OPT flags to echo."""
    w = _Writer(qname)
    w.question(qtype, qclass)
    an = w.rrsets(ans.answer)
    ns = w.rrsets(ans.authority)
    ar = w.rrsets(ans.additional) if additional else 0
    if edns is not None:
        w.buf += _opt_record(bool(edns & _DO))
        ar += 1
    flags = _QR | (_AA if ans.aa else 0) | ans.rcode
    w.buf[0:12] = struct.pack("!HHHHHH", 0, flags, 1, an, ns, ar)
    return bytes(w.buf)


@dataclass(slots=True)
class _Built:
    full: bytes
    lean: bytes  # without the additional section (it may be dropped without TC, RFC 2181 9)


@dataclass(slots=True)
class _Query:
    qid: int
    flags: int
    qname_raw: bytes  # as sent (letter case kept, for 0x20 resolvers)
    qtype: int
    qclass: int
    edns_flags: int | None  # None: no OPT
    payload: int
    edns_version: int


class _FormErr(Exception):
    pass


def _skip_name(data: bytes, pos: int) -> int:
    """Offset after a (possibly compressed) name starting at ``pos``."""
    while True:
        if pos >= len(data):
            raise _FormErr
        length = data[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            return pos + 2
        if length & 0xC0:
            raise _FormErr
        pos += length + 1


def _parse_query(data: bytes) -> _Query:
    qid, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", data)
    if qd != 1 or an or ns:
        raise _FormErr
    pos = 12
    while True:
        if pos >= len(data):
            raise _FormErr
        length = data[pos]
        if length == 0:
            pos += 1
            break
        if length > 63:
            raise _FormErr  # no compression in a question that nothing precedes
        pos += length + 1
    if pos - 12 > 255 or pos + 4 > len(data):
        raise _FormErr
    qname_raw = data[12:pos]
    qtype, qclass = struct.unpack_from("!HH", data, pos)
    pos += 4
    edns_flags = None
    payload = 512
    version = 0
    for _ in range(ar):
        start = pos
        pos = _skip_name(data, pos)
        if pos + 10 > len(data):
            raise _FormErr
        rtype, rclass, ttl, rdlen = struct.unpack_from("!HHIH", data, pos)
        pos += 10 + rdlen
        if pos > len(data):
            raise _FormErr
        if rtype == OPT:
            if edns_flags is not None or data[start] != 0:
                raise _FormErr  # two OPT records, or an OPT owner other than the root
            payload = max(512, rclass)
            version = (ttl >> 16) & 0xFF
            edns_flags = ttl & 0xFFFF
    if pos != len(data):
        raise _FormErr
    return _Query(qid, flags, qname_raw, qtype, qclass, edns_flags, payload, version)


def _header_only(qid: int, flags: int, rcode: int) -> bytes:
    opcode_rd = flags & (0x7800 | _RD)
    return struct.pack("!HHHHHH", qid, _QR | opcode_rd | rcode, 0, 0, 0, 0)


def _with_question(q: _Query, rcode: int, *, ext_rcode: int = 0) -> bytes:
    """An answer-less response echoing the question (REFUSED for odd classes, BADVERS, ...)."""
    ar = 1 if q.edns_flags is not None else 0
    head = struct.pack(
        "!HHHHHH", q.qid, _QR | (q.flags & (0x7800 | _RD | _CD)) | rcode, 1, 0, 0, ar
    )
    body = q.qname_raw + struct.pack("!HH", q.qtype, q.qclass)
    if ar:
        body += _opt_record(bool(q.edns_flags and q.edns_flags & _DO), ext_rcode)
    return head + body


class Responder:
    """Zones plus the answer cache: bytes in, bytes out, no I/O (the servers wrap it)."""

    def __init__(self, max_udp_size: int = OUR_PAYLOAD) -> None:
        self._lookup = _Lookup()
        self._cache: dict[tuple[bytes, int, int, int | None], _Built] = {}
        self.max_udp_size = max_udp_size

    # -- zones --------------------------------------------------------------------------
    def add_zone(self, text: str, origin: str) -> Zone:
        zone = parse_zone(text, origin)
        if zone.origin in self._lookup.zones:
            raise ZoneError(f"{origin}: zone loaded twice")
        self._lookup.zones[zone.origin] = zone
        self._cache.clear()
        return zone

    @property
    def zones(self) -> Mapping[bytes, Zone]:
        return self._lookup.zones

    def answer(self, qname: str, qtype: str | int) -> Answer:
        """The answer to a question (names in text form), for tests and debugging."""
        wire = dns.name.from_text(qname).to_wire().lower()
        rdtype = qtype if isinstance(qtype, int) else int(dns.rdatatype.from_text(qtype))
        return self._lookup.answer(wire, rdtype)

    # -- queries --------------------------------------------------------------------------
    def respond(self, data: bytes, *, udp: bool) -> bytes | None:
        """The response to one query message, or None when the message deserves no answer."""
        if len(data) < 12 or data[2] & 0x80:  # too short for a header, or a response
            return None
        flags = struct.unpack_from("!H", data, 2)[0]
        qid = struct.unpack_from("!H", data)[0]
        if (flags >> 11) & 0xF != 0:
            return _header_only(qid, flags, NOTIMP)
        try:
            q = _parse_query(data)
        except (_FormErr, struct.error):
            return _header_only(qid, flags, FORMERR)
        if q.edns_version != 0:
            return _with_question(q, NOERROR, ext_rcode=1)  # BADVERS = 16 (RFC 6891 6.1.3)
        if q.qtype in (OPT, 0):
            return _with_question(q, FORMERR)
        if q.qtype in (MAILA, MAILB):
            return _with_question(q, NOTIMP)
        if q.qclass != CLASS_IN or q.qtype in (AXFR, IXFR):
            return _with_question(q, REFUSED)
        return self._from_cache(q, udp)

    def _from_cache(self, q: _Query, udp: bool) -> bytes:
        qname = q.qname_raw.lower()
        edns = None if q.edns_flags is None else q.edns_flags & _DO
        key = (qname, q.qtype, q.qclass, edns)
        built = self._cache.get(key)
        if built is None:
            ans = self._lookup.answer(qname, q.qtype)
            full = _build(qname, q.qtype, q.qclass, ans, edns, additional=True)
            lean = (
                _build(qname, q.qtype, q.qclass, ans, edns, additional=False)
                if ans.additional
                else full
            )
            built = _Built(full, lean)
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = built
        limit = 65535
        if udp:
            limit = min(q.payload, self.max_udp_size) if q.edns_flags is not None else 512
        wire = built.full
        if len(wire) > limit:
            wire = built.lean
            if len(wire) > limit:
                return self._truncated(q, wire)
        out = bytearray(wire)
        out[0:2] = struct.pack("!H", q.qid)
        out[2] |= (q.flags >> 8) & 0x01  # RD copied
        out[3] |= q.flags & _CD
        out[12 : 12 + len(q.qname_raw)] = q.qname_raw
        return bytes(out)

    @staticmethod
    def _truncated(q: _Query, wire: bytes) -> bytes:
        """TC set, question (and OPT) only: the client retries over TCP."""
        flags = struct.unpack_from("!H", wire, 2)[0] | _TC | (q.flags & (_RD | _CD))
        ar = 0 if q.edns_flags is None else 1
        head = struct.pack("!HHHHHH", q.qid, flags, 1, 0, 0, ar)
        body = q.qname_raw + struct.pack("!HH", q.qtype, q.qclass)
        if ar:
            body += _opt_record(bool(q.edns_flags and q.edns_flags & _DO))
        return head + body


# ---------------------------------------------------------------------------------------------
# Servers


class _UDP(asyncio.DatagramProtocol):
    def __init__(self, responder: Responder) -> None:
        self.responder = responder
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            reply = self.responder.respond(data, udp=True)
        except Exception:  # never let one packet take the server down
            log.exception("query from %s failed", addr)
            return
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:  # ICMP errors and the like
        log.debug("UDP error: %s", exc)


class _TCP(asyncio.Protocol):
    """RFC 7766 framing: a 2-byte length before each message, many queries a connection."""

    def __init__(self, server: AuthServer) -> None:
        self.server = server
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server._connections.add(self)
        self._arm()

    def _arm(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        loop = asyncio.get_running_loop()
        self.idle = loop.call_later(TCP_IDLE_SECONDS, self.close)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._arm()
        while len(self.buf) >= 2:
            length = (self.buf[0] << 8) | self.buf[1]
            if len(self.buf) < 2 + length:
                return
            message = bytes(self.buf[2 : 2 + length])
            del self.buf[: 2 + length]
            try:
                reply = self.server.responder.respond(message, udp=False)
            except Exception:
                log.exception("TCP query failed")
                reply = None
            if reply is None:
                self.close()
                return
            assert self.transport is not None
            self.transport.write(struct.pack("!H", len(reply)) + reply)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.idle is not None:
            self.idle.cancel()
        self.server._connections.discard(self)


def _grow_buffers(sock: socket.socket | None) -> None:
    """Ask for large socket buffers: a scanner with hundreds of queries in flight overflows the
    default UDP receive buffer, and a dropped query costs the client a whole timeout."""
    if sock is None:
        return
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, option, 1 << 22)  # the kernel caps it


class AuthServer:
    """Authoritative server for the given zones on ``host``, UDP and TCP on one port.

    ``zones`` maps each zone's origin (with or without the trailing dot) to its zone-file text.
    With ``port=0`` a free port is chosen; after :meth:`start` it is in :attr:`port`. A UDP
    answer must fit the client's EDNS payload (512 without EDNS) and, like NSD's default, at
    most ``max_udp_size`` bytes; a larger one goes out truncated (TC) for the client to retry
    over TCP.
    """

    def __init__(
        self,
        zones: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_udp_size: int = OUR_PAYLOAD,
    ) -> None:
        self.host = host
        self.port = port
        self.responder = Responder(max_udp_size)
        for origin, text in (zones or {}).items():
            self.responder.add_zone(text, origin)
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.AbstractServer | None = None
        self._connections: set[_TCP] = set()

    def add_zone(self, text: str, origin: str) -> None:
        self.responder.add_zone(text, origin)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        """Bind UDP, then TCP on the same port number (another free port if TCP's is taken)."""
        loop = asyncio.get_running_loop()
        last_error: OSError | None = None
        for _attempt in range(20):
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _UDP(self.responder), local_addr=(self.host, self.port)
            )
            _grow_buffers(udp.get_extra_info("socket"))
            port = udp.get_extra_info("sockname")[1]
            try:
                tcp = await loop.create_server(
                    lambda: _TCP(self), self.host, port, reuse_address=True
                )
            except OSError as exc:
                udp.close()
                last_error = exc
                if self.port:
                    raise
                continue
            self._udp, self._tcp, self.port = udp, tcp, port
            return
        raise OSError(f"no free port for UDP and TCP on {self.host}: {last_error}")

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            for conn in list(self._connections):
                conn.close()
            await self._tcp.wait_closed()
            self._tcp = None

    async def __aenter__(self) -> AuthServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class ServerThread:
    """An :class:`AuthServer` on its own event loop in a background thread (for the CLI).

    ``start()`` returns once the server listens (or raises what stopped it); ``stop()`` closes
    it and joins the thread. Also a context manager.
    """

    def __init__(self, zones: Mapping[str, str], host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = AuthServer(zones, host, port)  # zones load here, errors raise here
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def address(self) -> str:
        return self.server.address

    def start(self, timeout: float = 30.0) -> ServerThread:
        self._thread = threading.Thread(target=self._run, name="authserver", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the DNS server did not start")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start() or logged
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        await self.server.start()
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            await self.server.stop()

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
