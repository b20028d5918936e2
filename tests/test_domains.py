"""Domain lists: formats, normalization, bad lines, categories (SPEC.md 'Domain list input')."""

from __future__ import annotations

import idna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailauth_survey.domains import (
    BadName,
    category,
    normalize,
    psl,
    read_list,
    registrable_domain,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("example.co.jp", "co"),
        ("example.or.jp", "or"),
        ("example.ne.jp", "ne"),
        ("example.ac.jp", "ac"),
        ("example.ad.jp", "ad"),
        ("example.ed.jp", "ed"),
        ("example.go.jp", "go"),
        ("example.gr.jp", "gr"),
        ("city.example.lg.jp", "lg"),
        ("example.jp", "general"),
        ("www.example.jp", "general"),
        ("example.tokyo.jp", "prefecture"),
        ("example.xn--1lqs71d.jp", "prefecture"),  # 東京.jp
        ("example.shinjuku.tokyo.jp", "geographic"),
        ("city.kawasaki.jp", "geographic"),  # designated city, PSL exception
        ("example.com", "other"),
        ("example.co.uk", "other"),
    ],
)
def test_category_from_public_suffix(name: str, expected: str) -> None:
    assert category(name) == expected


def test_normalize_idn_to_alabel_keeps_ulabel() -> None:
    d = normalize("  日本語.JP. ")
    assert d.domain == "xn--wgv71a119e.jp"
    assert d.unicode == "日本語.jp"
    assert d.category == "general"


def test_normalize_uts46_maps_fullwidth_and_case() -> None:
    # UTS 46 mapping: full-width letters and upper case fold to the same A-label.
    assert normalize("ＥＸＡＭＰＬＥ.co.jp").domain == "example.co.jp"


@pytest.mark.parametrize(
    "raw", ["", "bad name.jp", "jp", "a..b.jp", "-x-.jp", "x" * 64 + ".jp", "exa_mple.jp"]
)
def test_normalize_rejects_bad_names(raw: str) -> None:
    with pytest.raises(BadName):
        normalize(raw)


def _by_idna(raw: str) -> str | None:
    """What idna itself makes of a name (None: a bad name): the fast path must agree."""
    raw = raw.rstrip(".")  # (normalize drops the root's dot first)
    if not raw:
        return None
    try:
        alabel = idna.encode(raw, uts46=True, transitional=False).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError):
        return None
    return alabel if "." in alabel and len(alabel) <= 253 else None


@settings(max_examples=400)
@given(
    st.lists(
        st.one_of(
            st.text("abcXYZ019-_", min_size=0, max_size=8),
            st.sampled_from(["xn--wgv71a119e", "xn--abc", "ab--cd", "a--b", "-a", "a-", "x" * 64]),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_normalize_plain_ascii_names_as_idna_does(labels: list[str]) -> None:
    # The letter-digit-hyphen fast path skips idna; its verdict and A-label must be idna's
    # (RFC 5891 4.2.3.1 hyphen rules, UTS 46 case folding, 63-byte labels).
    raw = ".".join(labels)
    try:
        got: str | None = normalize(raw).domain
    except BadName:
        got = None
    assert got == _by_idna(raw)


def _read(tmp_path, text: str):
    path = tmp_path / "list.txt"
    path.write_text(text, encoding="utf-8")
    errors: list[str] = []
    names = [(n, d.domain) for n, d in read_list(path, errors.append)]
    return names, errors, path


def test_plain_list_comments_blank_lines_and_bad_lines_named(tmp_path) -> None:
    names, errors, path = _read(tmp_path, "# header\n\nExample.CO.JP.\nbad name\nfoo.jp # note\n")
    assert names == [(3, "example.co.jp"), (5, "foo.jp")]
    assert len(errors) == 1 and errors[0].startswith(f"{path}:4:")


def test_csv_with_domain_column(tmp_path) -> None:
    names, errors, _ = _read(tmp_path, "rank,domain,note\n1,a.jp,x\n2,,y\n3,b.co.jp,z\n")
    assert [d for _, d in names] == ["a.jp", "b.co.jp"]
    assert len(errors) == 1 and ":3:" in errors[0]


def test_csv_whose_header_is_the_domain_column_alone(tmp_path) -> None:
    """SPEC.md: a CSV whose header has a `domain` column; one column is still a CSV header, not
    a bad line named "domain"."""
    names, errors, _ = _read(tmp_path, "# export\nDomain\na.jp\nb.co.jp\n")
    assert [d for _, d in names] == ["a.jp", "b.co.jp"]
    assert errors == []


def test_rank_domain_tranco_style(tmp_path) -> None:
    names, errors, _ = _read(tmp_path, "1,a.jp\n2,b.jp\nthree,c.jp\n")
    assert [d for _, d in names] == ["a.jp", "b.jp"]
    assert len(errors) == 1 and ":3:" in errors[0]


def test_bom_and_non_utf8_bytes_do_not_stop_the_read(tmp_path) -> None:
    path = tmp_path / "list.txt"
    path.write_bytes(b"\xef\xbb\xbfa.jp\n\xff\xfe.jp\nb.jp\n")
    errors: list[str] = []
    assert [d.domain for _, d in read_list(path, errors.append)] == ["a.jp", "b.jp"]
    assert len(errors) == 1 and ":2:" in errors[0]


# Suffixes with the PSL's special rules: wildcards (*.kawasaki.jp, *.ck), exceptions
# (!city.kawasaki.jp), deep entries (city.kobe.jp), and names outside the list.
_PSL_TAILS = [
    "jp", "co.jp", "tokyo.jp", "kawasaki.jp", "city.kawasaki.jp", "kobe.jp", "city.kobe.jp",
    "ck", "www.ck", "example", "xn--4gq48lf9j.jp", "lg.jp", "pref.kyoto.lg.jp", "",
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "mail", "city", "www", "x-1", "Kawasaki", "co"]), max_size=4),
    st.sampled_from(_PSL_TAILS),
    st.booleans(),
)
def test_registrable_domain_is_the_lists_private_suffix(head, tail, dot):
    """Through the shared suffix cache, the same answer as the PSL's own privatesuffix."""
    name = ".".join([*head, tail]).strip(".") + ("." if dot else "")
    expected = psl().privatesuffix(name.rstrip(".").lower()) if name.strip(".") else None
    assert registrable_domain(name) == expected
    assert registrable_domain("city.kawasaki.jp") == "city.kawasaki.jp"  # exception rule
    assert registrable_domain("a.b.kawasaki.jp") == "a.b.kawasaki.jp"  # wildcard rule
    assert registrable_domain("co.jp") is None
