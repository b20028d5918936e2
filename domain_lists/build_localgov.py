"""Build domain_lists/localgov.csv, the panel of Japan's local governments, from localgovjp.

Usage (no network; the source folder holds prefjp-utf8.csv and localgovjp-utf8.csv of the
localgovjp open-data project, CC0)::

    python domain_lists/build_localgov.py PATH/TO/localgovjp [--out domain_lists/localgov.csv]

One row per prefecture, municipality and ward: ``domain`` (the organization's domain of its web
site, see :func:`site_domain`), ``prefecture`` (Japanese name, e.g. 東京都), ``prefecture_en``,
``jis_code`` (the five-digit JIS X 0402 code: the local-government code without its check digit;
``01000`` for a prefecture), ``name``, ``kind`` (prefecture / city / ward / town / village) and
``url`` (the web site the domain was taken from). Prefectures come first in each prefecture, then
its municipalities and wards in code order, so the file is the same for the same source.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere: the package is beside this folder
    sys.path.insert(0, str(ROOT))

from mailauth_survey.domains import normalize, public_suffix, registrable_domain  # noqa: E402

COLUMNS = ("domain", "prefecture", "prefecture_en", "jis_code", "name", "kind", "url")
KINDS = {"市": "city", "区": "ward", "町": "town", "村": "village"}
PREFECTURES_FILE = "prefjp-utf8.csv"
MUNICIPALITIES_FILE = "localgovjp-utf8.csv"


def site_domain(url: str) -> str:
    """The domain a local government's web site is under, the one the panel scans.

    The registrable domain by the Public Suffix List, except under lg.jp: the PSL lists only
    ``lg.jp``, while JPRS registers ``<type>.<place>.lg.jp`` (city.akita.lg.jp for Akita City,
    pref.akita.lg.jp for Akita Prefecture), so the PSL's ``akita.lg.jp`` would merge two
    governments under a name neither of them uses.
    """
    host = urlsplit(url.strip()).hostname
    if not host:
        raise ValueError(f"no host name in {url!r}")
    host = normalize(host).domain
    if public_suffix(host) == "lg.jp":
        labels = host.split(".")
        if len(labels) < 4:
            raise ValueError(f"{host}: an lg.jp name has a type and a place (city.X.lg.jp)")
        return ".".join(labels[-4:])
    domain = registrable_domain(host)
    if domain is None:
        raise ValueError(f"{host} is a public suffix")
    return domain


def kind_of(name: str) -> str:
    """city / ward / town / village from the last character of a municipality's name."""
    kind = KINDS.get(name.strip()[-1:])
    if kind is None:
        raise ValueError(f"{name!r}: expected a name ending in 市, 区, 町 or 村")
    return kind


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def rows(source: Path) -> Iterator[dict[str, str]]:
    """The panel's rows from the two source files, in file order (see the module docstring)."""
    prefectures = _read(source / PREFECTURES_FILE)
    municipalities = _read(source / MUNICIPALITIES_FILE)
    english = {p["pref"]: p["pref_en"] for p in prefectures}
    for p in sorted(prefectures, key=lambda p: int(p["pid"])):
        yield {
            "domain": site_domain(p["url"]),
            "prefecture": p["pref"],
            "prefecture_en": p["pref_en"],
            "jis_code": p["lgcode"].zfill(6)[:5],
            "name": p["pref"],
            "kind": "prefecture",
            "url": p["url"].strip(),
        }
        local = [m for m in municipalities if m["pid"] == p["pid"]]
        for m in sorted(local, key=lambda m: m["lgcode"]):
            yield {
                "domain": site_domain(m["url"]),
                "prefecture": m["pref"],
                "prefecture_en": english[m["pref"]],
                "jis_code": m["lgcode"].zfill(6)[:5],
                "name": m["city"].strip(),
                "kind": kind_of(m["city"]),
                "url": m["url"].strip(),
            }


def write(out: Path, panel: Iterable[dict[str, str]]) -> int:
    """Write the rows as CSV (UTF-8, LF); return how many."""
    count = 0
    with open(out, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in panel:
            writer.writerow(row)
            count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="folder with the localgovjp CSV files")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("localgov.csv"))
    args = parser.parse_args(argv)
    for name in (PREFECTURES_FILE, MUNICIPALITIES_FILE):
        if not (args.source / name).is_file():
            parser.error(f"{args.source / name}: no such file (expected the localgovjp CSV files)")
    try:
        panel = list(rows(args.source))
    except (KeyError, ValueError) as exc:
        print(f"{args.source}: {exc}", file=sys.stderr)
        return 1
    count = write(args.out, panel)
    domains = len({r["domain"] for r in panel})
    print(f"{args.out}: {count} rows, {domains} domains", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
