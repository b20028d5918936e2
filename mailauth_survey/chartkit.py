"""What every figure shares (charts, the prefecture map, the published page): slide size, fonts,
style, titles, the percent column of a metric, and file metadata.

Japanese labels use IPAexGothic from the ``matplotlib-fontja`` package. The font is registered
with matplotlib without importing that package (its import changes the global rcParams). Texts
take the font when they are made inside :func:`style`, and ticks made at a later draw copy the
first tick's, so a figure shown later in a notebook keeps it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import matplotlib
from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .report import ERROR_METRICS, ReportError

DENOMINATORS = ("domains", "mx")
SIZE_IN = (16.0, 9.0)
DPI = 150
JA_FONT = "IPAexGothic"
DEFAULT_METRIC = "dmarc_valid"
#: Room kept under the plot for the methods footnote (fraction of the figure's height).
FOOTNOTE_ROOM = 0.085

#: What a percentage is of, by denominator (``listed``: the error metrics, whose domains have
#: no MX or existence to count against).
DENOMINATOR_TEXT = {
    "en": {
        "domains": "% of domains that exist",
        "mx": "% of domains with MX",
        "listed": "% of listed domains",
    },
    "ja": {
        "domains": "存在するドメインに占める割合 (%)",
        "mx": "MX を持つドメインに占める割合 (%)",
        "listed": "リスト全体に占める割合 (%)",
    },
}

#: rcParams for saving: text stays text (PDF), SVG looks the same without the font.
SAVE_RC = {
    "axes.unicode_minus": False,  # an ASCII hyphen-minus: in every font
    "pdf.fonttype": 42,  # TrueType embedded: text stays text in the PDF
    "svg.fonttype": "path",  # SVG looks the same without the font installed
}


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


@contextmanager
def style(lang: str) -> Iterator[None]:
    """Slide-sized type and the language's font while a figure is built."""
    rc = {
        **SAVE_RC,
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


def new_figure(lang: str, footnote: bool = False) -> tuple[Figure, Axes]:
    """A 16:9 figure with one axes; ``footnote`` keeps a strip under the plot for `footnote`."""
    fig = Figure(figsize=SIZE_IN, dpi=DPI)
    if footnote:  # the strip is outside what the layout arranges
        fig.set_layout_engine("constrained", rect=(0, FOOTNOTE_ROOM, 1, 1 - FOOTNOTE_ROOM))
    else:
        fig.set_layout_engine("constrained")
    return fig, fig.add_subplot()


def wrap(text: str, width: int) -> str:
    """Wrap by display width (a CJK character is two columns), at spaces where there are any."""
    from rich.cells import cell_len

    lines, line = [], ""
    for word in text.replace("\n", " ").split(" "):
        candidate = f"{line} {word}" if line else word
        if cell_len(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = ""
        for ch in word:  # a long word (Japanese has no spaces): break anywhere
            if cell_len(line + ch) > width:
                lines.append(line)
                line = ""
            line += ch
    if line:
        lines.append(line)
    return "\n".join(lines)


def footnote(fig: Figure, text: str) -> None:
    """The methods block (or --source) in the strip under the plot, small, left-aligned."""
    if text:
        fig.text(0.012, 0.012, wrap(text, 185), fontsize=10.5, ha="left", va="bottom",
                 color="#333333", linespacing=1.35)  # fmt: skip


def denominator_text(metric: str, denominator: str, lang: str) -> str:
    if metric in ERROR_METRICS:
        return DENOMINATOR_TEXT[lang]["listed"]
    return DENOMINATOR_TEXT[lang][denominator]


def pct_column(metric: str, denominator: str) -> str:
    if denominator not in DENOMINATORS:
        raise ReportError(f"unknown denominator {denominator!r}: use domains or mx")
    if denominator == "mx" and metric in ERROR_METRICS:
        raise ReportError(f"{metric} has no MX denominator (an error domain's MX is unknown)")
    return f"{metric}_pct" if denominator == "domains" else f"{metric}_mx_pct"


def set_title(ax: Axes, text: str, denominator_text: str) -> None:
    # IPAexGothic has no bold face (matplotlib would log a fallback): Japanese titles stay regular.
    japanese = matplotlib.rcParams["font.family"][0] == JA_FONT
    ax.set_title(
        f"{text}\n{denominator_text}", loc="left", fontweight="normal" if japanese else "bold"
    )


def metadata(suffix: str) -> dict[str, str | None]:
    """What a saved file says about itself: no date, so the same data makes the same file."""
    creator = "mailauth-survey"
    if suffix == ".png":
        return {"Software": creator}
    if suffix == ".svg":
        return {"Creator": creator, "Date": None}
    return {"Creator": creator, "CreationDate": None}
