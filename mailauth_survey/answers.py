"""The stored DNS answers every verdict is computed from.

The scanner collects; analysis reads. An :class:`Answer` is one query's outcome as the records
table keeps it: the response code (or ``TIMEOUT``) and the answer section in presentation format,
CNAME chain included. An :class:`AnswerSet` is what one domain's analysis may look at. Asking it
for an answer it does not hold returns a ``MISSING`` answer and notes the need, so the analysis
functions double as the collection plan: the collector runs them, fetches what they missed, and
runs them again until nothing is missing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache, wraps
from typing import TypeVar

# Response codes as stored (upper case, as SPEC.md asks). TIMEOUT: no usable reply after all
# retries. ERROR: the query could not be made or every reply was junk. MISSING: never collected
# (only seen inside analysis; never stored).
NOERROR = "NOERROR"
NXDOMAIN = "NXDOMAIN"
SERVFAIL = "SERVFAIL"
REFUSED = "REFUSED"
TIMEOUT = "TIMEOUT"
ERROR = "ERROR"
MISSING = "MISSING"

#: rcodes that say something definite about the name; everything else is a temporary failure
#: that must never be read as "no record".
DEFINITE = frozenset({NOERROR, NXDOMAIN})


_T = TypeVar("_T")

#: Texts longer than this are parsed each time: a zone controls its TXT sizes, and a cache of
#: hostile 64 KB records would hold far more memory than ordinary ones.
CACHE_MAX_CHARS = 2048


def text_cache(fn: Callable[[str], _T]) -> Callable[[str], _T]:
    """Cache a pure function of one record text (4096 texts of ordinary size).

    For parsers whose results the analysis only reads: a provider's record recurs across
    domains, and the analysis reads each domain's records once per collection round.
    """
    cached = lru_cache(maxsize=4096)(fn)

    @wraps(fn)
    def call(text: str) -> _T:
        return cached(text) if len(text) <= CACHE_MAX_CHARS else fn(text)

    return call


def normalize_name(name: str) -> str:
    """Lower-case, no trailing dot: the one spelling of a name used everywhere."""
    return name.rstrip(".").lower()


@dataclass(slots=True, unsafe_hash=True)
class Answer:
    """One query's outcome. ``records`` are full RRs: ``owner. TTL CLASS TYPE rdata``.

    Treated as immutable (and hashable by value) but not ``frozen``: a frozen dataclass costs
    several times as much to create, and the scanner creates one per query. The rdata lists
    it returns are shared by every caller: read them, do not change them.
    """

    qname: str
    qtype: str
    rcode: str
    records: tuple[str, ...] = ()
    ad: bool = False
    #: rdata by upper-case type, split once: analysis asks the same answer 10-20 times, and a
    #: provider's answer (cached by the scan) for thousands of domains.
    _by_type: dict[str, list] | None = field(
        default=None, init=False, repr=False, compare=False, hash=False
    )

    @property
    def ok(self) -> bool:
        """The server answered definitely (NOERROR or NXDOMAIN)."""
        return self.rcode in DEFINITE

    @property
    def failed(self) -> bool:
        """A temporary failure (SERVFAIL, REFUSED, TIMEOUT, ERROR, MISSING, ...)."""
        return self.rcode not in DEFINITE

    @property
    def nxdomain(self) -> bool:
        return self.rcode == NXDOMAIN

    def rdata(self, rtype: str | None = None) -> list[str]:
        """Rdata texts of the records of ``rtype`` (default: the query type), in answer order.

        Records of any owner count, so a CNAME chain's final RRset is returned.
        """
        return self._split().get((rtype or self.qtype).upper(), _NONE)

    @property
    def nodata(self) -> bool:
        """NOERROR with no record of the query type (the name exists, the type does not)."""
        return self.rcode == NOERROR and not self.rdata()

    def cname_target(self) -> str | None:
        """The end of the CNAME chain in this answer, when the chain does not reach data."""
        targets = self.rdata("CNAME")
        if not targets or self.rdata():
            return None
        return normalize_name(targets[-1])

    def txt(self) -> list[str]:
        """Each TXT record's strings joined with no separator (RFC 7208 3.3), as text.

        Bytes that are not UTF-8 become U+FFFD, so a record with them is visibly non-ASCII.
        """
        return self.derived("txt", _joined_txt)

    def txt_strings(self) -> list[tuple[bytes, ...]]:
        """Each TXT record's character-strings as raw bytes, unjoined."""
        return self.derived("txt strings", _txt_strings)

    def derived(self, key: str, make: Callable[[Answer], _T]) -> _T:
        """A value computed from this answer alone, once (``key``: lower case, one per use).

        For parsers' views of an answer that the analysis reads in every collection round:
        kept with the answer itself, so it goes when the answer goes.
        """
        by_type = self._split()
        found = by_type.get(key, _NONE)
        if found is _NONE:
            found = by_type[key] = make(self)  # type: ignore[assignment]
        return found  # type: ignore[return-value]

    def _split(self) -> dict[str, list]:
        """The records by upper-case type (and, under lower-case keys, derived forms)."""
        by_type = self._by_type
        if by_type is None:
            by_type = self._by_type = _split_records(self.records)
        return by_type


_NONE: list = []


def _txt_strings(answer: Answer) -> list[tuple[bytes, ...]]:
    return [parse_txt_rdata(r) for r in answer.rdata("TXT")]


def _joined_txt(answer: Answer) -> list[str]:
    return [b"".join(s).decode("utf-8", "replace") for s in answer.txt_strings()]


def _split_records(records: tuple[str, ...]) -> dict[str, list]:
    by_type: dict[str, list] = {}
    for rr in records:
        parts = rr.split(None, 4)
        if len(parts) == 5:
            rtype = parts[3].upper()
            found = by_type.get(rtype)
            if found is None:
                by_type[rtype] = [parts[4]]
            else:
                found.append(parts[4])
    return by_type


class AnswerSet:
    """The answers one domain's analysis may read, keyed by (qname, qtype).

    ``get`` never raises: an answer that was not collected comes back as ``MISSING`` and its key
    is added to :attr:`missing`, which is the collector's list of what to ask next.

    ``fill`` (the collector's): asked for a key before it is noted missing; an answer it returns
    is added and read at once. The scan hands over the answers its cache already holds for names
    other domains share (a provider's SPF include, ``_dmarc.co.jp``), so the analysis goes on
    in the same round instead of waiting a round for an answer that needs no query.
    """

    __slots__ = ("_answers", "missing", "misses", "exists", "fill")

    def __init__(self, answers: Iterable[Answer] = ()) -> None:
        self._answers: dict[tuple[str, str], Answer] = {}
        self.missing: set[tuple[str, str]] = set()
        #: How many times ``get`` found nothing: a function that ran without raising it read
        #: only answers that are in, so its result can no longer change.
        self.misses = 0
        #: domain_exists verdicts made from complete apex answers (they cannot change).
        self.exists: dict[str, bool | None] = {}
        self.fill: Callable[[tuple[str, str]], Answer | None] | None = None
        for a in answers:
            self.add(a)

    def add(self, answer: Answer) -> None:
        self._answers[(normalize_name(answer.qname), answer.qtype.upper())] = answer

    def add_normalized(self, answer: Answer) -> None:
        """:meth:`add` for an answer whose qname and qtype are already in normal form (the
        resolver's: it asks only normalized names), without normalizing them again."""
        self._answers[(answer.qname, answer.qtype)] = answer

    def get(self, qname: str, qtype: str) -> Answer:
        found = self._answers.get((qname, qtype))  # fast path: already normalized
        if found is not None:
            return found
        key = (normalize_name(qname), qtype.upper())
        found = self._answers.get(key)
        if found is None and self.fill is not None:
            found = self.fill(key)
            if found is not None:
                self._answers[key] = found
        if found is None:
            self.misses += 1
            self.missing.add(key)
            return Answer(key[0], key[1], MISSING)
        return found

    def has(self, qname: str, qtype: str) -> bool:
        return (normalize_name(qname), qtype.upper()) in self._answers

    def __iter__(self) -> Iterator[Answer]:
        return iter(self._answers.values())

    def __len__(self) -> int:
        return len(self._answers)


_TXT_FAST = re.compile(r'"([^"]*)"?|([^\s"]+)')


def parse_txt_rdata(text: str) -> tuple[bytes, ...]:
    """Split TXT rdata in presentation format into its character-strings.

    Handles quoted strings with ``\\"``, ``\\\\`` and ``\\DDD`` escapes and bare words. Never
    raises: malformed input yields what could be read.
    """
    if "\\" not in text:
        # Fast path (almost every record): no escapes, so strings are plain quoted runs.
        return tuple((q if q or not w else w).encode("utf-8") for q, w in _TXT_FAST.findall(text))
    out: list[bytes] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t":
            i += 1
            continue
        buf = bytearray()
        quoted = c == '"'
        if quoted:
            i += 1
        while i < n:
            c = text[i]
            if quoted and c == '"':
                i += 1
                break
            if not quoted and c in " \t":
                break
            if c == "\\" and i + 1 < n:
                nxt = text[i + 1 : i + 4]
                if len(nxt) == 3 and nxt.isdigit():
                    buf.append(min(int(nxt), 255))
                    i += 4
                    continue
                buf += text[i + 1].encode("utf-8")
                i += 2
                continue
            buf += c.encode("utf-8")
            i += 1
        out.append(bytes(buf))
    return tuple(out)



def domain_exists(domain: str, dns: AnswerSet) -> bool | None:
    """Whether ``domain`` exists, from the apex queries every scan makes (MX, TXT, NS).

    True when any answers NOERROR, False when they say NXDOMAIN (RFC 8020: then nothing below it
    exists either, so analysis asks nothing more below it), None when none gave a definite answer
    (a timeout or SERVFAIL is never read as non-existence).
    """
    known = dns.exists.get(domain, MISSING)
    if known is not MISSING:
        return known
    before = dns.misses
    rcodes = [dns.get(domain, t).rcode for t in APEX_QTYPES]
    verdict = True if NOERROR in rcodes else False if NXDOMAIN in rcodes else None
    if dns.misses == before:
        dns.exists[domain] = verdict
    return verdict


#: What every scan asks at the apex before anything else.
APEX_QTYPES = ("MX", "TXT", "NS")


def valid_qname(name: str) -> bool:
    """A name that can be put in a query and matched in the reply, in presentation form.

    RFC 1035 2.3.4 and RFC 2181 11: a label is any 1-63 octets and a name at most 255 octets in
    wire form (253 characters of plain text without the final dot). Host-name rules (LDH) do
    not apply: a name built by an SPF macro or read from a record may hold ``%``, spaces or any
    other octet. Those are written as RFC 1035 5.1 escapes (``\\032``, ``\\@``), exactly as the
    wire parser renders them (:func:`presentation_name`), so the reply's name matches the one
    asked; a name holding such a character unescaped, or non-ASCII text, is not valid.

    Cached: analysis asks it of the same names in every collection round, and the resolver once
    more. A dict emptied when full, not an LRU: a fifth of the calls are a name's first, and
    an LRU's miss (evicting the oldest) cost more than the check itself.
    """
    found = _VALID_QNAMES.get(name)
    if found is None:
        found = _valid_qname(name)
        if len(_VALID_QNAMES) >= VALID_QNAMES_CACHED:
            _VALID_QNAMES.clear()
        _VALID_QNAMES[name] = found
    return found


#: How many names :func:`valid_qname` keeps.
VALID_QNAMES_CACHED = 1 << 14
_VALID_QNAMES: dict[str, bool] = {}


def _valid_qname(name: str) -> bool:
    if "\\" in name:
        return _valid_escaped_qname(name)
    name = name[:-1] if name[-1:] == "." else name
    return 0 < len(name) <= 253 and _LABELS_OK.match(name) is not None


def _valid_escaped_qname(name: str) -> bool:
    """:func:`_valid_qname` for a name with escapes (rare): dnspython reads them and enforces
    the lengths; the name must be written as the wire parser would write it."""
    import dns.exception
    import dns.name

    if not name.isascii():
        return False
    try:
        parsed = dns.name.from_text(name)
    except (dns.exception.DNSException, ValueError):
        return False
    text = name[:-1] if name.endswith(".") and not name.endswith("\\.") else name
    return len(parsed.labels) > 1 and parsed.to_text(omit_final_dot=True).lower() == text.lower()


#: Octets a label shows as themselves in presentation form: printable ASCII except the
#: characters special in master files (RFC 1035 5.1). Space and everything else is ``\\DDD``,
#: the specials ``\\X``, as dnspython writes them (``dns.name``); the wire parser renders names
#: with the same table.
NAME_SPECIAL = b'"().;\\@$'
NAME_UNSAFE = re.compile(rb"[^!#%&'*-:<-?A-\[\]-~]")  # '.' passes: it separates labels
NAME_ESCAPES = {
    b: ("\\" + chr(b) if b in NAME_SPECIAL else f"\\{b:03d}")
    for b in range(256)
    if b in NAME_SPECIAL or not 0x20 < b < 0x7F
}


def presentation_name(raw: str) -> str:
    """The presentation form of a name given as its labels' text joined by dots.

    For names built from text (an SPF macro's expansion, RFC 7208 7.3): each label's octets
    (UTF-8; ``surrogateescape`` keeps octets read by :func:`raw_name`) are kept as they are and
    written with escapes where needed, e.g. ``a b.jp`` → ``a\\032b.jp``.
    """
    octets = raw.encode("utf-8", "surrogateescape")
    if NAME_UNSAFE.search(octets) is None:
        return raw
    return ".".join(label.decode("latin-1").translate(NAME_ESCAPES) for label in octets.split(b"."))


def raw_name(name: str) -> str:
    """The labels' text of a name in presentation form, joined by dots (the inverse of
    :func:`presentation_name`): what an SPF macro inserts for ``%{d}`` or ``%{p}``."""
    if "\\" not in name:
        return name
    import dns.exception
    import dns.name

    try:
        labels = dns.name.from_text(name).labels
    except (dns.exception.DNSException, ValueError):
        return name
    return ".".join(lb.decode("utf-8", "surrogateescape") for lb in labels if lb)


def txt_query(prefix: str, name: str) -> tuple[tuple[str, str], ...]:
    """``((prefix.name, "TXT"),)``, or nothing when that name cannot be asked.

    What a policy module that reads one TXT record under the domain asks first: its
    ``first_queries``.
    """
    qname = f"{prefix}.{name}"
    return ((qname, "TXT"),) if valid_qname(qname) else ()


# One to 63 characters a label shows as themselves (NAME_UNSAFE's complement, less the dot;
# a negated class: the fastest form of this check, which runs on every name a scan asks).
_LABEL = r'[^.\x00-\x20"$();@\\\x7f-\U0010ffff]{1,63}'
_LABELS_OK = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\Z")
