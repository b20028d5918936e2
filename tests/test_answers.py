"""The stored-answer data model: TXT presentation round trips, lookups, RFC 8020 existence."""

from __future__ import annotations

import dns.message
import dns.name
import dns.rdata
from hypothesis import given, settings
from hypothesis import strategies as st

from mailauth_survey import answers
from mailauth_survey.answers import (
    Answer,
    AnswerSet,
    domain_exists,
    parse_txt_rdata,
    presentation_name,
    raw_name,
    valid_qname,
)
from mailauth_survey.wire import make_query
from tests.builders import format_txt_rdata

strings = st.lists(st.binary(max_size=255), min_size=1, max_size=6)


@given(strings)
def test_txt_presentation_round_trip(parts: list[bytes]) -> None:
    assert parse_txt_rdata(format_txt_rdata(parts)) == tuple(parts)


@given(strings)
def test_txt_parse_agrees_with_dnspython(parts: list[bytes]) -> None:
    text = dns.rdata.from_wire(
        "IN", "TXT", b"".join(bytes([len(p)]) + p for p in parts), 0, sum(len(p) + 1 for p in parts)
    ).to_text()
    assert parse_txt_rdata(text) == tuple(parts)


@given(st.text(max_size=300))
def test_txt_parse_never_raises(text: str) -> None:
    parse_txt_rdata(text)


def test_txt_strings_joined_without_separator_rfc7208_3_3() -> None:
    a = Answer("x.jp", "TXT", "NOERROR", ('x.jp. 300 IN TXT "v=spf1 " "include:a.jp" " -all"',))
    assert a.txt() == ["v=spf1 include:a.jp -all"]


def test_missing_answer_is_noted_not_invented() -> None:
    dns = AnswerSet([Answer("x.jp", "MX", "NOERROR")])
    assert dns.get("X.JP.", "mx").rcode == "NOERROR"
    assert dns.get("x.jp", "TXT").rcode == "MISSING"
    assert dns.missing == {("x.jp", "TXT")}


def test_cname_chain_final_rrset() -> None:
    a = Answer(
        "a.jp", "TXT", "NOERROR", ("a.jp. 300 IN CNAME b.example.", 'b.example. 300 IN TXT "hi"')
    )
    assert a.txt() == ["hi"] and a.cname_target() is None
    b = Answer("a.jp", "TXT", "NOERROR", ("a.jp. 300 IN CNAME b.example.",))
    assert b.cname_target() == "b.example" and b.nodata


def test_domain_exists_rfc8020_and_failures_are_unknown() -> None:
    def apex(rcode: str) -> AnswerSet:
        return AnswerSet([Answer("x.jp", t, rcode) for t in ("MX", "TXT", "NS")])

    assert domain_exists("x.jp", apex("NOERROR")) is True
    assert domain_exists("x.jp", apex("NXDOMAIN")) is False
    assert domain_exists("x.jp", apex("TIMEOUT")) is None
    assert domain_exists("x.jp", apex("SERVFAIL")) is None


def test_text_cache_keeps_ordinary_texts_only() -> None:
    # A zone controls its TXT sizes: a hostile 64 KB record must not be held by the cache.
    from mailauth_survey.answers import CACHE_MAX_CHARS, text_cache

    @text_cache
    def parse(text: str) -> list[str]:
        return text.split()

    short, long = "v=spf1 -all", "v=spf1 " + "a" * CACHE_MAX_CHARS
    assert parse(short) is parse(short)
    assert parse(long) == parse(long) and parse(long) is not parse(long)


def test_derived_values_are_computed_once_per_answer():
    """A parser's view of an answer is kept with it; an equal answer computes its own."""
    calls = []

    def make(answer: Answer) -> tuple[str, ...]:
        calls.append(answer)
        return tuple(t.upper() for t in answer.txt())

    a = Answer("x.example.jp", "TXT", "NOERROR", ('x.example.jp. 300 IN TXT "v=spf1 -all"',))
    assert a.derived("upper", make) == ("V=SPF1 -ALL",)
    assert a.derived("upper", make) == ("V=SPF1 -ALL",)
    assert len(calls) == 1
    assert a.rdata("TXT") == ['"v=spf1 -all"']  # the record types are untouched
    b = Answer("x.example.jp", "TXT", "NOERROR", ('x.example.jp. 300 IN TXT "v=spf1 -all"',))
    assert b == a and b.derived("upper", make) == ("V=SPF1 -ALL",)
    assert len(calls) == 2


def test_valid_qname_follows_rfc1035_limits() -> None:
    """RFC 1035 2.3.4: labels of 1-63 octets, names of at most 255 octets in wire form (253
    characters of text without the final dot); the survey asks A-labels only (ASCII)."""
    assert valid_qname("example.jp") and valid_qname("example.jp.")
    assert valid_qname(("a" * 63) + ".jp") and not valid_qname(("a" * 64) + ".jp")
    longest = ".".join(["a" * 63] * 3 + ["b" * 61])  # 253 characters
    assert len(longest) == 253 and valid_qname(longest)
    assert not valid_qname(longest + "b")
    assert not valid_qname("a..jp") and not valid_qname("") and not valid_qname(".")
    assert not valid_qname("日本.jp")


def test_valid_qname_any_octet_in_a_label_rfc2181_11() -> None:
    """RFC 2181 11: a label may hold any octet; RFC 1035 2.3.4 bounds labels at 63 octets and
    names at 255 in wire form. Octets outside host-name rules travel as RFC 1035 5.1 escapes
    (the form the wire parser writes replies in), counted as the one octet they stand for."""
    assert valid_qname("macro%percent\\032\\032space%20url-space.example.com")
    assert valid_qname("back\\\\slash.example.com") and valid_qname("a\\.b.example.com")
    label = "\\032" * 63  # 63 octets written in 252 characters
    assert valid_qname(f"{label}.jp") and not valid_qname(f"{label}\\032.jp")
    fits = ".".join([label] * 3 + ["\\032" * 61])  # 3 * 64 + 62 + 1 = 255 octets in wire form
    assert valid_qname(fits) and not valid_qname(fits + "x")
    # Not the form a reply is matched in: an unescaped space or special, or a bad escape.
    for name in ("a b.example.com", "a@b.example.com", 'a"b.jp', "a\\", "a\\999.jp"):
        assert not valid_qname(name), name


def test_presentation_name_and_raw_name_rfc1035_5_1() -> None:
    """RFC 1035 5.1: \\DDD for an octet, \\X for a special character; the inverse gives back
    the labels' text (RFC 7208 7.3 looks up the expanded text as label octets)."""
    raw = "macro%percent  space%20url-space.example.com"
    shown = presentation_name(raw)
    assert shown == "macro%percent\\032\\032space%20url-space.example.com"
    assert raw_name(shown) == raw and presentation_name("example.jp") == "example.jp"
    assert presentation_name('a"b;c@d\\e.jp') == 'a\\"b\\;c\\@d\\\\e.jp'
    assert raw_name(presentation_name("café.jp")) == "café.jp"  # UTF-8 octets, \\195\\169


def test_valid_qname_cache_is_bounded_and_never_changes_a_verdict(monkeypatch) -> None:
    monkeypatch.setattr(answers, "VALID_QNAMES_CACHED", 8)
    monkeypatch.setattr(answers, "_VALID_QNAMES", {})
    names = [f"n{i}.jp" for i in range(20)] + [("x" * 64) + ".jp"]
    for _ in range(2):  # second time: some from the cache, some checked again
        assert [valid_qname(n) for n in names] == [True] * 20 + [False]
        assert len(answers._VALID_QNAMES) <= 8


@settings(max_examples=300)
@given(st.lists(st.binary(min_size=1, max_size=63), min_size=1, max_size=6))
def test_every_name_dns_can_carry_is_a_valid_qname_and_encodes_back(labels) -> None:
    """RFC 2181 11 (any octet), RFC 1035 2.3.4 (63 per label, 255 in all): a name in the
    presentation form replies are rendered in is valid exactly when it fits, and the query
    encoder puts the same octets back on the wire."""
    name = dns.name.Name([*labels, b""])
    text = name.to_text(omit_final_dot=True)
    fits = len(name.to_wire()) <= 255
    assert valid_qname(text) is fits
    if fits:
        question = dns.message.from_wire(make_query(1, text, "A")).question[0]
        assert question.name == name
        if not any(b"." in label for label in labels):  # (text joins labels with dots)
            assert presentation_name(raw_name(text)) == text
