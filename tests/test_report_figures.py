"""Figures a committee can publish (issue 21): not measured is null, n and a 95% interval on
every share, incomplete snapshots never used silently, rows that carry their context.

Populations are built by hand so that every expected figure is known exactly.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

import mailauth_survey as ms
from mailauth_survey import report, store
from mailauth_survey.cli import main

from .test_report import dmarc, mail, row, spf

NO_PROBES = {"options": {"mta_sts_policy": False, "probe_smtp": False}}


def write(out: Path, label: str, rows: list[dict[str, Any]], **manifest: Any) -> None:
    snap = store.Snapshot(out, label)
    store.write_part(snap.domains, "part-00000.parquet", rows, store.DOMAINS_SCHEMA)
    snap.write_manifest({"schema_version": store.SCHEMA_VERSION, "snapshot": label, **manifest})


def cli(*args: Any, env: dict[str, str] | None = None) -> Any:
    return CliRunner(env=env).invoke(main, [str(a) for a in args], catch_exceptions=False)


def co(i: int, **fields: Any) -> dict[str, Any]:
    return row(f"d{i}.co.jp", "co", **mail("google.com"), **spf("-all"), **fields)


# --- 1. not measured is not zero ---------------------------------------------------------------


def test_unprobed_metrics_are_null_in_json_not_zero(tmp_path: Path) -> None:
    """The demo case: no SMTP probe, no policy fetch, a resolver that set AD on nothing."""
    write(tmp_path, "s1", [co(i, mta_sts_status="valid" if i == 0 else "none",
                               mta_sts_policy_status="none" if i else None) for i in range(4)],
          **NO_PROBES)  # fmt: skip
    out = cli("report", tmp_path, "--format", "json")
    assert out.exit_code == 0, out.output
    total = json.loads(out.stdout)[-1]
    for metric in ("starttls", "dane", "dnssec", "mta_sts_enforce", "mta_sts_mismatch"):
        assert total[metric] is None, metric
        assert total[f"{metric}_pct"] is None and total[f"{metric}_pct_lo"] is None
        assert total[f"{metric}_measured"] == 0
    assert total["spf_valid"] == 4  # measured metrics keep their counts
    # The API says the same (pandas NA), and CSV leaves the cell empty.
    table = report.report(tmp_path)
    assert pd.isna(table.iloc[-1]["starttls"])
    csv_total = report.render(table, "csv").splitlines()[-1].split(",")
    header = report.render(table, "csv").splitlines()[0].split(",")
    assert csv_total[header.index("starttls")] == ""


def test_unmeasured_cells_are_a_dash_with_the_reason(tmp_path: Path) -> None:
    write(tmp_path, "s1", [co(i) for i in range(3)], **NO_PROBES)
    text = cli("report", tmp_path, env={"COLUMNS": "100"}).stdout
    starttls = next(line for line in text.splitlines() if "STARTTLS" in line)
    assert "—" in starttls and "0.0%" not in starttls
    assert "--probe-smtp not used" in text
    assert "policy fetch off" in text
    assert "no AD flag" in text
    ja = " ".join(cli("report", tmp_path, "--lang", "ja", env={"COLUMNS": "100"}).stdout.split())
    assert "未測定" in ja and "--probe-smtp を指定していない" in ja


def test_partly_measured_metric_carries_measured(tmp_path: Path) -> None:
    rows = [co(0, starttls=True), co(1, starttls=False), co(2), co(3)]  # 2 probed of 4
    write(tmp_path, "s1", rows, options={"probe_smtp": True, "mta_sts_policy": True})
    co_row = report.report(tmp_path).iloc[0]
    assert co_row["starttls"] == 1 and co_row["starttls_measured"] == 2
    assert co_row["starttls_pct"] == 25.0  # of the domains that exist (SPEC.md)
    text = cli("report", tmp_path, env={"COLUMNS": "100"}).stdout
    assert "2 of 4" in text


# --- 2. n and uncertainty ----------------------------------------------------------------------


def test_every_share_has_its_wilson_interval() -> None:
    # Wilson (1927) at z = 1.96: 0 of 6 -> [0, 39.0%]; 5 of 10 -> [23.7%, 76.3%].
    lo, hi = report.wilson([0, 5, 0], [6, 10, 0])
    assert lo[0] == 0.0 and hi[0] == pytest.approx(39.03, abs=0.01)
    assert lo[1] == pytest.approx(23.66, abs=0.01) and hi[1] == pytest.approx(76.34, abs=0.01)
    assert math.isnan(lo[2]) and math.isnan(hi[2])  # no denominator, no interval


def test_interval_columns_and_small_group_marks(tmp_path: Path) -> None:
    rows = [co(i, **(dmarc("none") if i < 5 else {"dmarc_status": "none"})) for i in range(10)]
    write(tmp_path, "s1", rows)
    rec = json.loads(cli("report", tmp_path, "--format", "json").stdout)[0]
    assert rec["dmarc_valid_pct_lo"] == pytest.approx(23.66, abs=0.01)
    assert rec["dmarc_valid_mx_pct_hi"] == pytest.approx(76.34, abs=0.01)
    assert {"dmarc_valid_pct_hi", "dmarc_valid_mx_pct_lo"} <= set(rec)
    text = cli("report", tmp_path, "--ci", env={"COLUMNS": "100"}).stdout
    assert "co.jp †" in text and "fewer than 30 domains" in text
    dmarc_line = next(line for line in text.splitlines() if "DMARC valid" in line)
    assert "5 50.0% [23.7–76.3]" in dmarc_line


# --- 3. incomplete snapshots -------------------------------------------------------------------


def incomplete_results(out: Path) -> None:
    write(out, "2024Q1", [co(i) for i in range(4)], complete=True, domains=4)
    # A scan that stopped after 1 of its 5 domains.
    write(out, "2024Q2", [co(0)], complete=False, domains_listed=5)


def test_report_skips_an_incomplete_snapshot_with_a_warning(tmp_path: Path) -> None:
    incomplete_results(tmp_path)
    out = cli("report", tmp_path, "--format", "json")
    assert out.exit_code == 0
    rows = json.loads(out.stdout)
    assert {r["snapshot"] for r in rows} == {"2024Q1"} and rows[-1]["domains"] == 4
    warning = [line for line in out.stderr.splitlines() if "2024Q2" in line]
    assert len(warning) == 1 and "incomplete" in warning[0]

    used = json.loads(cli("report", tmp_path, "--include-incomplete", "--format", "json").stdout)
    assert used[-1]["snapshot"] == "2024Q2"

    named = cli("report", tmp_path, "--snapshot", "2024Q2")
    assert named.exit_code == 0 and "incomplete: 1 of 5 domains" in named.stdout


def test_trend_diff_and_load_leave_incomplete_out(tmp_path: Path) -> None:
    incomplete_results(tmp_path)
    with pytest.warns(report.IncompleteSnapshotWarning, match="2024Q2"):
        df = report.load(tmp_path)
    assert set(df["snapshot"]) == {"2024Q1"}
    with pytest.warns(report.IncompleteSnapshotWarning):
        assert set(report.trend(tmp_path)["snapshot"]) == {"2024Q1"}
    out = cli("trend", tmp_path, "--format", "json")
    assert {r["snapshot"] for r in json.loads(out.stdout)} == {"2024Q1"}
    assert "2024Q2" in out.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the complete one named: no warning at all
        assert set(report.load(tmp_path, "2024Q1")["snapshot"]) == {"2024Q1"}


# --- 5. rows carry their context ---------------------------------------------------------------


def test_rows_carry_snapshot_and_label_in_the_language(tmp_path: Path) -> None:
    rows = [co(i, **(dmarc("none") if i < 1 else {})) for i in range(3)]
    write(tmp_path, "2024Q2", rows)
    ja = json.loads(cli("report", tmp_path, "--format", "json", "--lang", "ja").stdout)
    assert [(r["snapshot"], r["category"], r["label"]) for r in ja] == [
        ("2024Q2", "co", "属性型 co.jp"),
        ("2024Q2", "total", "合計"),
    ]
    en = json.loads(cli("report", tmp_path, "--format", "json").stdout)
    assert en[0]["label"] == "co.jp"
    assert en[0]["dmarc_valid_pct"] == pytest.approx(100 / 3)  # JSON: full precision
    csv = cli("report", tmp_path, "--format", "csv").stdout.splitlines()
    cells = dict(zip(csv[0].split(","), csv[1].split(","), strict=True))
    assert cells["dmarc_valid_pct"] == "33.3"  # CSV: one decimal
    assert cells["snapshot"] == "2024Q2" and cells["label"] == "co.jp"


# --- 9. the API never pools quarters -----------------------------------------------------------


def test_adoption_of_several_snapshots_gives_rows_per_snapshot(tmp_path: Path) -> None:
    write(tmp_path, "2023Q4", [co(i) for i in range(3)])
    write(tmp_path, "2024Q2", [co(i) for i in range(5)])
    table = ms.adoption(ms.load(tmp_path), by="category")
    totals = table[table["category"] == "total"].set_index("snapshot")["domains"]
    assert totals.to_dict() == {"2023Q4": 3, "2024Q2": 5}  # not 8
    assert ms.load(tmp_path)["category"].cat.ordered
    assert {"load", "adoption"} <= set(dir(ms))


# --- 10. MTA-STS enforce means protected -------------------------------------------------------


def test_mta_sts_enforce_needs_every_mx_matched(tmp_path: Path) -> None:
    """RFC 8461 5: with an enforce policy, a sender refuses an MX no pattern matches."""
    policy = {"mta_sts_status": "valid", "mta_sts_policy_status": "valid"}
    rows = [
        co(0, **policy, mta_sts_mode="enforce", mta_sts_mx_match=True),  # protected
        co(1, **policy, mta_sts_mode="enforce", mta_sts_mx_match=False),  # mail refused
        co(2, **policy, mta_sts_mode="testing", mta_sts_mx_match=False),  # reports only
        co(3, **policy, mta_sts_mode="testing", mta_sts_mx_match=True),
        co(4, mta_sts_status="none", mta_sts_policy_status="none"),
        co(5, mta_sts_status="valid", mta_sts_policy_status="timeout"),  # unknown
    ]
    write(tmp_path, "s1", rows, options={"mta_sts_policy": True})
    total = report.report(tmp_path).iloc[-1]
    assert total["mta_sts_enforce"] == 1
    assert total["mta_sts_mismatch"] == 2
    assert total["mta_sts_enforce_measured"] == 5  # the timeout is not a definite answer


# --- 4. a terminal table that fits -------------------------------------------------------------


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every category and eight providers of 10+ domains each: tables far wider than 100."""
    out = tmp_path_factory.mktemp("wide")
    cats = list(report.CATEGORIES)
    rows = [
        row(f"d{i}.example.jp", cats[i % len(cats)], **mail(f"mail-provider-{i % 8}.example.com"),
            **spf("-all"), **(dmarc("none") if i % 3 else {"dmarc_status": "none"}))
        for i in range(160)
    ]  # fmt: skip
    rows.append(row("gone.co.jp", "co", "nxdomain"))
    write(out, "2024Q2", rows, **NO_PROBES)
    return out


@pytest.mark.parametrize("lang", ["en", "ja"])
@pytest.mark.parametrize("width", [80, 100])
@pytest.mark.parametrize("by", ["category", "mx_provider"])
def test_people_table_fits_the_width(wide: Path, lang: str, width: int, by: str) -> None:
    from rich.cells import cell_len

    out = cli("report", wide, "--by", by, "--lang", lang, env={"COLUMNS": str(width)})
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert max(cell_len(line) for line in lines) <= width
    assert sum(line.startswith("┏") for line in lines) >= 2  # split into several tables
    table = report.report(wide, by=by, lang=lang)
    for label in table["label"]:  # every group is in one of them
        assert any(label in line for line in lines if line.startswith("┃")), label


def test_people_table_rows_and_sections(wide: Path) -> None:
    lines = cli("report", wide, env={"COLUMNS": "100"}).stdout.splitlines()
    first = lines[: next(i for i, line in enumerate(lines) if line.startswith("├"))]
    assert any("NXDOMAIN" in line for line in first)  # with the domains, not with the errors
    exist = next(line for line in lines if "Domains (exist)" in line)
    assert "%" not in exist and "MX" not in exist  # no meaningless "MX 100%"
    picked = cli("report", wide, "--metric", "dmarc_valid", "--metric", "spf_valid",
                 env={"COLUMNS": "100"}).stdout  # fmt: skip
    rows = [line for line in picked.splitlines() if line.startswith("│")]
    assert [line.split("│")[1].strip() for line in rows][:2] == ["SPF valid", "DMARC valid"]
    assert not any("DKIM" in line or "MTA-STS" in line for line in rows)
