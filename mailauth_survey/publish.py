"""`publish`: the page a committee posts, one self-contained HTML file per snapshot.

``FOLDER/index.html`` holds everything a reader needs (inline CSS, charts as inline SVG whose text
is drawn as paths, no script, no font or image fetched), so it opens from a USB stick or as a mail
attachment. Beside it: ``report.xlsx`` (the tables) and every chart of the page as PNG and SVG.

The figures are the report engine's: each table is `report.report` rendered as JSON by
`report.render` (the rows `report --format json` prints), the change since the previous complete
snapshot and whether it is beyond the noise are `report.changes`, the charts are `charts`'
figures, the workbook is `report.write_workbook`, the methods are `report.methods` (the
manifest), and where the lists have a prefecture column the map is `maps.map_figure` of the
engine's table by prefecture. Nothing here computes a share; this module chooses, formats and lays out. The page is rendered by Jinja2 from ``templates/index.html.j2``; every word on it comes
from `TEXT` (or the engine's labels) in the language asked for.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import os
import re
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__, report, store
from .report import ReportError

#: The headline strip, in reading order (shares of the domains that exist).
HEADLINE: tuple[str, ...] = (
    "dmarc_valid",
    "dmarc_enforcing",
    "spf_valid",
    "spf_all_fail",
    "mta_sts",
)
#: Columns of the table by category and of the providers table.
CATEGORY_METRICS: tuple[str, ...] = HEADLINE
PROVIDER_METRICS: tuple[str, ...] = ("spf_valid", "spf_all_fail", "dmarc_valid", "dmarc_enforcing")
POLICY_METRICS: tuple[str, ...] = ("dmarc_none", "dmarc_quarantine", "dmarc_reject")
#: Transport security: shown only where measured (null in the JSON report where not).
TRANSPORT_METRICS: tuple[str, ...] = (
    "mta_sts_enforce", "mta_sts_mismatch", "starttls", "dane", "dnssec",
)  # fmt: skip
#: Groups smaller than this are marked (SPEC.md, "Metrics").
SMALL_GROUP = 30
PROVIDER_BY = "mx_provider"
#: The map section: a list column of prefectures, shaded by the headline's first metric.
MAP_BY = "prefecture"
MAP_METRIC = HEADLINE[0]
STATUSES = ("ok", "nxdomain", "servfail", "timeout", "refused", "error")

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "Email authentication in .jp",
        "snapshot": "snapshot {label}",
        "subtitle": "{listed} domains listed, {exist} exist. Scanned {start} – {end}.",
        "incomplete": "This snapshot's scan did not finish ({note}): its figures cover only the "
        "domains scanned.",
        "files": "Beside this page:",
        "files_heading": "Files beside this page",
        "paren": " ({})",
        "comma": ", ",
        "stop": ".",
        "colon": ": ",
        "files_tables": "the tables",
        "files_charts": "the charts as PNG and SVG",
        "headline": "At a glance",
        "headline_note": "Share of the {exist} domains that exist, with its 95% interval. The change is in "
        "percentage points since {previous}, the previous complete snapshot; ● marks a change "
        "beyond the noise.",
        "headline_note_first": "Share of the {exist} domains that exist, with its 95% interval. There is no "
        "earlier complete snapshot to compare with.",
        "ci": "95% CI {lo}–{hi}%",
        "change": "{delta} since {previous}",
        "beyond": "beyond the noise",
        "within": "within the noise",
        "no_change": "no earlier figure",
        "categories": "By registration category",
        "category": "Category",
        "provider": "MX provider",
        "n": "Domains",
        "n_note": "Domains: that exist (n, the denominator of every share in the row). Each share "
        "is followed by its 95% interval.",
        "small": "† fewer than {small} domains: a small group, read its shares with their interval.",
        "trend": "Over time",
        "trend_caption": "{metric} over time, by category",
        "policy_caption": "DMARC policy by category",
        "providers_caption": "{metric} by MX provider",
        "trend_note": "Every complete snapshot: {labels}.",
        "trend_left_out": "Left out as incomplete: {labels}.",
        "trend_single": "Only one complete snapshot ({label}): there is no trend to draw yet.",
        "policy": "DMARC policy",
        "policy_note": "The policy that applies to each domain with a valid DMARC record, as shares of "
        "the domains that exist; the rest have no valid record.",
        "providers": "By mail provider",
        "providers_note": "Grouped by the registrable domain of the most preferred MX. "
        "“Self-hosted”: the exchange is under the domain's own name; providers with few domains "
        "are folded into “other”.",
        "transport": "Transport security",
        "transport_none": "Transport security (MTA-STS policies, STARTTLS, DANE, DNSSEC) was not "
        "measured in this snapshot: {why}.",
        "transport_some": "Not measured in this snapshot: {metrics} ({why}).",
        "measured_of": "{k} of {n} measured",
        "not_measured": "—",
        "methods": "How this was measured",
        "m_snapshot": "Snapshot",
        "m_scan": "Scan",
        "m_scan_value": "{start} – {end}",
        "m_domains": "Domains",
        "m_domains_value": "{listed} listed, by final status:",
        "m_resolvers": "Resolvers",
        "m_validation": "DNSSEC validation",
        "m_validated": "answers validated by the resolver (AD flag)",
        "m_not_validated": "no answer was validated (the resolver set no AD flag)",
        "m_probes": "Probes",
        "m_policy_on": "MTA-STS policies fetched over HTTPS",
        "m_policy_off": "MTA-STS policies not fetched",
        "m_smtp_on": "SMTP STARTTLS probes made",
        "m_smtp_off": "no SMTP probes",
        "m_lists": "Input lists",
        "m_psl": "Public Suffix List",
        "m_dkim": "DKIM selectors",
        "m_dkim_value": "{names} ({n}; a lower bound: a key at another selector is not seen)",
        "m_software": "Software",
        "m_software_value": "mailauth-survey {scan} (scan), {now} (this page); snapshot schema {schema}",
        "m_shares": "Shares and intervals",
        "m_shares_value": "Shares are of the domains that exist (status ok); a domain whose query "
        "ended in an error counts only in that error, never as “absent”. Each share carries its "
        "95% Wilson score interval. {noise}",
        "m_definitions": "What each figure counts",
        "unknown": "not recorded",
        "status": "Status",
        "count": "Domains",
        "generated": "Made by mailauth-survey {version} from the snapshot's stored data.",
        "map": "By prefecture",
        "map_caption": "{metric} by prefecture",
        "map_lead": "{metric}: the share of the domains that exist in each prefecture (the "
        "prefecture column of the input lists), shaded in classes of 10 points.",
        "map_note": "Denominator (n): the domains the lists place in that prefecture that exist; "
        "n is in the table and, where under {small}, on the map. Hatched grey: no data (no domain "
        "of that prefecture exists in the lists), never 0%. Hokkaido and Okinawa are moved into "
        "boxes.",
        "map_small": "† fewer than {small} domains: a small prefecture's share is uncertain, read "
        "it with its 95% interval.",
        "map_none": "{n} domains that exist are in no prefecture of the lists and are not on the "
        "map.",
        "map_unknown": "{n} domains that exist have a prefecture value that names no "
        "prefecture ({values}) and are not on the map.",
        "map_prefecture": "Prefecture",
        "map_interval": "95% interval",
        "map_n_title": "domains that exist",
        "no_data": "no data",
    },
    "ja": {
        "title": ".jp ドメインの送信ドメイン認証 導入状況",
        "snapshot": "スナップショット {label}",
        "subtitle": "調査対象 {listed} ドメイン（うち存在 {exist} ドメイン）。調査期間 {start}〜{end}。",
        "incomplete": "このスナップショットの調査は完了していません（{note}）。数値は調査済みのドメインのみのものです。",
        "files": "このページと同じフォルダーに",
        "files_heading": "同じフォルダーのファイル",
        "paren": "（{}）",
        "comma": "、",
        "stop": "。",
        "colon": "：",
        "files_tables": "Excel 形式の表",
        "files_charts": "PNG・SVG 形式のグラフ",
        "headline": "主な指標",
        "headline_note": "存在する {exist} ドメインに占める割合と 95% 信頼区間。変化は前回の完全な"
        "スナップショット（{previous}）からのポイント差で、● は誤差を超える変化を示します。",
        "headline_note_first": "存在する {exist} ドメインに占める割合と 95% 信頼区間。比較できる過去の"
        "完全なスナップショットはありません。",
        "ci": "95% 信頼区間 {lo}〜{hi}%",
        "change": "{previous} から {delta}",
        "beyond": "誤差を超える変化",
        "within": "誤差の範囲内",
        "no_change": "比較対象なし",
        "categories": "登録種別ごとの導入状況",
        "category": "種別",
        "provider": "MX 事業者",
        "n": "ドメイン数",
        "n_note": "ドメイン数は存在するドメインの数（その行のすべての割合の分母）。割合の下は 95% 信頼区間。",
        "small": "† {small} ドメイン未満の小さなグループ。割合は信頼区間とあわせてお読みください。",
        "trend": "推移",
        "trend_caption": "{metric}の推移（種別ごと）",
        "policy_caption": "種別ごとの DMARC ポリシー",
        "providers_caption": "MX 事業者ごとの {metric}",
        "trend_note": "完全なスナップショットすべて：{labels}。",
        "trend_left_out": "未完了のため除外：{labels}。",
        "trend_single": "完全なスナップショットが 1 つ（{label}）しかないため、推移はまだ示せません。",
        "policy": "DMARC ポリシーの内訳",
        "policy_note": "有効な DMARC レコードを持つドメインに適用されるポリシーを、存在するドメインに占める"
        "割合で示します。残りは有効なレコードがありません。",
        "providers": "メール事業者（MX）ごとの導入状況",
        "providers_note": "最優先 MX の登録可能ドメインで集計。「自社運用」は MX が自ドメイン配下にある"
        "ドメイン、ドメイン数の少ない事業者は「その他」にまとめています。",
        "transport": "通信経路の暗号化",
        "transport_none": "このスナップショットでは通信経路の暗号化（MTA-STS ポリシー、STARTTLS、DANE、"
        "DNSSEC）を測定していません（{why}）。",
        "transport_some": "このスナップショットで未測定：{metrics}（{why}）。",
        "measured_of": "{n} 件中 {k} 件を測定",
        "not_measured": "未測定",
        "methods": "調査方法",
        "m_snapshot": "スナップショット",
        "m_scan": "調査期間",
        "m_scan_value": "{start}〜{end}",
        "m_domains": "ドメイン数",
        "m_domains_value": "調査対象 {listed} ドメイン。最終状態の内訳：",
        "m_resolvers": "リゾルバー",
        "m_validation": "DNSSEC 検証",
        "m_validated": "リゾルバーが応答を検証（AD フラグ）",
        "m_not_validated": "検証済みの応答なし（リゾルバーが AD フラグを立てていません）",
        "m_probes": "追加調査",
        "m_policy_on": "MTA-STS ポリシーを HTTPS で取得",
        "m_policy_off": "MTA-STS ポリシーは取得せず",
        "m_smtp_on": "SMTP の STARTTLS 調査を実施",
        "m_smtp_off": "SMTP 調査は実施せず",
        "m_lists": "入力リスト",
        "m_psl": "公開接尾辞リスト",
        "m_dkim": "DKIM セレクタ",
        "m_dkim_value": "{names}（{n} 個。下限値: ほかのセレクタの鍵は数えていない）",
        "m_software": "ソフトウェア",
        "m_software_value": "mailauth-survey {scan}（調査）、{now}（このページ）。スナップショット形式 {schema}",
        "m_shares": "割合と信頼区間",
        "m_shares_value": "割合の分母は存在するドメイン（状態 ok）です。問い合わせがエラーで終わった"
        "ドメインはそのエラーにのみ数え、「レコードなし」とはしません。割合には 95% 信頼区間"
        "（Wilson のスコア区間）を付けています。{noise}",
        "m_definitions": "各指標の定義",
        "unknown": "記録なし",
        "status": "状態",
        "count": "ドメイン数",
        "generated": "mailauth-survey {version} により、スナップショットの保存データから作成。",
        "map": "都道府県ごとの導入状況",
        "map_caption": "都道府県別の{metric}",
        "map_lead": "{metric}：各都道府県（入力リストの prefecture 列）の存在するドメインに占める"
        "割合を、10 ポイントごとの階級で塗り分けています。",
        "map_note": "分母（n）は、リストでその都道府県に属する存在するドメインの数です。n は表に、"
        "{small} 未満の県は地図上にも示します。灰色の斜線はデータなし（その県の存在するドメインが"
        "リストにない）で、0% ではありません。北海道と沖縄は位置を移動しています（枠内）。",
        "map_small": "† {small} ドメイン未満の県。割合の不確かさが大きいため、信頼区間とあわせて"
        "お読みください。",
        "map_none": "存在するドメインのうち {n} ドメインはリストでどの都道府県にも属さず、地図には"
        "含まれません。",
        "map_unknown": "存在するドメインのうち {n} ドメインは prefecture 列の値（{values}）が"
        "どの都道府県にも当たらず、地図には含まれません。",
        "map_prefecture": "都道府県",
        "map_interval": "95% 信頼区間",
        "map_n_title": "存在するドメインの数",
        "no_data": "データなし",
    },
}

#: How `diff` decides that a change is beyond the noise, said on the page.
NOISE_RULE: dict[str, str] = {
    "en": "A change between snapshots is beyond the noise when a two-sided two-proportion z-test "
    "(pooled) gives p < 0.05.",
    "ja": "スナップショット間の変化は、2 つの割合の差の検定（両側 z 検定、プール推定）で p < 0.05 の"
    "とき「誤差を超える変化」とします。",
}

STATUS_LABELS: dict[str, dict[str, str]] = {
    "en": {
        "ok": "exists", "nxdomain": "does not exist (NXDOMAIN)", "servfail": "SERVFAIL",
        "timeout": "timeout", "refused": "REFUSED", "error": "other error",
    },
    "ja": {
        "ok": "存在", "nxdomain": "存在しない（NXDOMAIN）", "servfail": "SERVFAIL",
        "timeout": "タイムアウト", "refused": "REFUSED", "error": "その他のエラー",
    },
}  # fmt: skip

#: What each figure on the page counts, in the page's language.
DEFINITIONS: dict[str, dict[str, str]] = {
    "en": {
        "domains": "the listed domains whose name exists (status ok): the denominator of every share",
        "spf_valid": "a valid SPF record at the domain (RFC 7208: one v=spf1 record, no syntax error, "
        "at most 10 DNS-querying terms and 2 void lookups)",
        "spf_all_fail": "a valid SPF record whose effective all, through redirect= too, is -all "
        "(mail from other hosts fails)",
        "dmarc_valid": "a valid DMARC record, the domain's own or its organizational domain's "
        "(RFC 7489 / the DMARC tree walk)",
        "dmarc_enforcing": "a valid DMARC record whose applied policy is quarantine or reject",
        "dmarc_none": "a valid DMARC record whose applied policy is none (monitoring only)",
        "dmarc_quarantine": "a valid DMARC record whose applied policy is quarantine",
        "dmarc_reject": "a valid DMARC record whose applied policy is reject",
        "mta_sts": "a valid _mta-sts TXT record (RFC 8461)",
        "mta_sts_enforce": "a valid MTA-STS policy in enforce mode whose patterns match every MX host",
        "mta_sts_mismatch": "a valid MTA-STS policy (enforce or testing) that does not match some MX host",
        "starttls": "every MX host that answered SMTP offered STARTTLS and completed the handshake",
        "dane": "every MX host has a usable TLSA record set, validated by DNSSEC",
        "dnssec": "the answers at the domain's apex were validated by the resolver (AD flag)",
    },
    "ja": {
        "domains": "調査対象のうち名前が存在するドメイン（状態 ok）。すべての割合の分母",
        "spf_valid": "有効な SPF レコードを持つ（RFC 7208: v=spf1 レコードが 1 つ、構文エラーなし、"
        "DNS 参照 10 回以内・空応答 2 回以内）",
        "spf_all_fail": "有効な SPF レコードの実効的な all（redirect= 経由を含む）が -all",
        "dmarc_valid": "自ドメインまたは組織ドメインに有効な DMARC レコードがある（RFC 7489・DMARC ツリー探索）",
        "dmarc_enforcing": "有効な DMARC レコードの適用ポリシーが quarantine または reject",
        "dmarc_none": "有効な DMARC レコードの適用ポリシーが none（監視のみ）",
        "dmarc_quarantine": "有効な DMARC レコードの適用ポリシーが quarantine",
        "dmarc_reject": "有効な DMARC レコードの適用ポリシーが reject",
        "mta_sts": "有効な _mta-sts TXT レコードを持つ（RFC 8461）",
        "mta_sts_enforce": "enforce モードの有効な MTA-STS ポリシーがあり、すべての MX ホストに一致する",
        "mta_sts_mismatch": "有効な MTA-STS ポリシー（enforce または testing）が一部の MX ホストに一致しない",
        "starttls": "SMTP に応答したすべての MX ホストが STARTTLS を提供し、ハンドシェイクが完了した",
        "dane": "すべての MX ホストに DNSSEC で検証された利用可能な TLSA レコードがある",
        "dnssec": "ドメインの頂点の応答がリゾルバーにより検証された（AD フラグ）",
    },
}

#: File names of the charts beside the page (what they show), by chart key.
CHART_FILES: dict[str, str] = {
    **{f"trend_{m}": f"trend-{m.replace('_', '-')}-by-category" for m in HEADLINE},
    "policy": "dmarc-policy-by-category",
    "providers": f"dmarc-valid-by-{PROVIDER_BY.replace('_', '-')}",
}
#: The map's files, beside the others when the snapshot has a prefecture grouping.
MAP_FILE = f"{MAP_METRIC.replace('_', '-')}-by-{MAP_BY}"


# --- formats -----------------------------------------------------------------------------------


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class Formats:
    """Numbers and dates written the language's way (filters of the template)."""

    lang: str

    def count(self, value: Any) -> str:
        return TEXT[self.lang]["not_measured"] if _missing(value) else f"{int(value):,}"

    def pct(self, value: Any) -> str:
        return TEXT[self.lang]["not_measured"] if _missing(value) else f"{float(value):.1f}%"

    def ci(self, lo: Any, hi: Any) -> str:
        if _missing(lo) or _missing(hi):
            return ""
        return TEXT[self.lang]["ci"].format(lo=f"{float(lo):.1f}", hi=f"{float(hi):.1f}")

    def interval(self, lo: Any, hi: Any) -> str:
        """The interval alone, for table cells (the column says what it is)."""
        if _missing(lo) or _missing(hi):
            return ""
        sep = "〜" if self.lang == "ja" else "–"
        return f"{float(lo):.1f}{sep}{float(hi):.1f}"

    def points(self, delta: Any) -> str:
        """A change in percentage points, signed (U+2212 for minus, as in print)."""
        if _missing(delta):
            return TEXT[self.lang]["not_measured"]
        text = f"{abs(float(delta)):.1f}"
        sign = "±" if text == "0.0" else ("+" if delta > 0 else "\u2212")
        return f"{sign}{text} {'ポイント' if self.lang == 'ja' else 'pp'}"

    def when(self, value: Any) -> str:
        """A manifest timestamp (ISO 8601) in UTC: 2024-06-01 03:00 UTC / 2024年6月1日 03:00 UTC."""
        if not value:
            return TEXT[self.lang]["unknown"]
        try:
            moment = dt.datetime.fromisoformat(str(value))
        except ValueError:
            return str(value)
        if moment.tzinfo is not None:
            moment = moment.astimezone(dt.UTC)
        if self.lang == "ja":
            return f"{moment.year}年{moment.month}月{moment.day}日 {moment:%H:%M} UTC"
        return f"{moment:%Y-%m-%d %H:%M} UTC"


# --- the engine's figures ----------------------------------------------------------------------


def rows_of(table: Any, lang: str) -> list[dict[str, Any]]:
    """The rows `report --format json` prints for an engine table."""
    rows: list[dict[str, Any]] = json.loads(report.render(table, "json", lang))
    return rows


def _total(rows: Sequence[Mapping[str, Any]], by: str) -> Mapping[str, Any]:
    return next(r for r in rows if r[by] == report.TOTAL)


# --- charts ------------------------------------------------------------------------------------


@dataclass
class Chart:
    """A chart of the page: its files' stem, caption, and the three renderings."""

    key: str
    stem: str
    caption: str
    png: bytes = b""
    svg: bytes = b""
    inline: str = ""


_ID = re.compile(r'\bid="([^"]+)"')


def inline_svg(svg: str, prefix: str, label: str) -> str:
    """Matplotlib's SVG made fit to sit inside HTML next to others.

    The XML prolog, DOCTYPE and metadata go; every id is prefixed so that two charts' glyph and
    clip-path definitions never resolve to each other's; the fixed size in points becomes a
    viewBox that scales to the column (CSS); the chart is announced as one image with a label.
    """
    start = svg.index("<svg")
    body = re.sub(r"<metadata>.*?</metadata>\s*", "", svg[start:], flags=re.S)
    ids = set(_ID.findall(body))

    def rename(match: re.Match[str]) -> str:
        name = match.group(2)
        return f"{match.group(1)}{prefix}-{name}" if name in ids else match.group(0)

    body = re.sub(r'(\bid="|#)([A-Za-z_][\w.\-]*)', rename, body)
    head_end = body.index(">")
    head = re.sub(r'\s(width|height)="[^"]*"', "", body[:head_end])
    escaped = label.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    head += f' class="chart" role="img" aria-label="{escaped}"'
    return head + body[head_end:]


def _render_chart(chart: Chart, fig: Any) -> Chart:
    # The same rc settings as `charts.save`: text as paths, ASCII minus, reproducible files.
    import matplotlib

    from . import chartkit

    with matplotlib.rc_context(chartkit.SAVE_RC):
        png, svg = io.BytesIO(), io.BytesIO()
        fig.savefig(png, format="png", dpi=chartkit.DPI, metadata=chartkit.metadata(".png"))
        fig.savefig(svg, format="svg", metadata=chartkit.metadata(".svg"))
    chart.png, chart.svg = png.getvalue(), svg.getvalue()
    chart.inline = inline_svg(chart.svg.decode("utf-8"), chart.stem, chart.caption)
    return chart


# --- the page ----------------------------------------------------------------------------------


@dataclass
class Page:
    """Everything `publish` writes, made in memory before a file is touched."""

    html: str
    sheets: dict[str, Any]
    facts: dict[str, Any]
    charts: list[Chart] = field(default_factory=list)


def _metric_cells(row: Mapping[str, Any], metrics: Sequence[str]) -> list[dict[str, Any]]:
    cells = []
    for metric in metrics:
        measured = row.get(f"{metric}_measured")
        cells.append(
            {
                "metric": metric,
                "count": row.get(metric),
                "pct": row.get(f"{metric}_pct"),
                "lo": row.get(f"{metric}_pct_lo"),
                "hi": row.get(f"{metric}_pct_hi"),
                "measured": measured,
                "n": row.get("domains"),
                "partial": measured is not None
                and row.get("domains") is not None
                and measured < row["domains"],
            }
        )
    return cells


def _table(rows: Sequence[Mapping[str, Any]], by: str, metrics: Sequence[str]) -> list[dict]:
    return [
        {
            "key": row[by],
            "label": row["label"],
            "total": row[by] == report.TOTAL,
            "n": row.get("domains"),
            "small": row[by] != report.TOTAL and (row.get("domains") or 0) < SMALL_GROUP,
            "cells": _metric_cells(row, metrics),
        }
        for row in rows
    ]


def _prefectures(directory: str | Path, label: str, lang: str) -> tuple[Any, dict[str, Any]] | None:
    """The engine's table by prefecture and the section's rows, or None when the snapshot has
    no prefecture column in its lists (or none of its values names a prefecture).

    Every figure is the engine's (`report --by prefecture --format json`); the 47 prefectures
    are listed in JIS order, those with no row (or no domain that exists) as "no data".
    """
    from .prefectures import PREFECTURES, prefecture_code, prefecture_name

    if MAP_BY not in report.list_attributes(directory, label):
        return None
    table = report.report(directory, label, by=MAP_BY, lang=lang)
    rows = rows_of(table, lang)
    found: dict[int, list[Mapping[str, Any]]] = {}
    unknown: list[Mapping[str, Any]] = []  # values of the column that name no prefecture
    for row in rows:
        if row[MAP_BY] in (report.TOTAL, report.NONE):
            continue
        code = prefecture_code(row[MAP_BY])
        if code is None:
            unknown.append(row)
        else:
            found.setdefault(code, []).append(row)
    if not found:
        return None
    listed = []
    for code, _, _ in PREFECTURES:
        name = prefecture_name(code, lang)
        for row in found.get(code) or [None]:
            n = None if row is None else row.get("domains")
            pct = None if row is None else row.get(f"{MAP_METRIC}_pct")
            listed.append(
                {
                    "key": None if row is None else row[MAP_BY],
                    "code": code,
                    "label": name,
                    "n": n,
                    "data": not _missing(pct),
                    "small": not _missing(pct) and (n or 0) < SMALL_GROUP,
                    "cell": _metric_cells(row, (MAP_METRIC,))[0] if row is not None else None,
                }
            )
    outside = next((r for r in rows if r[MAP_BY] == report.NONE), None)
    section = {
        "rows": listed,
        "metric": report.metric_label(MAP_METRIC, lang),
        "none": None if outside is None else outside.get("domains"),
        "unknown": sum(r.get("domains") or 0 for r in unknown),
        "unknown_values": ", ".join(str(r[MAP_BY]) for r in unknown),
        "any_small": any(r["small"] for r in listed),
    }
    return table, section


def _methods(facts: Mapping[str, Any], manifest: Mapping[str, Any], lang: str) -> dict[str, Any]:
    """The methods section: the engine's facts (`report.methods`), and from the manifest the
    counts by status and the schema version, which the facts do not carry."""
    t = TEXT[lang]
    counts = manifest.get("status_counts") or {}
    statuses = [s for s in STATUSES if s in counts] + sorted(set(counts) - set(STATUSES))
    probes = facts.get("probes") or {}
    return {
        "start": facts.get("started_at"),
        "end": facts.get("finished_at"),
        "listed": facts.get("listed"),
        "statuses": [
            {"status": s, "label": STATUS_LABELS[lang].get(s, s), "count": counts[s]}
            for s in statuses
        ],
        "resolvers": [str(r) for r in facts.get("resolvers") or []],
        "validation": t["m_validated"] if facts.get("validated") else t["m_not_validated"],
        "probes": [
            t["m_policy_on"] if probes.get("mta_sts_policy") else t["m_policy_off"],
            t["m_smtp_on"] if probes.get("probe_smtp") else t["m_smtp_off"],
        ],
        "lists": [
            {"name": i.get("name") or t["unknown"], "sha256": i.get("sha256") or t["unknown"]}
            for i in facts.get("lists") or []
        ],
        "psl": facts.get("psl") or t["unknown"],
        "dkim": (
            t["m_dkim_value"].format(names=", ".join(sel), n=len(sel))
            if (sel := facts.get("dkim_selectors"))
            else None
        ),
        "scan_version": facts.get("package_version") or t["unknown"],
        "schema": manifest.get("schema_version", t["unknown"]),
        "complete": facts.get("complete", True),
        "incomplete": facts.get("incomplete") or "",
    }


def _transport(total: Mapping[str, Any], facts: Mapping[str, Any], lang: str) -> dict[str, Any]:
    """Which transport metrics were measured (a count in the total row), and why the others not."""
    measured = [m for m in TRANSPORT_METRICS if not _missing(total.get(m))]
    missing = [m for m in TRANSPORT_METRICS if m not in measured]
    why = list(dict.fromkeys(report.unmeasured_reason(m, facts, lang) for m in missing))
    sep = "、" if lang == "ja" else "; "
    return {
        "measured": measured,
        "missing": missing,
        "missing_labels": ("、" if lang == "ja" else ", ").join(
            report.metric_label(m, lang) for m in missing
        ),
        "why": sep.join(why),
    }


def build(
    directory: str | Path,
    snapshot: str | None = None,
    lang: str = "en",
    include_incomplete: bool = False,
) -> Page:
    """The page, the tables and the charts of one snapshot, in memory.

    ``snapshot`` defaults to the newest complete one; the change is since the complete snapshot
    before it, and the trend is over every complete snapshot (incomplete ones are left out, with
    the engine's warning naming them, once: the engine is asked several times), unless
    ``include_incomplete``: then every snapshot counts.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        page = _build(directory, snapshot, lang, include_incomplete)
    for category, message in dict.fromkeys((w.category, str(w.message)) for w in caught):
        warnings.warn(message, category, stacklevel=2)
    return page


def _build(
    directory: str | Path, snapshot: str | None, lang: str, include_incomplete: bool
) -> Page:
    from . import charts

    if lang not in report.LANGS:
        raise ReportError(f"unknown language {lang!r}: use ja or en")
    label = report.resolve_snapshot(directory, snapshot, include_incomplete)
    order = report.snapshots(directory)
    incomplete = (
        [] if include_incomplete else [s for s in order if not report.is_complete(directory, s)]
    )
    complete = [s for s in order if s not in incomplete]
    earlier = [s for s in complete if order.index(s) < order.index(label)]
    previous = earlier[-1] if earlier else None
    facts = report.methods(directory, label)
    manifest = store.Snapshot(directory, label).read_manifest() or {}
    fmt = Formats(lang)
    t = TEXT[lang]

    category_table = report.report(directory, label, lang=lang)
    provider_table = report.report(directory, label, by=PROVIDER_BY, lang=lang)
    rows = rows_of(category_table, lang)
    provider_rows = rows_of(provider_table, lang)
    total = _total(rows, "category")

    changes: dict[str, Mapping[str, Any]] = {}
    if previous is not None:
        before = report.report(directory, previous, lang=lang)
        changes = {
            c["metric"]: c for c in report.changes(before, category_table).to_dict("records")
        }
    headline = []
    for metric in HEADLINE:
        change = changes.get(metric, {})
        delta = change.get("change_points")
        headline.append(
            {
                "metric": metric,
                "label": report.metric_label(metric, lang),
                "pct": total.get(f"{metric}_pct"),
                "lo": total.get(f"{metric}_pct_lo"),
                "hi": total.get(f"{metric}_pct_hi"),
                "delta": None if _missing(delta) else float(delta),
                "beyond": change.get("beyond_noise"),
            }
        )

    chart_list: list[Chart] = []
    sheets = {"category": category_table, PROVIDER_BY: provider_table}
    trend_labels = [s for s in complete if order.index(s) <= order.index(label)]
    if len(trend_labels) > 1:
        trend = report.trend(directory, HEADLINE, lang=lang, include_incomplete=include_incomplete)
        trend = trend[trend["snapshot"].isin(trend_labels)].reset_index(drop=True)
        sheets["trend"] = trend
        for metric in HEADLINE:
            caption = t["trend_caption"].format(metric=report.metric_label(metric, lang))
            chart = Chart(f"trend_{metric}", CHART_FILES[f"trend_{metric}"], caption)
            chart_list.append(_render_chart(chart, charts.trend_figure(trend, metric, lang)))
    chart_list.append(
        _render_chart(
            Chart("policy", CHART_FILES["policy"], t["policy_caption"]),
            charts.policy_figure(category_table, label, lang),
        )
    )
    chart_list.append(
        _render_chart(
            Chart(
                "providers",
                CHART_FILES["providers"],
                t["providers_caption"].format(metric=report.metric_label("dmarc_valid", lang)),
            ),
            charts.providers_figure(provider_table, label, "dmarc_valid", lang),
        )
    )
    prefectures = _prefectures(directory, label, lang)
    map_section = None
    if prefectures is not None:
        from .maps import map_figure

        map_table, map_section = prefectures
        sheets[MAP_BY] = map_table
        caption = t["map_caption"].format(metric=map_section["metric"])
        fig = map_figure(map_table, label, MAP_METRIC, lang, "domains", MAP_BY, pooled=False)
        chart_list.append(_render_chart(Chart("map", MAP_FILE, caption), fig))
    by_key = {c.key: c for c in chart_list}
    transport = _transport(total, facts, lang)
    transport_rows = _table(rows, "category", transport["measured"])

    context = {
        "lang": lang,
        "t": t,
        "label": label,
        "facts": facts,
        "methods": _methods(facts, manifest, lang),
        "exist": total.get("domains"),
        "headline": headline,
        "previous": previous,
        "categories": _table(rows, "category", CATEGORY_METRICS),
        "category_metrics": _labels(CATEGORY_METRICS, lang),
        "providers": _table(provider_rows, PROVIDER_BY, PROVIDER_METRICS),
        "provider_metrics": _labels(PROVIDER_METRICS, lang),
        "policy": _table(rows, "category", ("dmarc_valid", *POLICY_METRICS)),
        "policy_metrics": _labels(("dmarc_valid", *POLICY_METRICS), lang),
        "transport": transport,
        "transport_rows": transport_rows,
        "transport_metrics": _labels(transport["measured"], lang),
        "trend_charts": [by_key[f"trend_{m}"] for m in HEADLINE if f"trend_{m}" in by_key],
        "trend_labels": trend_labels,
        "left_out": [s for s in incomplete if order.index(s) < order.index(label)],
        "policy_chart": by_key["policy"],
        "providers_chart": by_key["providers"],
        "map": map_section,
        "map_chart": by_key.get("map"),
        "map_metric": MAP_METRIC,
        "charts": chart_list,
        "definitions": [
            (report.metric_label(m, lang), DEFINITIONS[lang][m])
            for m in ("domains", *HEADLINE, *POLICY_METRICS, *TRANSPORT_METRICS)
        ],
        "noise": NOISE_RULE[lang],
        "version": __version__,
        "small_group": SMALL_GROUP,
        "sep": "、" if lang == "ja" else ", ",
    }
    html = _environment(fmt).get_template("index.html.j2").render(**context)
    return Page(html=html, sheets=sheets, facts={label: facts}, charts=chart_list)


def _labels(metrics: Sequence[str], lang: str) -> list[tuple[str, str]]:
    return [(m, report.metric_label(m, lang)) for m in metrics]


def _environment(fmt: Formats) -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mailauth_survey", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,  # a misspelt name fails the build, not the page
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        count=fmt.count, pct=fmt.pct, ci=fmt.ci, interval=fmt.interval, points=fmt.points,
        when=fmt.when,
    )  # fmt: skip
    return env


# --- writing -----------------------------------------------------------------------------------


def _check_out(out: str | Path) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ReportError(f"{out}: exists and is not a folder")
    parent = out if out.exists() else out.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ReportError(f"{parent}: not a folder")
    return out


def publish(
    directory: str | Path,
    out: str | Path,
    snapshot: str | None = None,
    lang: str = "en",
    include_incomplete: bool = False,
) -> dict[str, Path]:
    """Write the page of one snapshot (default: the newest complete one) into ``out``.

    Returns the files written by role (``index``, ``xlsx``, and ``<chart>.png``/``.svg``). Every
    input is checked and everything rendered before the folder is created or a file replaced.
    """
    out = _check_out(out)
    page = build(directory, snapshot, lang, include_incomplete)
    files: dict[str, tuple[str, bytes | None]] = {
        "index": ("index.html", page.html.encode("utf-8")),
        "xlsx": ("report.xlsx", None),  # written by the engine's workbook writer
    }
    for chart in page.charts:
        files[f"{chart.key}.png"] = (f"{chart.stem}.png", chart.png)
        files[f"{chart.key}.svg"] = (f"{chart.stem}.svg", chart.svg)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out, prefix=".publish-") as staging:
            for name, data in files.values():
                if data is not None:
                    (Path(staging) / name).write_bytes(data)
            report.write_workbook(page.sheets, Path(staging) / "report.xlsx", page.facts, lang)
            for name, _ in files.values():  # each file appears whole, never half written
                os.replace(Path(staging) / name, out / name)
    except OSError as exc:
        raise ReportError(f"{exc.filename or out}: cannot write ({exc.strerror or exc})") from None
    return {role: out / name for role, (name, _) in files.items()}
