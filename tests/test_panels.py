"""A panel with attributes, scanned for real: the synthetic local-government panel served by NSD,
reported and charted by prefecture and by kind, against the generator's truth."""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict

import pandas as pd
import pytest
from click.testing import CliRunner

import mailauth_survey as ms
from mailauth_survey.cli import main
from mailauth_survey.collect import ScanOptions, scan
from mailauth_survey.prefectures import PREFECTURES
from mailauth_survey.synthetic import population
from tests.conftest import write_list
from tests.test_report_truth import SPF_ALL, expected_counts

METRICS = (
    "domains", "has_mx", "null_mx", "spf_valid", "spf_permerror", *SPF_ALL.values(),
    "dmarc_valid", "dmarc_invalid", "dmarc_none", "dmarc_quarantine", "dmarc_reject",
    "dkim_domainkey", "dkim_selector", "mta_sts", "tlsrpt", "bimi", "nxdomain",
)  # fmt: skip


def write_panel(path, rows):
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(
            fh, fieldnames=["domain", "prefecture", "prefecture_en", "name", "kind"]
        )
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def scanned(tmp_path_factory, request):
    from tests.nsd import Nsd

    base = tmp_path_factory.mktemp("panel")
    pop = population.generate(40, 7, localgov=True)
    server = Nsd(base / "nsd", dict(pop.zones))
    try:
        panel_domains = {r["domain"] for r in pop.panel}
        others = write_list(base / "others.txt", [d for d in pop.domains if d not in panel_domains])
        panel = write_panel(base / "localgov.csv", pop.panel)
        scan(
            [others, panel],
            base / "out",
            snapshot="2024Q2",
            options=ScanOptions(resolvers=[server.address], mta_sts_policy=False),
        )
    finally:
        server.stop()
    return base / "out", pop


def truth_by(pop, column):
    """Each group's domains from the panel rows (a domain once per group), as truth mappings."""
    groups = defaultdict(dict)
    for row in pop.panel:
        groups[row[column]][row["domain"]] = pop.truth[row["domain"]]
    return groups


def report_json(out, *args):
    res = CliRunner().invoke(main, ["report", str(out), "--format", "json", *args])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_report_by_prefecture_gives_47_rows_and_total_with_the_true_counts(scanned) -> None:
    out, pop = scanned
    rows = report_json(out, "--by", "prefecture")
    names = [r["prefecture"] for r in rows]
    # 47 prefectures in JIS order, the domains of no CSV list together, then the total.
    assert names == [ja for _, ja, _ in PREFECTURES] + ["none", "total"]
    by_name = {r["prefecture"]: r for r in rows}
    for prefecture, truth in truth_by(pop, "prefecture").items():
        expected = expected_counts(truth)["total"]
        for metric in METRICS:
            assert by_name[prefecture][metric] == expected[metric], (prefecture, metric)
    # The total counts every scanned domain once, in the panel or not.
    expected_total = expected_counts(pop.truth)["total"]
    for metric in METRICS:
        assert by_name["total"][metric] == expected_total[metric], metric
    panel_domains = {r["domain"] for r in pop.panel}
    outside = expected_counts({d: t for d, t in pop.truth.items() if d not in panel_domains})
    assert by_name["none"]["domains"] == outside["total"]["domains"]


def test_a_shared_domain_counts_once_in_each_of_its_groups(scanned) -> None:
    out, pop = scanned
    kinds = Counter()
    for _domain, rows in pd.DataFrame(pop.panel).groupby("domain"):
        kinds.update(set(rows["kind"]))
    shared = [d for d, n in Counter(r["domain"] for r in pop.panel).items() if n > 1]
    assert shared, "the panel has wards on their city's domain"
    rows = {r["kind"]: r for r in report_json(out, "--by", "kind")}
    for kind, truth in truth_by(pop, "kind").items():
        assert rows[kind]["domains"] + rows[kind]["nxdomain"] == len(truth) == kinds[kind]

    # A ward's city counts in city and in ward, but once in the total.
    def listed(row):
        return row["domains"] + row["nxdomain"]

    in_groups = sum(listed(rows[k]) for k in kinds)
    assert in_groups - (listed(rows["total"]) - listed(rows["none"])) == len(shared)


def test_lists_table_is_stored_beside_domains(scanned) -> None:
    out, pop = scanned
    lists = pd.read_parquet(out / "lists")
    assert set(lists.columns) == {
        "domain",
        "list",
        "prefecture",
        "prefecture_en",
        "name",
        "kind",
        "snapshot",
    }
    assert set(lists["list"]) == {"localgov.csv"}
    assert len(lists) == len({r["domain"] for r in pop.panel})  # one row per (domain, list)


def test_api_groups_a_loaded_frame_by_an_attribute(scanned) -> None:
    out, _ = scanned
    df = ms.load(out)
    table = ms.adoption(df, by="prefecture_en")
    cli = {r["prefecture_en"]: r["domains"] for r in report_json(out, "--by", "prefecture_en")}
    assert dict(zip(table["prefecture_en"], table["domains"], strict=True)) == cli
    assert list(table["prefecture_en"][:2]) == ["Hokkaido", "Aomori"]


def test_unknown_by_lists_what_is_available(scanned) -> None:
    out, _ = scanned
    res = CliRunner().invoke(main, ["report", str(out), "--by", "prefectur"])
    assert res.exit_code != 0
    assert "category, mx_provider, dns_provider" in res.output
    assert "prefecture" in res.output and "kind" in res.output


def test_trend_by_prefecture(scanned) -> None:
    out, _ = scanned
    res = CliRunner().invoke(
        main,
        ["trend", str(out), "--by", "prefecture", "--metric", "dmarc_valid", "--format", "json"],
    )
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert len(rows) == 49 and {r["snapshot"] for r in rows} == {"2024Q2"}


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_chart_map_by_prefecture_in_each_format(scanned, tmp_path, suffix) -> None:
    out, _ = scanned
    target = tmp_path / f"map{suffix}"
    res = CliRunner().invoke(
        main,
        ["chart", str(out), "--kind", "map", "--by", "prefecture", "--metric", "dmarc_valid",
         "--out", str(target), "--lang", "ja"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    head = target.read_bytes()[:8]
    assert head.startswith({".png": b"\x89PNG", ".svg": b"<?xml", ".pdf": b"%PDF"}[suffix])


def test_chart_map_refuses_a_column_that_is_not_prefectures(scanned, tmp_path) -> None:
    out, _ = scanned
    res = CliRunner().invoke(
        main, ["chart", str(out), "--kind", "map", "--by", "kind", "--out", str(tmp_path / "m.png")]
    )
    assert res.exit_code != 0 and "prefecture" in res.output


def test_map_draws_a_prefecture_without_domains_as_no_data_not_zero() -> None:
    from matplotlib.colors import to_hex
    from matplotlib.patches import Polygon

    from mailauth_survey import maps

    rows = [
        {"prefecture": ja, "domains": 10, "has_mx": 10, "dmarc_valid": 0,
         "dmarc_valid_pct": 0.0, "dmarc_valid_mx_pct": 0.0}
        for code, ja, _ in PREFECTURES if code != 13
    ]  # fmt: skip
    fig = maps.map_figure(pd.DataFrame(rows), "2024Q2", "dmarc_valid", "en")
    patches = [p for p in fig.axes[0].patches if isinstance(p, Polygon)]
    assert len(patches) == 47
    colours = [to_hex(p.get_facecolor()) for p in patches]
    tokyo = patches[12]
    assert to_hex(tokyo.get_facecolor()) == maps.NO_DATA and tokyo.get_hatch()
    zero = {c for i, c in enumerate(colours) if i != 12}
    assert zero.isdisjoint({maps.NO_DATA}) and len(zero) == 1  # 0% is the scale's first class
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts.count("n=10") == 46  # n written where small, not on the no-data prefecture


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_map_pooled_share_carries_its_interval(lang: str) -> None:
    """The prefectures together: the pooled share with its 95% Wilson interval and its n."""
    import numpy as np

    from mailauth_survey import maps, report

    rows = [
        {"prefecture": ja, "domains": 20, "has_mx": 20, "dmarc_valid": code % 20,
         "dmarc_valid_pct": 5.0 * (code % 20), "dmarc_valid_mx_pct": 5.0 * (code % 20)}
        for code, ja, _ in PREFECTURES if code <= 10
    ]  # fmt: skip
    fig = maps.map_figure(pd.DataFrame(rows), "2024Q2", "dmarc_valid", lang)
    k = sum(r["dmarc_valid"] for r in rows)
    lo, hi = report.wilson(np.array([k]), np.array([200]))
    [pooled] = [t.get_text() for t in fig.axes[0].texts if "200" in t.get_text()]
    assert f"{100 * k / 200:.1f}%" in pooled
    assert f"{lo[0]:.1f}" in pooled and f"{hi[0]:.1f}" in pooled


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_map_n_labels_do_not_overlap_where_prefectures_are_small(lang: str) -> None:
    """With every prefecture under 30 domains each is labelled; around Kinki and Kanto the
    prefectures are smaller than their labels. A label moved off its prefecture is tied to it
    by a line, and every label stays on the figure."""
    from mailauth_survey import maps

    rows = [
        {"prefecture": ja, "domains": 10 + code % 17, "has_mx": 10, "dmarc_valid": 1,
         "dmarc_valid_pct": 2.0 * code, "dmarc_valid_mx_pct": 2.0 * code}
        for code, ja, _ in PREFECTURES
    ]  # fmt: skip
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = maps.map_figure(pd.DataFrame(rows), "2024Q2", "dmarc_valid", lang)
    FigureCanvasAgg(fig).draw()  # (as saving does: the layout, then the labels' extents)
    renderer = fig.canvas.get_renderer()
    labels = [t for t in fig.axes[0].texts if t.get_text().startswith("n=")]
    assert sorted(t.get_text() for t in labels) == sorted(f"n={r['domains']}" for r in rows)
    boxes = [t.get_window_extent(renderer) for t in labels]
    overlapping = [
        (labels[i].get_text(), labels[j].get_text())
        for i in range(len(boxes))
        for j in range(i + 1, len(boxes))
        if boxes[i].overlaps(boxes[j])
    ]
    assert overlapping == []
    figure_box = fig.bbox
    assert all(figure_box.contains(b.x0, b.y0) and figure_box.contains(b.x1, b.y1) for b in boxes)


@pytest.mark.parametrize(
    ("value", "code"),
    [("東京都", 13), ("東京", 13), ("Tokyo", 13), ("tokyo", 13), ("JP-13", 13), ("北海道", 1),
     ("Okinawa", 47), ("13", None), ("city", None), (None, None)],
)  # fmt: skip
def test_prefecture_code(value, code) -> None:
    from mailauth_survey.prefectures import prefecture_code

    assert prefecture_code(value) == code


def test_map_in_japanese_uses_the_japanese_font_only(scanned) -> None:
    from mailauth_survey import charts
    from tests.test_charts import font_file, labels_of

    out, _ = scanned
    fig = charts.figure(out, "map", lang="ja", by="prefecture")
    texts = labels_of(fig)
    assert any("都道府県" in t.get_text() for t in texts)
    assert {font_file(t) for t in texts} == {"ipaexg.ttf"}


def test_trend_chart_by_a_list_column(scanned) -> None:
    from mailauth_survey import charts

    out, _ = scanned
    fig = charts.figure(out, "trend", by="kind")
    legend = [t.get_text().split(" (n=")[0] for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["city", "prefecture", "town", "village", "ward", "(none)", "Total"]
    assert "by kind" in fig.axes[0].get_title(loc="left")


def test_map_carries_the_methods_footnote(scanned) -> None:
    from mailauth_survey import charts

    out, _ = scanned
    fig = charts.figure(out, "map", by="prefecture")
    texts = " ".join(t.get_text() for t in fig.texts)
    assert "localgov.csv" in texts and "SHA-256" in texts  # the input lists, from the manifest
    assert "Hokkaido and Okinawa are moved" in texts
    fig = charts.figure(out, "map", by="prefecture", source="Source: committee survey")
    assert [t.get_text() for t in fig.texts] == ["Source: committee survey"]


def test_a_builtin_grouping_wins_over_a_list_column_of_its_name(scanned, tmp_path) -> None:
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    out, pop = scanned
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    part = copy / "lists" / "snapshot=2024Q2" / "part-00000.parquet"
    table = pq.read_table(part)
    fake = pa.array(["shadow"] * table.num_rows, pa.string())
    pq.write_table(table.append_column("category", fake), part)
    rows = report_json(copy, "--by", "category")
    assert "shadow" not in {r["category"] for r in rows}
    assert {"lg", "geographic", "total"} <= {r["category"] for r in rows}
    loaded = ms.load(copy)
    assert "shadow" not in set(loaded["category"].astype(str))
    assert list(loaded.columns).count("category") == 1


def test_the_people_table_says_how_shared_domains_are_counted(scanned) -> None:
    out, pop = scanned
    shared = [d for d, n in Counter(r["domain"] for r in pop.panel).items() if n > 1]
    res = CliRunner().invoke(main, ["report", str(out), "--by", "kind"], env={"COLUMNS": "100"})
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert f"{len(shared)} domains are in several groups" in text
    assert "once in the total" in text
    res = CliRunner().invoke(main, ["report", str(out), "--by", "prefecture"])
    assert "several groups" not in res.output  # one prefecture per domain


def test_the_panel_alone_gives_47_rows_and_the_total(scanned) -> None:
    out, pop = scanned
    df = ms.load(out)
    panel = df[df["domain"].isin({r["domain"] for r in pop.panel})]
    table = ms.adoption(panel, by="prefecture")
    assert list(table["prefecture"]) == [ja for _, ja, _ in PREFECTURES] + ["total"]
    truth = {d: pop.truth[d] for d in panel["domain"]}
    expected = expected_counts(truth)["total"]
    total = table[table["prefecture"] == "total"].iloc[0]
    assert all(total[m] == expected[m] for m in METRICS)


def test_chart_refuses_by_where_the_chart_has_fixed_rows(scanned, tmp_path) -> None:
    """The adoption chart is the total's bars: no groups. (The policy chart groups by --by.)"""
    out, _ = scanned
    res = CliRunner().invoke(
        main,
        ["chart", str(out), "--kind", "adoption", "--by", "kind", "--out", str(tmp_path / "a.png")],
    )
    assert res.exit_code != 0 and "--by applies to" in res.output
    res = CliRunner().invoke(
        main,
        ["chart", str(out), "--kind", "policy", "--by", "kind", "--out", str(tmp_path / "p.png")],
    )
    assert res.exit_code == 0, res.output
