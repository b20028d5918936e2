"""Figures travel with their context (issue 21): the methods block, providers a reader can use,
exports, diff's noise verdict, and help and labels that say what the commands do."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mailauth_survey import report
from mailauth_survey.cli import main

from .test_report import dmarc, mail, row, spf
from .test_report_figures import NO_PROBES, write

MANIFEST = {
    **NO_PROBES,
    "complete": True,
    "started_at": "2024-06-01T03:00:00+00:00",
    "finished_at": "2024-06-01T05:30:00+00:00",
    "domains": 60,
    "status_counts": {"ok": 58, "nxdomain": 2},
    "resolvers": ["127.0.0.1:5353"],
    "public_suffix_list": "publicsuffixlist 1.0.2.20240601",
    "inputs": [{"path": "/lists/jp-2024.txt", "sha256": "0123456789abcdef" * 4}],
}


def cli(*args: Any, env: dict[str, str] | None = None) -> Any:
    return CliRunner(env=env).invoke(main, [str(a) for a in args])


def providers(out: Path) -> None:
    """40 at google.com, 12 self-hosted (each its own), 3 + 3 at two small providers, 2 gone."""
    rows = [row(f"g{i}.co.jp", "co", **mail("google.com"), **spf("-all")) for i in range(40)]
    rows += [row(f"own{i}.co.jp", "co", **mail(f"own{i}.co.jp"))
             for i in range(10)]  # fmt: skip
    rows += [row(f"sub{i}.jp", "general", **mail(f"sub{i}.jp")) for i in range(2)]
    rows += [row(f"a{i}.jp", "general", **mail("small-a.example"), **dmarc("reject"))
             for i in range(3)]  # fmt: skip
    rows += [row(f"b{i}.jp", "general", **mail("small-b.example")) for i in range(3)]
    rows += [row(f"x{i}.jp", "general", "nxdomain") for i in range(2)]
    write(out, "2024Q2", rows, **MANIFEST)


# --- 6. the methods block ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_tables_end_with_the_methods_block(tmp_path: Path, fmt: str) -> None:
    providers(tmp_path)
    text = " ".join(cli("report", tmp_path, "--format", fmt, env={"COLUMNS": "100"}).stdout.split())
    methods = text[text.index("Methods:") :]
    for fact in ("snapshot 2024Q2", "2024-06-01 03:00 – 05:30 UTC", "60 domains listed",
                 "58 exist", "resolvers 127.0.0.1:5353", "DNSSEC validated: no",
                 "MTA-STS policy off, SMTP STARTTLS off", "publicsuffixlist 1.0.2.20240601",
                 "jp-2024.txt (SHA-256 0123456789ab)"):  # fmt: skip
        assert fact in methods, fact
    ja = " ".join(cli("report", tmp_path, "--format", fmt, "--lang", "ja").stdout.split())
    assert "調査方法: スナップショット 2024Q2" in ja and "DNSSEC 検証: なし" in ja


def test_methods_facts_for_the_page(tmp_path: Path) -> None:
    providers(tmp_path)
    facts = report.methods(tmp_path)
    assert facts["snapshot"] == "2024Q2" and facts["listed"] == 60 and facts["exist"] == 58
    assert facts["probes"] == {"mta_sts_policy": False, "probe_smtp": False}
    assert facts["validated"] is False and facts["lists"][0]["name"] == "jp-2024.txt"


# --- 7. providers ------------------------------------------------------------------------------


def test_self_hosted_and_small_providers_fold(tmp_path: Path) -> None:
    providers(tmp_path)
    rows = json.loads(cli("report", tmp_path, "--by", "mx_provider", "--format", "json").stdout)
    by = {r["mx_provider"]: r for r in rows}
    # Default --min-domains: 10 (0.5% of 58 is less): the two 3-domain providers are "other".
    assert list(by) == ["google.com", "self-hosted", "other", "none", "total"]
    assert by["none"]["nxdomain"] == 2  # the domains that are gone have no provider
    assert by["self-hosted"]["domains"] == 12 and by["other"]["domains"] == 6
    assert by["other"]["dmarc_reject"] == 3 and by["self-hosted"]["label"] == "Self-hosted"
    lower = json.loads(cli("report", tmp_path, "--by", "mx_provider", "--min-domains", "3",
                           "--format", "json").stdout)  # fmt: skip
    assert [r["mx_provider"] for r in lower][:3] == [
        "google.com",
        "small-a.example",
        "small-b.example",
    ]
    assert report.default_min_domains(10_000) == 50


def test_providers_crossed_with_category(tmp_path: Path) -> None:
    providers(tmp_path)
    rows = json.loads(cli("report", tmp_path, "--by", "mx_provider,category", "--format", "json",
                          "--min-domains", "3").stdout)  # fmt: skip
    keys = [(r["mx_provider"], r["category"]) for r in rows]
    assert keys[:2] == [("google.com", "co"), ("google.com", "total")]
    assert ("self-hosted", "co") in keys and ("self-hosted", "general") in keys
    cell = next(r for r in rows if (r["mx_provider"], r["category"]) == ("self-hosted", "general"))
    assert cell["domains"] == 2 and cell["label"] == "Self-hosted / General-use JP"
    assert keys[-1] == ("total", "total") and rows[-1]["domains"] == 58
    table = cli("report", tmp_path, "--by", "mx_provider,category", "--min-domains", "3",
                env={"COLUMNS": "100"}).stdout  # fmt: skip
    assert "Self-hosted / co.jp" in table


def test_top_is_refused_where_it_does_nothing(tmp_path: Path) -> None:
    providers(tmp_path)
    out = cli("report", tmp_path, "--top", "5")
    assert out.exit_code == 1 and "--top applies to provider groupings" in out.output
    out = cli("chart", tmp_path, "--out", tmp_path / "c.png", "--kind", "policy", "--top", "5")
    assert (
        out.exit_code == 1 and "--top and --min-domains apply to the providers chart" in out.output
    )


# --- 5. exports --------------------------------------------------------------------------------


def test_xlsx_has_the_table_and_a_methods_sheet(tmp_path: Path) -> None:
    from openpyxl import load_workbook

    providers(tmp_path)
    out = tmp_path / "report.xlsx"
    res = cli("report", tmp_path, "--format", "xlsx", "--out", out, "--lang", "ja")
    assert res.exit_code == 0, res.output
    book = load_workbook(out)
    assert book.sheetnames == ["category", "methods"]
    sheet = book["category"]
    header = [c.value for c in sheet[1]]
    first = dict(zip(header, [c.value for c in sheet[2]], strict=True))
    assert first["snapshot"] == "2024Q2" and first["label"] == "属性型 co.jp"
    assert first["domains"] == 50 and first["starttls"] is None  # not measured: empty, not 0
    facts = {r[1].value: r[2].value for r in book["methods"].iter_rows(min_row=2)}
    assert facts["psl"] == "publicsuffixlist 1.0.2.20240601" and facts["probes.probe_smtp"] is False
    assert cli("report", tmp_path, "--format", "xlsx").exit_code == 2  # needs --out

    diff_out = tmp_path / "diff.xlsx"
    write(tmp_path, "2024Q3", [row("g0.co.jp", "co", **mail("google.com"))], **MANIFEST)
    assert cli("diff", tmp_path, "--format", "xlsx", "--out", diff_out).exit_code == 0
    assert load_workbook(diff_out).sheetnames == [
        "changes", "adopters", "dmarc_policy", "spf_all", "methods",
    ]  # fmt: skip


# --- 2. diff: beyond the noise -----------------------------------------------------------------


def shares(out: Path, label: str, adopted: int, n: int = 100) -> None:
    rows = [row(f"d{i}.co.jp", "co", **mail("google.com"),
                **(dmarc("none") if i < adopted else {"dmarc_status": "none"}))
            for i in range(n)]  # fmt: skip
    write(out, label, rows)


def test_two_proportion_test() -> None:
    # 10/100 against 30/100: pooled p 0.2, z = 0.2 / sqrt(0.2 * 0.8 * 0.02) = 3.536.
    p = report.two_proportion_p(10, 100, 30, 100)
    assert float(p) == pytest.approx(math.erfc(3.5355339 / math.sqrt(2)), rel=1e-6)
    assert float(report.two_proportion_p(0, 50, 0, 80)) == 1.0  # no change at all
    assert math.isnan(float(report.two_proportion_p(1, 0, 2, 10)))


def test_diff_says_whether_a_change_is_beyond_the_noise(tmp_path: Path) -> None:
    shares(tmp_path, "2024Q1", 10)
    shares(tmp_path, "2024Q2", 30)
    shares(tmp_path, "2024Q3", 33)
    data = json.loads(cli("diff", tmp_path, "2024Q1", "2024Q2", "--format", "json").stdout)
    change = next(c for c in data["changes"] if c["metric"] == "dmarc_valid")
    assert change["change_points"] == pytest.approx(20.0) and change["beyond_noise"] is True
    # Default: the two newest complete snapshots; 30 -> 33 of 100 is within the noise.
    data = json.loads(cli("diff", tmp_path, "--format", "json").stdout)
    assert (data["a"], data["b"]) == ("2024Q2", "2024Q3")
    change = next(c for c in data["changes"] if c["metric"] == "dmarc_valid")
    assert change["beyond_noise"] is False and change["p_value"] > 0.05
    starttls = next(c for c in data["changes"] if c["metric"] == "starttls")
    assert starttls["beyond_noise"] is None  # not measured: no verdict
    table = cli("diff", tmp_path, env={"COLUMNS": "100"}).stdout
    line = next(li for li in table.splitlines() if "DMARC valid" in li)
    assert "30.0%" in line and "33.0%" in line and "+3.0" in line and "no" in line
    assert "two-proportion z-test" in " ".join(table.split())


# --- 11. help and labels -----------------------------------------------------------------------


def test_diff_names_nxdomain_and_no_all(tmp_path: Path) -> None:
    write(tmp_path, "2024Q1", [row("a.co.jp", "co", **mail("google.com"), **spf("-all"),
                                   dmarc_status="none"),
                               row("b.co.jp", "co", **mail("google.com"), **spf("none"))])  # fmt: skip
    write(tmp_path, "2024Q2", [row("a.co.jp", "co", "nxdomain"),
                               row("b.co.jp", "co", **mail("google.com"), **spf("none"))])  # fmt: skip
    d = report.diff(tmp_path)
    assert d["spf_all"].loc["-all", "nxdomain"] == 1  # not "unknown": the domain is gone
    assert d["spf_all"].loc["no all", "no all"] == 1  # not "none": a valid record without all
    assert d["dmarc_policy"].loc["absent", "nxdomain"] == 1
    ja = cli("diff", tmp_path, "--lang", "ja", env={"COLUMNS": "120"}).stdout
    assert "存在しない" in ja and "all なし" in ja


def test_help_lists_metrics_dir_and_snapshot() -> None:
    for command in ("report", "chart", "trend"):
        text = " ".join(cli(command, "--help").output.split())
        assert "DIR" in text and "mta_sts_mismatch" in text and "dnssec" in text, command
    for command in ("report", "chart", "reanalyze"):
        text = " ".join(cli(command, "--help").output.split())
        assert "--snapshot LABEL" in text and "newest complete" in text, command
    diff_help = " ".join(cli("diff", "--help").output.split())
    assert "table,row,column,value" in diff_help and "beyond the noise" in diff_help
    assert "one row per domain" not in diff_help


def test_reanalyze_defaults_to_the_newest_complete_snapshot(tmp_path: Path) -> None:
    write(tmp_path, "2024Q1", [row("a.co.jp", "co")], complete=True)
    write(tmp_path, "2024Q2", [row("a.co.jp", "co")], complete=False)
    out = cli("reanalyze", tmp_path)
    # No records were stored by this hand-made snapshot: the error names the one it chose.
    assert "snapshot 2024Q1 has no records" in out.output
    assert "left out incomplete snapshot 2024Q2" in out.output


def test_japanese_labels_are_complete() -> None:
    en, ja = report.METRIC_LABELS["en"], report.METRIC_LABELS["ja"]
    assert set(ja) == set(report.METRICS) == set(en)
    untranslated = [m for m in report.METRICS if ja[m] == en[m] and not m.startswith(
        ("spf_all_", "dmarc_none", "dmarc_quarantine", "dmarc_reject", "servfail", "refused",
         "null_mx"))]  # fmt: skip
    assert untranslated == [], untranslated
    assert ja["mta_sts_enforce"] != "MTA-STS enforce"


@pytest.mark.parametrize(
    "args",
    [
        ["report", "--snapshot", "2024Q2"],
        ["report", "--snapshot", "2024Q2", "--format", "json"],
        ["trend", "--include-incomplete"],
        ["diff", "2024Q1", "2024Q2"],
        ["chart", "--snapshot", "2024Q2", "--kind", "adoption", "--out", "{tmp}/a.svg"],
        ["chart", "--snapshot", "2024Q2", "--kind", "policy", "--out", "{tmp}/p.svg"],
        ["chart", "--include-incomplete", "--kind", "trend", "--out", "{tmp}/t.svg"],
    ],
)
def test_a_named_incomplete_snapshot_is_one_warning_line(tmp_path: Path, args: list[str]) -> None:
    """SPEC.md: naming an incomplete snapshot works, with "incomplete: N of M domains", in one
    line (a command that reads it twice says so once)."""
    write(tmp_path, "2024Q1", [row("a.co.jp", "co")], complete=True)
    write(tmp_path, "2024Q2", [row("a.co.jp", "co")], complete=False, domains_listed=3)
    command, *rest = args
    out = cli(command, tmp_path, *(a.format(tmp=tmp_path) for a in rest))
    assert out.exit_code == 0, out.output
    warned = [line for line in out.stderr.splitlines() if line.startswith("warning:")]
    assert warned == ["warning: snapshot 2024Q2: incomplete: 1 of 3 domains"], out.stderr


def test_table_piped_to_a_pager_fits_the_terminal_it_is_read_in(tmp_path: Path) -> None:
    """`report | less` in an 80-column terminal: standard output is a pipe, standard error is the
    terminal (a real pseudo-terminal here, 80 columns, no COLUMNS): the table fits 80 columns.
    With no terminal at all it keeps the default width."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    from rich.cells import cell_len

    providers(tmp_path)
    cmd = [sys.executable, "-m", "mailauth_survey.cli", "report", str(tmp_path), "--lang", "ja"]
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    leader, follower = pty.openpty()
    try:
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 80, 0, 0))
        piped = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=follower, env=env, timeout=120)
    finally:
        os.close(follower)
        os.close(leader)
    assert piped.returncode == 0
    widths = [cell_len(line) for line in piped.stdout.decode().splitlines()]
    assert max(widths) <= 80, max(widths)
    alone = subprocess.run(cmd, capture_output=True, env=env, timeout=120)
    widest = max(cell_len(line) for line in alone.stdout.decode().splitlines())
    assert 80 < widest <= report.DEFAULT_WIDTH


def test_methods_name_the_dkim_selectors_probed(tmp_path: Path) -> None:
    """DKIM is a lower bound (RFC 6376 3.6.2.1: a key is found only at a selector one asks for):
    the methods say which selectors the snapshot probed, from its manifest, in both languages;
    a manifest that does not record them says nothing of them."""
    selectors = ["default", "selector1", "google"]
    write(tmp_path, "2024Q2", [row("g0.co.jp", "co", **mail("google.com"))],
          **MANIFEST, dkim_selectors=selectors)  # fmt: skip
    assert report.methods(tmp_path)["dkim_selectors"] == selectors
    en = " ".join(cli("report", tmp_path).stdout.split())
    assert "DKIM keys looked for at 3 selectors (default, selector1, google): a lower bound" in en
    ja = " ".join(cli("report", tmp_path, "--lang", "ja").stdout.split())
    assert "DKIM 鍵は 3 個のセレクタ（default, selector1, google）で確認（下限値）" in ja
    brief = report.methods_text(report.methods(tmp_path), "en", brief=True)
    assert "DKIM: 3 selectors probed (a lower bound)" in brief and "selector1" not in brief
    old = tmp_path / "old"
    write(old, "2024Q2", [row("g0.co.jp", "co", **mail("google.com"))], **MANIFEST)
    assert report.methods(old)["dkim_selectors"] is None
    assert "selectors" not in " ".join(cli("report", old).stdout.split())
