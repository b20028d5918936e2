"""`report --format json` on a population with known truth, served by NSD and scanned for real."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import pytest
from click.testing import CliRunner

from mailauth_survey.cli import main
from mailauth_survey.collect import ScanOptions, scan
from mailauth_survey.synthetic import population
from tests.conftest import write_list
from tests.nsd import Nsd

SPF_ALL = {
    "-all": "spf_all_fail",
    "~all": "spf_all_softfail",
    "?all": "spf_all_neutral",
    "+all": "spf_all_pass",
    "none": "spf_all_none",
}


def expected_counts(truth: dict[str, dict]) -> dict[str, Counter]:
    """The metrics of SPEC.md counted from the generator's truth, per category and in total."""
    out: dict[str, Counter] = defaultdict(Counter)
    for t in truth.values():
        c = Counter()
        if t["status"] == "nxdomain":
            c["nxdomain"] += 1
        else:
            c["domains"] += 1
            c["has_mx"] += t["has_mx"]
            c["null_mx"] += t["mx_null"]
            c["spf_valid"] += t["spf_status"] == "valid"
            c["spf_permerror"] += t["spf_status"] == "permerror"
            if t["spf_status"] == "valid":
                c[SPF_ALL[t["spf_all"]]] += 1
            if t["dmarc_status"] == "valid":
                c["dmarc_valid"] += 1
                c[f"dmarc_{t['dmarc_policy']}"] += 1
            c["dmarc_invalid"] += t["dmarc_status"] == "invalid"
            c["dkim_domainkey"] += t["dkim_domainkey"] == "exists"
            c["dkim_selector"] += bool(t["dkim_selectors"])
            for kind in ("mta_sts", "tlsrpt", "bimi"):
                c[kind] += t[f"{kind}_status"] == "valid"
        out[t["category"]].update(c)
        out["total"].update(c)
    return out


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    base = tmp_path_factory.mktemp("truth")
    pop = population.generate(600, 11)
    server = Nsd(base / "nsd", dict(pop.zones))
    try:
        lst = write_list(base / "l.txt", pop.domains)
        scan(
            [lst],
            base / "out",
            snapshot="2024Q2",
            options=ScanOptions(resolvers=[server.address], mta_sts_policy=False),
        )
    finally:
        server.stop()
    return base / "out", pop


def test_report_json_gives_the_true_counts_per_category(scanned) -> None:
    out, pop = scanned
    res = CliRunner().invoke(main, ["report", str(out), "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = {r["category"]: r for r in json.loads(res.stdout)}
    expected = expected_counts(pop.truth)
    assert set(rows) == set(expected)
    for group, counts in expected.items():
        for metric in ("domains", "has_mx", "null_mx", "spf_valid", "spf_permerror", *SPF_ALL.values(),
                       "dmarc_valid", "dmarc_invalid", "dmarc_none", "dmarc_quarantine", "dmarc_reject",
                       "dkim_domainkey", "dkim_selector", "mta_sts", "tlsrpt", "bimi", "nxdomain"):  # fmt: skip
            assert rows[group][metric] == counts[metric], (group, metric)
        dom = counts["domains"]
        if dom:
            assert rows[group]["dmarc_valid_pct"] == pytest.approx(
                100 * counts["dmarc_valid"] / dom
            )
    assert rows["total"]["timeout"] == 0 and rows["total"]["servfail"] == 0
