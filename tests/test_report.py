"""report: loading snapshots, the adoption metrics and their denominators, trend, diff, the CLI.

Populations are small and built by hand so that every expected figure is known exactly.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

from mailauth_survey import report, store
from mailauth_survey.cli import main
from mailauth_survey.domains import CATEGORIES

WHEN = dt.datetime(2024, 6, 1, 3, 0, tzinfo=dt.UTC)


def row(domain: str, category: str, status: str = "ok", **fields: Any) -> dict[str, Any]:
    return {"domain": domain, "category": category, "status": status, "scanned_at": WHEN, **fields}


def mail(provider: str, **fields: Any) -> dict[str, Any]:
    """Fields of a domain with one real exchange at provider."""
    return {
        "has_mx": True,
        "mx_null": False,
        "mx_status": "NOERROR",
        "mx_hosts": [f"mx.{provider}"],
        "mx_provider": provider,
        **fields,
    }


def dmarc(policy: str, **fields: Any) -> dict[str, Any]:
    return {"dmarc_status": "valid", "dmarc_p": policy, "dmarc_policy": policy, **fields}


def spf(all_: str) -> dict[str, Any]:
    return {"spf_status": "valid", "spf_all": all_, "spf_record": f"v=spf1 {all_}"}


def write_snapshot(out: Path, label: str, rows: list[dict[str, Any]]) -> None:
    domains_dir = store.Snapshot(out, label).domains
    store.write_part(domains_dir, "part-00000.parquet", rows, store.DOMAINS_SCHEMA)
    store.Snapshot(out, label).write_manifest(
        {"schema_version": store.SCHEMA_VERSION, "label": label}
    )


def population() -> list[dict[str, Any]]:
    """7 co (3 of them timed out), 3 general (1 NXDOMAIN), 1 lg: every figure below follows."""
    return [
        row("c1.co.jp", "co", **mail("google.com"), **spf("-all"), **dmarc("reject", dmarc_rua=["mailto:d@c1.co.jp"]),
            dkim_domainkey="exists", dkim_selectors=["google"]),
        row("c2.co.jp", "co", **mail("google.com"), **spf("~all"), **dmarc("reject"), dkim_domainkey="nxdomain"),
        row("c3.co.jp", "co", **mail("outlook.com"), **spf("?all"), **dmarc("none")),
        # No mail: null MX and the "send nothing" SPF record.
        row("c4.co.jp", "co", has_mx=False, mx_null=True, mx_status="NOERROR", **spf("-all"), dmarc_status="none"),
        # Timeouts, one carrying leftovers a careless analysis might count (valid SPF and DMARC).
        row("c5.co.jp", "co", "timeout", **spf("-all"), **dmarc("reject")),
        row("c6.co.jp", "co", "timeout", spf_status="none", dmarc_status="none"),
        row("c7.co.jp", "co", "timeout"),
        row("g1.jp", "general", **mail("outlook.com"), spf_status="permerror", dmarc_status="invalid"),
        # A temporary SPF error on an existing domain: in the denominator, in no SPF metric.
        row("g2.jp", "general", **mail("sakura.ne.jp"), spf_status="temperror", **dmarc("quarantine")),
        row("g3.jp", "general", "nxdomain"),
        row("l1.city.chiyoda.tokyo.lg.jp", "lg", **mail("google.com"), **spf("-all"), **dmarc("reject"),
            mta_sts_status="valid", tlsrpt_status="valid", bimi_status="valid"),
    ]  # fmt: skip


@pytest.fixture
def results(tmp_path: Path) -> Path:
    write_snapshot(tmp_path, "2024-06-01", population())
    return tmp_path


def by_group(table: pd.DataFrame, key: str = "category") -> dict[str, dict[str, Any]]:
    return {r[key]: r for r in table.to_dict("records")}


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


# --- load --------------------------------------------------------------------------------------


def test_load_types_and_snapshot_column(results: Path) -> None:
    write_snapshot(results, "2023-10-01", population()[:2])
    df = report.load(results)
    assert len(df) == 13  # 11 + 2; the _manifest.json files are not read as data
    # Labels that look like dates stay strings, oldest snapshot first.
    assert list(dict.fromkeys(df["snapshot"])) == ["2023-10-01", "2024-06-01"]
    assert all(isinstance(s, str) for s in df["snapshot"])
    assert list(df["category"].cat.categories) == list(CATEGORIES)
    assert str(df["scanned_at"].dt.tz) == "UTC"
    c1 = df[(df["domain"] == "c1.co.jp") & (df["snapshot"] == "2024-06-01")].iloc[0]
    assert list(c1["dmarc_rua"]) == ["mailto:d@c1.co.jp"]
    assert (
        df["has_mx"].dtype == "boolean"
        and pd.isna(df.loc[df["domain"] == "c7.co.jp", "has_mx"]).all()
    )

    one = report.load(results, "2023-10-01")
    assert set(one["snapshot"]) == {"2023-10-01"} and len(one) == 2


def test_load_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(report.ReportError, match="no such directory"):
        report.load(tmp_path / "missing")
    with pytest.raises(report.ReportError, match="no snapshots"):
        report.load(tmp_path)
    write_snapshot(tmp_path, "2024-06-01", population())
    with pytest.raises(report.ReportError, match=r"no snapshot '2024-07-01'.*have: 2024-06-01"):
        report.load(tmp_path, "2024-07-01")


# --- adoption ----------------------------------------------------------------------------------


def test_adoption_by_category_counts_and_percentages(results: Path) -> None:
    table = report.adoption(report.load(results))
    # Categories in the fixed order (lg before general), only those listed, then the total.
    assert list(table["category"]) == ["co", "lg", "general", "total"]
    co, gen, lg, total = (by_group(table)[k] for k in ("co", "general", "lg", "total"))

    # co: 4 exist (3 timed out), 3 with MX.
    assert (co["domains"], co["has_mx"], co["null_mx"], co["timeout"]) == (4, 3, 1, 3)
    assert (
        co["spf_valid"] == 4 and co["spf_valid_pct"] == 100.0
    )  # the timeouts are in no denominator
    assert (co["spf_all_fail"], co["spf_all_softfail"], co["spf_all_neutral"]) == (2, 1, 1)
    assert co["spf_all_fail_pct"] == 50.0
    # Of the domains with MX only c1 has -all (c4 has no MX): the numerator is restricted too.
    assert co["spf_all_fail_mx_pct"] == pytest.approx(100 / 3)
    assert (co["dmarc_valid"], co["dmarc_reject"], co["dmarc_none"], co["dmarc_quarantine"]) == (
        3,
        2,
        1,
        0,
    )
    assert co["dmarc_valid_pct"] == 75.0 and co["dmarc_valid_mx_pct"] == 100.0
    assert co["dmarc_reject_mx_pct"] == pytest.approx(200 / 3)
    assert co["dmarc_enforcing"] == 2 and co["dmarc_rua"] == 1
    assert (co["dkim_domainkey"], co["dkim_selector"]) == (1, 1)
    # Errors are percentages of every listed domain; they have no MX denominator.
    assert co["timeout_pct"] == pytest.approx(300 / 7)
    assert pd.isna(co["timeout_mx_pct"])

    # general: a permerror, a temperror (in the denominator, in no SPF metric), an NXDOMAIN.
    assert (gen["domains"], gen["spf_valid"], gen["spf_permerror"], gen["nxdomain"]) == (2, 0, 1, 1)
    assert gen["spf_permerror_pct"] == 50.0
    assert (gen["dmarc_valid"], gen["dmarc_quarantine"], gen["dmarc_invalid"]) == (1, 1, 1)
    assert gen["nxdomain_pct"] == pytest.approx(100 / 3)

    assert (lg["mta_sts"], lg["tlsrpt"], lg["bimi"], lg["mta_sts_pct"]) == (1, 1, 1, 100.0)

    assert (total["domains"], total["has_mx"], total["dmarc_valid"], total["timeout"]) == (
        7,
        6,
        5,
        3,
    )
    assert total["dmarc_valid_pct"] == pytest.approx(500 / 7)
    assert total["dmarc_valid_mx_pct"] == pytest.approx(500 / 6)
    assert total["timeout_pct"] == pytest.approx(300 / 11)


def test_adoption_columns_are_the_metrics_with_their_percentages(results: Path) -> None:
    table = report.adoption(report.load(results))
    assert list(table.columns) == [
        "snapshot",
        "category",
        "label",
        *report.metric_columns(report.METRICS),
    ]
    # The spf_all split adds up to spf_valid; the DMARC policy split to dmarc_valid.
    t = by_group(table)["total"]
    assert (
        sum(t[f"spf_all_{k}"] for k in ("fail", "softfail", "neutral", "pass", "none"))
        == t["spf_valid"]
    )
    assert t["dmarc_none"] + t["dmarc_quarantine"] + t["dmarc_reject"] == t["dmarc_valid"]


def test_a_category_with_only_errors_has_null_percentages(tmp_path: Path) -> None:
    write_snapshot(
        tmp_path, "s1", [row("a.ed.jp", "ed", "servfail"), row("b.ed.jp", "ed", "servfail")]
    )
    ed = by_group(report.report(tmp_path))["ed"]
    assert ed["domains"] == 0 and pd.isna(ed["spf_valid_pct"])  # not 0%: nothing is known
    assert ed["servfail"] == 2 and ed["servfail_pct"] == 100.0


def test_adoption_by_provider_top(results: Path) -> None:
    table = report.adoption(report.load(results), by="mx_provider", top=2, min_domains=0)
    # google.com (3 domains), outlook.com (2), every smaller one as other, no MX as none.
    assert list(table["mx_provider"]) == ["google.com", "outlook.com", "other", "none", "total"]
    rows = by_group(table, "mx_provider")
    assert rows["google.com"]["domains"] == 3 and rows["google.com"]["dmarc_reject"] == 3
    assert rows["outlook.com"]["dmarc_valid_pct"] == 50.0
    assert rows["other"]["domains"] == 1 and rows["other"]["dmarc_quarantine"] == 1  # sakura.ne.jp
    # none: c4 (no MX) exists; the 3 timeouts and the NXDOMAIN are listed but not in domains.
    assert (rows["none"]["domains"], rows["none"]["timeout"], rows["none"]["nxdomain"]) == (1, 3, 1)
    assert (
        sum(rows[k]["domains"] for k in ("google.com", "outlook.com", "other", "none"))
        == rows["total"]["domains"]
    )


def test_unknown_grouping_and_metric(results: Path) -> None:
    with pytest.raises(report.ReportError, match="cannot group by"):
        report.adoption(report.load(results), by="registrar")
    with pytest.raises(report.ReportError, match="unknown metric"):
        report.trend(results, ["dmarc"])


# --- trend -------------------------------------------------------------------------------------


def test_trend_oldest_first_with_values(tmp_path: Path) -> None:
    policies = {"2024-06-01": 3, "2023-10-01": 1, "2024-01-01": 2}  # written newest first
    for label, n in policies.items():
        rows = [row(f"d{i}.co.jp", "co", **mail("google.com"), **(dmarc("none") if i < n else {"dmarc_status": "none"}))
                for i in range(4)]  # fmt: skip
        rows.append(row("x.jp", "general", "timeout"))
        write_snapshot(tmp_path, label, rows)
    table = report.trend(tmp_path, ["dmarc_valid"])
    assert list(table.columns) == [
        "snapshot",
        "category",
        "label",
        *report.metric_columns(["domains", "dmarc_valid"]),
    ]
    co = table[table["category"] == "co"]
    assert list(co["snapshot"]) == ["2023-10-01", "2024-01-01", "2024-06-01"]
    assert list(co["dmarc_valid"]) == [1, 2, 3]
    assert list(co["dmarc_valid_pct"]) == [25.0, 50.0, 75.0]
    total = table[table["category"] == "total"]
    assert list(total["dmarc_valid_pct"]) == [25.0, 50.0, 75.0]  # the timeout is in no denominator

    out = run_cli("trend", tmp_path, "--metric", "dmarc_valid", "--format", "json")
    assert out.exit_code == 0
    rows = json.loads(out.output)
    assert [(r["snapshot"], r["category"]) for r in rows][:3] == [
        ("2023-10-01", "co"), ("2023-10-01", "general"), ("2023-10-01", "total"),
    ]  # fmt: skip
    assert set(rows[0]) == {
        "snapshot",
        "category",
        "label",
        *report.metric_columns(["domains", "dmarc_valid"]),
    }
    assert rows[1]["dmarc_valid_pct"] is None  # general: only a timeout, no denominator


# --- diff --------------------------------------------------------------------------------------


def diff_snapshots(out: Path) -> None:
    mx = mail("google.com")
    a = [
        row("x1.co.jp", "co", **mx, **spf("~all"), **dmarc("none")),
        row("x2.co.jp", "co", **mx, spf_status="none", dmarc_status="none"),
        row("x3.co.jp", "co", **mx, **spf("-all"), **dmarc("reject")),
        row("x4.co.jp", "co", **mx, **spf("-all"), **dmarc("reject")),
        row("x5.co.jp", "co", **mx, **spf("-all"), **dmarc("quarantine")),
        row("x6.co.jp", "co", **mx, **dmarc("reject")),
        row("x8.co.jp", "co", **mx, **dmarc("none")),
    ]
    b = [
        row("x1.co.jp", "co", **mx, **spf("-all"), **dmarc("reject")),  # none -> reject
        row("x2.co.jp", "co", **mx, **spf("~all"), **dmarc("none")),  # absent -> none
        row("x3.co.jp", "co", "timeout"),  # unknown: not lost
        row("x4.co.jp", "co", **mx, **spf("-all"), dmarc_status="temperror"),  # unknown: not lost
        row("x5.co.jp", "co", **mx, **spf("-all"), dmarc_status="none"),  # quarantine -> absent
        row("x7.co.jp", "co", **mx, **dmarc("reject")),  # new in B: not "gained"
        row("x8.co.jp", "co", **mx, **dmarc("reject")),  # none -> reject
    ]
    write_snapshot(out, "2024-01-01", a)
    write_snapshot(out, "2024-06-01", b)


def test_diff_gained_lost_and_transitions(tmp_path: Path) -> None:
    diff_snapshots(tmp_path)
    d = report.diff(tmp_path, "2024-01-01", "2024-06-01")
    assert d["domains"] == {"a": 7, "b": 7, "both": 6, "only_a": 1, "only_b": 1}
    assert d["gained"]["dmarc_reject"] == ["x1.co.jp", "x8.co.jp"]
    assert d["gained"]["dmarc_enforcing"] == ["x1.co.jp", "x8.co.jp"]
    assert d["gained"]["dmarc_valid"] == ["x2.co.jp"]
    assert d["lost"]["dmarc_none"] == ["x1.co.jp", "x8.co.jp"]
    # x3 timed out and x4's DMARC query failed: unknown, so neither is lost.
    assert d["lost"]["dmarc_valid"] == ["x5.co.jp"]
    assert d["lost"]["dmarc_reject"] == []
    assert d["gained"]["spf_all_fail"] == ["x1.co.jp"] and d["gained"]["spf_valid"] == ["x2.co.jp"]

    policy = d["dmarc_policy"]
    assert list(policy.index) == list(report.DMARC_STATES) and list(policy.columns) == list(
        report.DMARC_STATES
    )
    assert policy.loc["none", "reject"] == 2
    assert policy.loc["absent", "none"] == 1
    assert policy.loc["reject", "unknown"] == 2
    assert policy.loc["quarantine", "absent"] == 1
    assert int(policy.to_numpy().sum()) == 6  # the domains in both snapshots
    spf_all = d["spf_all"]
    assert spf_all.loc["~all", "-all"] == 1 and spf_all.loc["-all", "unknown"] == 1
    assert spf_all.loc["absent", "~all"] == 1


def test_diff_cli_json_and_csv(tmp_path: Path) -> None:
    diff_snapshots(tmp_path)
    out = run_cli("diff", tmp_path, "2024-01-01", "2024-06-01", "--format", "json")
    assert out.exit_code == 0
    data = json.loads(out.output)
    assert data["gained"]["dmarc_reject"] == ["x1.co.jp", "x8.co.jp"]
    assert data["dmarc_policy"]["none"]["reject"] == 2
    csv_out = run_cli("diff", tmp_path, "2024-01-01", "2024-06-01", "--format", "csv").output
    lines = csv_out.splitlines()
    assert lines[0] == "table,row,column,value"
    assert "adopters,dmarc_valid,lost,1" in lines and "dmarc_policy,none,reject,2" in lines
    table = run_cli("diff", tmp_path, "2024-01-01", "2024-06-01", "--lang", "ja").output
    assert "DMARC ポリシーの遷移" in table and "新規採用" in table


# --- report command ----------------------------------------------------------------------------


def test_report_json_rows(results: Path) -> None:
    out = run_cli("report", results, "--format", "json")
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert [r["category"] for r in rows] == ["co", "lg", "general", "total"]
    spec = [m for m in report.METRICS if m not in report.TABLE_ONLY]
    assert set(rows[0]) == {"snapshot", "category", "label", *report.metric_columns(spec)}
    co = rows[0]
    assert (co["domains"], co["spf_valid"], co["dmarc_valid"], co["timeout"]) == (4, 4, 3, 3)
    assert co["dmarc_valid_pct"] == 75.0 and co["timeout_mx_pct"] is None
    assert co["timeout_pct"] == pytest.approx(300 / 7)


def test_report_newest_by_default_and_snapshot_option(results: Path) -> None:
    write_snapshot(results, "2023-10-01", [row("old.co.jp", "co", **mail("google.com"))])
    newest = json.loads(run_cli("report", results, "--format", "json").output)
    assert newest[-1]["domains"] == 7
    older = json.loads(
        run_cli("report", results, "--snapshot", "2023-10-01", "--format", "json").output
    )
    assert older[-1]["domains"] == 1 and older[-1]["dmarc_valid"] == 0


def test_report_by_provider_cli(results: Path) -> None:
    out = run_cli(
        "report",
        results,
        "--by",
        "mx_provider",
        "--top",
        "2",
        "--min-domains",
        "0",
        "--format",
        "json",
    )
    rows = json.loads(out.output)
    assert [r["mx_provider"] for r in rows] == [
        "google.com",
        "outlook.com",
        "other",
        "none",
        "total",
    ]
    assert "category" not in rows[0]
    assert rows[0]["dmarc_reject_pct"] == 100.0


def test_report_csv_and_people_formats(results: Path) -> None:
    csv_lines = run_cli("report", results, "--format", "csv").output.splitlines()
    assert csv_lines[0].split(",")[:5] == [
        "snapshot",
        "category",
        "label",
        "domains",
        "domains_pct",
    ]
    assert csv_lines[1].startswith("2024-06-01,co,co.jp,4,100.0,")

    ja = run_cli("report", results, "--lang", "ja").output
    assert "属性型 co.jp" in ja and "汎用JP" in ja and "DMARC 有効" in ja and "合計" in ja
    dmarc_line = next(line for line in ja.splitlines() if "DMARC 有効" in line)
    assert "3 75.0%" in dmarc_line

    md = run_cli("report", results, "--format", "markdown").output.splitlines()
    header = next(line for line in md if line.startswith("| Metric"))
    assert header == "| Metric | co.jp † | lg.jp † | General-use JP † | Total † |"
    assert any(line.startswith("| Timeout | 3 42.9% |") for line in md)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "{missing}"], "no such directory"),
        (["report", "{dir}", "--snapshot", "1999-01-01"], "no snapshot '1999-01-01'"),
        (["trend", "{dir}", "--metric", "dmarc"], "unknown metric"),
        (["diff", "{dir}", "2024-06-01", "2020-01-01"], "no snapshot '2020-01-01'"),
        (["report", "{empty}"], "no snapshots"),
    ],
)
def test_cli_errors_are_one_line(
    results: Path, tmp_path_factory: pytest.TempPathFactory, args: list[str], message: str
) -> None:
    empty = tmp_path_factory.mktemp("empty")
    paths = {"dir": results, "missing": results / "nope", "empty": empty}
    out = CliRunner().invoke(main, [a.format(**paths) for a in args])
    assert out.exit_code == 1
    assert message in out.output and "Traceback" not in out.output
    assert len(out.output.strip().splitlines()) == 1


def test_bimi_declination_is_its_own_row_not_adoption(tmp_path: Path) -> None:
    """BIMI draft 4.3.1: a declination is "distinct from not publishing a BIMI record", and it
    is no indicator either: SPEC.md keeps it out of ``bimi`` and shows it in its own row."""
    rows = [
        row("b1.co.jp", "co", **mail("google.com"), bimi_status="valid"),
        row("b2.co.jp", "co", **mail("google.com"), bimi_status="declined"),
        row("b3.co.jp", "co", **mail("google.com"), bimi_status="declined"),
        row("b4.co.jp", "co", **mail("google.com"), bimi_status="none"),
    ]
    write_snapshot(tmp_path, "2024-06-01", rows)
    total = by_group(report.adoption(report.load(tmp_path), by="category"))["total"]
    assert (total["bimi"], total["bimi_declined"]) == (1, 2)
    assert total["bimi_declined_pct"] == 50.0
    for lang, label in (("en", "BIMI declined"), ("ja", "BIMI 辞退")):
        out = run_cli("report", tmp_path, "--lang", lang).output
        assert label in out, out


#: SPEC.md "Metrics": the metric names that `report --format json` keys are made of.
SPEC_METRICS = (
    "domains", "has_mx", "null_mx", "spf_valid", "spf_permerror", "spf_all_fail",
    "spf_all_softfail", "spf_all_neutral", "spf_all_pass", "spf_all_none", "dmarc_valid",
    "dmarc_invalid", "dmarc_none", "dmarc_quarantine", "dmarc_reject", "dmarc_enforcing",
    "dmarc_rua", "dkim_domainkey", "dkim_selector", "mta_sts", "tlsrpt", "bimi",
    "mta_sts_enforce", "mta_sts_mismatch", "starttls", "dane", "dnssec", "nxdomain", "servfail",
    "timeout", "refused", "error",
)  # fmt: skip
SPEC_PARTIAL = ("starttls", "dane", "dnssec", "mta_sts_enforce", "mta_sts_mismatch")


def test_json_and_csv_keys_are_exactly_specs(tmp_path: Path) -> None:
    """SPEC.md: JSON keys are exactly the metric names, their _pct, _mx_pct, _lo/_hi and
    _measured companions, the grouping key, label and snapshot. `bimi_declined` is a row of the
    people's table only, unless asked for by name."""
    rows = [
        row("b1.co.jp", "co", **mail("google.com"), bimi_status="valid"),
        row("b2.co.jp", "co", **mail("google.com"), bimi_status="declined"),
    ]
    write_snapshot(tmp_path, "2024-06-01", rows)
    expected = {"category", "label", "snapshot"}
    for m in SPEC_METRICS:
        expected |= {m, f"{m}_pct", f"{m}_pct_lo", f"{m}_pct_hi"}
        expected |= {f"{m}_mx_pct", f"{m}_mx_pct_lo", f"{m}_mx_pct_hi"}
        if m in SPEC_PARTIAL:
            expected.add(f"{m}_measured")
    records = json.loads(run_cli("report", tmp_path, "--format", "json").output)
    assert all(set(r) == expected for r in records), set(records[0]) ^ expected
    header = run_cli("report", tmp_path, "--format", "csv").output.splitlines()[0]
    assert set(header.split(",")) == expected
    asked = json.loads(
        run_cli("report", tmp_path, "--format", "json", "--metric", "bimi_declined").output
    )
    assert asked[-1]["bimi_declined"] == 1
