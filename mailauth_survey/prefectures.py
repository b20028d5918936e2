"""Japan's 47 prefectures: JIS X 0401 codes and names, for panels grouped by prefecture.

Reports order prefecture groups by code (北海道 first, 沖縄県 last) and the map finds each
prefecture's outline, whichever way a list spells it: 東京都, 東京, Tokyo or JP-13.
"""

from __future__ import annotations

from functools import lru_cache

_JA = [
    "北海道",
    "青森県",
    "岩手県",
    "宮城県",
    "秋田県",
    "山形県",
    "福島県",
    "茨城県",
    "栃木県",
    "群馬県",
    "埼玉県",
    "千葉県",
    "東京都",
    "神奈川県",
    "新潟県",
    "富山県",
    "石川県",
    "福井県",
    "山梨県",
    "長野県",
    "岐阜県",
    "静岡県",
    "愛知県",
    "三重県",
    "滋賀県",
    "京都府",
    "大阪府",
    "兵庫県",
    "奈良県",
    "和歌山県",
    "鳥取県",
    "島根県",
    "岡山県",
    "広島県",
    "山口県",
    "徳島県",
    "香川県",
    "愛媛県",
    "高知県",
    "福岡県",
    "佐賀県",
    "長崎県",
    "熊本県",
    "大分県",
    "宮崎県",
    "鹿児島県",
    "沖縄県",
]
_EN = [
    "Hokkaido",
    "Aomori",
    "Iwate",
    "Miyagi",
    "Akita",
    "Yamagata",
    "Fukushima",
    "Ibaraki",
    "Tochigi",
    "Gunma",
    "Saitama",
    "Chiba",
    "Tokyo",
    "Kanagawa",
    "Niigata",
    "Toyama",
    "Ishikawa",
    "Fukui",
    "Yamanashi",
    "Nagano",
    "Gifu",
    "Shizuoka",
    "Aichi",
    "Mie",
    "Shiga",
    "Kyoto",
    "Osaka",
    "Hyogo",
    "Nara",
    "Wakayama",
    "Tottori",
    "Shimane",
    "Okayama",
    "Hiroshima",
    "Yamaguchi",
    "Tokushima",
    "Kagawa",
    "Ehime",
    "Kochi",
    "Fukuoka",
    "Saga",
    "Nagasaki",
    "Kumamoto",
    "Oita",
    "Miyazaki",
    "Kagoshima",
    "Okinawa",
]
#: (JIS X 0401 code, Japanese name, English name) of the 47 prefectures, in code order.
PREFECTURES: tuple[tuple[int, str, str], ...] = tuple(
    (code, ja, en) for code, (ja, en) in enumerate(zip(_JA, _EN, strict=True), 1)
)


def _normal(text: str) -> str:
    return "".join(str(text).split()).lower()


@lru_cache(maxsize=1)
def _lookup() -> dict[str, int]:
    """Every accepted spelling of a prefecture → its code."""
    names: dict[str, int] = {}
    for code, ja, en in PREFECTURES:
        short = ja if ja == "北海道" else ja[:-1]
        for key in (ja, short, en, f"jp-{code:02d}"):
            names[_normal(key)] = code
    return names


def prefecture_code(value: object) -> int | None:
    """The JIS code (1-47) of a prefecture named in Japanese (東京都, 東京), English (Tokyo) or
    by its ISO 3166-2 code (JP-13); None for anything else (bare numbers are not taken: a
    column of ranks is not a column of prefectures)."""
    if value is None or value != value:
        return None
    return _lookup().get(_normal(value))


def prefecture_name(code: int, lang: str = "en") -> str:
    _, ja, en = PREFECTURES[code - 1]
    return ja if lang == "ja" else en
