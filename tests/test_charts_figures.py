"""Charts that do not mislead an audience (issue 21): fixed colours, a time axis, n on every
share, small groups hollow, a methods footnote, nothing drawn for what was not measured."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from matplotlib import colors
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from mailauth_survey import charts
from mailauth_survey.cli import main

from .test_report import dmarc, mail, row, spf
from .test_report_figures import NO_PROBES, write


def domains(n: int, category: str, provider: str = "google.com", adopted: int = 0) -> list[dict]:
    suffix = {"co": "co.jp", "lg": "city.x.tokyo.lg.jp", "ad": "ad.jp", "general": "jp"}[category]
    return [
        row(f"{category}{i}-{provider}.{suffix}", category, **mail(provider), **spf("-all"),
            **(dmarc("none") if i < adopted else {"dmarc_status": "none"}))
        for i in range(n)
    ]  # fmt: skip


def texts(fig: Figure) -> list[str]:
    fig.savefig(io.BytesIO(), format="png")
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")) if t.get_text()]


def line_colour(fig: Figure, prefix: str) -> str:
    line = next(li for li in fig.axes[0].get_lines() if li.get_label().startswith(prefix))
    return colors.to_hex(line.get_color())


def cli(*args: Any) -> Any:
    return CliRunner().invoke(main, [str(a) for a in args])


def test_a_category_keeps_its_colour_from_chart_to_chart(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    write(one, "2024Q1", domains(40, "co") + domains(40, "lg"))
    write(two, "2024Q1", domains(40, "lg"))  # lg is the first line here
    a = charts.figure(one, "trend")
    b = charts.figure(two, "trend")
    assert line_colour(a, "lg.jp") == line_colour(b, "lg.jp")
    assert line_colour(a, "co.jp") != line_colour(a, "lg.jp")


def test_a_known_provider_keeps_its_colour(tmp_path: Path) -> None:
    write(tmp_path, "2024Q1", domains(40, "co", "google.com") + domains(50, "co", "sakura.ne.jp"))
    fig = charts.figure(tmp_path, "providers")
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    bars = dict(zip(ticks, fig.axes[0].patches, strict=True))
    google = next(b for t, b in bars.items() if t.startswith("google.com"))
    assert colors.to_hex(google.get_facecolor()) == charts.PROVIDER_COLOURS["google.com"].lower()


def test_trend_axis_is_time_proportional_for_quarters(tmp_path: Path) -> None:
    for label in ("2023Q1", "2023Q2", "2024Q1"):  # a three-quarter gap after the second
        write(tmp_path, label, domains(40, "co"))
    fig = charts.figure(tmp_path, "trend")
    total = next(li for li in fig.axes[0].get_lines() if li.get_label().startswith("Total"))
    x = list(total.get_xdata())
    assert (x[2] - x[1]) == pytest.approx(3 * (x[1] - x[0]), rel=0.03)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["2023Q1", "2023Q2", "2024Q1"]
    dates = [charts.label_date(s) for s in ("2024-Q2", "2024Q2", "2024-06-30", "2024-06", "Q2")]
    assert [d.isoformat() if d else None for d in dates] == [
        "2024-04-01", "2024-04-01", "2024-06-30", "2024-06-01", None,
    ]  # fmt: skip


def test_one_snapshot_trend_is_points_not_a_range(tmp_path: Path) -> None:
    write(tmp_path, "2024Q1", domains(40, "co"))
    fig = charts.figure(tmp_path, "trend")
    title = fig.axes[0].get_title(loc="left")
    assert "2024Q1 – 2024Q1" not in title and "2024Q1" in title
    assert all(li.get_linewidth() == 0 for li in fig.axes[0].get_lines())


def test_n_small_groups_title_and_ci(tmp_path: Path) -> None:
    write(tmp_path, "2024Q1", domains(40, "co", adopted=10) + domains(6, "ad", adopted=3),
          **NO_PROBES)  # fmt: skip
    write(tmp_path, "2024Q2", domains(40, "co", adopted=20) + domains(6, "ad", adopted=4))
    fig = charts.figure(tmp_path, "trend", ci=True, title="DMARC in .jp")
    labels = [li.get_label() for li in fig.axes[0].get_lines()]
    assert "co.jp (n=40)" in labels and "ad.jp (n=6) †" in labels
    assert fig.axes[0].get_title(loc="left").startswith("DMARC in .jp\n")
    hollow = [li for li in fig.axes[0].get_lines() if li.get_markerfacecolor() == "white"]
    assert hollow and all(len(li.get_xdata()) == 2 for li in hollow)  # ad.jp's two points
    assert any(isinstance(c, PolyCollection) for c in fig.axes[0].collections)  # the band

    policy = charts.figure(tmp_path, "policy")
    ticks = [t.get_text() for t in policy.axes[0].get_yticklabels()]
    assert "ad.jp  (n=6) †" in ticks and "co.jp  (n=40)" in ticks


def test_providers_label_their_denominator(tmp_path: Path) -> None:
    no_mx = [row(f"n{i}.co.jp", "co", has_mx=False, mx_null=False, mx_status="NOERROR",
                 mx_provider=None) for i in range(5)]  # fmt: skip
    write(tmp_path, "2024Q1", domains(40, "co") + domains(1, "co", "lonely.example") + no_mx)
    fig = charts.figure(tmp_path, "providers", denominator="mx", min_domains=0)
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "google.com  (40 domains with MX)" in ticks
    assert "lonely.example  (1 domain with MX) †" in ticks  # "1 domain", not "1 domains"
    assert "% of domains with MX" in fig.axes[0].get_title(loc="left")


def test_reference_line_label_does_not_overlap_bar_labels(tmp_path: Path) -> None:
    write(tmp_path, "2024Q1", domains(40, "co", "google.com", adopted=13)
          + domains(40, "co", "sakura.ne.jp", adopted=14))  # fmt: skip
    fig = charts.figure(tmp_path, "providers")
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    ax = fig.axes[0]
    ref = next(t for t in ax.get_legend().get_texts() if "all domains" in t.get_text())
    box = ref.get_window_extent(renderer)
    for text in ax.texts:  # the bars' value labels
        assert not box.overlaps(text.get_window_extent(renderer)), text.get_text()
    assert not box.overlaps(ax.title.get_window_extent(renderer))


def test_methods_footnote_and_source(tmp_path: Path) -> None:
    manifest = {**NO_PROBES, "public_suffix_list": "psl 2024-06-01",
                "inputs": [{"path": "/x/jp.txt", "sha256": "ab" * 32}]}  # fmt: skip
    write(tmp_path, "2024Q1", domains(40, "co"), **manifest)
    for kind in ("trend", "policy", "adoption", "providers"):
        foot = " ".join(texts(charts.figure(tmp_path, kind)))
        assert "Methods: snapshot 2024Q1" in foot and "psl 2024-06-01" in foot, kind
        assert "abababababab" in foot and "SMTP STARTTLS off" in foot, kind
    own = texts(charts.figure(tmp_path, "adoption", source="Source: JPCERT survey"))
    assert "Source: JPCERT survey" in own and not any("Methods" in t for t in own)


def test_unmeasured_metric_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "2024Q1", domains(40, "co"), **NO_PROBES)
    for kind in ("trend", "providers"):
        out = cli("chart", tmp_path, "--out", tmp_path / "c.png", "--kind", kind,
                  "--metric", "starttls")  # fmt: skip
        assert out.exit_code == 1
        assert "starttls was not measured" in out.output and "--probe-smtp" in out.output
        assert len(out.output.strip().splitlines()) == 1
    assert not (tmp_path / "c.png").exists()
