"""publish: the self-contained page, read as a reader would, in headless Chromium.

The results folder is built by hand: three quarters, the last one incomplete (the page must take
the newest complete one and compare with the one before it), a small category (ad.jp, 8 domains),
providers with self-hosted domains, and no transport probe (not measured, not 0%).
The page's figures are checked against `report --format json`, the engine's own output.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from PIL import Image

from mailauth_survey import publish, report, store
from mailauth_survey.cli import main
from tests import chromium

QUARTERS = ("2024Q1", "2024Q2", "2024Q3", "2024Q4")
SIZES = {"co": 150, "ad": 8, "lg": 40, "general": 120, "prefecture": 36}
SUFFIX = {"co": "co.jp", "ad": "ad.jp", "lg": "city.example.lg.jp", "general": "jp",
          "prefecture": "tokyo.jp"}  # fmt: skip
PROVIDERS = ("google.com", "outlook.com", "sakura.ne.jp", None)  # None: self-hosted


def domain_row(category: str, i: int, quarter: int) -> dict[str, Any]:
    """Domain i of a category in quarter 0 or 1: DMARC grows from 1 in 4 to 1 in 2."""
    name = f"d{i}.{SUFFIX[category]}"
    when = dt.datetime(2024, 3 * quarter + 3, 1, 3, 0, tzinfo=dt.UTC)
    row: dict[str, Any] = {"domain": name, "category": category, "scanned_at": when}
    if i % 37 == 36:
        return row | {"status": "timeout"}
    if i % 41 == 40:
        return row | {"status": "nxdomain", "mx_status": "NXDOMAIN"}
    row |= {"status": "ok", "mx_status": "NOERROR", "dkim_domainkey": "nxdomain"}
    if i % 10:
        provider = PROVIDERS[i % 4]
        host = f"mx{i % 3}.{provider}" if provider else f"mail.{name}"
        row |= {"has_mx": True, "mx_null": False, "mx_hosts": [host],
                "mx_provider": provider or name}  # fmt: skip
    else:
        row |= {"has_mx": False, "mx_null": False, "mx_hosts": []}
    if i % 5:
        all_ = "-all" if i % 3 == 0 else "~all"
        row |= {"spf_status": "valid", "spf_all": all_, "spf_record": f"v=spf1 {all_}"}
    else:
        row["spf_status"] = "none"
    if i % (4 if quarter == 0 else 2) == 0:
        policy = ("none", "quarantine", "none", "reject")[(i // 2) % 4]
        row |= {"dmarc_status": "valid", "dmarc_p": policy, "dmarc_policy": policy}
    else:
        row["dmarc_status"] = "none"
    # MTA-STS moves a little (1 in 25, then 1 in 19): a change within the noise.
    row["mta_sts_status"] = "valid" if i % (25 if quarter == 0 else 19) == 0 else "none"
    return row


def write_snapshot(
    out: Path,
    label: str,
    rows: list[dict[str, Any]],
    *,
    q: int = 0,
    complete: bool = True,
    listed: int | None = None,
    probe_smtp: bool = False,
) -> None:
    snap = store.Snapshot(out, label)
    store.write_part(snap.domains, "part-00000.parquet", rows, store.DOMAINS_SCHEMA)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    start = dt.datetime(2024, 3 * q + 3, 1, 2, 0, tzinfo=dt.UTC)
    snap.write_manifest(
        {
            "schema_version": store.SCHEMA_VERSION,
            "package_version": "0.1.0",
            "snapshot": label,
            "complete": complete,
            "started_at": start.isoformat(),
            "finished_at": (start + dt.timedelta(hours=1, minutes=5)).isoformat(),
            "inputs": [{"path": f"/lists/jp-{label}.txt", "sha256": f"{q:x}" * 64}],
            "public_suffix_list": "publicsuffixlist 1.1.2.20261023",
            "dkim_selectors": ["default", "selector1", "google"],
            "options": {
                "resolvers": ["127.0.0.1:53"],
                "mta_sts_policy": False,
                "probe_smtp": probe_smtp,
            },  # fmt: skip
            "resolvers": ["127.0.0.1:53"],
            "domains": listed if listed is not None else len(rows),
            "status_counts": counts,
        },
    )


def write_results(out: Path) -> None:
    """2024Q1 and 2024Q3 complete; the scans of 2024Q2 and 2024Q4 stopped after 20 domains."""
    for q, label in enumerate(QUARTERS):
        complete = q % 2 == 0
        sizes = SIZES if complete else {"co": 20}
        rows = [domain_row(c, i, q // 2) for c, n in sizes.items() for i in range(n)]
        listed = None if complete else sum(SIZES.values())
        write_snapshot(out, label, rows, q=q, complete=complete, listed=listed)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("results")
    write_results(out)
    return out


def run_cli(*args: Any) -> Any:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def sites(results: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The page in both languages, published by the command."""
    out = {}
    for lang in ("en", "ja"):
        folder = tmp_path_factory.mktemp(f"site-{lang}")
        res = run_cli("publish", results, "--out", folder, "--lang", lang)
        assert res.exit_code == 0, res.output
        assert res.stdout.strip() == str(folder / "index.html")
        # The incomplete snapshots are left out, said once on stderr.
        for label in ("2024Q2", "2024Q4"):
            assert res.stderr.count(label) == 1 and "incomplete" in res.stderr, res.stderr
        out[lang] = folder
    return out


@pytest.fixture(scope="module")
def rendered(sites: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Each page loaded once in headless Chromium: PNG, PDF, the DOM after load, the net log."""
    out = {}
    for lang, folder in sites.items():
        work = tmp_path_factory.mktemp(f"chromium-{lang}")
        png, pdf = work / "page.png", work / "page.pdf"
        result = chromium.render(
            folder / "index.html", work, screenshot=png, pdf=pdf, dump_dom=True, window=(800, 2400)
        )
        out[lang] = {"result": result, "png": png, "pdf": pdf}
    return out


def json_rows(results: Path, label: str, lang: str, by: str = "category") -> list[dict]:
    res = run_cli("report", results, "--snapshot", label, "--by", by, "--format", "json",
                  "--lang", lang)  # fmt: skip
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


# --- reading the page --------------------------------------------------------------------------


class Dom(HTMLParser):
    """A minimal DOM: elements with attributes, text and children (enough to read tables)."""

    VOID = {"meta", "br", "link", "img", "input", "hr", "col", "source", "wbr", "area", "base"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root: dict[str, Any] = {"tag": "#root", "attrs": {}, "children": [], "text": []}
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = {"tag": tag, "attrs": dict(attrs), "children": [], "text": []}
        self.stack[-1]["children"].append(node)
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1]["children"].append(
            {"tag": tag, "attrs": dict(attrs), "children": [], "text": []}
        )

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth]["tag"] == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1]["children"].append(data)


def parse(html: str) -> dict[str, Any]:
    dom = Dom()
    dom.feed(html)
    dom.close()
    return dom.root


def walk(node: dict[str, Any]):
    yield node
    for child in node["children"]:
        if isinstance(child, dict):
            yield from walk(child)


def find(node: dict[str, Any], tag: str | None = None, **attrs: str) -> list[dict[str, Any]]:
    def hit(n: dict[str, Any]) -> bool:
        if tag is not None and n["tag"] != tag:
            return False
        for key, value in attrs.items():
            have = n["attrs"].get(key.rstrip("_").replace("_", "-"))
            if have is None or (key == "class_" and value not in have.split()):
                return False
            if key != "class_" and have != value:
                return False
        return True

    return [n for n in walk(node) if hit(n)]


def text(node: dict[str, Any] | str, skip: tuple[str, ...] = ("style", "svg", "script")) -> str:
    if isinstance(node, str):
        return node
    if node["tag"] in skip:
        return " "
    return "".join(text(c, skip) for c in node["children"])


def squash(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip()


NUMBER = re.compile(r"[-+−]?\d[\d,]*(?:\.\d+)?")


def numbers(s: str) -> list[float]:
    return [float(n.replace(",", "").replace("−", "-")) for n in NUMBER.findall(s)]


def close(shown: float, value: float | None) -> bool:
    """A figure printed with one decimal equals the JSON's full-precision value."""
    return value is not None and abs(shown - value) <= 0.05 + 1e-9


# --- files -------------------------------------------------------------------------------------


def test_publish_writes_page_workbook_and_every_chart(sites: dict[str, Path]) -> None:
    folder = sites["en"]
    names = {p.name for p in folder.iterdir()}
    assert {"index.html", "report.xlsx"} <= names
    stems = set(publish.CHART_FILES.values())
    assert {f"{s}.png" for s in stems} | {f"{s}.svg" for s in stems} <= names
    assert not [n for n in names if n.startswith(".")]  # the staging folder is gone
    for stem in stems:
        with Image.open(folder / f"{stem}.png") as im:
            assert im.size[0] >= 1920 and abs(im.size[0] / im.size[1] - 16 / 9) < 0.01
        ElementTree.parse(folder / f"{stem}.svg")  # well-formed XML
    book = load_workbook(folder / "report.xlsx", read_only=True)
    assert {"category", "mx_provider", "trend", "methods"} <= set(book.sheetnames)
    # The trend is over the complete snapshots; the incomplete one between them is named.
    root = parse((folder / "index.html").read_text(encoding="utf-8"))
    note = squash(text(find(find(root, "section", id="trend")[0], "p", class_="note")[0]))
    assert "2024Q1, 2024Q3." in note and "2024Q2" in note and "2024Q4" not in note


def test_page_names_no_resource_to_fetch_and_no_script(sites: dict[str, Path]) -> None:
    """Static reading of the HTML: what a browser could fetch or run, nothing of it present."""
    for folder in sites.values():
        html = (folder / "index.html").read_text(encoding="utf-8")
        root = parse(html)
        tags = {n["tag"] for n in walk(root)}
        assert not tags & {"script", "link", "iframe", "object", "embed", "img", "base", "frame"}
        for node in walk(root):
            for attr, value in node["attrs"].items():
                assert not attr.startswith("on"), (node["tag"], attr)
                if attr in ("src", "srcset", "data", "poster", "action", "formaction"):
                    pytest.fail(f"{node['tag']} {attr}={value}")
                if attr in ("href", "xlink:href"):
                    # Fragments inside the page, or a link (not a fetch) to a file beside it.
                    assert value and (value.startswith("#") or (folder / value).is_file()), value
                    assert node["tag"] in ("a", "use") or value.startswith("#"), node["tag"]
            if node["tag"] == "meta":
                assert node["attrs"].get("http-equiv", "").lower() != "refresh"
        styles = " ".join(text(n, skip=()) for n in find(root, "style"))
        assert "@import" not in styles and "@font-face" not in styles
        assert all(u.startswith("#") for u in re.findall(r"url\(\s*['\"]?([^)'\"]*)", html))
        for font in ("Hiragino", "Yu Gothic", "Meiryo", "Noto Sans CJK JP", "IPAexGothic"):
            assert font in styles
        # Each inline chart refers only to its own definitions (glyphs, clip paths): ids are
        # unique on the page and every #reference of a chart is an id inside that chart.
        ids = [n["attrs"]["id"] for n in walk(root) if "id" in n["attrs"]]
        assert len(ids) == len(set(ids))
        charts = find(root, "svg", class_="chart")
        assert len(charts) == len(publish.CHART_FILES)
        for svg in charts:
            own = {n["attrs"]["id"] for n in walk(svg) if "id" in n["attrs"]}
            refs = set()
            for n in walk(svg):
                for value in n["attrs"].values():
                    refs |= set(re.findall(r"url\(#([^)]+)\)", value or ""))
                    if (
                        value
                        and value.startswith("#")
                        and not re.fullmatch(r"#[0-9a-fA-F]{3,8}", value)
                    ):
                        refs.add(value[1:])
            assert refs and refs <= own, refs - own


# --- in the browser ----------------------------------------------------------------------------


def test_chromium_renders_png_and_pdf_and_the_page_requests_nothing(
    rendered: dict[str, Any],
) -> None:
    for lang, r in rendered.items():
        result: chromium.Render = r["result"]
        assert result.returncode == 0, result.stderr[-2000:]
        with Image.open(r["png"]) as im:
            assert im.size == (800, 2400)
            assert len(im.convert("L").getcolors(1 << 16) or []) > 20  # drawn, not blank
        pdf = r["pdf"].read_bytes()
        assert pdf.startswith(b"%PDF-")
        pages = int(max(re.findall(rb"/Count (\d+)", pdf), key=int))
        assert pages >= 3, pages
        # The Japanese page's text was set in a CJK font from the page's font stack (without
        # one installed, Chromium draws every kana as a box).
        fonts = set(re.findall(rb"/FontName /[A-Z]{6}\+([\w-]+)", pdf))
        if lang == "ja":
            assert any(b"CJK" in f for f in fonts), fonts
        assert result.page_requests == [], result.page_requests
        assert "</html>" in result.dom


def test_the_request_detector_sees_what_a_page_fetches(tmp_path: Path) -> None:
    """The check above can fail: a page that loads from a loopback server is caught."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        page = tmp_path / "fetching.html"
        page.write_text(
            f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>body{{background:"
            f"url({base}/bg.png)}}</style></head><body><p>x</p><img src='{base}/img.png'></body></html>",
            encoding="utf-8",
        )
        # Only for this page: let requests to the loopback server through, to count them there.
        rules = f"{chromium.NO_NETWORK}, EXCLUDE 127.0.0.1"
        result = chromium.render(page, tmp_path / "work", dump_dom=True, resolver_rules=rules)
    finally:
        server.shutdown()
        server.server_close()
    assert set(hits) == {"/bg.png", "/img.png"}
    assert {u.rsplit("/", 1)[1] for u in result.page_requests} == {"bg.png", "img.png"}


def dom_of(rendered: dict[str, Any], lang: str) -> dict[str, Any]:
    return parse(rendered[lang]["result"].dom)


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_headline_strip_equals_the_json_report(
    rendered: dict[str, Any], results: Path, lang: str
) -> None:
    """Newest complete snapshot (2024Q3, not the incomplete 2024Q4), change since the complete
    one before it (2024Q1, not the incomplete 2024Q2)."""
    now = {r["category"]: r for r in json_rows(results, "2024Q3", lang)}["total"]
    before = {r["category"]: r for r in json_rows(results, "2024Q1", lang)}["total"]
    changes = report.changes(report.report(results, "2024Q1"), report.report(results, "2024Q3"))
    noise = dict(zip(changes["metric"], changes["beyond_noise"], strict=True))
    cards = find(find(dom_of(rendered, lang), "section", id="headline")[0], "li")
    assert [c["attrs"]["data-metric"] for c in cards] == list(publish.HEADLINE)
    for card in cards:
        metric = card["attrs"]["data-metric"]
        part = {
            k: squash(text(find(card, "span", class_=k)[0])) for k in ("name", "share", "change")
        }
        assert part["name"] == report.metric_label(metric, lang)
        assert close(numbers(part["share"])[0], now[f"{metric}_pct"])
        ci = squash(text(find(card, "span", class_="ci")[0]))
        lo, hi = numbers(ci.split("%", 1)[1])[:2]  # after "95%"
        assert close(lo, now[f"{metric}_pct_lo"]) and close(hi, now[f"{metric}_pct_hi"])
        assert "2024Q1" in part["change"] and "2024Q2" not in part["change"]
        delta = numbers(part["change"].replace("2024Q1", ""))[0]
        assert close(delta, now[f"{metric}_pct"] - before[f"{metric}_pct"]), (metric, part)
        # Marked ● exactly where the engine's noise test says the change is beyond the noise.
        assert part["change"].startswith("●") == noise[metric], (metric, part)
    # The fixture has both kinds, and a change that moved but stayed within the noise (MTA-STS).
    assert sorted(set(noise[m] for m in publish.HEADLINE)) == [False, True]
    assert not noise["mta_sts"] and now["mta_sts_pct"] != before["mta_sts_pct"]


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_category_table_equals_the_json_report(
    rendered: dict[str, Any], results: Path, lang: str
) -> None:
    rows = json_rows(results, "2024Q3", lang)
    assert {r["snapshot"] for r in rows} == {"2024Q3"}
    table = find(dom_of(rendered, lang), "table", id="category-table")[0]
    shown = find(find(table, "tbody")[0], "tr")
    assert [tr["attrs"]["data-group"] for tr in shown] == [r["category"] for r in rows]
    for tr, row in zip(shown, rows, strict=True):
        head = squash(text(find(tr, "th")[0]))
        label = row.get("label") or report.group_label(row["category"], "category", lang)
        small = row["category"] != "total" and row["domains"] < publish.SMALL_GROUP
        assert head == label + ("†" if small else "")
        assert squash(text(find(tr, "td", class_="n")[0])) == f"{row['domains']:,}"
        for td in find(tr, "td", class_="share"):
            metric = td["attrs"]["data-metric"]
            values = numbers(text(td))
            assert close(values[0], row[f"{metric}_pct"]), (row["category"], metric)
            if row.get(f"{metric}_pct_lo") is not None:
                assert close(values[1], row[f"{metric}_pct_lo"])
                assert close(values[2], row[f"{metric}_pct_hi"])
        assert [td["attrs"]["data-metric"] for td in find(tr, "td", class_="share")] == list(
            publish.CATEGORY_METRICS
        )
    # ad.jp (8 domains) is marked small, with the footnote; co.jp (150) is not.
    marks = {tr["attrs"]["data-group"]: "small" in tr["attrs"].get("class", "") for tr in shown}
    assert marks["ad"] and not marks["co"] and not marks["total"]
    foot = squash(text(find(dom_of(rendered, lang), "section", id="categories")[0]))
    assert publish.TEXT[lang]["small"].format(small=publish.SMALL_GROUP) in foot


#: English words of the page that a Japanese page must not show (labels, headings, footnotes).
ENGLISH = (
    "Category", "Domains", "Total", "Share", "interval", "snapshot", "Snapshot", "since",
    "Methods", "measured", "Resolvers", "Provider", "provider", "Self-hosted", "self-hosted",
    "Other", "other", "exist", "Scan", "Probes", "lists", "valid", "enforcing", "noise",
    "Over time", "At a glance", "percentage", "points", "pp", "General-use", "Prefecture-type",
    "Geographic-type", "Timeout", "error",
)  # fmt: skip


def english_phrases() -> set[str]:
    """Every run of two or more English words, and every one-word label, of the engine's and
    the page's English texts. Not filtered by the Japanese dicts: a label copied into them
    unchanged is just what this must catch. Tokens that are not plain words (``p=none``,
    ``-all``, ``_mta-sts``) end a run, so technical names shared by both languages do not count.
    """
    sources = [
        report.METRIC_LABELS["en"], report.GROUP_LABELS["en"], report.PROVIDER_LABELS["en"],
        publish.TEXT["en"], publish.STATUS_LABELS["en"], publish.DEFINITIONS["en"],
    ]  # fmt: skip
    phrases: set[str] = set()
    for value in (v for d in sources for v in d.values()):
        tokens = [t.strip(',.;:()“”"') for t in value.split()]
        run: list[str] = []
        for token in [*tokens, "="]:  # a non-word at the end closes the last run
            if re.fullmatch(r"[A-Za-z][A-Za-z'’-]*", token):
                run.append(token)
                continue
            if len(run) >= 2:
                phrases.add(" ".join(run))
            run = []
        if len(tokens) == 1 and re.fullmatch(r"[A-Za-z][a-z'’-]{2,}", tokens[0]):
            phrases.add(tokens[0])  # Total, Timeout...
    return phrases


def shown(phrase: str, visible: str, flags: int = 0) -> bool:
    """The phrase as words of the text (not inside a file or domain name)."""
    return re.search(rf"(?<![\w.@/-]){re.escape(phrase)}(?![\w.-])", visible, flags) is not None


def test_japanese_page_has_no_untranslated_label(rendered: dict[str, Any]) -> None:
    root = dom_of(rendered, "ja")
    body = squash(text(find(root, "body")[0]))
    title = squash(text(find(root, "title")[0]))
    labels = " ".join(n["attrs"].get("aria-label", "") for n in walk(root))
    visible = f"{title} {body} {labels}"
    assert [w for w in ENGLISH if shown(w, visible, re.IGNORECASE)] == []
    phrases = english_phrases()
    assert len(phrases) > 100  # the list is really there
    assert sorted(p for p in phrases if shown(p, visible)) == []
    assert find(root, "html")[0]["attrs"]["lang"] == "ja"
    # The English page, in turn, has no Japanese text.
    en = parse(rendered["en"]["result"].dom)
    en_text = squash(text(find(en, "body")[0])) + " " + squash(text(find(en, "title")[0]))
    assert re.findall(r"[\u3040-\u30ff\u4e00-\u9fff\uff00-\uffef]+", en_text) == []


def test_methods_section_from_the_manifest(rendered: dict[str, Any]) -> None:
    for lang in ("en", "ja"):
        methods = squash(text(find(dom_of(rendered, lang), "section", id="methods")[0]))
        assert "2" * 64 in methods  # the 2024Q3 list's SHA-256, whole
        assert "jp-2024Q3.txt" in methods and "127.0.0.1:53" in methods
        assert "publicsuffixlist 1.1.2.20261023" in methods
        # DKIM is a lower bound: the selectors probed are named (RFC 6376 3.6.2.1).
        dkim = publish.TEXT[lang]["m_dkim_value"].format(names="default, selector1, google", n=3)
        assert f"{publish.TEXT[lang]['m_dkim']}{dkim}" in methods  # (the term, then its value)
        assert ("2024年9月1日 02:00 UTC" if lang == "ja" else "2024-09-01 02:00 UTC") in methods
        for metric in publish.HEADLINE:
            assert publish.DEFINITIONS[lang][metric] in methods


def test_transport_not_measured_is_one_sentence(rendered: dict[str, Any], results: Path) -> None:
    """No probe ran and no answer was validated: no table of zeros, one sentence saying why."""
    facts = report.methods(results, "2024Q3")
    for lang in ("en", "ja"):
        section = find(dom_of(rendered, lang), "section", id="transport")[0]
        assert find(section, "table") == []
        assert len(find(section, "p")) == 1
        sentence = squash(text(section))
        for metric in ("starttls", "dnssec", "mta_sts_enforce"):
            assert report.unmeasured_reason(metric, facts, lang) in sentence


def test_publish_a_named_snapshot_and_one_line_errors(results: Path, tmp_path: Path) -> None:
    # Asked by name, the incomplete snapshot is published, saying so.
    res = run_cli("publish", results, "--snapshot", "2024Q4", "--out", tmp_path / "q4")
    assert res.exit_code == 0, res.output
    page = (tmp_path / "q4" / "index.html").read_text(encoding="utf-8")
    assert "incomplete: 20 of 354 domains" in squash(page.replace('<p class="warn">', ""))
    # --include-incomplete: the newest snapshot whatever its state, the trend over all four.
    res = run_cli("publish", results, "--include-incomplete", "--out", tmp_path / "all")
    assert res.exit_code == 0 and "left out" not in res.stderr, res.output
    root = parse((tmp_path / "all" / "index.html").read_text(encoding="utf-8"))
    assert "2024Q4" in squash(text(find(root, "h1")[0]))
    note = squash(text(find(find(root, "section", id="trend")[0], "p", class_="note")[0]))
    assert "2024Q1, 2024Q2, 2024Q3, 2024Q4." in note
    # Errors are one line, and nothing is written.
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    for args, needle in (
        (("--snapshot", "2030Q1", "--out", tmp_path / "new"), "2030Q1"),
        (("--out", not_a_folder), str(not_a_folder)),
        (("--out", tmp_path / "ja", "--lang", "fr"), "fr"),
    ):
        res = CliRunner().invoke(main, ["publish", str(results), *map(str, args)])
        assert res.exit_code != 0
        errors = [line for line in res.output.splitlines() if line.startswith("Error")]
        assert len(errors) == 1 and needle in errors[0], res.output
    assert not (tmp_path / "new").exists() and not_a_folder.read_text() == "x"


def test_transport_shown_where_measured(tmp_path: Path) -> None:
    """SMTP probed (some domains' answers unknown): STARTTLS gets its column with "k of n
    measured"; what was not measured is named in one sentence, not drawn as 0%."""
    rows = [domain_row("co", i, 1) for i in range(60)]
    for i, row in enumerate(rows):
        if row["status"] == "ok" and row.get("has_mx"):
            row["starttls"] = None if i % 7 == 0 else i % 3 != 0
    write_snapshot(tmp_path / "r", "2024Q2", rows, probe_smtp=True)
    res = run_cli("publish", tmp_path / "r", "--out", tmp_path / "site")
    assert res.exit_code == 0, res.output
    root = parse((tmp_path / "site" / "index.html").read_text(encoding="utf-8"))
    section = find(root, "section", id="transport")[0]
    total = {r["category"]: r for r in json_rows(tmp_path / "r", "2024Q2", "en")}["total"]
    assert total["starttls_measured"] < total["domains"]  # partly measured, as built
    cells = find(find(section, "tr", data_group="total")[0], "td", class_="share")
    assert [c["attrs"]["data-metric"] for c in cells] == ["starttls"]
    shown = squash(text(cells[0]))
    assert close(numbers(shown)[0], total["starttls_pct"])
    assert f"{total['starttls_measured']:,} of {total['domains']:,} measured" in shown
    note = squash(text(find(section, "p")[0]))
    assert report.metric_label("dane", "en") in note and "STARTTLS" not in note


def test_one_snapshot_has_no_trend_and_no_change(tmp_path: Path) -> None:
    rows = [domain_row(c, i, 1) for c, n in SIZES.items() for i in range(n)]
    write_snapshot(tmp_path / "r", "2024Q2", rows)
    res = run_cli("publish", tmp_path / "r", "--out", tmp_path / "site", "--lang", "ja")
    assert res.exit_code == 0, res.output
    root = parse((tmp_path / "site" / "index.html").read_text(encoding="utf-8"))
    trend = find(root, "section", id="trend")[0]
    assert find(trend, "svg") == []
    assert squash(text(trend)).endswith(publish.TEXT["ja"]["trend_single"].format(label="2024Q2"))
    changes = [squash(text(n)) for n in find(root, "span", class_="change")]
    assert changes == [publish.TEXT["ja"]["no_change"]] * len(publish.HEADLINE)
    assert not list((tmp_path / "site").glob("trend-*"))


# --- the prefecture map ------------------------------------------------------------------------

#: The panel of the map fixture: prefecture → how many domains the list places there. Tokyo is
#: large (not marked), the others small (marked †); Okinawa's one domain timed out (no domain
#: exists there: no data, never 0%); the other 43 prefectures are not in the list at all.
PANEL = {"東京都": 40, "大阪府": 12, "北海道": 5, "沖縄県": 1, "Tokio": 2}
#: A value of the prefecture column that names no prefecture (a typo): off the map, said so.
UNKNOWN = "Tokio"


def write_panel(out: Path, label: str = "2024Q2") -> None:
    """One snapshot: the panel (lg.jp domains, a CSV list with a prefecture column) and 60
    co.jp domains of a plain list (in no prefecture)."""
    import pyarrow as pa

    rows, panel = [], []
    start = 0
    for prefecture, n in PANEL.items():
        # Okinawa gets domain 36, which `domain_row` makes a timeout.
        numbers_ = [36] if prefecture == "沖縄県" else [i for i in range(start, start + n)]
        start += n + 1
        for i in numbers_:
            row = domain_row("lg", i, 1)
            rows.append(row)
            panel.append((row["domain"], prefecture))
    rows += [domain_row("co", i, 1) for i in range(60)]
    write_snapshot(out, label, rows)
    table = pa.table(
        {
            "domain": [d for d, _ in panel],
            "list": ["localgov.csv"] * len(panel),
            "prefecture": [p for _, p in panel],
        }
    )
    store.write_table(store.Snapshot(out, label).lists, "part-00000.parquet", table)


@pytest.fixture(scope="module")
def panel_sites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The page of a snapshot with a prefecture panel, in both languages, and Chromium's DOM."""
    results = tmp_path_factory.mktemp("panel")
    write_panel(results)
    out: dict[str, Any] = {"results": results}
    for lang in ("en", "ja"):
        folder = tmp_path_factory.mktemp(f"panel-site-{lang}")
        res = run_cli("publish", results, "--out", folder, "--lang", lang)
        assert res.exit_code == 0, res.output
        work = tmp_path_factory.mktemp(f"panel-chromium-{lang}")
        result = chromium.render(
            folder / "index.html", work, screenshot=work / "page.png", dump_dom=True,
            window=(1280, 2400),
        )  # fmt: skip
        out[lang] = {"folder": folder, "result": result, "png": work / "page.png"}
    return out


def test_no_prefecture_grouping_no_map_section(sites: dict[str, Path]) -> None:
    """The main fixture's lists have no prefecture column: no section, no heading, no files."""
    for lang, folder in sites.items():
        html = (folder / "index.html").read_text(encoding="utf-8")
        root = parse(html)
        assert find(root, "section", id="prefectures") == []
        assert publish.TEXT[lang]["map"] not in html
        assert not (folder / f"{publish.MAP_FILE}.png").exists()


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_map_section_equals_the_json_report_by_prefecture(
    panel_sites: dict[str, Any], lang: str
) -> None:
    from mailauth_survey.prefectures import PREFECTURES, prefecture_name

    site = panel_sites[lang]
    result: chromium.Render = site["result"]
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.page_requests == [], result.page_requests
    root = parse(result.dom)
    sections = find(root, "section", id="prefectures")
    assert len(sections) == 1
    section = sections[0]
    t = publish.TEXT[lang]
    assert squash(text(find(section, "h2")[0])) == t["map"]
    # The map: inline SVG labelled with its caption, which names the headline's metric.
    metric = publish.MAP_METRIC
    assert metric == publish.HEADLINE[0]
    svgs = find(section, "svg", class_="chart")
    assert len(svgs) == 1
    caption = t["map_caption"].format(metric=report.metric_label(metric, lang))
    assert svgs[0]["attrs"]["aria-label"] == caption
    folder = site["folder"]
    with Image.open(folder / f"{publish.MAP_FILE}.png") as im:
        assert abs(im.size[0] / im.size[1] - 16 / 9) < 0.01
    ElementTree.parse(folder / f"{publish.MAP_FILE}.svg")
    # Every prefecture, in JIS order; the figures are the engine's, row for row.
    rows = {r["prefecture"]: r for r in json_rows(panel_sites["results"], "2024Q2", lang,
                                                   by="prefecture")}  # fmt: skip
    trs = [tr for tr in find(section, "tr") if "data-code" in tr["attrs"]]
    assert [int(tr["attrs"]["data-code"]) for tr in trs] == [c for c, _, _ in PREFECTURES]
    for tr in trs:
        code = int(tr["attrs"]["data-code"])
        head = squash(text(find(tr, "th")[0]))
        key = tr["attrs"].get("data-group")
        row = rows.get(key) if key else None
        if row is None or row[f"{metric}_pct"] is None:
            assert "nodata" in tr["attrs"].get("class", ""), head
            assert t["no_data"] in squash(text(tr)), head
            assert not re.search(r"\d%", text(tr)), head  # never 0%
            continue
        small = row["domains"] < publish.SMALL_GROUP
        assert head == prefecture_name(code, lang) + ("†" if small else "")
        assert squash(text(find(tr, "td", class_="n")[0])) == f"{row['domains']:,}"
        assert close(numbers(text(find(tr, "td", class_="pct")[0]))[0], row[f"{metric}_pct"])
        lo, hi = numbers(text(find(tr, "td", class_="iv")[0]))
        assert close(lo, row[f"{metric}_pct_lo"]) and close(hi, row[f"{metric}_pct_hi"])
        assert ("small" in tr["attrs"].get("class", "")) == small
    with_data = [
        tr["attrs"]["data-group"] for tr in trs if "nodata" not in tr["attrs"].get("class", "")
    ]
    assert sorted(with_data) == sorted(["東京都", "大阪府", "北海道"])  # as the fixture built
    # Okinawa's one domain timed out: a row in the engine's table, no data on the page.
    assert rows["沖縄県"]["domains"] == 0
    foot = squash(text(section))
    assert t["map_note"].format(small=publish.SMALL_GROUP) in foot
    assert t["map_small"].format(small=publish.SMALL_GROUP) in foot
    none = rows["none"]["domains"]
    assert t["map_none"].format(n=f"{none:,}") in foot
    # The typo's domains are counted off the map, with the value that named no prefecture.
    unknown = rows[UNKNOWN]["domains"]
    assert unknown == PANEL[UNKNOWN]
    assert t["map_unknown"].format(n=f"{unknown:,}", values=UNKNOWN) in foot
    # Listed among the files beside the page; its sheet in the workbook.
    files = squash(text(find(root, "section", id="methods")[0]))
    assert f"{publish.MAP_FILE}.png" in files and f"{publish.MAP_FILE}.svg" in files
    assert "prefecture" in load_workbook(folder / "report.xlsx", read_only=True).sheetnames


def test_map_section_has_no_label_of_the_other_language(panel_sites: dict[str, Any]) -> None:
    ja = parse(panel_sites["ja"]["result"].dom)
    section = find(ja, "section", id="prefectures")[0]
    labels = " ".join(n["attrs"].get("aria-label", "") for n in walk(section))
    visible = f"{squash(text(section))} {labels}"
    assert [w for w in ENGLISH if shown(w, visible, re.IGNORECASE)] == []
    assert sorted(p for p in english_phrases() if shown(p, visible)) == []
    en = parse(panel_sites["en"]["result"].dom)
    section = find(en, "section", id="prefectures")[0]
    labels = " ".join(n["attrs"].get("aria-label", "") for n in walk(section))
    visible = f"{squash(text(section))} {labels}"
    assert re.findall(r"[\u3040-\u30ff\u4e00-\u9fff\uff00-\uffef]+", visible) == []


def test_page_map_draws_only_the_engines_figures(panel_sites: dict[str, Any]) -> None:
    """The map on the page leaves out the pooled share of the 47 prefectures that `chart --kind
    map` writes (a figure the report engine does not give)."""
    from mailauth_survey import charts

    results = panel_sites["results"]
    fig = charts.figure(results, "map", by="prefecture")
    pooled = [t.get_text() for ax in fig.axes for t in ax.texts if "n = " in t.get_text()]
    assert pooled  # the chart command draws it
    svg = (panel_sites["en"]["folder"] / f"{publish.MAP_FILE}.svg").read_text(encoding="utf-8")
    # Text is drawn as paths; matplotlib keeps each text's string in a comment.
    assert "n=12" in svg and "n=40" not in svg  # n written where under 30, as maps.py does
    assert pooled[0] not in svg
