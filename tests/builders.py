"""Answers written by hand for the tests: one way to write a resource record, a TXT answer, an
apex. Records are presentation-format strings, as the resolver stores them."""

from __future__ import annotations

from collections.abc import Iterable

from mailauth_survey.answers import Answer

TTL = 300


def format_txt_rdata(strings: Iterable[bytes]) -> str:
    """The presentation form of TXT character-strings (the inverse of ``parse_txt_rdata``)."""
    parts = []
    for s in strings:
        buf = []
        for b in s:
            if b == 0x22 or b == 0x5C:
                buf.append("\\" + chr(b))
            elif 0x20 <= b < 0x7F:
                buf.append(chr(b))
            else:
                buf.append(f"\\{b:03d}")
        parts.append('"' + "".join(buf) + '"')
    return " ".join(parts)


def rr(owner: str, rtype: str, rdata: str) -> str:
    """One resource record: ``owner. 300 IN TYPE rdata``."""
    return f"{owner}. {TTL} IN {rtype} {rdata}"


def txt_rr(owner: str, *strings: str) -> str:
    """One TXT record made of the character-strings ``strings`` (UTF-8)."""
    return rr(owner, "TXT", format_txt_rdata(s.encode("utf-8") for s in strings))


def txt(
    name: str, *records: str | tuple[str, ...], rcode: str = "NOERROR", ad: bool = False
) -> Answer:
    """A TXT answer of one record per argument; a tuple is one record of several strings."""
    rrs = tuple(txt_rr(name, *(rec if isinstance(rec, tuple) else (rec,))) for rec in records)
    return Answer(name, "TXT", rcode, rrs, ad)


def ans(name: str, qtype: str, *rdatas: str, rcode: str = "NOERROR", ad: bool = False) -> Answer:
    """An answer of one record per rdata."""
    return Answer(name, qtype, rcode, tuple(rr(name, qtype, r) for r in rdatas), ad)


def apex(domain: str, rcode: str = "NOERROR") -> list[Answer]:
    """The apex questions every analysis asks first (MX, TXT, NS), answered with no records."""
    return [Answer(domain, t, rcode) for t in ("MX", "TXT", "NS")]
