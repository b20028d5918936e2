"""``spf-check`` against NSD over cases in the style of the openspf RFC 7208 test suite.

A driver of our own: each case is a zone, a client address, a sender and the result the RFC
decides, asked through the CLI of a real resolver path (wire encoder, reply matching, the
AnswerSet). The suite's own zone data is not copied; the cases name the section they follow.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from mailauth_survey.cli import main
from tests.nsd import zone

ZONES = {
    "example.com": zone(
        "example.com",
        # RFC 7208 7.1: %% is "%", %_ a space, %- "%20" (the suite's macro-mania-in-domain).
        'e1a TXT "v=spf1 a:macro%%percent%_%_space%-url-space.example.com -all"',
        r"macro%percent\032\032space%20url-space A 1.2.3.4",
        # RFC 7208 7.1 macro-literal is %x21-24 / %x26-7E: a backslash is a literal octet of
        # the name (RFC 1035 5.1 writes it \\ here), never an escape of what follows.
        r'bs TXT "v=spf1 a:back\\slash.example.com -all"',
        r"back\\slash A 1.2.3.5",
        "backslash A 192.0.2.55",
        # RFC 7208 7.3/7.4: %{ir}.%{v} and %{d2}, the usual DNSBL-style layout.
        'e2 TXT "v=spf1 exists:%{ir}.%{v}._spf.%{d2} -all"',
        "4.3.2.1.in-addr._spf A 127.0.0.2",
        # RFC 7208 7.3 and RFC 1035 2.3.4: a 64-octet label after expansion is no name.
        'long TXT "v=spf1 a:%{l}.example.com ?all"',
    ),
}

LONG_LOCAL = "x" * 64


@pytest.mark.parametrize(
    ("ip", "sender", "word"),
    [
        ("1.2.3.4", "test@e1a.example.com", "pass"),  # the name holds %, spaces and %20
        ("1.2.3.5", "test@e1a.example.com", "fail"),
        ("1.2.3.5", "test@bs.example.com", "pass"),  # back\slash, not "backslash"
        ("192.0.2.55", "test@bs.example.com", "fail"),
        ("1.2.3.4", "test@e2.example.com", "pass"),
        ("1.2.3.5", "test@e2.example.com", "fail"),
        ("1.2.3.4", f"{LONG_LOCAL}@long.example.com", "permerror"),
    ],
)
def test_rfc7208_7_macro_names_hold_any_octet(nsd_factory, ip, sender, word) -> None:
    """RFC 7208 7.1/7.3: an expanded domain-spec is looked up as it is; RFC 2181 11: a label
    may hold any octet, RFC 1035 2.3.4: 1-63 octets, 255 in all."""
    server = nsd_factory(ZONES)
    res = CliRunner().invoke(main, ["spf-check", ip, sender, "--resolver", server.address])
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[0] == word, res.stdout
