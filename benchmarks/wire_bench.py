"""Time mailauth_survey.wire.parse_response against dnspython's full parser on typical replies.

Run: .venv/bin/python benchmarks/wire_bench.py  (prints µs per response; no assertions)
"""

from __future__ import annotations

import timeit

import dns.flags
import dns.message
import dns.rcode
import dns.rrset

from mailauth_survey.wire import make_query, parse_response


def _reply(qname: str, qtype: str, answer=(), authority=(), rcode=dns.rcode.NOERROR) -> bytes:
    query = dns.message.make_query(qname, qtype, use_edns=0, payload=1232)
    msg = dns.message.make_response(query)
    msg.flags |= dns.flags.RA
    msg.set_rcode(rcode)
    msg.answer.extend(answer)
    msg.authority.extend(authority)
    return msg.to_wire()


def samples() -> dict[str, bytes]:
    txt = dns.rrset.from_text(
        "example.jp.",
        300,
        "IN",
        "TXT",
        '"v=spf1 include:_spf.example.net ip4:192.0.2.0/24 -all"',
        '"google-site-verification=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"',
        '"MS=ms12345678"',
    )
    mx = dns.rrset.from_text(
        "example.jp.", 3600, "IN", "MX", "10 mx1.example.jp.", "20 mx2.example.jp."
    )
    soa = dns.rrset.from_text(
        "jp.", 900, "IN", "SOA", "z.dns.jp. root.dns.jp. 1700000000 3600 900 1814400 900"
    )
    return {
        "TXT x3": _reply("example.jp.", "TXT", [txt]),
        "MX x2": _reply("example.jp.", "MX", [mx]),
        "NXDOMAIN+SOA": _reply("nonexistent.jp.", "A", [], [soa], dns.rcode.NXDOMAIN),
    }


def _dnspython(wire: bytes) -> None:
    msg = dns.message.from_wire(wire, ignore_trailing=True, one_rr_per_rrset=False)
    for rrset in msg.answer:
        rrset.to_text().split("\n")


def main() -> None:
    number = 20000
    print(f"{'reply':<14} {'wire.py':>10} {'dnspython':>10} {'speed-up':>9}")
    for label, wire in samples().items():
        ours = min(timeit.repeat(lambda w=wire: parse_response(w), number=number, repeat=5))
        theirs = min(timeit.repeat(lambda w=wire: _dnspython(w), number=number // 10, repeat=5))
        ours_us = ours / number * 1e6
        theirs_us = theirs / (number // 10) * 1e6
        print(f"{label:<14} {ours_us:>8.2f}µs {theirs_us:>8.2f}µs {theirs_us / ours_us:>8.1f}x")
    q = min(timeit.repeat(lambda: make_query(4242, "example.jp", "TXT"), number=number, repeat=5))
    print(f"make_query     {q / number * 1e6:>8.2f}µs (cached question)")


if __name__ == "__main__":
    main()
