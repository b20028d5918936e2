"""The prefecture map: a metric's share in each of the 47 prefectures, shaded (a choropleth).

The outlines are japanmap's (Apache-2.0; main islands of each prefecture, Hokkaido and Okinawa
moved into the frame as Japanese maps usually do, each in a box to say so). Shares are binned in
steps of 10 points of a light-to-dark sequential scale (YlGnBu: colour-blind safe and monotone in
lightness, so it reads on a projector and in grey print alike); the scale is fixed at 0-100% so
maps of two quarters compare. A prefecture with no domain in the panel, or none whose share can
be taken (none exists, or the metric was not measured), is grey and hatched: "no data", never 0%.
Where a prefecture's denominator is under `SMALL_N` domains its n is written on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Polygon, Rectangle
from matplotlib.path import Path as MplPath
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from . import report
from .chartkit import (
    DEFAULT_METRIC,
    denominator_text,
    footnote,
    new_figure,
    pct_column,
    set_title,
    style,
)
from .prefectures import prefecture_code
from .report import ReportError

#: Groups with fewer domains in the share's denominator have their n written on the map.
SMALL_N = 30
STEP = 10  # percentage points per colour class
NO_DATA = "#d9d9d9"

_TEXT = {
    "en": {
        "title": "{metric} by prefecture, {snapshot}",
        "no_data": "no data",
        "small": "n=: the domains a share is of, written where under {n}",
        "total": "the prefectures together: {share}\n(95% CI {lo}–{hi}; n = {n:,})",
        "moved": "Hokkaido and Okinawa are moved (boxes)",
    },
    "ja": {
        "title": "都道府県別の{metric}（{snapshot}）",
        "no_data": "データなし",
        "small": "n=: 割合の母数（{n} 未満の県のみ表示）",
        "total": "都道府県計: {share}\n（95% 信頼区間 {lo}〜{hi}、n = {n:,}）",
        "moved": "北海道と沖縄は位置を移動（枠内）",
    },
}


@lru_cache(maxsize=1)
def outlines() -> tuple[np.ndarray, ...]:
    """Each prefecture's outline (longitude, latitude) in code order, from japanmap."""
    import japanmap

    return tuple(np.asarray(p, dtype=float) for p in japanmap.pref_points())


def label_point(points: np.ndarray, grid: int = 24) -> tuple[float, float]:
    """Where a prefecture's label goes: the point of a grid over its outline that is inside it
    and farthest from its edge (a bay or a narrow shape would put the centroid outside)."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    xs, ys = np.meshgrid(np.linspace(lo[0], hi[0], grid), np.linspace(lo[1], hi[1], grid))
    candidates = np.column_stack([xs.ravel(), ys.ravel()])
    inside = candidates[MplPath(points).contains_points(candidates)]
    if not len(inside):
        return float(points[:, 0].mean()), float(points[:, 1].mean())
    scale = np.array([np.cos(np.radians(36)), 1.0])  # distances as drawn
    gaps = np.sqrt((((inside[:, None, :] - points[None, :, :]) * scale) ** 2).sum(axis=2))
    best = inside[gaps.min(axis=1).argmax()]
    return float(best[0]), float(best[1])


def shares(
    table: pd.DataFrame, column: str, by: str, n: pd.Series
) -> dict[int, tuple[float | None, int]]:
    """{prefecture code: (share or None, denominator n)} of an adoption table's prefecture rows."""
    out: dict[int, tuple[float | None, int]] = {}
    for index, row in table.iterrows():
        code = prefecture_code(row[by])
        if code is None:
            continue
        value = row[column]
        share = None if value is None or pd.isna(value) else float(value)
        out[code] = (share, int(n[index]))
    return out


def map_figure(
    table: pd.DataFrame,
    snapshot: str,
    metric: str = DEFAULT_METRIC,
    lang: str = "en",
    denominator: str = "domains",
    by: str | None = None,
    source: str | None = None,
    pooled: bool = True,
) -> Figure:
    """The choropleth of one metric from an adoption table grouped by a prefecture column
    (``by``; default the table's first grouping column). The footnote is ``source``, or what
    the map's marks mean and the methods block of the snapshot (``table.attrs["methods"]``).
    ``pooled=False`` leaves out the prefectures' pooled share (a figure the report engine
    does not give: the published page shows only the engine's figures)."""
    if by is None:
        by = next(c for c in table.columns if c != "snapshot")
    column = pct_column(metric, denominator)
    if column not in table.columns:
        raise ReportError(f"the table has no {metric} column")
    base = "has_mx" if denominator == "mx" else "domains"
    if metric in report.ERROR_METRICS:
        listed = table[list(report.ERROR_METRICS)].sum(axis=1) + table["domains"]
        n = listed
    else:
        n = table[base]
    n = pd.to_numeric(n, errors="coerce").fillna(0).astype(int)
    found = shares(table, column, by, n)
    if not found:
        raise ReportError(
            f"--by {by} names no prefecture: the map needs a column of prefecture names "
            "(e.g. prefecture: 東京都 or Tokyo)"
        )
    text = _TEXT[lang]
    classes = 100 // STEP
    cmap = ListedColormap(colormaps["YlGnBu"](np.linspace(0.08, 1.0, classes)))
    norm = BoundaryNorm(np.arange(0, 100 + STEP, STEP), classes)
    with style(lang):
        fig, ax = new_figure(lang, footnote=True)
        labels: list[tuple[float, Text]] = []  # (the prefecture's area, its n label)
        for code, points in enumerate(outlines(), 1):
            share, n = found.get(code, (None, 0))
            if share is None:
                face, hatch = NO_DATA, "///"
            else:
                face, hatch = cmap(norm(min(share, 100.0 - 1e-9))), None
            ax.add_patch(
                Polygon(
                    points, closed=True, facecolor=face, edgecolor="white", linewidth=0.8,
                    hatch=hatch,
                )
            )  # fmt: skip
            if share is not None and n < SMALL_N:
                cx, cy = label_point(points)
                dark = share >= 60
                label = ax.text(
                    cx, cy, f"n={n}", ha="center", va="center", fontsize=9,
                    color="white" if dark else "black", zorder=4,
                )  # fmt: skip
                label.set_in_layout(False)
                labels.append((_area(points), label))
        # The moved islands in boxes (longitude/latitude of japanmap's moved outlines).
        for code in (1, 47):
            pts = outlines()[code - 1]
            (x0, y0), (x1, y1) = pts.min(axis=0) - 0.25, pts.max(axis=0) + 0.25
            ax.add_patch(
                Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="#999999", lw=0.8)
            )
        allpts = np.concatenate(outlines())
        lo, hi = allpts.min(axis=0), allpts.max(axis=0)
        ax.set_xlim(lo[0] - 0.4, hi[0] + 0.4)
        ax.set_ylim(lo[1] - 0.4, hi[1] + 0.4)
        ax.set_aspect(1 / np.cos(np.radians(36)))  # a degree of latitude is longer
        ax.set_axis_off()
        handles = [
            Patch(facecolor=cmap(i), edgecolor="none", label=f"{i * STEP}–{(i + 1) * STEP}%")
            for i in range(classes - 1, -1, -1)
        ]
        handles.append(
            Patch(facecolor=NO_DATA, hatch="///", edgecolor="white", label=text["no_data"])
        )
        ax.legend(
            handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False,
        )  # fmt: skip
        # The prefectures together (not the snapshot's total, which holds domains of no panel).
        counted = [(share, n) for share, n in found.values() if share is not None]
        den = sum(n for _, n in counted)
        if den and pooled:
            num = round(sum(share * n / 100 for share, n in counted))
            lo, hi = report.wilson(np.array([num]), np.array([den]))
            shown = text["total"].format(
                share=f"{100 * num / den:.1f}%", lo=f"{lo[0]:.1f}", hi=f"{hi[0]:.1f}", n=den
            )
            ax.text(1.0, 0.0, shown, transform=ax.transAxes, ha="left", va="bottom", fontsize=14)
        footnote(fig, source if source is not None else _footnote_text(table, lang, text))
        title = text["title"].format(metric=report.metric_label(metric, lang), snapshot=snapshot)
        set_title(ax, title, denominator_text(metric, denominator, lang))
        _place_labels(fig, ax, labels)
        return fig


def _area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return float(abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2)


#: Where a label that does not fit on its prefecture may go: steps of its own size around it.
_DIRECTIONS = ((0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (-1, 1), (1, -1), (-1, -1))


def _place_labels(fig: Figure, ax: Axes, labels: list[tuple[float, Text]]) -> None:
    """Move the n labels that would overlap: the large prefectures' stay on them; a small one's
    goes to the nearest free place around it, on a white ground, tied to it by a line.

    Placed in the figure's final layout (the constrained layout is run first; the labels are
    not in it, so moving them does not change it).
    """
    if not labels:
        return
    FigureCanvasAgg(fig)
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    to_data = ax.transData.inverted()
    placed: list[Bbox] = []
    pad = 2.0  # pixels between two labels
    for _, label in sorted(labels, key=lambda item: -item[0]):
        box = label.get_window_extent(renderer).expanded(1, 1)
        box = Bbox.from_extents(box.x0 - pad, box.y0 - pad, box.x1 + pad, box.y1 + pad)
        if not any(box.overlaps(other) for other in placed):
            placed.append(box)
            continue
        moved = None
        for step in range(1, 12):
            for dx, dy in _DIRECTIONS:
                candidate = box.translated(dx * step * box.width / 2, dy * step * box.height / 2)
                if frame.contains(candidate.x0, candidate.y0) and frame.contains(
                    candidate.x1, candidate.y1
                ) and not any(candidate.overlaps(other) for other in placed):
                    moved = candidate
                    break
            if moved is not None:
                break
        if moved is None:  # (no free place near it: left where it is)
            placed.append(box)
            continue
        placed.append(moved)
        anchor = label.get_position()
        x, y = to_data.transform(((moved.x0 + moved.x1) / 2, (moved.y0 + moved.y1) / 2))
        label.set_position((x, y))
        label.set_color("black")
        label.set_bbox({"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none"})
        (line,) = ax.plot((anchor[0], x), (anchor[1], y), color="#555555", lw=0.6, zorder=3)
        line.set_in_layout(False)


def _footnote_text(table: pd.DataFrame, lang: str, text: Mapping[str, str]) -> str:
    """What the marks mean, then the methods block of the snapshot from its manifest."""
    end = "。" if lang == "ja" else "."
    notes = [text["small"].format(n=SMALL_N) + end, text["moved"] + end]
    facts = table.attrs.get("methods") or {}
    labels = list(dict.fromkeys(table["snapshot"])) if "snapshot" in table.columns else []
    notes += [report.methods_text(facts[s], lang, brief=True) for s in labels[-1:] if s in facts]
    return ("" if lang == "ja" else " ").join(notes)
