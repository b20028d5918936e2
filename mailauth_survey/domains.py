"""Domain lists in, normalized names with their .jp registration category out.

Lists are plain text (one name a line, ``#`` comments), CSV with a ``domain`` column, or Tranco
style ``rank,domain`` files. Every name is stripped, lower-cased, stripped of its trailing dot and
converted to A-labels (IDNA 2008 with UTS 46 mapping). A bad line never stops the read: it is
reported with its file and line number and skipped.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import importlib.metadata
import io
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import idna
from publicsuffixlist import PublicSuffixList

if TYPE_CHECKING:
    import pyarrow as pa

#: The fixed order of categories (reports and pandas Categoricals use it).
CATEGORIES = (
    "co", "or", "ne", "ac", "ad", "ed", "go", "gr", "lg",
    "general", "prefecture", "geographic", "other",
)  # fmt: skip

ATTRIBUTE_TYPES = frozenset(CATEGORIES[:9])

PREFECTURES = frozenset(
    [
        "hokkaido",
        "aomori",
        "iwate",
        "miyagi",
        "akita",
        "yamagata",
        "fukushima",
        "ibaraki",
        "tochigi",
        "gunma",
        "saitama",
        "chiba",
        "tokyo",
        "kanagawa",
        "niigata",
        "toyama",
        "ishikawa",
        "fukui",
        "yamanashi",
        "nagano",
        "gifu",
        "shizuoka",
        "aichi",
        "mie",
        "shiga",
        "kyoto",
        "osaka",
        "hyogo",
        "nara",
        "wakayama",
        "tottori",
        "shimane",
        "okayama",
        "hiroshima",
        "yamaguchi",
        "tokushima",
        "kagawa",
        "ehime",
        "kochi",
        "fukuoka",
        "saga",
        "nagasaki",
        "kumamoto",
        "oita",
        "miyazaki",
        "kagoshima",
        "okinawa",
    ]
)
# The 47 prefectures' Japanese names, which the PSL also lists as suffixes under jp.
PREFECTURES_JA = frozenset(
    [
        "北海道",
        "青森",
        "岩手",
        "宮城",
        "秋田",
        "山形",
        "福島",
        "茨城",
        "栃木",
        "群馬",
        "埼玉",
        "千葉",
        "東京",
        "神奈川",
        "新潟",
        "富山",
        "石川",
        "福井",
        "山梨",
        "長野",
        "岐阜",
        "静岡",
        "愛知",
        "三重",
        "滋賀",
        "京都",
        "大阪",
        "兵庫",
        "奈良",
        "和歌山",
        "鳥取",
        "島根",
        "岡山",
        "広島",
        "山口",
        "徳島",
        "香川",
        "愛媛",
        "高知",
        "福岡",
        "佐賀",
        "長崎",
        "熊本",
        "大分",
        "宮崎",
        "鹿児島",
        "沖縄",
    ]
)


@lru_cache(maxsize=1)
def psl() -> PublicSuffixList:
    """The ICANN section of the bundled Public Suffix List (private entries are not registries)."""
    return PublicSuffixList(only_icann=True)


def psl_version() -> str:
    """Version of the bundled list (the package version carries the list's date)."""
    return "publicsuffixlist " + importlib.metadata.version("publicsuffixlist")


@lru_cache(maxsize=16384)
def public_suffix(name: str) -> str | None:
    return psl().publicsuffix(name)


@lru_cache(maxsize=16384)
def registrable_domain(name: str) -> str | None:
    """The organizational (registrable) domain by the PSL, or None for a public suffix itself.

    The public suffix plus one label, as the PSL's own ``privatesuffix`` gives it, but through
    :func:`public_suffix`'s cache: a scanned domain's suffix is already known from its category,
    and a lookup in the list costs more than the cache.
    """
    name = name.rstrip(".").lower()
    suffix = public_suffix(name)
    if suffix is None:
        return None
    labels = name.split(".")
    size = suffix.count(".") + 2
    return ".".join(labels[-size:]) if len(labels) >= size else None


def category(domain: str) -> str:
    """The .jp registration type of an A-label domain, from its public suffix (SPEC.md)."""
    suffix = public_suffix(domain) or ""
    labels = suffix.split(".")
    if labels[-1] != "jp":
        return "other"
    if len(labels) == 1:
        return "general"
    if len(labels) == 2:
        first = labels[0]
        if first in ATTRIBUTE_TYPES:
            return first
        if first in PREFECTURES:
            return "prefecture"
        if first.startswith("xn--"):
            try:
                if idna.decode(first) in PREFECTURES_JA:
                    return "prefecture"
            except idna.IDNAError:
                pass
    return "geographic"


@dataclass(frozen=True, slots=True)
class DomainName:
    """A normalized name from a list (its A-labels; the rest is derived when asked)."""

    domain: str  # A-labels

    @property
    def unicode(self) -> str:
        """U-labels."""
        return to_unicode(self.domain)

    @property
    def category(self) -> str:
        return category(self.domain)


class BadName(ValueError):
    """A line that is not a usable domain name; the message says why."""


def normalize(raw: str) -> DomainName:
    """Normalize one name (strip, lower-case, trailing dot, UTS 46 → A-labels)."""
    name = raw.strip().strip("\ufeff").rstrip(".").strip()
    if not name:
        raise BadName("empty name")
    if len(name.split(maxsplit=1)) > 1:  # (str.split cuts at exactly what isspace() is)
        raise BadName(f"{shown(raw.strip())} contains white space")
    alabel = name.lower()
    if not (alabel.isascii() and _PLAIN_LDH.match(alabel) and "--" not in alabel):
        try:
            alabel = idna.encode(name, uts46=True, transitional=False).decode("ascii").lower()
        except (idna.IDNAError, UnicodeError) as exc:
            raise BadName(
                f"{shown(raw.strip())} is not a valid domain name ({str(exc)[:SHOWN_CHARS]})"
            ) from None
    if "." not in alabel:
        raise BadName(f"{shown(raw.strip())} has a single label; a domain under a TLD is expected")
    if len(alabel) > 253:
        raise BadName(f"{shown(raw.strip())} is longer than 253 characters")
    return DomainName(alabel)


#: Lower-case letter-digit-hyphen labels of 1-63 characters, no hyphen at either end: names
#: that UTS 46 and IDNA 2008 leave as they are. With no "--" anywhere (so no A-label to check
#: and no reserved hyphens, RFC 5891 4.2.3.1) such a name skips idna, which costs ~20 µs a name.
_PLAIN_LDH = re.compile(
    r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\Z"
)


@lru_cache(maxsize=4096)
def to_unicode(alabel: str) -> str:
    """U-label form of an A-label name; the A-label itself where it does not decode."""
    if "xn--" not in alabel:
        return alabel  # nothing to decode (and idna's label checks are costly)
    try:
        return idna.decode(alabel)
    except (idna.IDNAError, UnicodeError):
        return alabel


ErrorSink = Callable[[str], None]


def _split_csv(line: str) -> list[str]:
    return next(csv.reader(io.StringIO(line)), [])


class NotText(ValueError):
    """A list that is not UTF-8 text (a binary file, UTF-16, another encoding): refused whole."""


#: How much of a list is read to tell text from a binary file before anything else is done.
SNIFF_BYTES = 1 << 16
#: Lines that are not UTF-8 tolerated in a list before it is refused as not text.
MAX_UNDECODABLE_LINES = 3
#: Characters of a bad line shown in its message.
SHOWN_CHARS = 60


def shown(text: str) -> str:
    """A bad line as it may be printed: quoted, control characters escaped, cut short."""
    if len(text) > SHOWN_CHARS:
        return repr(text[:SHOWN_CHARS]) + "..."
    return repr(text)


def check_text(path: str | Path) -> None:
    """Raise :class:`NotText` when the start of ``path`` is not UTF-8 text (NUL bytes, bad bytes).

    Reads at most SNIFF_BYTES: the scan checks every list this way before it touches anything,
    and :func:`read_list` keeps checking as it reads the rest.
    """
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
        at_end = not fh.read(1)
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise NotText(f"{path}: UTF-16 text; expected a domain list in UTF-8 (save it as UTF-8)")
    if b"\x00" in head:
        raise NotText(f"{path}: not a text file (NUL bytes); expected a domain list in UTF-8")
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    text = decoder.decode(head, final=at_end)  # (a character cut at SNIFF_BYTES is not an error)
    bad = sum(1 for line in text.splitlines() if "\ufffd" in line)
    if bad > MAX_UNDECODABLE_LINES or (bad and bad == len(text.splitlines())):
        raise NotText(
            f"{path}: not UTF-8 text ({bad} lines with invalid bytes); expected a domain list in UTF-8"
        )


def read_list(path: str | Path, on_error: ErrorSink) -> Iterator[tuple[int, DomainName]]:
    """Yield (line number, name) for every good line of one list; report every bad line.

    The format is found from the first line that is not blank or a comment: a CSV header with a
    ``domain`` column, ``rank,domain`` rows, or plain names. A file that turns out not to be
    text (NUL bytes, more than MAX_UNDECODABLE_LINES lines that are not UTF-8) raises
    :class:`NotText`; bad lines are shown escaped and cut (:func:`shown`).
    """
    column: int | None = None  # None: plain names
    fmt: str | None = None
    undecodable = 0
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
        for lineno, line in enumerate(fh, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            if "\x00" in text:
                raise NotText(f"{path}:{lineno}: NUL bytes; expected a domain list in UTF-8 text")
            if "\ufffd" in text:
                undecodable += 1
                if undecodable > MAX_UNDECODABLE_LINES:
                    raise NotText(
                        f"{path}: not UTF-8 text (more than {MAX_UNDECODABLE_LINES} lines with "
                        "invalid bytes); expected a domain list in UTF-8"
                    )
                on_error(f"{path}:{lineno}: not UTF-8: {shown(text)}")
                continue
            if fmt is None:
                fmt, column = _detect(text)
                if fmt == "csv-header":
                    continue
            if column is not None:
                fields = _split_csv(text)
                if len(fields) <= column:
                    on_error(
                        f"{path}:{lineno}: expected a domain in column {column + 1}: {shown(text)}"
                    )
                    continue
                if fmt == "rank" and not fields[0].strip().isdigit():
                    on_error(f"{path}:{lineno}: expected 'rank,domain': {shown(text)}")
                    continue
                candidate = fields[column]
            else:
                candidate = text.split("#", 1)[0]
            try:
                yield lineno, normalize(candidate)
            except BadName as exc:
                on_error(f"{path}:{lineno}: {exc}")


def _detect(first: str) -> tuple[str, int | None]:
    if "," not in first:
        # A one-column CSV: its header is the domain column alone (never a name: one label).
        if [f.strip().lower() for f in _split_csv(first)] == ["domain"]:
            return "csv-header", 0
        return "plain", None
    fields = [f.strip().lower() for f in _split_csv(first)]
    if "domain" in fields:
        return "csv-header", fields.index("domain")
    if len(fields) >= 2 and fields[0].isdigit():
        return "rank", 1
    return "csv-noheader", 0


#: Names the lists table gives itself (``snapshot`` is the hive partition key): a CSV column of
#: one of these names is kept with a trailing ``_``.
LIST_RESERVED = ("domain", "list", "snapshot")
#: Between the values of an attribute when rows of one list that share a domain disagree: the
#: reader takes a CSV row from one line, so a value never holds a line break.
VALUE_SEPARATOR = "\n"


def attribute_name(header: str, index: int) -> str:
    """A CSV header cell as a lists-table column name: stripped, lower case, spaces as ``_``."""
    name = "_".join(header.strip().lower().split()) or f"column_{index + 1}"
    return f"{name}_" if name in LIST_RESERVED else name


def list_attributes(path: str | Path) -> pa.Table | None:
    """What a CSV list with a header says about its domains besides the name, as read.

    One row per good line: ``domain`` (normalized) and the other columns named by
    :func:`attribute_name`, as strings (empty: null). None for plain and ``rank,domain`` lists,
    which have no header to name columns by. Bad lines are skipped silently (:func:`read_list`
    reports them during the scan's own read). Read a chunk at a time into Arrow: a CSV of the
    whole .jp space stays a few hundred megabytes in Arrow, not gigabytes of Python strings.
    """
    import pyarrow as pa

    with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
        lines = (line for line in fh if line.strip() and not line.lstrip().startswith("#"))
        first = next(lines, None)
        if first is None or _detect(first.strip())[0] != "csv-header":
            return None
        header = _split_csv(first.strip())
        index = [h.strip().lower() for h in header].index("domain")
        fields = _unique([attribute_name(h, i) for i, h in enumerate(header)])
        names = ["domain", *(f for i, f in enumerate(fields) if i != index)]
        others = [i for i in range(len(fields)) if i != index]
        batches = []
        columns: list[list[str | None]] = [[] for _ in names]
        for row in csv.reader(line.strip() for line in lines):
            if len(row) <= index:
                continue
            try:
                columns[0].append(normalize(row[index]).domain)
            except BadName:
                continue
            for k, i in enumerate(others, 1):
                value = row[i].strip() if i < len(row) else ""
                columns[k].append(value or None)
            if len(columns[0]) >= _CHUNK_ROWS:
                batches.append(pa.record_batch([pa.array(c, pa.string()) for c in columns], names))
                columns = [[] for _ in names]
        batches.append(pa.record_batch([pa.array(c, pa.string()) for c in columns], names))
    return pa.Table.from_batches(batches)


#: Rows of a CSV list turned into Arrow at a time.
_CHUNK_ROWS = 65536


def _unique(names: list[str]) -> list[str]:
    """Column names made distinct (a repeated header gets ``_2``, ``_3``...)."""
    seen: set[str] = set()
    out = []
    for name in names:
        candidate, n = name, 1
        while candidate in seen:
            n += 1
            candidate = f"{name}_{n}"
        seen.add(candidate)
        out.append(candidate)
    return out


def lists_table(paths: Iterable[str | Path]) -> pa.Table:
    """The lists table of a scan (SPEC.md): one row per (domain, list) of every CSV list.

    ``domain``, ``list`` (the file's name), then every other column of the lists, as strings,
    null where a list has no such column or no value. Rows of one list that share a domain
    make one row, whose values are the distinct values joined by :data:`VALUE_SEPARATOR`.
    """
    import pyarrow as pa  # here: reading names must not cost pyarrow's import

    tables = []
    for path in paths:
        table = list_attributes(path)
        if table is not None:
            table = _one_row_per_domain(table)
            name = pa.repeat(pa.scalar(Path(path).name, pa.string()), table.num_rows)
            tables.append(table.add_column(1, "list", name))
    if not tables:
        return pa.table({"domain": pa.array([], pa.string()), "list": pa.array([], pa.string())})
    return pa.concat_tables(tables, promote_options="default")


def _one_row_per_domain(table: pa.Table) -> pa.Table:
    """Rows that share a domain merged into one (their distinct values joined), first-seen order."""
    import pyarrow as pa
    import pyarrow.compute as pc

    # Repeated names found by sorting (a hash table over a whole .jp list took twice the memory).
    domains = table["domain"]
    ordered = pc.take(domains, pc.sort_indices(domains))
    if len(ordered) < 2:
        return table
    same = pc.equal(ordered[1:], ordered[:-1])
    shared = pc.unique(pc.filter(ordered[1:], same))
    del ordered, same
    if not len(shared):
        return table
    repeated = pc.is_in(table["domain"], value_set=shared)
    merged: dict[str, list[list[str]]] = {}
    names = table.column_names[1:]
    for row in table.filter(repeated).to_pylist():
        values = merged.setdefault(row["domain"], [[] for _ in names])
        for k, name in enumerate(names):
            value = row[name]
            if value is not None and value not in values[k]:
                values[k].append(value)
    extra = pa.table(
        {
            "domain": pa.array(list(merged), pa.string()),
            **{
                name: pa.array(
                    [VALUE_SEPARATOR.join(v[k]) or None for v in merged.values()], pa.string()
                )
                for k, name in enumerate(names)
            },
        }
    )
    return pa.concat_tables([table.filter(pc.invert(repeated)), extra])



def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def name_hash(domain: str) -> int:
    """A stable 64-bit hash of a name: buckets (parts, shards) and the scan order come from it."""
    return int.from_bytes(hashlib.blake2b(domain.encode(), digest_size=8).digest(), "big")
