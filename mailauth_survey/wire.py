"""DNS wire format: building queries and reading responses on the scanner's hot path.

The scanner needs little of a response: header flags, rcode, the question (to match the reply
to its query) and the answer section as presentation-format records. This module is the seam
between the network and the data model; it raises :class:`WireError` on anything malformed so
that junk replies are counted and retried, never stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype

#: Record types the survey asks for.
QTYPES = ("A", "AAAA", "MX", "NS", "TXT", "CNAME", "PTR", "TLSA", "SOA")


class WireError(ValueError):
    """A reply that is not a well-formed DNS response."""


@dataclass(frozen=True, slots=True)
class Response:
    id: int
    rcode: str  # "NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", ...
    tc: bool
    ad: bool
    qname: str  # lower case, no trailing dot
    qtype: str
    records: tuple[str, ...]  # answer section: "owner. TTL CLASS TYPE rdata"


def make_query(qid: int, qname: str, qtype: str, *, payload: int = 1232, dnssec_ok: bool = False) -> bytes:
    """A recursive query with EDNS0 advertising ``payload`` bytes (0: no EDNS)."""
    msg = dns.message.make_query(
        qname,
        qtype,
        use_edns=0 if payload else False,
        payload=payload or 512,
        want_dnssec=dnssec_ok,
    )
    msg.id = qid
    return msg.to_wire()


def parse_response(data: bytes) -> Response:
    """Read a reply; raise :class:`WireError` when it is not a usable response."""
    try:
        msg = dns.message.from_wire(data, ignore_trailing=True, one_rr_per_rrset=False)
    except (dns.exception.DNSException, ValueError, IndexError, UnicodeError) as exc:
        raise WireError(f"malformed reply: {exc.__class__.__name__}") from None
    if not msg.flags & dns.flags.QR:
        raise WireError("not a response (QR=0)")
    if len(msg.question) != 1:
        raise WireError(f"{len(msg.question)} questions")
    q = msg.question[0]
    records: list[str] = []
    for rrset in msg.answer:
        records.extend(rrset.to_text().split("\n"))
    return Response(
        id=msg.id,
        rcode=dns.rcode.to_text(msg.rcode()),
        tc=bool(msg.flags & dns.flags.TC),
        ad=bool(msg.flags & dns.flags.AD),
        qname=q.name.to_text(omit_final_dot=True).lower(),
        qtype=dns.rdatatype.to_text(q.rdtype),
        records=tuple(records),
    )
