"""charts: the files are what a slide needs (format, size, resolution) and Japanese renders."""

from __future__ import annotations

import io
import logging
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner
from matplotlib import colors, font_manager
from matplotlib.text import Text
from PIL import Image

from mailauth_survey import charts, report
from mailauth_survey.cli import main

from .test_report import dmarc, mail, row, spf, write_snapshot


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three quarters of co/lg/general domains adopting DMARC over time, at two providers."""
    out = tmp_path_factory.mktemp("results")
    for quarter, label in enumerate(["2023-10-01", "2024-01-01", "2024-06-01"]):
        rows = []
        for i in range(12):
            category, suffix = [
                ("co", "co.jp"),
                ("lg", "city.chiyoda.tokyo.lg.jp"),
                ("general", "jp"),
            ][i % 3]
            policy = ["none", "quarantine", "reject"][i % 3]
            adopted = dmarc(policy) if i % 4 <= quarter else {"dmarc_status": "none"}
            provider = "google.com" if i % 2 else "sakura.ne.jp"
            rows.append(row(f"d{i}.{suffix}", category, **mail(provider), **spf("-all"), **adopted))
        rows.append(row(f"t.{label}.co.jp", "co", "timeout"))
        write_snapshot(out, label, rows)
    return out


def font_file(text: Text) -> str:
    return Path(font_manager.findfont(text.get_fontproperties(), fallback_to_default=False)).name


def labels_of(fig) -> list[Text]:  # type: ignore[no-untyped-def]
    fig.savefig(io.BytesIO(), format="png")  # draw: tick labels exist only after a draw
    return [t for t in fig.findobj(Text) if t.get_text().strip()]


#: The map needs a list column of prefectures (tests/test_panels.py scans a panel for it).
SAMPLE_KINDS = [k for k in charts.KINDS if k != "map"]


@pytest.mark.parametrize("kind", SAMPLE_KINDS)
def test_png_is_16_9_at_150_dpi(results: Path, tmp_path: Path, kind: str) -> None:
    out = charts.chart(results, tmp_path / f"{kind}.png", kind)
    with Image.open(out) as img:
        assert img.format == "PNG"
        assert img.size == (2400, 1350)
        assert img.info["dpi"][0] == pytest.approx(150, abs=0.1)
        assert len(img.getcolors(1 << 20) or range(1 << 20)) > 8  # something was drawn


def test_svg_and_pdf(results: Path, tmp_path: Path) -> None:
    svg = charts.chart(results, tmp_path / "trend.svg", "trend", lang="ja")
    root = ET.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("width") == "1152pt" and root.get("height") == "648pt"  # 16 x 9 in
    pdf = charts.chart(results, tmp_path / "policy.pdf", "policy", lang="ja")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and b"IPAexGothic" in data  # the Japanese font is embedded


def test_japanese_labels_use_the_japanese_font_without_missing_glyphs(
    results: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for kind in SAMPLE_KINDS:
        with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
            warnings.simplefilter("always")
            fig = charts.figure(results, kind, lang="ja")
            texts = labels_of(fig)
        missing = [str(w.message) for w in caught if "missing from" in str(w.message)]
        assert missing == [], missing
        assert "findfont" not in caplog.text
        japanese = [t for t in texts if any(ord(c) > 0x3000 for c in t.get_text())]
        assert japanese, kind
        # Every text, Japanese or not (tick numbers too), is set in IPAexGothic, not DejaVu.
        assert {font_file(t) for t in texts} == {"ipaexg.ttf"}, kind


def test_japanese_title_names_snapshot_and_denominator(results: Path) -> None:
    fig = charts.figure(results, "policy", lang="ja", denominator="mx")
    title = fig.axes[0].get_title(loc="left")
    assert "2024-06-01" in title and "MX を持つドメインに占める割合" in title
    tick_labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "属性型 co.jp  (n=4) †" in tick_labels and "汎用JP  (n=4) †" in tick_labels


def test_english_chart_uses_english_labels(results: Path) -> None:
    fig = charts.figure(results, "trend", lang="en", metric="dmarc_valid")
    title = fig.axes[0].get_title(loc="left")
    assert title.startswith("DMARC valid by category, 2023-10-01 – 2024-06-01")
    assert "% of domains that exist" in title
    texts = labels_of(fig)
    assert all(ord(c) < 0x3000 for t in texts for c in t.get_text())
    assert "DejaVuSans" in font_file(fig.axes[0].title)


def test_trend_lines_follow_the_data_in_okabe_ito(results: Path) -> None:
    fig = charts.figure(results, "trend", lang="en")
    lines = {
        line.get_label().split(" (n=")[0]: line
        for line in fig.axes[0].get_lines()
        if not line.get_label().startswith("_")  # the hollow overlays of small groups
    }
    assert set(lines) == {"co.jp", "lg.jp", "General-use JP", "Total"}
    # The total's DMARC share over the three quarters (timeouts outside the denominator).
    total = report.trend(results, ["dmarc_valid"]).query("category == 'total'")["dmarc_valid_pct"]
    assert list(lines["Total"].get_ydata()) == list(total)
    assert list(total) == [25.0, 50.0, 75.0]
    palette = {colors.to_hex(c) for c in charts.OKABE_ITO.values()}
    assert {colors.to_hex(line.get_color()) for line in lines.values()} <= {
        p.lower() for p in palette
    }


def test_policy_bars_stack_to_dmarc_valid(results: Path) -> None:
    fig = charts.figure(results, "policy", lang="en")
    table = report.report(results)
    ax = fig.axes[0]
    widths: dict[str, float] = {}
    for patch in ax.patches:
        tick = ax.get_yticklabels()[round(patch.get_y() + patch.get_height() / 2)].get_text()
        label = tick.split("  (n=")[0]
        widths[label] = widths.get(label, 0.0) + patch.get_width()
    expected = dict(zip(table["category"], table["dmarc_valid_pct"], strict=True))
    assert widths["co.jp"] == pytest.approx(expected["co"])
    assert widths["Total"] == pytest.approx(expected["total"])


def test_providers_chart_shows_the_largest(results: Path) -> None:
    fig = charts.figure(results, "providers", lang="en", top=1, min_domains=0)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    # google.com and sakura.ne.jp hold 6 domains each: the tie goes by name; sakura.ne.jp is
    # in "other" (bars bottom-up: the largest on top).
    assert labels == ["Other providers  (6 domains) †", "google.com  (6 domains) †"]


def test_chart_cli(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "c.png"
    res = CliRunner().invoke(
        main,
        [
            "chart",
            str(results),
            "--out",
            str(out),
            "--kind",
            "providers",
            "--lang",
            "ja",
            "--metric",
            "spf_valid",
        ],
    )
    assert res.exit_code == 0, res.output
    with Image.open(out) as img:
        assert img.size == (2400, 1350)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "{tmp}/c.gif"], "must end in .png, .svg or .pdf"),
        (["--out", "{tmp}/no/c.png"], "no such directory"),
        (["--out", "{tmp}/c.png", "--kind", "policy", "--metric", "spf_valid"], "--metric applies"),
        (
            ["--out", "{tmp}/c.png", "--kind", "trend", "--snapshot", "2024-01-01"],
            "--snapshot does not apply",
        ),
        (["--out", "{tmp}/c.png", "--snapshot", "2030-01-01"], "no snapshot '2030-01-01'"),
        (
            [
                "--out",
                "{tmp}/c.png",
                "--kind",
                "trend",
                "--metric",
                "timeout",
                "--denominator",
                "mx",
            ],
            "no MX",
        ),
    ],
)
def test_chart_cli_errors(results: Path, tmp_path: Path, args: list[str], message: str) -> None:
    res = CliRunner().invoke(main, ["chart", str(results), *(a.format(tmp=tmp_path) for a in args)])
    assert res.exit_code != 0
    assert message in res.output and "Traceback" not in res.output
    assert not list(tmp_path.glob("c.*"))


def test_policy_chart_groups_by_by(results: Path, tmp_path: Path) -> None:
    """SPEC.md: `chart --by NAME` groups, a provider or a column of the lists as in `report`."""
    import pyarrow as pa

    from mailauth_survey import store

    fig = charts.figure(results, "policy", by="mx_provider", lang="en")
    ticks = [t.get_text().split("  (n=")[0] for t in fig.axes[0].get_yticklabels()]
    # Bottom-up (table order reversed); 6 domains each, both under --min-domains' default of 10.
    assert ticks == ["Total", "No provider", "Other providers"]
    assert "DMARC policy by MX provider" in fig.axes[0].get_title(loc="left")

    out = tmp_path / "panel"
    write_snapshot(out, "2024Q1", [row(f"d{i}.co.jp", "co", **mail("google.com"),
                                       **dmarc("reject")) for i in range(4)])  # fmt: skip
    lists = pa.table({"domain": [f"d{i}.co.jp" for i in range(4)], "list": ["p.csv"] * 4,
                      "sector": ["bank", "bank", "shop", "shop"]})  # fmt: skip
    store.write_table(store.Snapshot(out, "2024Q1").lists, "part-00000.parquet", lists)
    res = CliRunner().invoke(main, ["chart", str(out), "--out", str(tmp_path / "p.svg"),
                                    "--kind", "policy", "--by", "sector"])  # fmt: skip
    assert res.exit_code == 0, res.output
    fig = charts.figure(out, "policy", by="sector")
    ticks = [t.get_text().split("  (n=")[0] for t in fig.axes[0].get_yticklabels()]
    assert ticks == ["Total", "shop", "bank"]
