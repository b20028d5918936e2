"""Panels: a CSV list's own columns (the lists table) and the local-government panel builder."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

from mailauth_survey.domains import VALUE_SEPARATOR, attribute_name, lists_table

ROOT = Path(__file__).resolve().parent.parent


def _builder():
    spec = importlib.util.spec_from_file_location(
        "build_localgov", ROOT / "domain_lists" / "build_localgov.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lists_table_keeps_every_other_column_per_domain_and_list(tmp_path):
    panel = tmp_path / "panel.csv"
    panel.write_text(
        "Name,Domain,Prefecture Name,Kind,list,snapshot\n"
        "札幌市,www.City.Sapporo.jp.,北海道,city,x,y\n"
        '"札幌市 中央区",www.city.sapporo.jp,北海道,ward,,\n'
        "not a name,bad name,x,y\n"
        "青森県,pref.aomori.lg.jp,青森県,prefecture\n",
        encoding="utf-8",
    )
    other = tmp_path / "other.csv"
    other.write_text("domain,sector\npref.aomori.lg.jp,government\n", encoding="utf-8")
    plain = tmp_path / "plain.txt"
    plain.write_text("example.jp\n", encoding="utf-8")
    rows = lists_table([panel, other, plain]).to_pylist()

    def key(row):
        return row["list"], row["domain"]

    assert sorted(rows, key=key) == sorted(
        [
            {
                "domain": "www.city.sapporo.jp",
                "list": "panel.csv",
                "name": f"札幌市{VALUE_SEPARATOR}札幌市 中央区",
                "prefecture_name": "北海道",
                "kind": f"city{VALUE_SEPARATOR}ward",
                "list_": "x",
                "snapshot_": "y",
                "sector": None,
            },
            {
                "domain": "pref.aomori.lg.jp",
                "list": "panel.csv",
                "name": "青森県",
                "prefecture_name": "青森県",
                "kind": "prefecture",
                "list_": None,
                "snapshot_": None,
                "sector": None,
            },
            {
                "domain": "pref.aomori.lg.jp",
                "list": "other.csv",
                "name": None,
                "prefecture_name": None,
                "kind": None,
                "list_": None,
                "snapshot_": None,
                "sector": "government",
            },
        ],
        key=key,
    )


def test_lists_table_of_plain_lists_is_empty_with_its_two_columns(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("example.jp\n", encoding="utf-8")
    table = lists_table([plain])
    assert table.num_rows == 0 and table.column_names == ["domain", "list"]


def test_lists_table_of_a_csv_with_the_domain_column_alone(tmp_path):
    """One row per (domain, list) for every CSV list, also one with no other column."""
    only = tmp_path / "only.csv"
    only.write_text("domain\na.jp\nb.jp\n", encoding="utf-8")
    rows = lists_table([only]).to_pylist()
    assert rows == [{"domain": "a.jp", "list": "only.csv"}, {"domain": "b.jp", "list": "only.csv"}]


@pytest.mark.parametrize(
    ("header", "name"),
    [
        (" Prefecture  Name ", "prefecture_name"),
        ("KIND", "kind"),
        ("", "column_3"),
        ("List", "list_"),
    ],
)
def test_attribute_names(header, name):
    assert attribute_name(header, 2) == name


@pytest.mark.parametrize(
    ("url", "domain"),
    [
        ("https://www.city.sapporo.jp/chuo/", "city.sapporo.jp"),  # PSL: *.sapporo.jp, !city
        ("https://www.pref.akita.lg.jp/", "pref.akita.lg.jp"),  # not the PSL's akita.lg.jp
        ("https://www.city.akita.lg.jp/", "city.akita.lg.jp"),
        ("http://www.kuromatsunai.com/", "kuromatsunai.com"),
        ("https://www.city.sagamihara.kanagawa.jp/", "city.sagamihara.kanagawa.jp"),
        ("https://WWW.Town.Kushiro.LG.JP/", "town.kushiro.lg.jp"),
    ],
)
def test_site_domain(url, domain):
    assert _builder().site_domain(url) == domain


def test_builder_rows_from_source_files(tmp_path):
    (tmp_path / "prefjp-utf8.csv").write_text(
        "pid,pref,prefkana,prefshort,prefshortkana,pref_en,pref3code,url,lgcode,ISO3166-2,capital,lat,lng\n"
        "5,秋田県,,秋田,,Akita,AKT,https://www.pref.akita.lg.jp/,50008,JP-05,秋田市,0,0\n"
        "1,北海道,,北海道,,Hokkaido,HKD,https://www.pref.hokkaido.lg.jp/,10006,JP-01,札幌市,0,0\n",
        encoding="utf-8",
    )
    (tmp_path / "localgovjp-utf8.csv").write_text(
        "pid,pref,cid,city,citykana,lat,lng,url,phrase,lgcode\n"
        "1,北海道,1101,札幌市 中央区,,0,0,https://www.city.sapporo.jp/chuo/,,011011\n"
        "1,北海道,1100,札幌市,,0,0,https://www.city.sapporo.jp/,,011002\n"
        "5,秋田県,5201,秋田市,,0,0,https://www.city.akita.lg.jp/,,052019\n"
        "5,秋田県,5327,上小阿仁村,,0,0,https://www.vill.kamikoani.akita.jp/,,053279\n"
        "1,北海道,1661,釧路町,,0,0,http://www.town.kushiro.lg.jp/,,016616\n",
        encoding="utf-8",
    )
    builder = _builder()
    out = tmp_path / "panel.csv"
    assert builder.main([str(tmp_path), "--out", str(out)]) == 0
    with open(out, encoding="utf-8") as fh:
        got = [
            (r["domain"], r["prefecture"], r["jis_code"], r["name"], r["kind"])
            for r in csv.DictReader(fh)
        ]
    assert got == [
        ("pref.hokkaido.lg.jp", "北海道", "01000", "北海道", "prefecture"),
        ("city.sapporo.jp", "北海道", "01100", "札幌市", "city"),
        ("city.sapporo.jp", "北海道", "01101", "札幌市 中央区", "ward"),
        ("town.kushiro.lg.jp", "北海道", "01661", "釧路町", "town"),
        ("pref.akita.lg.jp", "秋田県", "05000", "秋田県", "prefecture"),
        ("city.akita.lg.jp", "秋田県", "05201", "秋田市", "city"),
        ("vill.kamikoani.akita.jp", "秋田県", "05327", "上小阿仁村", "village"),
    ]


def test_committed_panel_covers_every_prefecture():
    with open(ROOT / "domain_lists" / "localgov.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len({r["prefecture"] for r in rows}) == 47
    assert sum(r["kind"] == "prefecture" for r in rows) == 47
    assert {r["kind"] for r in rows} == {"prefecture", "city", "ward", "town", "village"}


def test_synthetic_panel_covers_every_prefecture_and_leaves_the_sample_alone():
    from mailauth_survey.domains import category
    from mailauth_survey.prefectures import PREFECTURES
    from mailauth_survey.synthetic.population import generate

    plain = generate(300, 5)
    with_panel = generate(300, 5, localgov=True)
    assert all(plain.truth[d] == with_panel.truth[d] for d in plain.domains)
    rows = with_panel.panel
    assert [r["prefecture"] for r in rows if r["kind"] == "prefecture"] == [
        ja for _, ja, _ in PREFECTURES
    ]
    domains = {r["domain"] for r in rows}
    assert domains <= set(with_panel.domains) and not domains & set(plain.domains)
    assert {category(d) for d in domains} == {"lg", "geographic"}
    shared = {r["domain"] for r in rows if r["kind"] == "ward"}
    assert shared and all(
        {"city", "ward"} == {r["kind"] for r in rows if r["domain"] == d} for d in shared
    )
    assert generate(300, 5, localgov=True).panel == rows  # deterministic
