"""The spool: the domain lists written into hash buckets on this machine's disk.

Bucketing drops duplicates and shuffles the order (so no provider's name servers get a burst);
each bucket becomes one Parquet part of each table, and is the unit of work a resume redoes.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable
from pathlib import Path

from ..domains import name_hash, read_list

#: About this many input bytes per bucket (~2,000 names). MAILAUTH_SURVEY_BUCKET_BYTES overrides
#: it (tests make small buckets).
BUCKET_BYTES = int(os.environ.get("MAILAUTH_SURVEY_BUCKET_BYTES", "30000"))
MAX_BUCKETS = 8192


def bucket_count(paths: list[Path]) -> int:
    size = sum(p.stat().st_size for p in paths)
    return max(1, min(MAX_BUCKETS, math.ceil(size / BUCKET_BYTES)))


def part_name(bucket: int) -> str:
    """The name of the bucket's part in each table of the snapshot."""
    return f"part-{bucket:05d}.parquet"


def spool(
    paths: list[Path], work: Path, buckets: int, on_error: Callable[[str], None]
) -> tuple[int, int]:
    """Write each good name to its hash bucket file; return (names read, bad lines)."""
    work.mkdir(parents=True, exist_ok=True)
    bad = 0

    def count_bad(msg: str) -> None:
        nonlocal bad
        bad += 1
        on_error(msg)

    read = 0
    with contextlib.ExitStack() as stack:
        files = [
            stack.enter_context(open(work / f"bucket-{i:05d}.txt", "w", encoding="ascii"))
            for i in range(buckets)
        ]
        for path in paths:
            for _lineno, name in read_list(path, count_bad):
                files[name_hash(name.domain) % buckets].write(name.domain + "\n")
                read += 1
    return read, bad


def bucket_domains(work: Path, bucket: int) -> list[str]:
    """A bucket's names, duplicates dropped, in hash order (a stable shuffle)."""
    return sorted(_bucket_names(work, bucket), key=name_hash)


def bucket_size(work: Path, bucket: int) -> int:
    """How many names :func:`bucket_domains` gives (without hashing each to sort them)."""
    return len(_bucket_names(work, bucket))


def _bucket_names(work: Path, bucket: int) -> set[str]:
    return set((work / f"bucket-{bucket:05d}.txt").read_text(encoding="ascii").split())
