"""SPF (RFC 7208): record parsing, the survey's static analysis, and ``check_host()``.

Everything here is a pure function of stored DNS answers (:class:`AnswerSet`). An answer that was
not collected comes back ``MISSING``; evaluation then stops right there with ``temperror``, so the
set of answers asked for is exactly what evaluation reaches, in order: the collection plan.

Two consumers:

* :func:`analyze` -- the survey columns. It walks the include/redirect tree the way evaluation
  reaches it for a client address that matches nothing: every term before the first ``all`` of
  each record, every include target, the redirect target when there is no ``all``. Terms whose
  target holds a macro are counted but not followed (they need a sender and an address).
  ``a`` and ``mx`` targets are looked up with A queries (the MX exchanges too, at most 10), as an
  IPv4 client's evaluation would, so void lookups are counted as such an evaluation counts them.
  ``ptr`` is counted but not queried (it needs the client's address).
* :func:`check_host` -- the RFC 7208 function itself, for one client address.

Choices where the RFC leaves room:

* ``v=spf1`` is matched case-insensitively: RFC 7208 12 writes it as an ABNF string, and ABNF
  strings are case-insensitive (RFC 5234 2.3).
* A void lookup is a query made for a DNS-querying term (include, a, mx, ptr, exists, redirect)
  that returns NXDOMAIN or no record of the asked type; the address queries of MX exchanges
  count, the address queries validating PTR names do not (they are under the control of the
  connecting party, and 5.5 says to skip failures there), nor does anything made for ``exp``
  or the ``%{p}`` macro.
* The 11th DNS-querying term is a permerror when reached (it is not looked up); the reported
  count is then 11. Include/redirect cycles are a permerror when detected: re-entering a domain
  still being evaluated with the same inputs can only end in the lookup limit.
* A target name that is not a valid DNS name after expansion (empty label, label over 63 octets,
  name over 255 octets in wire form) is a permerror, never a lookup; names over 253 characters
  are first shortened from the left (7.3). Any octet may stand in a label (RFC 2181 11): ``%``,
  spaces (``%_``), non-ASCII text of a macro value (as UTF-8). A malformed MX exchange (the null MX ``.``) is skipped.
* ``ptr`` and ``%{p}`` use the first 10 PTR names (4.6.4); a PTR lookup error makes ``ptr`` not
  match and ``%{p}`` expand to ``unknown`` (5.5, 7.2). ``%{h}`` without a HELO name and ``%{r}``
  expand to ``unknown``.
* An IPv4-mapped IPv6 client address is evaluated as the IPv4 address.
"""

from __future__ import annotations

import ipaddress
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from mailauth_survey.answers import (
    MISSING,
    NOERROR,
    Answer,
    AnswerSet,
    domain_exists,
    normalize_name,
    presentation_name,
    raw_name,
    text_cache,
    valid_qname,
)
from mailauth_survey.policies.apex import mx_records

PASS, FAIL, SOFTFAIL, NEUTRAL = "pass", "fail", "softfail", "neutral"
NONE, PERMERROR, TEMPERROR = "none", "permerror", "temperror"
VALID = "valid"

#: Every result ``check_host`` can return (RFC 7208 2.6).
RESULTS = (PASS, FAIL, SOFTFAIL, NEUTRAL, NONE, PERMERROR, TEMPERROR)
#: Every ``spf_status`` ``analyze`` can return (SPEC.md).
STATUSES = (NONE, VALID, PERMERROR, TEMPERROR)
#: Every ``spf_all`` value of a valid record.
ALL_VALUES = ("-all", "~all", "?all", "+all", "none")

MAX_LOOKUPS = 10  # DNS-querying terms per evaluation (4.6.4)
MAX_VOID_LOOKUPS = 2  # 4.6.4
MAX_MX_NAMES = 10  # exchanges per "mx" before permerror (4.6.4)
MAX_PTR_NAMES = 10  # PTR names validated; the rest ignored (4.6.4)
MAX_NAME = 253  # expanded target names are shortened from the left to this (7.3)
MAX_RECORD_BYTES = 450  # 3.4
MAX_STRING_BYTES = 255  # one TXT character-string (3.3, RFC 1035)

#: The documentation addresses ``spf_pass_any`` evaluates (RFC 5737, RFC 3849).
PROBE_ADDRESSES = ("192.0.2.1", "2001:db8::1")

_QUALIFIER_RESULT = {"+": PASS, "-": FAIL, "~": SOFTFAIL, "?": NEUTRAL}
_MECHANISMS = frozenset({"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"})
_LOOKUP_TERMS = frozenset({"include", "a", "mx", "ptr", "exists"})
_MACRO_LETTERS = frozenset("slodiphcrtv")
_EXP_ONLY_LETTERS = frozenset("crt")  # 7.2
_ESCAPES = {"%": "%", "_": " ", "-": "%20"}  # 7.1

_MODIFIER_RE = re.compile(r"([A-Za-z][A-Za-z0-9_.\-]*)=(.*)\Z", re.DOTALL)
_DIRECTIVE_RE = re.compile(r"([+\-~?]?)([^:/]*)(.*)\Z", re.DOTALL)
_DUAL_CIDR_RE = re.compile(r"(?:/([0-9]+))?(?://([0-9]+))?\Z")
_QNUM = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_IP4_RE = re.compile(rf"{_QNUM}\.{_QNUM}\.{_QNUM}\.{_QNUM}\Z")
_IP6_RE = re.compile(r"[0-9A-Fa-f:.]+\Z")
_MACRO_BODY_RE = re.compile(r"([A-Za-z])([0-9]*)([rR]?)([.\-+,/_=]*)\Z")
_LITERAL_RE = re.compile(r"[\x21-\x24\x26-\x7e]+")  # macro-literal (7.1)
_EXPLAIN_LITERAL_RE = re.compile(r"[\x20-\x24\x26-\x7e]+")  # explain-string adds SP (7.1)


def _rfc(section: str) -> str:
    return f"(RFC 7208 {section})"


# --------------------------------------------------------------------------------------------
# Macro strings (RFC 7208 7)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Macro:
    """One ``%{...}`` macro-expand (7.1)."""

    letter: str  # lower case
    url_escape: bool  # written upper case: URL-escape the expansion (7.3)
    keep: int  # right-hand parts to keep after the optional reversal; 0 = all
    reverse: bool
    delimiters: str  # "" means "."


#: A parsed macro-string: literal text (escapes already resolved) and macros.
MacroTokens = tuple[str | Macro, ...]


@dataclass(frozen=True, slots=True)
class _MacroString:
    tokens: MacroTokens
    error: str | None
    ends_with_expand: bool  # the last item is a macro-expand (incl. %% %_ %-), for domain-end

    @property
    def dynamic(self) -> bool:
        """Needs a sender, an address or a domain to expand."""
        return any(isinstance(t, Macro) for t in self.tokens)


def _parse_macro_string(text: str, explain: bool = False) -> _MacroString:
    """Tokenize a macro-string (or an explain-string), reporting the first syntax error."""
    if len(text) <= 512:
        return _parse_macro_string_cached(text, explain)
    return _tokenize_macro_string(text, explain)


@lru_cache(maxsize=8192)
def _parse_macro_string_cached(text: str, explain: bool) -> _MacroString:
    return _tokenize_macro_string(text, explain)


def _tokenize_macro_string(text: str, explain: bool) -> _MacroString:
    literal_re = _EXPLAIN_LITERAL_RE if explain else _LITERAL_RE
    tokens: list[str | Macro] = []
    i, n = 0, len(text)
    last_expand = False
    while i < n:
        if text[i] != "%":
            m = literal_re.match(text, i)
            if m is None:
                return _MacroString((), f"invalid character {text[i]!r} {_rfc('7.1')}", False)
            _append_literal(tokens, m.group())
            i = m.end()
            last_expand = False
            continue
        nxt = text[i + 1 : i + 2]
        if nxt and nxt in _ESCAPES:
            _append_literal(tokens, _ESCAPES[nxt])
            i += 2
            last_expand = True
            continue
        if nxt != "{":
            return _MacroString((), f"'%' must start a macro or be doubled {_rfc('7.1')}", False)
        close = text.find("}", i + 2)
        body = text[i + 2 : close] if close >= 0 else ""
        macro, error = (
            _parse_macro_body(body) if close >= 0 else (None, f"unclosed '%{{' {_rfc('7.1')}")
        )
        if macro is None:
            snippet = text[i : close + 1] if close >= 0 else text[i : i + 20]
            return _MacroString((), f"{snippet!r}: {error}", False)
        tokens.append(macro)
        i = close + 1
        last_expand = True
    return _MacroString(tuple(tokens), None, last_expand)


def _append_literal(tokens: list[str | Macro], text: str) -> None:
    if tokens and isinstance(tokens[-1], str):
        tokens[-1] += text
    else:
        tokens.append(text)


def _parse_macro_body(body: str) -> tuple[Macro | None, str]:
    m = _MACRO_BODY_RE.match(body)
    if m is None:
        return None, f"malformed macro {_rfc('7.1')}"
    letter, digits, rev, delims = m.groups()
    if letter.lower() not in _MACRO_LETTERS:
        return None, f"unknown macro letter {letter!r} {_rfc('7.2')}"
    digits = digits.lstrip("0") if digits else ""
    if m.group(2) and not digits:
        return None, f"transformer digit must be nonzero {_rfc('7.3')}"
    keep = int(digits) if digits and len(digits) <= 3 else (999 if digits else 0)
    return Macro(letter.lower(), letter.isupper(), keep, bool(rev), delims), ""


def _valid_toplabel(label: str) -> bool:
    """toplabel (12): LDH, not all-numeric, no leading or trailing hyphen."""
    if not label or not label.isascii() or not label.replace("-", "").isalnum():
        return False
    if "-" not in label:
        return not label.isdigit()
    return label[0].isalnum() and label[-1].isalnum()


def _check_domain_spec(spec: str, what: str) -> tuple[_MacroString, list[str]]:
    """Validate a domain-spec (12): a macro-string ending in '.toplabel' or a macro-expand."""
    ms = _parse_macro_string(spec)
    if ms.error:
        return ms, [f"{what}: {ms.error}"]
    errors = []
    if not ms.ends_with_expand:
        tail = spec[:-1] if spec.endswith(".") else spec
        head, dot, label = tail.rpartition(".")
        if not dot or not _valid_toplabel(label):
            errors.append(
                f"{what}: {spec!r} is not a domain-spec (must end in '.toplabel' or a macro) {_rfc('12')}"
            )
    for tok in ms.tokens:
        if isinstance(tok, Macro) and tok.letter in _EXP_ONLY_LETTERS:
            errors.append(
                f"{what}: macro %{{{tok.letter}}} is allowed only in explanation text {_rfc('7.2')}"
            )
    return ms, errors


# --------------------------------------------------------------------------------------------
# Records and terms (RFC 7208 4.5, 5, 6, 12)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mechanism:
    """A directive: qualifier plus mechanism (5), CIDR lengths split off (5.3, 5.4, 5.6)."""

    qualifier: str  # "+", "-", "~" or "?"
    name: str  # lower case: all include a mx ptr ip4 ip6 exists
    domain_spec: str | None = None
    cidr4: int = 32
    cidr6: int = 128
    network: int | None = None  # ip4/ip6: the address as an integer
    text: str = ""
    macro: _MacroString | None = field(default=None, compare=False, repr=False)

    @property
    def result(self) -> str:
        return _QUALIFIER_RESULT[self.qualifier]

    @property
    def dynamic(self) -> bool:
        """The target holds a macro, so it depends on the sender or the address."""
        return self.macro is not None and self.macro.dynamic


@dataclass(frozen=True, slots=True)
class Modifier:
    """``name=value`` (6); ``redirect`` and ``exp`` are the known ones."""

    name: str  # lower case
    value: str
    text: str = ""
    macro: _MacroString | None = field(default=None, compare=False, repr=False)

    @property
    def dynamic(self) -> bool:
        return self.macro is not None and self.macro.dynamic


Term = Mechanism | Modifier


@dataclass(frozen=True, slots=True)
class SpfRecord:
    """A parsed record. ``errors`` non-empty means permerror (4.6: syntax errors anywhere).

    ``mechanisms`` and ``modifiers`` are ``terms`` split by kind, in record order.
    """

    text: str
    terms: tuple[Term, ...] = ()
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    mechanisms: tuple[Mechanism, ...] = field(init=False, repr=False, compare=False)
    modifiers: tuple[Modifier, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # frozen: precompute once, evaluation reads these for every domain that includes us
        mechs = tuple(t for t in self.terms if isinstance(t, Mechanism))
        object.__setattr__(self, "mechanisms", mechs)
        object.__setattr__(
            self, "modifiers", tuple(t for t in self.terms if isinstance(t, Modifier))
        )

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def all_mechanism(self) -> Mechanism | None:
        """The first ``all``: evaluation never goes past it (5.1)."""
        return next((m for m in self.mechanisms if m.name == "all"), None)

    @property
    def redirect(self) -> Modifier | None:
        return next((m for m in self.modifiers if m.name == "redirect"), None)

    @property
    def exp(self) -> Modifier | None:
        return next((m for m in self.modifiers if m.name == "exp"), None)

    @property
    def effective_redirect(self) -> Modifier | None:
        """``redirect`` unless an ``all`` mechanism is present, which cancels it (6.1)."""
        return None if self.all_mechanism is not None else self.redirect


def is_spf(text: str) -> bool:
    """A TXT record is SPF iff it starts with the version ``v=spf1`` then SP or its end (4.5)."""
    head = text[:6]
    return head.isascii() and head.lower() == "v=spf1" and (len(text) == 6 or text[6] == " ")


@text_cache
def parse_record(text: str) -> SpfRecord:
    """Parse one SPF record (the TXT strings already joined). Never raises.

    Records of ordinary size are cached: the big providers' records recur across domains.
    """
    if not is_spf(text):
        return SpfRecord(
            text, errors=(f"not an SPF record: no 'v=spf1' version section {_rfc('4.5')}",)
        )
    terms: list[Term] = []
    errors: list[str] = []
    for word in text[6:].split(" "):
        if not word:
            continue  # 1*SP between terms, *SP at the end (12)
        term, term_errors = _parse_term(word)
        errors += term_errors
        if term is not None:
            terms.append(term)
    for name in ("redirect", "exp"):
        if sum(1 for t in terms if isinstance(t, Modifier) and t.name == name) > 1:
            errors.append(f"'{name}=' appears more than once {_rfc('6')}")
    return SpfRecord(text, tuple(terms), tuple(errors), tuple(_record_warnings(terms)))


def _parse_term(word: str) -> tuple[Term | None, list[str]]:
    if not word.isascii():
        return None, [f"term {word!r} holds non-ASCII characters {_rfc('12')}"]
    m = _MODIFIER_RE.match(word)
    if m:
        return _parse_modifier(word, m.group(1).lower(), m.group(2))
    m = _DIRECTIVE_RE.match(word)
    qualifier, name, rest = (m.group(1) or "+"), m.group(2).lower(), m.group(3)
    if name not in _MECHANISMS:
        return None, [f"unknown mechanism in {word!r} {_rfc('4.6, 12')}"]
    if name == "all":
        if rest:
            return None, [f"'all' takes no argument: {word!r} {_rfc('5.1')}"]
        return Mechanism(qualifier, name, text=word), []
    if name in ("ip4", "ip6"):
        return _parse_ip_mechanism(word, qualifier, name, rest)
    return _parse_domain_mechanism(word, qualifier, name, rest)


def _parse_modifier(word: str, name: str, value: str) -> tuple[Term | None, list[str]]:
    if name in ("redirect", "exp"):
        ms, errors = _check_domain_spec(value, f"'{word}'")
        return (None if errors else Modifier(name, value, word, ms)), errors
    ms = _parse_macro_string(value)
    if ms.error:
        return None, [f"'{word}': {ms.error}"]
    return Modifier(name, value, word, ms), []


def _parse_cidr(digits: str | None, limit: int, what: str) -> tuple[int | None, str | None]:
    """ip4-cidr-length / ip6-cidr-length (12): no leading zero, 0..limit."""
    if digits is None:
        return None, None
    if (len(digits) > 1 and digits[0] == "0") or len(digits) > 3 or int(digits) > limit:
        return None, f"{what}: prefix length /{digits} out of range 0-{limit} {_rfc('5.6, 12')}"
    return int(digits), None


def _parse_ip_mechanism(
    word: str, qualifier: str, name: str, rest: str
) -> tuple[Term | None, list[str]]:
    if not rest.startswith(":"):
        return None, [f"{word!r}: '{name}' needs ':' and a network {_rfc('5.6')}"]
    network, slash, digits = rest[1:].partition("/")
    if slash and not digits.isdigit():
        return None, [f"{word!r}: malformed prefix length {_rfc('5.6')}"]
    cidr, error = _parse_cidr(digits if slash else None, 32 if name == "ip4" else 128, repr(word))
    if error:
        return None, [error]
    address = _parse_network(network, name)
    if address is None:
        return None, [f"{word!r}: {network!r} is not an {name} network {_rfc('5.6')}"]
    if name == "ip4":
        return Mechanism(
            qualifier, name, cidr4=32 if cidr is None else cidr, network=address, text=word
        ), []
    return Mechanism(
        qualifier, name, cidr6=128 if cidr is None else cidr, network=address, text=word
    ), []


def _parse_network(text: str, name: str) -> int | None:
    """ip4-network (dotted quad, no leading zeros) or ip6-network (RFC 4291 2.2, no zone)."""
    if name == "ip4":
        return int(ipaddress.IPv4Address(text)) if _IP4_RE.match(text) else None
    if not _IP6_RE.match(text):
        return None
    try:
        return int(ipaddress.IPv6Address(text))
    except ValueError:
        return None


def _parse_domain_mechanism(
    word: str, qualifier: str, name: str, rest: str
) -> tuple[Term | None, list[str]]:
    """include/exists (domain required), a/mx (optional domain, dual CIDR), ptr (optional domain)."""
    cidr4 = cidr6 = None
    if name in ("a", "mx"):
        m = _DUAL_CIDR_RE.search(rest)  # always matches, at worst the empty end
        if m is None:
            return None, [f"{word!r}: malformed '{name}' mechanism {_rfc('5, 12')}"]
        rest = rest[: m.start()]
        cidr4, e4 = _parse_cidr(m.group(1), 32, repr(word))
        cidr6, e6 = _parse_cidr(m.group(2), 128, repr(word))
        if e4 or e6:
            return None, [e for e in (e4, e6) if e]
    if not rest:
        if name in ("include", "exists"):
            return None, [f"{word!r}: '{name}' needs ':' and a domain-spec {_rfc('5.2, 5.7')}"]
        return Mechanism(qualifier, name, None, _or(cidr4, 32), _or(cidr6, 128), text=word), []
    if not rest.startswith(":"):
        return None, [f"{word!r}: malformed '{name}' mechanism {_rfc('5, 12')}"]
    spec = rest[1:]
    ms, errors = _check_domain_spec(spec, repr(word))
    if errors:
        return None, errors
    return Mechanism(
        qualifier, name, spec, _or(cidr4, 32), _or(cidr6, 128), text=word, macro=ms
    ), []


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _record_warnings(terms: list[Term]) -> list[str]:
    """Legal but questionable constructs, each with the section that advises against it."""
    warnings = []
    seen_all: Mechanism | None = None
    for term in terms:
        if isinstance(term, Modifier):
            if term.name not in ("redirect", "exp"):
                hint = " (a second 'v=spf1'?)" if term.name == "v" else ""
                warnings.append(f"unknown modifier '{term.text}' ignored{hint} {_rfc('6')}")
            continue
        if seen_all is not None:
            warnings.append(
                f"'{term.text}' after '{seen_all.text}' is never evaluated {_rfc('5.1')}"
            )
            continue
        if term.name == "ptr":
            warnings.append(f"'{term.text}': the ptr mechanism SHOULD NOT be used {_rfc('5.5')}")
        if term.name == "all":
            seen_all = term
            if term.qualifier == "+":
                warnings.append(f"'{term.text}' passes every address {_rfc('5.1')}")
    redirect = next((t for t in terms if isinstance(t, Modifier) and t.name == "redirect"), None)
    if redirect is not None and seen_all is not None:
        warnings.append(
            f"'{redirect.text}' is ignored because the record has an 'all' mechanism {_rfc('6.1')}"
        )
    return warnings


def _spf_records(answer: Answer) -> tuple[tuple[str, tuple[bytes, ...]], ...]:
    """The SPF records of a TXT answer, joined text with raw strings; others discarded (4.5).

    Kept with the answer: one domain's analysis reads its TXT answers several times per round,
    and the providers' answers recur across domains.
    """
    return answer.derived("spf records", _find_spf_records)


def _find_spf_records(answer: Answer) -> tuple[tuple[str, tuple[bytes, ...]], ...]:
    pairs = zip(answer.txt(), answer.txt_strings(), strict=True)
    return tuple((t, s) for t, s in pairs if is_spf(t))


# --------------------------------------------------------------------------------------------
# Shared lookup bookkeeping (RFC 7208 4.6.4)
# --------------------------------------------------------------------------------------------


class _Stop(Exception):
    """Ends an evaluation with permerror/temperror; ``incomplete`` when an answer is MISSING."""

    def __init__(self, result: str, reasons: str | list[str], *, incomplete: bool = False) -> None:
        super().__init__(result)
        self.result = result
        self.reasons = [reasons] if isinstance(reasons, str) else list(reasons)
        self.incomplete = incomplete


def _settled(stop: _Stop) -> _Stop:
    """``stop`` without the traceback (and chained exceptions) it got when raised.

    Those hold the frames that hold the walker that holds ``stop``: a cycle that only the
    garbage collector frees, with the domain's answers behind it. Cut, it is freed at once.
    """
    stop.__traceback__ = stop.__context__ = stop.__cause__ = None
    return stop


class _Budget:
    """The lookup and void-lookup counters, and answer access that honours MISSING."""

    def __init__(self, dns: AnswerSet) -> None:
        self.dns = dns
        self.lookups = 0
        self.voids = 0
        self.stack: list[str] = []  # domains whose evaluation is in progress (loop detection)
        #: Every answer read, in order, while a memo entry is being made (see :data:`_MEMO`).
        self.reads: list[tuple[str, str, Answer]] | None = None

    def count_term(self, term: str) -> None:
        self.lookups += 1
        if self.lookups > MAX_LOOKUPS:
            raise _Stop(
                PERMERROR,
                f"more than {MAX_LOOKUPS} DNS-querying terms ('{term}' is number {self.lookups}) {_rfc('4.6.4')}",
            )

    def count_void(self, name: str, qtype: str) -> None:
        self.voids += 1
        if self.voids > MAX_VOID_LOOKUPS:
            raise _Stop(
                PERMERROR,
                f"more than {MAX_VOID_LOOKUPS} void lookups ({name} {qtype} is number {self.voids}) {_rfc('4.6.4')}",
            )

    def read(self, name: str, qtype: str) -> Answer:
        ans = self.dns.get(name, qtype)
        if self.reads is not None:
            self.reads.append((name, qtype, ans))
        return ans

    def answer(self, name: str, qtype: str) -> Answer:
        """A definite answer, or stop: MISSING is incomplete, any other failure temperror (4.4, 5)."""
        ans = self.read(name, qtype)
        if ans.rcode == MISSING:
            raise _Stop(TEMPERROR, f"{name} {qtype} not collected yet", incomplete=True)
        if ans.failed:
            raise _Stop(TEMPERROR, f"{name} {qtype} lookup failed: {ans.rcode} {_rfc('4.4, 5')}")
        return ans

    def term_records(self, name: str, qtype: str) -> list[str]:
        """Rdata of a term's query; NXDOMAIN or no record is a void lookup (4.6.4, 5)."""
        data = self.answer(name, qtype).rdata(qtype)
        if not data:
            self.count_void(name, qtype)
        return data

    def check_loop(self, term: str, target: str) -> None:
        if target in self.stack:
            chain = " -> ".join([*self.stack, target])
            raise _Stop(PERMERROR, f"'{term}' loops back: {chain} {_rfc('4.6.4')}")

    def select_record(self, name: str, via: str | None) -> tuple[str, tuple[bytes, ...]] | None:
        """The one SPF record at ``name`` (4.4, 4.5); None when there is none.

        ``via`` is the include/redirect term that led here: its target's NXDOMAIN or empty answer
        is a void lookup. The top-level record lookup is not a term and counts nothing.
        """
        ans = self.answer(name, "TXT")
        found = _spf_records(ans) if not ans.nxdomain else ()
        if not found and via is not None and (ans.nxdomain or not ans.rdata("TXT")):
            self.voids += 1  # reported; the missing record below is the verdict
        if len(found) > 1:
            raise _Stop(PERMERROR, f"{name} publishes {len(found)} SPF records {_rfc('4.5')}")
        return found[0] if found else None


def _mx_hosts(rdatas: list[str]) -> list[str]:
    """Exchanges by preference then name (the null MX as ""); unparsable rdata skipped."""
    return [host for _pref, host in mx_records(rdatas)]


def _static_target(spec: str | None, domain: str) -> str | None:
    """A macro-free target: the domain-spec as written, or the current domain (4.8)."""
    return _target_name(domain if spec is None else spec)


def _target_name(expanded: str) -> str | None:
    """A queryable name from an expanded domain-spec; long names lose left labels (7.3).

    The expansion is the labels' text: ``%%``, ``%_`` and ``%-`` (7.1) and the literal part of a
    record give ``%``, spaces and any other octet, which DNS carries as label octets (RFC 2181
    11). The name returned is in presentation form (RFC 1035 5.1 escapes, ``\\032`` for a
    space), the form the resolver asks and the records table keeps.
    """
    name = expanded[:-1] if expanded.endswith(".") else expanded
    while len(name) > MAX_NAME and "." in name:
        name = name.split(".", 1)[1]
    if not name or name.endswith("."):
        return None
    qname = presentation_name(name).lower()  # (escapes are ASCII: only letters change)
    return qname if valid_qname(qname) else None


# --------------------------------------------------------------------------------------------
# The survey's static analysis
# --------------------------------------------------------------------------------------------


class _Walker(_Budget):
    """Walks the include/redirect tree as evaluation reaches it for an address matching nothing."""

    def __init__(self, dns: AnswerSet) -> None:
        super().__init__(dns)
        self.warnings: list[str] = []
        #: The first MISSING answer met; the walk went on past it (see :meth:`carry_on`).
        self.incomplete: _Stop | None = None

    def carry_on(self, stop: _Stop) -> None:
        """Go on past a MISSING answer, so that one collection round asks every name the walk
        can already see (sibling includes, a/mx targets, the redirect) instead of one per round.

        Anything definite after a MISSING answer ends the walk as incomplete: the counters
        behind it are lower bounds, and the next round decides.
        """
        if self.incomplete is None:
            if not stop.incomplete:
                raise stop
            self.incomplete = _settled(stop)
        elif not stop.incomplete:
            raise self.incomplete

    def note_size(self, label: str, text: str, strings: tuple[bytes, ...]) -> None:
        if any(len(s) > MAX_STRING_BYTES for s in strings):
            self.warnings.append(
                f"{label}a TXT character-string is longer than {MAX_STRING_BYTES} bytes {_rfc('3.3')}"
            )
        size = len(text.encode("utf-8"))
        if size > MAX_RECORD_BYTES:
            self.warnings.append(
                f"{label}record is {size} bytes, over {MAX_RECORD_BYTES} {_rfc('3.4')}"
            )

    def walk(self, name: str, rec: SpfRecord, label: str) -> str:
        """Visit a record's reachable terms; return its effective ``all`` (through redirect)."""
        if rec.errors:
            raise _Stop(PERMERROR, [f"{label}{e}" for e in rec.errors])
        self.warnings += [f"{label}{w}" for w in rec.warnings]
        self.stack.append(name)
        try:
            for mech in rec.mechanisms:
                if mech.name == "all":
                    return f"{mech.qualifier}all"
                if mech.name in _LOOKUP_TERMS:
                    try:
                        self.visit(mech, name)
                    except _Stop as stop:
                        self.carry_on(stop)
            return self.follow_redirect(rec, name)
        finally:
            self.stack.pop()

    def visit(self, mech: Mechanism, domain: str) -> None:
        self.count_term(mech.text)
        if mech.dynamic:
            return  # needs a sender or the client's address: counted, not followed
        target = _static_target(mech.domain_spec, domain)
        if target is None:
            raise _Stop(
                PERMERROR, f"'{mech.text}': target is not a valid domain name {_rfc('4.8')}"
            )
        if mech.name == "ptr":
            return  # needs the client's address: counted, not queried
        if mech.name == "include":
            self.check_loop(mech.text, target)
            rec = self.fetch(target, mech.text, "5.2")
            self.walk(target, rec, f"{target}: ")
        elif mech.name == "mx":
            self.visit_mx(mech, target)
        else:  # a, exists: as an IPv4 client's evaluation asks
            self.term_records(target, "A")

    def visit_mx(self, mech: Mechanism, target: str) -> None:
        hosts = _mx_hosts(self.term_records(target, "MX"))
        if len(hosts) > MAX_MX_NAMES:
            raise _Stop(
                PERMERROR,
                f"'{mech.text}': {target} has {len(hosts)} MX names, over {MAX_MX_NAMES} {_rfc('4.6.4')}",
            )
        for host in hosts:
            if valid_qname(host):
                try:
                    self.term_records(host, "A")
                except _Stop as stop:
                    self.carry_on(stop)

    def follow_redirect(self, rec: SpfRecord, domain: str) -> str:
        red = rec.effective_redirect
        if red is None:
            return "none"
        self.count_term(red.text)
        if red.dynamic:
            self.warnings.append(
                f"'{red.text}': target holds a macro, effective 'all' not followed {_rfc('6.1')}"
            )
            return "none"
        target = _static_target(red.value, domain)
        if target is None:
            raise _Stop(PERMERROR, f"'{red.text}': target is not a valid domain name {_rfc('6.1')}")
        self.check_loop(red.text, target)
        sub = self.fetch(target, red.text, "6.1")
        return self.walk(target, sub, f"{target}: ")

    def fetch(self, target: str, via: str, section: str) -> SpfRecord:
        """The include/redirect target's record; none there is a permerror (5.2, 6.1)."""
        found = self.select_record(target, via)
        if found is None:
            raise _Stop(PERMERROR, f"'{via}': {target} has no SPF record {_rfc(section)}")
        text, strings = found
        self.note_size(f"{target}: ", text, strings)
        return parse_record(text)


COLUMNS = (
    "spf_status", "spf_record", "spf_all", "spf_lookups", "spf_void_lookups", "spf_errors",
    "spf_warnings", "spf_pass_any",
)  # fmt: skip


def _row(status: str, **values: object) -> dict:
    row: dict = {
        "spf_status": status,
        "spf_record": None,
        "spf_all": None,
        "spf_lookups": None,
        "spf_void_lookups": None,
        "spf_errors": [],
        "spf_warnings": [],
        "spf_pass_any": None,
    }
    row.update(values)
    return row


def first_queries(name: str, dns: AnswerSet) -> tuple[tuple[str, str], ...]:
    """Nothing: :func:`analyze` first reads the apex TXT, which is in before any module runs."""
    return ()


def analyze(domain: str, dns: AnswerSet) -> dict:
    """The SPF columns of one domain (SPEC.md), from stored answers. Never raises."""
    name = normalize_name(domain)
    if not valid_qname(name):
        return _row(NONE, spf_errors=[f"{domain!r} is not a valid domain name {_rfc('4.3')}"])
    exists = domain_exists(name, dns)
    if exists is None:
        return _row(TEMPERROR, spf_errors=[f"no definite answer about {name} {_rfc('4.4')}"])
    if exists is False:
        return _row(NONE)  # NXDOMAIN: nothing at or below the name (RFC 8020, 4.3)
    walker = _Walker(dns)
    try:
        found = walker.select_record(name, None)
    except _Stop as stop:  # several SPF records, or the TXT lookup failed
        counts = (0, 0) if stop.result == PERMERROR else (None, None)
        return _row(
            stop.result, spf_errors=stop.reasons, spf_lookups=counts[0], spf_void_lookups=counts[1]
        )
    if found is None:
        return _row(NONE)
    text, strings = found
    walker.note_size("", text, strings)
    row = _row(VALID, spf_record=text)
    rec = parse_record(text)
    shared = _domain_free(rec)
    try:
        spf_all = _walk_top(walker, name, rec, shared)
        if walker.incomplete is not None:
            raise walker.incomplete
    except _Stop as stop:
        _settled(stop)
        row["spf_status"] = stop.result
        row["spf_errors"] = stop.reasons
        if stop.result == PERMERROR:
            row["spf_lookups"], row["spf_void_lookups"] = walker.lookups, walker.voids
    else:
        row["spf_all"] = spf_all
        row["spf_lookups"], row["spf_void_lookups"] = walker.lookups, walker.voids
        row["spf_pass_any"] = _pass_any(name, dns, text, shared)
    row["spf_warnings"] = walker.warnings
    return row


def _pass_any(domain: str, dns: AnswerSet, text: str, shared: bool) -> bool | None:
    """Whether the policy passes a documentation address (v4, then v6 unless v4 passed).

    ``text``: the domain's record; ``shared``: it is :func:`_domain_free`. None while answers
    are still missing, or when a real temperror leaves it undecided.
    """
    key = ("pass", text)
    if shared and (hit := _recall(key, domain, dns)) is not None:
        return hit
    reads: list[tuple[str, str, Answer]] | None = [] if shared else None
    tainted = False
    results = []
    found: bool | None = False
    for ip in PROBE_ADDRESSES:
        start = len(reads) if reads is not None else 0
        result, _, incomplete, macro = _evaluate(
            ip, domain, f"postmaster@{domain}", dns, domain, want_exp=False, reads=reads
        )
        tainted |= macro
        if reads is not None and len(reads) > start:
            del reads[start]  # check()'s first read, the domain's TXT: the key is its record
        if incomplete:
            return None
        if result == PASS:
            found = True
            break
        results.append(result)
    else:
        found = None if TEMPERROR in results else False
    if reads is not None and not tainted and found is not None:
        _remember(key, reads, found)
    return found


def _walk_top(walker: _Walker, name: str, rec: SpfRecord, shared: bool) -> str:
    """``walker.walk`` of the domain's record, or its outcome for another domain (:data:`_MEMO`).

    ``shared``: ``rec`` is :func:`_domain_free`.
    """
    key = ("walk", rec.text)
    if shared and (hit := _recall(key, name, walker.dns)) is not None:
        spf_all, lookups, voids, warnings = hit
        walker.lookups += lookups
        walker.voids += voids
        walker.warnings += warnings
        return spf_all
    lookups, voids, warned = walker.lookups, walker.voids, len(walker.warnings)
    walker.reads = [] if shared else None
    spf_all = walker.walk(name, rec, "")
    reads, walker.reads = walker.reads, None
    if reads is not None and walker.incomplete is None:
        outcome = (
            spf_all,
            walker.lookups - lookups,
            walker.voids - voids,
            walker.warnings[warned:],
        )
        _remember(key, reads, outcome)
    return spf_all


#: Outcomes of a record's evaluation that depend on the answers it read alone, by record text:
#: (the answers read, in order; the outcome). The big providers' includes recur across
#: thousands of domains (docs/design.md, the SPF memo).
#: An outcome is reused for another domain with the same record only when that domain's
#: answers to the same names are the same, read in the same order as the evaluation itself
#: would read them (the same answers in, the same steps taken, the same names asked next, so
#: the same misses registered). Kept only for records whose targets are all written out
#: (:func:`_domain_free`), evaluations that expanded no macro, met no missing answer and ended
#: without a stop. Not reused for a domain among the names read: its record would loop back to
#: it (4.6.4).
_MEMO: dict[tuple[str, str], tuple[tuple[tuple[str, str, Answer], ...], Any]] = {}
MEMO_SIZE = 4096


def _domain_free(rec: SpfRecord) -> bool:
    """No term of ``rec`` reads the domain it is published at: every target is written out."""
    if rec.errors:
        return False
    for m in rec.mechanisms:
        if m.name not in ("all", "ip4", "ip6") and (m.macro is None or m.macro.dynamic):
            return False
    red = rec.effective_redirect
    return red is None or (red.macro is not None and not red.macro.dynamic)


def _recall(key: tuple[str, str], domain: str, dns: AnswerSet) -> Any:
    """The outcome remembered under ``key`` if it holds for ``domain``'s answers, else None."""
    hit = _MEMO.get(key)
    return hit[1] if hit is not None and _replays(hit[0], domain, dns) else None


def _replays(reads: tuple[tuple[str, str, Answer], ...], domain: str, dns: AnswerSet) -> bool:
    for qname, qtype, ans in reads:
        if qname == domain:
            return False
        got = dns.get(qname, qtype)
        if got is not ans and got != ans:
            return False
    return True


def _remember(key: tuple[str, str], reads: list[tuple[str, str, Answer]], outcome: Any) -> None:
    if len(_MEMO) >= MEMO_SIZE:
        _MEMO.clear()
    _MEMO[key] = (tuple(reads), outcome)


# --------------------------------------------------------------------------------------------
# check_host() (RFC 7208 4-8)
# --------------------------------------------------------------------------------------------


def check_host(
    ip: str, domain: str, sender: str, dns: AnswerSet, helo: str | None = None
) -> tuple[str, str]:
    """RFC 7208 check_host(): (result, explanation or reason). Never raises.

    On ``fail`` the second item is the domain's explanation (``exp=``, 6.2) when it has one.
    A MISSING answer ends evaluation with ``temperror``; its key is then in ``dns.missing``.
    """
    result, reason, _, _ = _evaluate(ip, domain, sender, dns, helo, want_exp=True)
    return result, reason


def _evaluate(
    ip: str,
    domain: str,
    sender: str,
    dns: AnswerSet,
    helo: str | None,
    *,
    want_exp: bool,
    reads: list[tuple[str, str, Answer]] | None = None,
) -> tuple[str, str, bool, bool]:
    """(result, reason, incomplete, a macro was expanded); the answers read go to ``reads``."""
    client = _client_address(ip)
    if client is None:
        return PERMERROR, f"{ip!r} is not an IP address", False, False
    ev = _Evaluator(dns, client, sender, helo)
    ev.reads = reads
    try:
        result, reason = ev.check(domain, want_exp=want_exp, via=None)
    except _Stop as stop:
        return stop.result, "; ".join(stop.reasons), stop.incomplete, ev.tainted
    return result, reason, False, ev.tainted


@lru_cache(maxsize=1024)
def _client_address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        addr = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


@lru_cache(maxsize=65536)
def _address_int(text: str) -> tuple[int, int] | None:
    """(version, integer) of an A/AAAA rdata, None for junk."""
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    return addr.version, int(addr)


class _Evaluator(_Budget):
    """One check_host() evaluation: the client, the sender and the shared counters."""

    def __init__(
        self,
        dns: AnswerSet,
        client: ipaddress.IPv4Address | ipaddress.IPv6Address,
        sender: str,
        helo: str | None,
    ) -> None:
        super().__init__(dns)
        self.client = client
        self.version = client.version
        self.bits = 32 if client.version == 4 else 128
        self.ip = int(client)
        self.qtype = "A" if client.version == 4 else "AAAA"
        local, at, sender_domain = sender.rpartition("@")
        if not at:
            sender_domain = sender
        self.local = local or "postmaster"  # 4.3
        self.sender_domain = sender_domain
        self.helo = helo or "unknown"
        #: A macro was expanded: the outcome may depend on the sender, not the answers alone.
        self.tainted = False

    # -- the function itself ------------------------------------------------------------------

    def check(self, domain: str, *, want_exp: bool, via: str | None) -> tuple[str, str]:
        """pass/fail/softfail/neutral/none, or raise _Stop for permerror/temperror."""
        name = domain[:-1] if domain.endswith(".") else domain
        if not name or name.endswith(".") or "." not in name or not valid_qname(name):
            return NONE, f"{domain!r} is not a valid multi-label domain name {_rfc('4.3')}"
        name = name.lower()
        found = self.select_record(name, via)
        if found is None:
            return NONE, f"{name} has no SPF record {_rfc('4.5')}"
        rec = parse_record(found[0])
        if rec.errors:
            raise _Stop(PERMERROR, [f"{name}: {e}" for e in rec.errors])
        self.stack.append(name)
        try:
            for mech in rec.mechanisms:
                if self.matches(mech, name):
                    if mech.result == FAIL:
                        return FAIL, self.explain(
                            rec, name
                        ) if want_exp else self.default_explanation(name)
                    return mech.result, f"{name}: '{mech.text}' matched"
            if rec.effective_redirect is not None:
                return self.redirect(rec.effective_redirect, name, want_exp)
            return NEUTRAL, f"{name}: no mechanism matched {_rfc('4.7')}"
        finally:
            self.stack.pop()

    def redirect(self, mod: Modifier, domain: str, want_exp: bool) -> tuple[str, str]:
        self.count_term(mod.text)
        target = self.target(mod.macro, domain)
        if target is None:
            raise _Stop(PERMERROR, f"'{mod.text}': target is not a valid domain name {_rfc('6.1')}")
        self.check_loop(mod.text, target)
        result, reason = self.check(target, want_exp=want_exp, via=mod.text)
        if result == NONE:
            raise _Stop(PERMERROR, f"'{mod.text}': {reason} {_rfc('6.1')}")
        return result, reason

    def matches(self, mech: Mechanism, domain: str) -> bool:
        kind = mech.name
        if kind == "all":
            return True
        if kind in ("ip4", "ip6"):
            want = 4 if kind == "ip4" else 6
            prefix = mech.cidr4 if kind == "ip4" else mech.cidr6
            return (
                self.version == want
                and mech.network is not None
                and self.same_prefix(mech.network, prefix)
            )
        self.count_term(mech.text)
        target = self.target(mech.macro, domain) if mech.macro is not None else domain
        if target is None:
            raise _Stop(
                PERMERROR, f"'{mech.text}': target is not a valid domain name {_rfc('4.8')}"
            )
        if kind == "include":
            return self.include(mech, target)
        if kind == "a":
            return self.any_address(self.term_records(target, self.qtype), mech)
        if kind == "mx":
            return self.mx(mech, target)
        if kind == "ptr":
            return any(
                n == target or n.endswith("." + target)
                for n in self.validated_names(count_voids=True)
            )
        return bool(self.term_records(target, "A"))  # exists: always A (5.7)

    def include(self, mech: Mechanism, target: str) -> bool:
        """5.2: pass matches; fail/softfail/neutral do not; none is permerror; errors propagate."""
        self.check_loop(mech.text, target)
        result, reason = self.check(target, want_exp=False, via=mech.text)
        if result == NONE:
            raise _Stop(PERMERROR, f"'{mech.text}': {reason} {_rfc('5.2')}")
        return result == PASS

    def mx(self, mech: Mechanism, target: str) -> bool:
        hosts = _mx_hosts(self.term_records(target, "MX"))
        if len(hosts) > MAX_MX_NAMES:
            raise _Stop(
                PERMERROR,
                f"'{mech.text}': {target} has {len(hosts)} MX names, over {MAX_MX_NAMES} {_rfc('4.6.4')}",
            )
        for host in hosts:  # no implicit MX (5.4); a malformed exchange is skipped
            if valid_qname(host) and self.any_address(self.term_records(host, self.qtype), mech):
                return True
        return False

    # -- addresses ----------------------------------------------------------------------------

    def same_prefix(self, other: int, prefix: int) -> bool:
        return (self.ip ^ other) >> (self.bits - prefix) == 0

    def any_address(self, rdatas: list[str], mech: Mechanism) -> bool:
        prefix = mech.cidr4 if self.version == 4 else mech.cidr6
        for r in rdatas:
            parsed = _address_int(r)
            if (
                parsed is not None
                and parsed[0] == self.version
                and self.same_prefix(parsed[1], prefix)
            ):
                return True
        return False

    def reverse_name(self) -> str:
        if self.version == 4:
            return ".".join(reversed(str(self.client).split("."))) + ".in-addr.arpa"
        return ".".join(reversed(self.client.exploded.replace(":", ""))) + ".ip6.arpa"

    def validated_names(self, *, count_voids: bool) -> list[str]:
        """Validated domain names of the client (5.5), first 10 PTR names only (4.6.4).

        A PTR lookup error gives no names; an address lookup error skips that name.
        """
        rev = self.reverse_name()
        ans = self.read(rev, "PTR")
        if ans.rcode == MISSING:
            raise _Stop(TEMPERROR, f"{rev} PTR not collected yet", incomplete=True)
        if ans.failed:
            return []
        names = [normalize_name(n) for n in ans.rdata("PTR")]
        if not names and count_voids:
            self.count_void(rev, "PTR")
        validated = []
        for host in names[:MAX_PTR_NAMES]:
            if not valid_qname(host):
                continue
            addrs = self.read(host, self.qtype)
            if addrs.rcode == MISSING:
                raise _Stop(TEMPERROR, f"{host} {self.qtype} not collected yet", incomplete=True)
            if any(_address_int(r) == (self.version, self.ip) for r in addrs.rdata(self.qtype)):
                validated.append(host)
        return validated

    # -- macros (7) ---------------------------------------------------------------------------

    def target(self, macro: _MacroString | None, domain: str) -> str | None:
        """The expanded target name, None when it is not a valid DNS name (4.8, 7.3)."""
        return _target_name(self.expand(macro.tokens, domain) if macro is not None else domain)

    def expand(self, tokens: MacroTokens, domain: str) -> str:
        out = []
        for tok in tokens:
            if isinstance(tok, str):
                out.append(tok)
                continue
            self.tainted = True
            value = _transform(self.macro_value(tok.letter, domain), tok)
            out.append(quote(value, safe="") if tok.url_escape else value)
        return "".join(out)

    def macro_value(self, letter: str, domain: str) -> str:
        if letter == "s":
            return f"{self.local}@{self.sender_domain}"
        if letter == "l":
            return self.local
        if letter == "o":
            return self.sender_domain
        if letter == "d":
            return raw_name(domain)  # (a name in presentation form: its labels' text)
        if letter == "i":
            if self.version == 4:
                return str(self.client)
            return ".".join(self.client.exploded.replace(":", ""))
        if letter == "p":
            return raw_name(self.validated_domain(domain))
        if letter == "v":
            return "in-addr" if self.version == 4 else "ip6"
        if letter == "h":
            return self.helo
        if letter == "c":
            return str(self.client)
        if letter == "t":
            return str(int(time.time()))
        return "unknown"  # r: the checking host's name is not ours to give (7.2)

    def validated_domain(self, domain: str) -> str:
        """%{p}: the domain itself, else a subdomain, else any validated name (7.2)."""
        names = self.validated_names(count_voids=False)
        if domain in names:
            return domain
        sub = next((n for n in names if n.endswith("." + domain)), None)
        return sub or (names[0] if names else "unknown")

    # -- explanation (6.2) --------------------------------------------------------------------

    def default_explanation(self, domain: str) -> str:
        return f"{domain} does not designate {self.client} as permitted sender"

    def explain(self, rec: SpfRecord, domain: str) -> str:
        """The exp= text, or the default when it is absent or unusable (6.2); never counted."""
        mod = rec.exp
        if mod is None or mod.macro is None:
            return self.default_explanation(domain)
        try:
            target = self.target(mod.macro, domain)
            if target is None:
                return self.default_explanation(domain)
            ans = self.read(target, "TXT")
            texts = ans.txt() if ans.rcode == NOERROR else []
            if len(texts) != 1:
                return self.default_explanation(domain)
            ms = _parse_macro_string(texts[0], True)
            if ms.error:
                return self.default_explanation(domain)
            return self.expand(ms.tokens, domain)
        except _Stop:  # %{p} answers still missing: the key is recorded, result stays fail
            return self.default_explanation(domain)


@lru_cache(maxsize=256)
def _splitter(delimiters: str) -> re.Pattern[str]:
    return re.compile("[" + re.escape(delimiters or ".") + "]")


def _transform(value: str, macro: Macro) -> str:
    """Split on the delimiters, optionally reverse, keep the rightmost N, join with '.' (7.3)."""
    if not macro.delimiters and not macro.reverse and not macro.keep:
        return value
    parts = _splitter(macro.delimiters).split(value)
    if macro.reverse:
        parts.reverse()
    if macro.keep and macro.keep < len(parts):
        parts = parts[-macro.keep :]
    return ".".join(parts)
