"""Charts for slides: adoption trend, DMARC policy mix, adoption by metric, by provider.

Figures are made without pyplot (no global state, no GUI backend: they render with Agg, so a
scan host without a display is fine, and a notebook still shows them). Every figure is 16:9
(16 × 9 in) and saved at 150 dpi (PNG 2400 × 1350) or as vector SVG/PDF, by the file suffix.
Colours are the Okabe–Ito palette (safe for colour-blind readers), fixed per category, per known
provider and per mechanism so that a slide deck stays consistent, with line styles and markers as
a second cue. Titles name the snapshot(s) and the denominator; every share shows its n; groups
under 30 domains are drawn hollow and marked †; a methods footnote from the manifest (or
``--source``) sits under the plot.

Size, fonts (Japanese too), style, titles and the footnote are shared with the map and the
published page: :mod:`mailauth_survey.chartkit`.

Notebooks can build figures from tables they already have (`trend_figure`, `policy_figure`,
`adoption_figure`, `providers_figure`) or straight from a results folder (`figure`, `chart`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from . import report
from .chartkit import (
    DEFAULT_METRIC,
    DPI,
    SAVE_RC,
    denominator_text,
    footnote,
    metadata,
    new_figure,
    pct_column,
    set_title,
    style,
)
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
GREY = "#8C8C8C"
LIGHT_GREY = "#BDBDBD"
_LINE_COLOURS = ("orange", "sky_blue", "bluish_green", "blue", "vermillion", "reddish_purple")
_LINE_STYLES = ("-", "--", ":")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
_POLICY_COLOURS = {
    "dmarc_none": "sky_blue",
    "dmarc_quarantine": "orange",
    "dmarc_reject": "vermillion",
}
#: One colour per known provider, the same in every chart; other names are drawn grey.
PROVIDER_COLOURS = {
    "google.com": OKABE_ITO["blue"],
    "outlook.com": OKABE_ITO["sky_blue"],
    "sakura.ne.jp": OKABE_ITO["vermillion"],
    "xserver.jp": OKABE_ITO["orange"],
    "kagoya.net": OKABE_ITO["bluish_green"],
    "ocn.ne.jp": OKABE_ITO["reddish_purple"],
    "secureserver.net": OKABE_ITO["yellow"],
    report.SELF_HOSTED: "#5A5A5A",
    report.OTHER: LIGHT_GREY,
}

KINDS = ("trend", "policy", "adoption", "providers", "map")
SUFFIXES = (".png", ".svg", ".pdf")

#: The metrics of the `adoption` chart, in reading order.
ADOPTION_CHART_METRICS = (
    "spf_valid", "spf_all_fail", "dmarc_valid", "dmarc_enforcing", "dmarc_rua",
    "dkim_domainkey", "dkim_selector", "mta_sts", "tlsrpt", "bimi",
)  # fmt: skip

_TEXT = {
    "en": {
        "trend": "{metric} by {by}, {first} – {last}",
        "trend_one": "{metric} by {by}, {first}",
        "policy": "DMARC policy by {by}, {snapshot}",
        "adoption": "Adoption by mechanism, all domains, {snapshot}",
        "providers": "{metric} at the {n} largest {by}s, {snapshot}",
        "mx_provider": "MX provider",
        "dns_provider": "DNS provider",
        "total": "all domains",
        "n_domains": "{n:,} domain",
        "n_domains_pl": "{n:,} domains",
        "n_mx": "{n:,} domain with MX",
        "n_mx_pl": "{n:,} domains with MX",
        "n_listed": "{n:,} listed domain",
        "n_listed_pl": "{n:,} listed domains",
        "small": "† fewer than {n} domains (hollow): a share of so few is imprecise.",
        "ci": "Band/bars: 95% Wilson interval.",
    },
    "ja": {
        "trend": "{metric}の推移（{by}ごと、{first}〜{last}）",
        "trend_one": "{metric}（{by}ごと、{first}）",
        "policy": "{by}ごとの DMARC ポリシー（{snapshot}）",
        "adoption": "送信ドメイン認証技術の導入状況（全ドメイン、{snapshot}）",
        "providers": "{by}上位 {n} 社の{metric}（{snapshot}）",
        "mx_provider": "MX 事業者",
        "dns_provider": "DNS 事業者",
        "total": "全ドメイン",
        "n_domains": "{n:,} ドメイン",
        "n_domains_pl": "{n:,} ドメイン",
        "n_mx": "MX あり {n:,} ドメイン",
        "n_mx_pl": "MX あり {n:,} ドメイン",
        "n_listed": "リスト {n:,} ドメイン",
        "n_listed_pl": "リスト {n:,} ドメイン",
        "small": "† {n} ドメイン未満（白抜き）: 割合の精度が低い。",
        "ci": "帯・ひげ: 95% 信頼区間（Wilson）。",
    },
}


# --- pieces ------------------------------------------------------------------------------------


def n_text(n: int, metric: str, denominator: str, lang: str) -> str:
    """ "1 domain", "472 domains with MX"...: the denominator of a share, in words."""
    kind = "listed" if metric in ERROR_METRICS else "mx" if denominator == "mx" else "domains"
    key = f"n_{kind}" if n == 1 else f"n_{kind}_pl"
    return _TEXT[lang][key].format(n=n)


def _denominator_n(row: pd.Series, metric: str, denominator: str) -> int:
    """The n of a row's share: domains that exist, with MX, or listed (errors)."""
    if metric in ERROR_METRICS:
        return report.listed_domains(row)
    return int(row["has_mx"] if denominator == "mx" else row["domains"])


def _footnote_text(
    table: pd.DataFrame, lang: str, source: str | None, small: bool, ci: bool
) -> str:
    if source is not None:
        return source
    notes = []
    if small:
        notes.append(_TEXT[lang]["small"].format(n=report.SMALL_GROUP))
    if ci:
        notes.append(_TEXT[lang]["ci"])
    facts = table.attrs.get("methods") or {}
    labels = list(dict.fromkeys(table["snapshot"])) if "snapshot" in table.columns else []
    shown = [labels[-1]] if labels else []  # the newest: a trend's older methods are alike
    notes += [report.methods_text(facts[s], lang, brief=True) for s in shown if s in facts]
    return ("" if lang == "ja" else " ").join(notes)


def _small(n: object) -> bool:
    return not report.is_null(n) and int(n) < report.SMALL_GROUP  # type: ignore[call-overload]


def category_style(group: str, position: int) -> dict[str, object]:
    """The fixed colour, line style and marker of a category (by its place in CATEGORIES, so
    the same in every chart); other groups by their position."""
    i = report.CATEGORIES.index(group) if group in report.CATEGORIES else position
    return {
        "color": OKABE_ITO[_LINE_COLOURS[i % len(_LINE_COLOURS)]],
        "linestyle": _LINE_STYLES[(i // len(_LINE_COLOURS)) % len(_LINE_STYLES)],
        "marker": _MARKERS[i % len(_MARKERS)],
    }


_QUARTER = re.compile(r"^(\d{4})-?[Qq]([1-4])$")
_DATE = re.compile(r"^(\d{4})-(\d{2})(?:-(\d{2}))?$")


def label_date(label: str) -> dt.date | None:
    """The date a snapshot label stands for: ``2024Q2``/``2024-Q2`` (the quarter's first day),
    ``2024-06-30``, ``2024-06``; None for any other label."""
    m = _QUARTER.match(label)
    if m:
        return dt.date(int(m[1]), 3 * (int(m[2]) - 1) + 1, 1)
    m = _DATE.match(label)
    if m:
        try:
            return dt.date(int(m[1]), int(m[2]), int(m[3] or 1))
        except ValueError:
            return None
    return None


def _x_positions(labels: Sequence[str]) -> tuple[dict[str, float], bool]:
    """x of each snapshot: time-proportional (days) when every label is a date or a quarter, so
    a two-quarter gap is drawn twice as wide as one; else evenly spaced."""
    dates = [label_date(label) for label in labels]
    if all(d is not None for d in dates) and len(set(dates)) == len(dates):
        origin = min(dates)  # type: ignore[type-var]
        return {lab: float((d - origin).days) for lab, d in zip(labels, dates, strict=True)}, True  # type: ignore[operator]
    return {label: float(i) for i, label in enumerate(labels)}, False


# --- figures from tables -----------------------------------------------------------------------


def trend_figure(
    table: pd.DataFrame,
    metric: str = DEFAULT_METRIC,
    lang: str = "en",
    denominator: str = "domains",
    *,
    title: str | None = None,
    source: str | None = None,
    ci: bool = False,
) -> Figure:
    """Lines: one metric's percentage over the snapshots, one line per category, total in black.

    The x axis is time-proportional when the labels are dates or quarters. One snapshot is drawn
    as points. Groups under 30 domains have hollow markers; ``ci`` draws the 95% band.
    """
    column = pct_column(metric, denominator)
    if column not in table.columns:
        raise ReportError(f"the trend table has no {metric} column")
    key = report.group_keys(table)[0]
    labels = list(dict.fromkeys(table["snapshot"]))
    x, timed = _x_positions(labels)
    one = len(labels) == 1
    any_small = False
    with style(lang):
        fig, ax = new_figure(lang, footnote=True)
        groups = list(dict.fromkeys(g for g in table[key] if g != TOTAL))
        newest = table[table["snapshot"] == labels[-1]].set_index(key)
        for i, group in enumerate([*groups, TOTAL]):
            rows = table[table[key] == group]
            xs = [x[s] for s in rows["snapshot"]]
            if one:  # one snapshot: the groups side by side, so their whiskers do not overlap
                xs = [v + (i - len(groups) / 2) * 0.045 for v in xs]
            ys = rows[column].astype(float).to_numpy()
            if group == TOTAL:
                look: dict[str, object] = {"color": OKABE_ITO["black"], "linestyle": "-",
                                            "marker": "o"}  # fmt: skip
                width, size, z = 4.0, 11, 5
            else:
                look, width, size, z = category_style(str(group), i), 2.2, 9, 3
            n = newest.loc[group, "domains"] if group in newest.index else None
            small = [_small(v) for v in rows["domains"]]
            any_small |= any(small)
            name = (
                rows["label"].iloc[0] if "label" in rows else report.group_label(group, key, lang)
            )
            legend = f"{name} (n={int(n):,})" if n is not None and not report.is_null(n) else name
            if small and small[-1]:
                legend += " †"
            ax.plot(xs, ys, label=legend, linewidth=0 if one else width, markersize=size,
                    zorder=z, **look)  # fmt: skip
            hollow = [j for j, s in enumerate(small) if s]
            if hollow:  # small groups: the same marker, white inside
                ax.plot([xs[j] for j in hollow], ys[hollow], linestyle="none",
                        marker=look["marker"], markersize=size, markerfacecolor="white",
                        markeredgecolor=look["color"], markeredgewidth=2, zorder=z + 0.5)  # fmt: skip
            if ci and not one:
                lo = rows[f"{column}_lo"].astype(float).to_numpy()
                hi = rows[f"{column}_hi"].astype(float).to_numpy()
                ax.fill_between(xs, lo, hi, color=look["color"], alpha=0.12, linewidth=0,
                                zorder=1)  # fmt: skip
            elif ci:
                lo = rows[f"{column}_lo"].astype(float).to_numpy()
                hi = rows[f"{column}_hi"].astype(float).to_numpy()
                ax.errorbar(xs, ys, yerr=[ys - lo, hi - ys], fmt="none", ecolor=look["color"],
                            capsize=5, zorder=z)  # fmt: skip
        ticks = [x[s] for s in labels]
        ax.set_xticks(ticks, labels)
        span = (max(ticks) - min(ticks)) or 1.0
        pad = span * 0.08 if timed and not one else 0.6 if one else 0.3
        ax.set_xlim(min(ticks) - pad, max(ticks) + pad)
        ax.set_ylim(bottom=0)
        ax.set_ylabel(denominator_text(metric, denominator, lang))
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        shown_by = _by_text(key, lang)
        text = title or _TEXT[lang]["trend_one" if one else "trend"].format(
            metric=report.metric_label(metric, lang), by=shown_by, first=labels[0], last=labels[-1]
        )
        set_title(ax, text, denominator_text(metric, denominator, lang))
        footnote(fig, _footnote_text(table, lang, source, any_small, ci))
        return fig


def _by_text(key: str, lang: str) -> str:
    """A grouping's name in a title: category, a provider kind, or a list column as named."""
    return {"en": {"category": "category"}, "ja": {"category": "種別"}}[lang].get(
        key, _TEXT[lang].get(key, key)
    )


def _tick_label(name: str, n: int, small: bool) -> str:
    return f"{name}  (n={n:,})" + (" †" if small else "")


def policy_figure(
    table: pd.DataFrame,
    snapshot: str,
    lang: str = "en",
    denominator: str = "domains",
    *,
    title: str | None = None,
    source: str | None = None,
    ci: bool = False,
) -> Figure:
    """Stacked horizontal bars: DMARC p=none / quarantine / reject of each group and the total.

    The bar's whole length is ``dmarc_valid``; what is left to 100% has no valid DMARC record.
    Groups under 30 domains are drawn hollow; ``ci`` adds the 95% interval of ``dmarc_valid``.
    """
    metrics = ("dmarc_none", "dmarc_quarantine", "dmarc_reject")
    key = report.group_keys(table)[0]
    groups = list(table[key])[::-1]  # barh draws bottom-up; read top-down in table order
    rows = table.set_index(key).loc[groups]
    valid_col = pct_column("dmarc_valid", denominator)
    valid = rows[valid_col].astype(float).fillna(0.0)
    upper = min(100.0, max(10.0, float(valid.max()) * 1.15))  # small shares stay readable
    ns = [_denominator_n(rows.loc[g], "dmarc_valid", denominator) for g in groups]
    small = [_small(rows.loc[g, "domains"]) for g in groups]
    if ci:
        upper = min(100.0, max(upper, float(rows[f"{valid_col}_hi"].max()) * 1.05))
    with style(lang):
        fig, ax = new_figure(lang, footnote=True)
        names = [
            _tick_label(str(rows.loc[g, "label"]), n, s)
            for g, n, s in zip(groups, ns, small, strict=True)
        ]
        left = pd.Series(0.0, index=groups)
        for metric in metrics:
            values = rows[pct_column(metric, denominator)].astype(float).fillna(0.0)
            colour = OKABE_ITO[_POLICY_COLOURS[metric]]
            bars = ax.barh(names, values, left=left, color=colour, edgecolor="white",
                           label=report.metric_label(metric, lang))  # fmt: skip
            for bar, s in zip(bars, small, strict=True):
                if s:  # hollow: outline only
                    bar.set_facecolor("white")
                    bar.set_edgecolor(colour)
                    bar.set_linewidth(2)
            # Values inside the segments wide enough to hold them.
            shown = [f"{v:.1f}" if v >= upper * 0.04 else "" for v in values]
            ax.bar_label(bars, labels=shown, label_type="center", fontsize=13)
            left = left + values.to_numpy()
        if ci:
            lo = rows[f"{valid_col}_lo"].astype(float).to_numpy()
            hi = rows[f"{valid_col}_hi"].astype(float).to_numpy()
            ax.errorbar(valid.to_numpy(), range(len(groups)), xerr=[valid - lo, hi - valid],
                        fmt="none", ecolor=OKABE_ITO["black"], capsize=4, zorder=5)  # fmt: skip
        ax.set_xlim(0, upper)
        ax.set_xlabel(denominator_text("dmarc_valid", denominator, lang))
        ax.grid(axis="x", alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        text = title or _TEXT[lang]["policy"].format(snapshot=snapshot, by=_by_text(key, lang))
        set_title(ax, text, denominator_text("dmarc_valid", denominator, lang))
        footnote(fig, _footnote_text(table, lang, source, any(small), ci))
        return fig


def adoption_figure(
    table: pd.DataFrame,
    snapshot: str,
    lang: str = "en",
    denominator: str = "domains",
    metrics: Sequence[str] = ADOPTION_CHART_METRICS,
    *,
    title: str | None = None,
    source: str | None = None,
    ci: bool = False,
) -> Figure:
    """Bars: the total row's percentage for each mechanism (with ``ci``, its 95% interval)."""
    key = report.group_keys(table)[0]
    total = table[table[key] == TOTAL].iloc[0]
    columns = [pct_column(m, denominator) for m in metrics]
    shares = total[columns].astype(float)
    values = shares.fillna(0.0).to_numpy()  # no denominator (an empty snapshot): no bar, a dash
    labels = ["—" if pd.isna(v) else f"{v:.1f}%" for v in shares]
    colours = [OKABE_ITO[_colour_of(m)] for m in metrics]
    with style(lang):
        fig, ax = new_figure(lang, footnote=True)
        ax.bar([report.metric_label(m, lang) for m in metrics], values, color=colours)
        top = float(values.max(initial=0.0))
        if ci:
            lo = total[[f"{c}_lo" for c in columns]].astype(float).fillna(0.0).to_numpy()
            hi = total[[f"{c}_hi" for c in columns]].astype(float).fillna(0.0).to_numpy()
            ax.errorbar(range(len(metrics)), values, yerr=[values - lo, hi - values], fmt="none",
                        ecolor=OKABE_ITO["black"], capsize=6, zorder=5)  # fmt: skip
            top = max(top, float(hi.max(initial=0.0)))
        ends = np.maximum(values, hi) if ci else values
        for x, (text, end) in enumerate(zip(labels, ends, strict=True)):  # above the whisker
            ax.annotate(text, (x, end), xytext=(0, 4), textcoords="offset points", ha="center",
                        va="bottom", fontsize=14)  # fmt: skip
        ax.set_ylim(0, max(10.0, top * 1.15))
        ax.set_ylabel(denominator_text(metrics[0], denominator, lang))
        ax.tick_params(axis="x", labelrotation=20)
        ax.grid(axis="y", alpha=0.3)
        n = _denominator_n(total, metrics[0], denominator)
        text = title or _TEXT[lang]["adoption"].format(snapshot=snapshot)
        comma = "、" if lang == "ja" else ", "
        sub = f"{denominator_text(metrics[0], denominator, lang)}{comma}n = {n_text(n, metrics[0], denominator, lang)}"
        set_title(ax, text, sub)
        footnote(fig, _footnote_text(table, lang, source, _small(total["domains"]), ci))
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
    *,
    title: str | None = None,
    source: str | None = None,
    ci: bool = False,
) -> Figure:
    """Horizontal bars: a metric's percentage at each provider, largest provider on top.

    ``table`` is an `report.adoption` table by provider: the named providers, then
    ``self-hosted`` and ``other`` (every provider under ``--min-domains``); ``none`` (no
    provider) is left out and the total is a dashed reference line. Each bar is labelled with
    its n in the chart's denominator; a known provider keeps its colour from chart to chart.
    """
    by = report.group_keys(table)[0]
    column = pct_column(metric, denominator)
    shown = table[~table[by].isin([report.NONE, TOTAL])][::-1]
    total = table[table[by] == TOTAL].iloc[0]
    named = int((~shown[by].isin([report.SELF_HOSTED, report.OTHER])).sum())
    with style(lang):
        fig, ax = new_figure(lang, footnote=True)
        ns = [_denominator_n(r, metric, denominator) for _, r in shown.iterrows()]
        small = [_small(n) for n in ns]
        labels = [
            f"{name}  ({n_text(n, metric, denominator, lang)})" + (" †" if s else "")
            for name, n, s in zip(shown["label"], ns, small, strict=True)
        ]
        values = shown[column].astype(float).fillna(0.0)
        colours = [PROVIDER_COLOURS.get(p, GREY) for p in shown[by]]
        bars = ax.barh(labels, values, color=colours)
        for bar, s, c in zip(bars, small, colours, strict=True):
            if s:
                bar.set_facecolor("white")
                bar.set_edgecolor(c)
                bar.set_linewidth(2)
        if ci:
            lo = shown[f"{column}_lo"].astype(float).fillna(0.0).to_numpy()
            hi = shown[f"{column}_hi"].astype(float).fillna(0.0).to_numpy()
            ax.errorbar(values.to_numpy(), range(len(shown)), xerr=[values - lo, hi - values],
                        fmt="none", ecolor=OKABE_ITO["black"], capsize=4, zorder=5)  # fmt: skip
        ends = np.maximum(values.to_numpy(), hi) if ci else values.to_numpy()
        for y, (v, end) in enumerate(zip(values, ends, strict=True)):  # past the whisker
            ax.annotate(f"{v:.1f}%", (end, y), xytext=(6, 0), textcoords="offset points",
                        va="center", fontsize=13)  # fmt: skip
        upper = float(values.to_numpy().max(initial=0.0))
        if ci:
            upper = max(upper, float(hi.max(initial=0.0)))
        if pd.notna(total[column]):
            at = float(total[column])
            upper = max(upper, at)
            line = ax.axvline(at, color=OKABE_ITO["black"], linestyle="--", linewidth=2,
                              label=f"{_TEXT[lang]['total']} {at:.1f}%")  # fmt: skip
            # In a legend beside the plot: never over a bar's label or the title.
            ax.legend(handles=[line], loc="upper left", bbox_to_anchor=(1.01, 1.0),
                      frameon=False)  # fmt: skip
        ax.set_xlim(0, min(105.0, max(10.0, upper * 1.2)))
        ax.set_xlabel(denominator_text(metric, denominator, lang))
        ax.grid(axis="x", alpha=0.3)
        text = title or _TEXT[lang]["providers"].format(
            metric=report.metric_label(metric, lang), n=named,
            by=_TEXT[lang].get(by, by), snapshot=snapshot,
        )  # fmt: skip
        set_title(ax, text, denominator_text(metric, denominator, lang))
        footnote(fig, _footnote_text(table, lang, source, any(small), ci))
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
    """A chart of the snapshots in DIR (one snapshot, default the newest complete; every complete
    one for ``trend``).

    ``metric`` is the one plotted by ``trend`` and ``providers`` (default ``dmarc_valid``); the
    other kinds have fixed metrics and refuse it, as ``trend`` (every snapshot) refuses
    ``snapshot``, and the non-provider kinds refuse ``top``/``min_domains``. A metric that was
    not measured is refused with the reason. ``title`` replaces the title, ``source`` the
    methods footnote; ``ci`` draws 95% intervals.
    """
    if kind not in KINDS:
        raise ReportError(f"unknown chart kind {kind!r}: use one of {', '.join(KINDS)}")
    if lang not in report.LANGS:
        raise ReportError(f"unknown language {lang!r}: use ja or en")
    if metric is not None and kind not in ("trend", "providers", "map"):
        raise ReportError(f"--metric applies to the trend, providers and map charts, not {kind}")
    if by is not None and kind == "adoption":
        raise ReportError("--by applies to the trend, policy, providers and map charts, not adoption")
    if snapshot is not None and kind == "trend":
        raise ReportError("the trend chart shows every snapshot; --snapshot does not apply")
    if kind != "providers" and (top is not None or min_domains is not None):
        raise ReportError(f"--top and --min-domains apply to the providers chart, not {kind}")
    chosen = report.check_metrics([metric or DEFAULT_METRIC])[0]
    pct_column(chosen, denominator)  # checked before the snapshots are read
    extras = {"title": title, "source": source, "ci": ci}
    if kind == "trend":
        table = report.trend(
            directory, [chosen], by=by or "category", lang=lang,
            include_incomplete=include_incomplete,
        )  # fmt: skip
        _refuse_unmeasured(table, chosen, lang)
        return trend_figure(table, chosen, lang, denominator, **extras)
    label = report.resolve_snapshot(directory, snapshot, include_incomplete)
    if kind == "providers":
        by = by or "mx_provider"
        table = report.report(directory, label, by=by, top=top, min_domains=min_domains, lang=lang)
        _refuse_unmeasured(table, chosen, lang)
        return providers_figure(table, label, chosen, lang, denominator, **extras)
    if kind == "map":  # a list column of prefecture names (maps.py)
        from .maps import map_figure

        by = by or "prefecture"
        table = report.report(directory, label, by=by, lang=lang)
        _refuse_unmeasured(table, chosen, lang)
        return map_figure(table, label, chosen, lang, denominator, by, source)
    if kind == "policy":  # by category, or as --by says (a provider, a list column)
        table = report.report(directory, label, by=by or "category", lang=lang)
        return policy_figure(table, label, lang, denominator, **extras)
    table = report.report(directory, label, lang=lang)
    return adoption_figure(table, label, lang, denominator, **extras)


def _refuse_unmeasured(table: pd.DataFrame, metric: str, lang: str = "en") -> None:
    """A metric measured nowhere has nothing to draw: one line saying why, not bars at 0%."""
    if metric in report.PARTIAL_METRICS and table[metric].isna().all():
        facts = table.attrs.get("methods") or {}
        why = report.unmeasured_reason(metric, next(iter(facts.values()), None), "en")
        raise ReportError(f"nothing to chart: {metric} was not measured; {why}")


def save(fig: Figure, out: str | Path) -> Path:
    """Write a figure as PNG (150 dpi), SVG or PDF, by the file's suffix."""
    out = _check_out(out)
    suffix = out.suffix.lower()
    with matplotlib.rc_context(SAVE_RC):
        try:
            fig.savefig(out, dpi=DPI, format=suffix[1:], metadata=metadata(suffix))
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


def chart(
    directory: str | Path, out: str | Path, kind: str = "adoption", **options: object
) -> Path:
    """Build `figure` (same options) and `save` it to OUT."""
    _check_out(out)  # before the work of reading the snapshots
    fig = figure(directory, kind, **options)  # type: ignore[arg-type]
    return save(fig, out)
