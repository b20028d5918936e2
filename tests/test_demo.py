"""The offline demo end to end, and the scan checked against the population's known truth."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from mailauth_survey.cli import main
from mailauth_survey.synthetic import population


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    res = CliRunner().invoke(main, ["demo", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out, res.output


def test_demo_writes_two_snapshots_report_and_chart(demo_dir) -> None:
    out, output = demo_dir
    df = pd.read_parquet(out / "domains")
    assert sorted(df["snapshot"].astype(str).unique()) == ["2023Q4", "2024Q2"]
    sizes = {q: len(pop.domains) for q, pop in population.demo_population(localgov=True).items()}
    assert df.groupby("snapshot", observed=True).size().to_dict() == sizes
    assert all(size > population.DEMO_SIZE for size in sizes.values())  # the panel beside
    assert "DMARC" in output and "trend chart" in output
    assert f"web page:    {out / 'site' / 'index.html'}" in output
    assert (out / "site" / "index.html").is_file() and (out / "site" / "report.xlsx").is_file()
    with Image.open(out / "trend.png") as im:
        w, h = im.size
    assert w >= 1920 and math.isclose(w / h, 16 / 9, rel_tol=0.01)
    assert "map:" in output
    with Image.open(out / "map.png") as im:
        assert im.size == (w, h)


def test_demo_dmarc_grew_as_published(demo_dir) -> None:
    out, _ = demo_dir
    df = pd.read_parquet(out / "domains")
    ok = df[df["status"] == "ok"]
    share = (
        ok.assign(v=ok["dmarc_status"] == "valid").groupby("snapshot", observed=True)["v"].mean()
    )
    assert share["2023Q4"] < 0.15 < 0.25 < share["2024Q2"] < 0.40  # ~8.6% → ~31.8% (IAjapan/JPRS)


@pytest.mark.parametrize("quarter", population.QUARTERS)
def test_scan_matches_population_truth(demo_dir, quarter) -> None:
    """Every field the generator states with certainty, for every domain, equals the scan's."""
    out, _ = demo_dir
    pop = population.demo_population()[quarter]
    df = pd.read_parquet(out / "domains", filters=[("snapshot", "==", quarter)]).set_index("domain")
    mismatches = []
    for domain, truth in pop.truth.items():
        row = df.loc[domain]
        for field, expected in truth.items():
            if field == "domain":
                continue
            got = row[field]
            if hasattr(got, "tolist"):
                got = got.tolist()
            elif not isinstance(got, list | tuple | str) and pd.isna(got):
                got = None
            if isinstance(expected, list | tuple):
                expected, got = list(expected), list(got) if got is not None else None
            if got != expected:
                mismatches.append((domain, field, expected, got))
    assert not mismatches, mismatches[:10]
