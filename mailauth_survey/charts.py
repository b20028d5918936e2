"""Charts for slides: adoption trend, DMARC policy mix, adoption by metric, by provider.

Figures are made without pyplot (no global state, no GUI backend: they render with Agg, so a
scan host without a display is fine, and a notebook still shows them). Every figure is 16:9
(16 × 9 in) and saved at 150 dpi (PNG 2400 × 1350) or as vector SVG/PDF, by the file suffix. Colours are the Okabe–Ito palette (safe for colour-blind readers), with
line styles and markers as a second cue. Titles name the snapshot(s) and the denominator.

Japanese labels use IPAexGothic from the ``matplotlib-fontja`` package. The font is registered
with matplotlib without importing that package (its import changes the global rcParams). Texts
take the font when they are made inside `_style`, and ticks made at a later draw copy the first
tick's, so a figure shown later in a notebook keeps it.

Notebooks can build figures from tables they already have (`trend_figure`, `policy_figure`,
`adoption_figure`, `providers_figure`) or straight from a results folder (`figure`, `chart`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import matplotlib
import pandas as pd
from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from . import report
from .report import ERROR_METRICS, TOTAL, ReportError

#: Okabe & Ito (2008), black first; yellow is kept for fills, never for thin lines.
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}
_LINE_COLOURS = ("orange", "sky_blue", "bluish_green", "blue", "vermillion", "reddish_purple")
_LINE_STYLES = ("-", "--", ":")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
_POLICY_COLOURS = {
    "dmarc_none": "sky_blue",
    "dmarc_quarantine": "orange",
    "dmarc_reject": "vermillion",
}

KINDS = ("trend", "policy", "adoption", "providers", "map")
SUFFIXES = (".png", ".svg", ".pdf")
DENOMINATORS = ("domains", "mx")
SIZE_IN = (16.0, 9.0)
DPI = 150
JA_FONT = "IPAexGothic"

#: The metrics of the `adoption` chart, in reading order.
ADOPTION_CHART_METRICS = (
    "spf_valid", "spf_all_fail", "dmarc_valid", "dmarc_enforcing", "dmarc_rua",
    "dkim_domainkey", "dkim_selector", "mta_sts", "tlsrpt", "bimi",
)  # fmt: skip
DEFAULT_METRIC = "dmarc_valid"

_TEXT = {
    "en": {
        "domains": "% of domains that exist",
        "mx": "% of domains with MX",
        "listed": "% of listed domains",
        "trend": "{metric} by {by}, {first} – {last}",
        "policy": "DMARC policy by category, {snapshot}",
        "adoption": "Adoption by mechanism, all domains, {snapshot}",
        "providers": "{metric} at the {n} largest {by}s, {snapshot}",
        "mx_provider": "MX provider",
        "dns_provider": "DNS provider",
        "total": "all domains",
        "n": "{n:,} domains",
    },
    "ja": {
        "domains": "存在するドメインに占める割合 (%)",
        "mx": "MX を持つドメインに占める割合 (%)",
        "listed": "リスト全体に占める割合 (%)",
        "trend": "{metric}の推移（{by}ごと、{first}〜{last}）",
        "policy": "種別ごとの DMARC ポリシー（{snapshot}）",
        "adoption": "送信ドメイン認証技術の導入状況（全ドメイン、{snapshot}）",
        "providers": "{by}上位 {n} 社の{metric}（{snapshot}）",
        "mx_provider": "MX 事業者",
        "dns_provider": "DNS 事業者",
        "total": "全ドメイン",
        "n": "{n:,} ドメイン",
    },
}


# --- fonts and style ---------------------------------------------------------------------------


@lru_cache(maxsize=1)
def japanese_font_path() -> Path:
    """IPAexGothic from the matplotlib-fontja package, registered with matplotlib once."""
    spec = importlib.util.find_spec("matplotlib_fontja")  # locate only: importing it sets rcParams
    if spec is None or not spec.submodule_search_locations:
        raise ReportError(
            "Japanese labels need the matplotlib-fontja package: pip install matplotlib-fontja"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "fonts" / "ipaexg.ttf"
    if not path.is_file():
        raise ReportError(f"the Japanese font is missing from matplotlib-fontja ({path})")
    font_manager.fontManager.addfont(str(path))
    return path


def _font_family(lang: str) -> list[str]:
    if lang == "ja":
        japanese_font_path()
        return [JA_FONT, "DejaVu Sans"]  # DejaVu only for a glyph IPAexGothic lacks
    return ["DejaVu Sans"]


_SAVE_RC = {
    "axes.unicode_minus": False,  # an ASCII hyphen-minus: in every font
    "pdf.fonttype": 42,  # TrueType embedded: text stays text in the PDF
    "svg.fonttype": "path",  # SVG looks the same without the font installed
}


@contextmanager
def _style(lang: str) -> Iterator[None]:
    """Slide-sized type and the language's font while a figure is built."""
    rc = {
        **_SAVE_RC,
        "font.family": _font_family(lang),
        "font.size": 16,
        "axes.titlesize": 22,
        "axes.labelsize": 17,
        "legend.fontsize": 14,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
    with matplotlib.rc_context(rc):
        yield


def _new_figure(lang: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=SIZE_IN, dpi=DPI, layout="constrained")
    return fig, fig.add_subplot()


def _denominator_text(metric: str, denominator: str, lang: str) -> str:
    if metric in ERROR_METRICS:
        return _TEXT[lang]["listed"]
    return _TEXT[lang][denominator]


def _pct_column(metric: str, denominator: str) -> str:
    if denominator not in DENOMINATORS:
        raise ReportError(f"unknown denominator {denominator!r}: use domains or mx")
    if denominator == "mx" and metric in ERROR_METRICS:
        raise ReportError(f"{metric} has no MX denominator (an error domain's MX is unknown)")
    return f"{metric}_pct" if denominator == "domains" else f"{metric}_mx_pct"


def _title(ax: Axes, text: str, denominator_text: str) -> None:
    # IPAexGothic has no bold face (matplotlib would log a fallback): Japanese titles stay regular.
    japanese = matplotlib.rcParams["font.family"][0] == JA_FONT
    ax.set_title(
        f"{text}\n{denominator_text}", loc="left", fontweight="normal" if japanese else "bold"
    )


# --- figures from tables -----------------------------------------------------------------------


def trend_figure(
    table: pd.DataFrame,
    metric: str = DEFAULT_METRIC,
    lang: str = "en",
    denominator: str = "domains",
) -> Figure:
    """Lines: one metric's percentage over the snapshots, one line per category, total in black."""
    column = _pct_column(metric, denominator)
    if column not in table.columns:
        raise ReportError(f"the trend table has no {metric} column")
    labels = list(dict.fromkeys(table["snapshot"]))
    x = {label: i for i, label in enumerate(labels)}
    by = table.columns[1]  # the grouping (category, or a provider or list column), after snapshot
    with _style(lang):
        fig, ax = _new_figure(lang)
        groups = list(dict.fromkeys(g for g in table[by] if g != TOTAL))
        for i, group in enumerate(groups):
            rows = table[table[by] == group]
            ax.plot(
                [x[s] for s in rows["snapshot"]],
                rows[column],
                label=report.group_label(group, by, lang),
                color=OKABE_ITO[_LINE_COLOURS[i % len(_LINE_COLOURS)]],
                linestyle=_LINE_STYLES[(i // len(_LINE_COLOURS)) % len(_LINE_STYLES)],
                marker=_MARKERS[i % len(_MARKERS)],
                linewidth=2.2,
                markersize=7,
            )
        total = table[table[by] == TOTAL]
        ax.plot(
            [x[s] for s in total["snapshot"]],
            total[column],
            label=report.group_label(TOTAL, by, lang),
            color=OKABE_ITO["black"],
            linewidth=4,
            marker="o",
            markersize=9,
            zorder=5,
        )
        ax.set_xticks(range(len(labels)), labels)
        ax.set_xlim(-0.3, max(len(labels) - 0.7, 0.3))
        ax.set_ylim(bottom=0)
        ax.set_ylabel(_denominator_text(metric, denominator, lang))
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        shown_by = {"en": {"category": "category"}, "ja": {"category": "種別"}}[lang].get(
            by, _TEXT[lang].get(by, by)
        )
        title = _TEXT[lang]["trend"].format(
            metric=report.metric_label(metric, lang), by=shown_by, first=labels[0], last=labels[-1]
        )
        _title(ax, title, _denominator_text(metric, denominator, lang))
        return fig


def policy_figure(
    table: pd.DataFrame, snapshot: str, lang: str = "en", denominator: str = "domains"
) -> Figure:
    """Stacked horizontal bars: DMARC p=none / quarantine / reject of each category and the total.

    The bar's whole length is ``dmarc_valid``; what is left to 100% has no valid DMARC record.
    """
    metrics = ("dmarc_none", "dmarc_quarantine", "dmarc_reject")
    groups = list(table["category"])[::-1]  # barh draws bottom-up; read top-down in table order
    rows = table.set_index("category").loc[groups]
    valid = rows[_pct_column("dmarc_valid", denominator)].fillna(0.0)
    upper = min(100.0, max(10.0, float(valid.max()) * 1.15))  # small shares stay readable
    with _style(lang):
        fig, ax = _new_figure(lang)
        left = pd.Series(0.0, index=groups)
        for metric in metrics:
            values = rows[_pct_column(metric, denominator)].fillna(0.0)
            bars = ax.barh(
                [report.group_label(g, "category", lang) for g in groups],
                values,
                left=left,
                color=OKABE_ITO[_POLICY_COLOURS[metric]],
                edgecolor="white",
                label=report.metric_label(metric, lang),
            )
            # Values inside the segments wide enough to hold them.
            shown = [f"{v:.1f}" if v >= upper * 0.04 else "" for v in values]
            ax.bar_label(bars, labels=shown, label_type="center", fontsize=13)
            left = left + values.to_numpy()
        ax.set_xlim(0, upper)
        ax.set_xlabel(_denominator_text("dmarc_valid", denominator, lang))
        ax.grid(axis="x", alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        title = _TEXT[lang]["policy"].format(snapshot=snapshot)
        _title(ax, title, _denominator_text("dmarc_valid", denominator, lang))
        return fig


def adoption_figure(
    table: pd.DataFrame,
    snapshot: str,
    lang: str = "en",
    denominator: str = "domains",
    metrics: Sequence[str] = ADOPTION_CHART_METRICS,
) -> Figure:
    """Bars: the total row's percentage for each mechanism."""
    total = table[table[report.group_keys(table)[0]] == TOTAL].iloc[0]
    shares = total[[_pct_column(m, denominator) for m in metrics]].astype(float)
    values = shares.fillna(0.0).tolist()  # no denominator (an empty snapshot): no bar, a dash
    labels = ["—" if pd.isna(v) else f"{v:.1f}%" for v in shares]
    colours = [OKABE_ITO[_colour_of(m)] for m in metrics]
    with _style(lang):
        fig, ax = _new_figure(lang)
        bars = ax.bar([report.metric_label(m, lang) for m in metrics], values, color=colours)
        ax.bar_label(bars, labels=labels, padding=4, fontsize=14)
        ax.set_ylim(0, max(10.0, max(values, default=0.0) * 1.15))
        ax.set_ylabel(_denominator_text(metrics[0], denominator, lang))
        ax.tick_params(axis="x", labelrotation=20)
        ax.grid(axis="y", alpha=0.3)
        n = int(total["domains"] if denominator == "domains" else total["has_mx"])
        title = _TEXT[lang]["adoption"].format(snapshot=snapshot)
        _title(
            ax,
            title,
            f"{_denominator_text(metrics[0], denominator, lang)}, {_TEXT[lang]['n'].format(n=n)}",
        )
        return fig


def _colour_of(metric: str) -> str:
    """One hue per mechanism, so a slide deck stays consistent."""
    for prefix, colour in (
        ("spf", "blue"),
        ("dmarc", "vermillion"),
        ("dkim", "bluish_green"),
        ("mta_sts", "orange"),
        ("tlsrpt", "sky_blue"),
        ("bimi", "reddish_purple"),
    ):
        if metric.startswith(prefix):
            return colour
    return "black"


def providers_figure(
    table: pd.DataFrame,
    snapshot: str,
    metric: str = DEFAULT_METRIC,
    lang: str = "en",
    denominator: str = "domains",
) -> Figure:
    """Horizontal bars: a metric's percentage at each named provider, largest provider on top.

    ``table`` is an `report.adoption` table by provider; the ``other``/``none`` rows are left out
    and the total is a dashed reference line.
    """
    by = report.group_keys(table)[0]
    column = _pct_column(metric, denominator)
    named = table[~table[by].isin([report.OTHER, report.NONE, TOTAL])][::-1]
    total = table[table[by] == TOTAL].iloc[0]
    with _style(lang):
        fig, ax = _new_figure(lang)
        labels = [
            f"{p}  ({_TEXT[lang]['n'].format(n=int(n))})"
            for p, n in zip(named[by], named["domains"], strict=True)
        ]
        values = named[column].fillna(0.0)
        bars = ax.barh(labels, values, color=OKABE_ITO[_colour_of(metric)])
        ax.bar_label(bars, labels=[f"{v:.1f}%" for v in values], padding=4, fontsize=13)
        if pd.notna(total[column]):
            ax.axvline(float(total[column]), color=OKABE_ITO["black"], linestyle="--", linewidth=2)
            ax.annotate(
                f"{_TEXT[lang]['total']} {float(total[column]):.1f}%",
                (float(total[column]), 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(6, -4),
                textcoords="offset points",
                va="top",
                fontsize=14,
            )
        ax.set_xlim(0, 105)
        ax.set_xlabel(_denominator_text(metric, denominator, lang))
        ax.grid(axis="x", alpha=0.3)
        title = _TEXT[lang]["providers"].format(
            metric=report.metric_label(metric, lang),
            n=len(named),
            by=_TEXT[lang].get(by, by),
            snapshot=snapshot,
        )
        _title(ax, title, _denominator_text(metric, denominator, lang))
        return fig


# --- from a results folder ---------------------------------------------------------------------


def figure(
    directory: str | Path,
    kind: str = "adoption",
    *,
    lang: str = "en",
    snapshot: str | None = None,
    metric: str | None = None,
    denominator: str = "domains",
    by: str | None = None,
    top: int | None = None,
    min_domains: int | None = None,
    title: str | None = None,
    source: str | None = None,
    ci: bool = False,
    include_incomplete: bool = False,
) -> Figure:
    """A chart of the snapshots in DIR (one snapshot, default the newest; all for ``trend``).

    ``metric`` is the one plotted by ``trend`` and ``providers`` (default ``dmarc_valid``); the
    other kinds have fixed metrics and refuse it, as ``trend`` (every snapshot) refuses
    ``snapshot``.
    """
    if kind not in KINDS:
        raise ReportError(f"unknown chart kind {kind!r}: use one of {', '.join(KINDS)}")
    if lang not in report.LANGS:
        raise ReportError(f"unknown language {lang!r}: use ja or en")
    if metric is not None and kind not in ("trend", "providers", "map"):
        raise ReportError(f"--metric applies to the trend, providers and map charts, not {kind}")
    if snapshot is not None and kind == "trend":
        raise ReportError("the trend chart shows every snapshot; --snapshot does not apply")
    chosen = report.check_metrics([metric or DEFAULT_METRIC])[0]
    if kind == "trend":
        table = report.trend(
            directory, [chosen], by=by or "category", include_incomplete=include_incomplete
        )
        _refuse_unmeasured(table, chosen)
        return trend_figure(table, chosen, lang, denominator)
    label = report.resolve_snapshot(directory, snapshot, include_incomplete)
    if kind == "providers":
        by = by or "mx_provider"
        table = report.report(directory, label, by=by, top=top, min_domains=min_domains)
        _refuse_unmeasured(table, chosen)
        return providers_figure(table, label, chosen, lang, denominator)
    if kind == "map":  # a list column of prefecture names (maps.py)
        from .maps import map_figure

        by = by or "prefecture"
        table = report.report(directory, label, by=by)
        _refuse_unmeasured(table, chosen)
        return map_figure(table, label, chosen, lang, denominator, by)
    table = report.report(directory, label)
    if kind == "policy":
        return policy_figure(table, label, lang, denominator)
    return adoption_figure(table, label, lang, denominator)


def _refuse_unmeasured(table: pd.DataFrame, metric: str) -> None:
    """A metric measured nowhere has nothing to draw: one line saying why, not bars at 0%."""
    if metric in report.PARTIAL_METRICS and table[metric].isna().all():
        facts = table.attrs.get("methods") or {}
        why = report.unmeasured_reason(metric, next(iter(facts.values()), None))
        raise ReportError(f"nothing to chart: {metric} was not measured; {why}")


def save(fig: Figure, out: str | Path) -> Path:
    """Write a figure as PNG (150 dpi), SVG or PDF, by the file's suffix."""
    out = _check_out(out)
    suffix = out.suffix.lower()
    with matplotlib.rc_context(_SAVE_RC):
        try:
            fig.savefig(out, dpi=DPI, format=suffix[1:], metadata=_metadata(suffix))
        except OSError as exc:
            raise ReportError(f"{out}: cannot write ({exc.strerror or exc})") from None
    return out


def _check_out(out: str | Path) -> Path:
    out = Path(out)
    if out.suffix.lower() not in SUFFIXES:
        raise ReportError(f"{out}: the file name must end in .png, .svg or .pdf")
    if not out.parent.is_dir():
        raise ReportError(f"{out.parent}: no such directory")
    return out


def _metadata(suffix: str) -> dict[str, str | None]:
    creator = "mailauth-survey"
    if suffix == ".png":
        return {"Software": creator}
    if suffix == ".svg":
        return {"Creator": creator, "Date": None}  # no date: the same data makes the same file
    return {"Creator": creator, "CreationDate": None}


def chart(
    directory: str | Path, out: str | Path, kind: str = "adoption", **options: object
) -> Path:
    """Build `figure` (same options) and `save` it to OUT."""
    _check_out(out)  # before the work of reading the snapshots
    fig = figure(directory, kind, **options)  # type: ignore[arg-type]
    return save(fig, out)
