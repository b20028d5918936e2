"""A synthetic .jp domain population with known truth, for the offline demo, tests and benchmarks.

Why synthetic: a scan of real names cannot be checked (nobody knows the right answer), and it
cannot run offline. Here every domain is drawn from published .jp proportions (JPRS: 汎用JP 68%,
属性型・地域型 31%, 都道府県型 1%; IAjapan/JPRS DMARC 8.6% in Oct 2023 → 31.8% in Jun 2024, more
than 70% of it ``p=none``, go.jp highest, lg.jp rising fastest, ed.jp lagging), and its zone is
written so that the expected column values of SPEC.md are known in advance: ``truth``.

The zones use the shapes met in the field: shared mail providers (Google, Microsoft, Sakura,
XServer, KAGOYA) whose provider zones are part of the population, SPF include chains, the classic
SPF permanent errors, DMARC through a CNAME to a hosted record, external report addresses with
and without ``_report._dmarc`` authorization (one by a wildcard), DKIM keys behind CNAMEs into
provider zones, null MX, wildcard zones (a ``_domainkey`` false positive), TXT sets too large for
512-byte or even 1232-byte UDP answers, IDN names, and names that no longer exist.

The population is kept as compact per-domain profiles; ``zones`` and ``truth`` are read-only
mappings that render a zone's text or a domain's truth when asked, so that 100,000 domains need
tens of megabytes, not gigabytes. Everything is a pure function of ``(n, seed, quarter)``.

Addresses are from the documentation ranges (RFC 5737, RFC 3849): nothing here points at a real
host.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path

import idna

from ..domains import public_suffix, registrable_domain, to_unicode
from ..prefectures import PREFECTURES

__all__ = [
    "DEMO_SEED",
    "DEMO_SIZE",
    "QUARTERS",
    "Population",
    "demo_population",
    "generate",
]

#: The quarters a population can be drawn for, oldest first.
QUARTERS = ("2023Q4", "2024Q2")
DEMO_SIZE = 2000
DEMO_SEED = 20240601
_SERIALS = {"2023Q4": 2023100101, "2024Q2": 2024060101}

# -- proportions ---------------------------------------------------------------------------------

#: Share of .jp names by category (JPRS 2022: 汎用JP 68%, 属性型+地域型 31%, 都道府県型 1%). The
#: small attribute types are over-represented against their real counts (go.jp has a few hundred
#: names) so that each holds enough domains for a per-category figure in a 2,000-name sample.
JP_SHARES = {
    "general": 68.0,
    "co": 24.0, "or": 1.3, "ne": 0.9, "ac": 0.9, "ad": 0.3, "ed": 0.9, "go": 0.6, "gr": 0.6,
    "lg": 0.7, "geographic": 0.8,
    "prefecture": 1.0,
}  # fmt: skip
#: Share of the whole list that is not under .jp ("other").
OTHER_SHARE = 0.01

#: Valid DMARC among existing domains, (2023Q4, 2024Q2), by category. Weighted by JP_SHARES this
#: gives about 8.9% and 32% overall.
DMARC_RATES = {
    "go": (0.55, 0.85), "lg": (0.08, 0.55), "ac": (0.15, 0.45), "ad": (0.20, 0.50),
    "co": (0.10, 0.38), "or": (0.07, 0.30), "ne": (0.08, 0.30), "gr": (0.04, 0.15),
    "ed": (0.02, 0.08), "general": (0.08, 0.30), "prefecture": (0.04, 0.20),
    "geographic": (0.04, 0.20), "other": (0.25, 0.45),
}  # fmt: skip


@dataclass(frozen=True)
class _Style:
    """How domains of one category tend to be set up."""

    nx: float = 0.03  # listed but no longer registered
    mx_none: float = 0.17
    mx_null: float = 0.03
    mx: tuple[tuple[str, float], ...] = (
        ("google", 20), ("microsoft", 15), ("sakura", 14), ("xserver", 14), ("kagoya", 5),
        ("self", 20), ("self-apex", 12),
    )  # fmt: skip
    spf_with_mx: float = 0.85
    spf_without_mx: float = 0.25
    none_share: float = 0.80  # p=none among DMARC adopters
    mta_sts: float = 0.02
    wildcard: float = 0.02


_DEFAULT = _Style()
_STYLES: dict[str, _Style] = {
    "go": _Style(nx=0.01, mx_none=0.04, mx=(("microsoft", 35), ("self", 55), ("google", 5), ("kagoya", 5)),
                 spf_with_mx=0.97, spf_without_mx=0.6, none_share=0.55, mta_sts=0.10, wildcard=0.0),
    "lg": _Style(nx=0.01, mx_none=0.05, mx=(("self", 60), ("microsoft", 25), ("kagoya", 10), ("google", 5)),
                 spf_with_mx=0.93, spf_without_mx=0.5, mta_sts=0.03, wildcard=0.0),
    "ac": _Style(nx=0.01, mx_none=0.06, mx=(("microsoft", 40), ("google", 35), ("self", 25)),
                 spf_with_mx=0.92, mta_sts=0.04),
    "ad": _Style(nx=0.02, mx_none=0.10, mx=(("self", 70), ("google", 15), ("microsoft", 15)),
                 spf_with_mx=0.90, mta_sts=0.06),
    "ed": _Style(mx_none=0.12, mx=(("google", 60), ("microsoft", 20), ("sakura", 10), ("self", 10)),
                 spf_with_mx=0.70, spf_without_mx=0.1, mta_sts=0.005),
    "gr": _Style(nx=0.05, mx_none=0.25, spf_with_mx=0.75, spf_without_mx=0.15),
    "general": _Style(nx=0.04, mx_none=0.20, mx_null=0.04),
}  # fmt: skip

# -- names ---------------------------------------------------------------------------------------


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_STEMS = _words(
    """yamada tanaka suzuki sato takahashi watanabe ito nakamura kobayashi kato yoshida
yamamoto sasaki matsumoto inoue kimura hayashi shimizu yamaguchi mori abe ikeda hashimoto ishikawa
ogawa okada goto hasegawa murakami kondo sakamoto endo aoki fujii nishimura fukuda ota miura
sakura fuji midori aoba hikari nihon tokai kansai kyushu hokuto asahi taiyo daiichi sanko marui
yamato mirai kibou sora umi hoshi tsubasa hinode seiwa kyoei toyo showa heisei reiwa chuo minami
kita higashi nishi shin daiwa sanwa nikko kaiun fukuju kotobuki matsuba kaede tsubaki ume momiji
hanabi komorebi nagomi irodori"""
)
_BUSINESS = _words(
    """kensetsu shoji sangyo kogyo denki fudosan seiko foods tech soft design net
clinic dental hoken unyu butsuryu insatsu seika shuzo ryokan onsen noen gakuen juku shika
kikaku koumuten setsubi denshi kagaku yakuhin consulting systems works lab studio office
partners holdings trading service"""
)
_PLACES = _words(
    """hokkaido aomori iwate miyagi akita yamagata fukushima ibaraki tochigi gunma saitama chiba
    tokyo kanagawa niigata toyama ishikawa fukui yamanashi nagano gifu shizuoka aichi mie shiga
    kyoto osaka hyogo nara wakayama tottori shimane okayama hiroshima yamaguchi tokushima kagawa
    ehime kochi fukuoka saga nagasaki kumamoto oita miyazaki kagoshima okinawa sapporo sendai
    yokohama kawasaki nagoya kobe kitakyushu hakodate asahikawa morioka koriyama iwaki utsunomiya
    maebashi takasaki kawagoe funabashi kashiwa hachioji machida sagamihara fujisawa odawara
    kanazawa matsumoto numazu hamamatsu toyohashi okazaki toyota himeji kurashiki fukuyama
    shimonoseki matsuyama takamatsu kochi-shi sasebo kurume naha"""
)
_PREFECTURE_SUFFIXES = _words(
    "tokyo.jp osaka.jp kanagawa.jp aichi.jp kyoto.jp fukuoka.jp hokkaido.jp hyogo.jp saitama.jp "
    "chiba.jp shizuoka.jp hiroshima.jp miyagi.jp niigata.jp okinawa.jp"
)
_PREFECTURE_IDN = ("xn--1lqs71d.jp", "xn--pssu33l.jp")  # 東京.jp, 大阪.jp
_GEOGRAPHIC_SUFFIXES = _words(
    "shinjuku.tokyo.jp minato.tokyo.jp shibuya.tokyo.jp chuo.osaka.jp kita.osaka.jp "
    "naka.hiroshima.jp naha.okinawa.jp kanazawa.ishikawa.jp matsumoto.nagano.jp "
    "hakone.kanagawa.jp atami.shizuoka.jp nara.nara.jp"
)
_IDN_WORDS = _words(
    """日本 東京 大阪 京都 桜 富士 山田 田中 鈴木 佐藤 建設 商事 工業 不動産 歯科 病院
整骨院 旅館 酒造 農園 みかん さくら ひまわり やまと 銀河 未来 希望 太陽 青空 緑 花 光 和菓子 寿司
温泉 写真館 税理士 法律事務所 学習塾 花屋 珈琲 パン工房 英会話 保育園"""
)
_CATEGORY_PATTERNS = {
    "or": ("kyokai", "zaidan", "kikou", "hp", "foundation", "kumiai", "center"),
    "ne": ("net", "catv", "isp", "hikari", "web"),
    "ac": ("u", "cu", "pu", "college", "ac"),
    "ad": ("lab", "ix", "noc", "nic"),
    "ed": ("es", "jhs", "hs", "kindergarten", "school"),
    "go": ("kyoku", "cho", "sho", "office", "center"),
    "gr": ("club", "circle", "kai", "team", "project"),
}
_STEMS_AND_PLACES = _STEMS + _PLACES
_LG_KINDS = ("city", "city", "town", "town", "vill", "pref")

# -- providers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _MailProvider:
    include: str | None  # its SPF include
    lookups: int  # DNS lookups its include costs (RFC 7208 4.6.4)
    dkim: tuple[str, ...]  # selectors it publishes for customers
    pool: int  # number of shared MX hosts


_MAIL = {
    "google": _MailProvider("_spf.google.com", 4, ("google",), 0),
    "microsoft": _MailProvider("spf.protection.outlook.com", 1, ("selector1", "selector2"), 0),
    "sakura": _MailProvider("_spf.sakura.ne.jp", 1, ("default",), 400),
    "xserver": _MailProvider("spf.sender.xserver.jp", 1, ("default",), 500),
    "kagoya": _MailProvider("_spf.kagoya.net", 1, ("default",), 200),
    "self": _MailProvider(None, 0, ("default",), 0),
    "self-apex": _MailProvider(None, 0, ("default",), 0),
}
#: Third-party senders a domain may also include: key → (SPF include, DKIM selector).
_SENDERS = {
    "amazonses": ("amazonses.com", None),
    "sendgrid": ("sendgrid.net", "s1"),
    "mailchimp": ("servers.mcsv.net", "k1"),
}
_DNS_HOSTS = {
    "sakura": ("ns1.dns.ne.jp", "ns2.dns.ne.jp"),
    "xserver": ("ns1.xserver.jp", "ns2.xserver.jp", "ns3.xserver.jp"),
    "onamae": ("dns1.onamae.com", "dns2.onamae.com"),
    "value-domain": ("ns1.value-domain.com", "ns2.value-domain.com", "ns3.value-domain.com"),
    "google": tuple(f"ns-cloud-a{i}.googledomains.com" for i in range(1, 5)),
}
_DNS_WEIGHTS = (
    ("sakura", 18), ("xserver", 12), ("onamae", 20), ("value-domain", 8), ("cloudflare", 10),
    ("google", 5), ("inhouse", 27),
)  # fmt: skip
_CLOUDFLARE_NAMES = _words(
    """ada bob carl dina elle fred gina hank iris jack kate leo mia ned olga pete
quin rita sam tina"""
)
#: Report receivers: dmarc-rua.net authorizes every domain by a wildcard; gmail.com is not served,
#: so its authorization lookups are NXDOMAIN.
_RUA_VENDOR = "dmarc-rua.net"
_RUA_UNAUTHORIZED = "gmail.com"

#: Fixed RSA public keys (SubjectPublicKeyInfo, base64), made once with openssl for the demo.
DKIM_KEY_1024 = (
    "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDhwSLZtFiE0x3ZmfJULhnc53px8JABfEysVEcCY77q37405oUrfgros"
    "7NtPafeoup6Uct2j5ENLm7wywg3LfTACldd9XjjrM+aA0lhomSYc8RfBAriG7Bq+1xuaCMZwbharXTw7TnEL4FLn0Ntsa"
    "NFiJSA+XFkIt1s4RyjdF04iQIDAQAB"
)
DKIM_KEY_2048 = (
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAsWCfmDXhK+YJ63ppxvD68CANE6LAYy/VDD1pa8cuXXnI5GbpWN"
    "a3Uz+Ff5dUNxqDGtFdY6OfrH6Z/j+XBFEVwvdSN0F6NGbT4GeaxH+1kTW/B5tZApQE683/ysT4e2m1LLm9qpcZzQvzcE1E"
    "/08703Uuy70XHZcDyvbhEsibrl5RIWQsEH6PVdAWO/CROc5WSoW5whLfRUDgZSzjznOLP6rUKlxuEMyvVIJq7y5fC7EC+Z1"
    "mlUD60WWY11U9RvOKEimkGwA77rNFGe5JHVy15cjzLwiUFBJZVcyXkIN7EffYTfBKPJKLm9ZiOOmjnZq+1FECWia1vrx6tH"
    "+nqOkebwIDAQAB"
)
_TLD_ZONES = ("jp", "com", "net")

# -- the per-domain profile ----------------------------------------------------------------------


@dataclass(slots=True)
class _Profile:
    """Everything that decides one domain's zone and truth (quarter resolved)."""

    domain: str
    category: str
    exists: bool = True
    dns: str = "inhouse"
    ns_names: tuple[str, ...] = ()
    mx: str = "none"  # none | null | a key of _MAIL
    mx_no: int = 0
    backup_mx: bool = False
    apex_a: bool = True
    aaaa: bool = False
    www: bool = False
    wildcard: bool = False
    spf: str = "none"  # none | valid | trap | lookups | nospf | nx | two | void
    spf_form: str = "include"  # include | mx | a-mx | ip | redirect-own | redirect-google | parked
    spf_all: str = "~all"
    senders: tuple[str, ...] = ()
    spf_ip: bool = False
    txt_noise: int = 0  # 0, 1 (a few), 2 (over 512 bytes), 3 (over 1232 bytes)
    dmarc_invalid: bool = False
    dmarc_policy: str | None = None  # this quarter's p, None without a valid record
    dmarc_rua: str = "none"  # none | own | vendor | own+vendor | gmail | own+gmail | xserver
    xserver_authorized: bool = True
    dmarc_hosted: bool = False  # _dmarc is a CNAME to a hosted record at the vendor
    dmarc_no_p: bool = False  # p omitted, valid rua: p=none applies
    dmarc_extra: int = (
        0  # bit 1: sp, 2: adkim/aspf=s, 4: ruf, 8: unrelated TXT at _dmarc, 16: tight
    )
    dkim: tuple[str, ...] = ()
    dkim_2048: bool = False
    mta_sts: str = "none"
    tlsrpt: str = "none"
    bimi: bool = False
    # Draws kept for the quarter-dependent DMARC decisions.
    u_dmarc: float = 0.0
    u_pol: float = 0.0
    u_move: float = 0.0
    u_bimi: float = 0.0


def _pick(rng: random.Random, weights: tuple[tuple[str, float], ...]) -> str:
    total = sum(w for _, w in weights)
    x = rng.random() * total
    for key, w in weights:
        x -= w
        if x < 0:
            return key
    return weights[-1][0]


def _slug(domain: str) -> str:
    """A label made of a domain name, as Microsoft 365 does for MX hosts and DKIM targets."""
    slug = domain.replace(".", "-")
    if len(slug) > 40:
        slug = slug[:33] + "-" + hashlib.blake2b(domain.encode(), digest_size=3).hexdigest()
    return slug


def _h(domain: str, salt: str = "") -> int:
    return int.from_bytes(hashlib.blake2b((salt + domain).encode(), digest_size=4).digest(), "big")


def _ipv4(domain: str, salt: str = "") -> str:
    h = _h(domain, salt)
    net = ("192.0.2", "198.51.100", "203.0.113")[h % 3]
    return f"{net}.{(h >> 8) % 254 + 1}"


# -- the names -----------------------------------------------------------------------------------


def _counts(n: int) -> dict[str, int]:
    """Domains per category by largest remainder; every category gets some when n allows."""
    n_other = round(n * OTHER_SHARE)
    n_jp = n - n_other
    total = sum(JP_SHARES.values())
    exact = {c: n_jp * s / total for c, s in JP_SHARES.items()}
    counts = {c: int(v) for c, v in exact.items()}
    for c in sorted(exact, key=lambda c: exact[c] - counts[c], reverse=True)[
        : n_jp - sum(counts.values())
    ]:
        counts[c] += 1
    counts["other"] = n_other
    if n >= 4 * len(counts):
        for c in counts:
            while counts[c] < 2:
                counts[c] += 1
                counts["general"] -= 1
    return counts


class _Names:
    """Unique, plausible names for each category."""

    def __init__(self, rng: random.Random, reserved: set[str]) -> None:
        self.rng = rng
        self.used = set(reserved)

    def _unique(self, make: Callable[[], str], suffix: str) -> str:
        for attempt in range(50):
            label = make()
            if attempt >= 3:
                label = f"{label}{self.rng.randrange(2, 100 * attempt)}"
            name = f"{label}.{suffix}"
            if name not in self.used and public_suffix(name) == suffix:
                self.used.add(name)
                return name
        raise RuntimeError(f"cannot find a free name under {suffix}")

    def claim(self, name: str) -> bool:
        """Take ``name`` if it is free."""
        if name in self.used:
            return False
        self.used.add(name)
        return True

    def _company(self) -> str:
        r = self.rng
        stem, biz = r.choice(_STEMS), r.choice(_BUSINESS)
        form = r.random()
        if form < 0.35:
            return f"{stem}-{biz}"
        if form < 0.6:
            return f"{stem}{biz}"
        if form < 0.75:
            return f"{stem}{r.choice(_STEMS)}"
        if form < 0.9:
            return f"{r.choice(_PLACES)}-{biz}"
        return f"{stem}-{biz}-{r.choice(_PLACES)}"

    def _idn(self, suffix: str) -> str | None:
        """An unused IDN name under ``suffix`` (A-label), or None after a few tries."""
        r = self.rng
        for _ in range(4):
            words = r.sample(_IDN_WORDS, r.choice((2, 2, 3)))
            try:
                label = idna.encode("".join(words), uts46=True).decode("ascii")
            except idna.IDNAError:
                continue
            name = f"{label}.{suffix}"
            if name not in self.used:
                self.used.add(name)
                return name
        return None

    def make(self, category: str) -> str:
        r = self.rng
        if category == "general":
            idn = self._idn("jp") if r.random() < 0.03 else None
            return idn or self._unique(self._company, "jp")
        if category == "co":
            return self._unique(self._company, "co.jp")
        if category in _CATEGORY_PATTERNS:
            words = _CATEGORY_PATTERNS[category]
            return self._unique(
                lambda: f"{r.choice(_STEMS_AND_PLACES)}-{r.choice(words)}", f"{category}.jp"
            )
        if category == "lg":
            kind = r.choice(_LG_KINDS)
            for _ in range(100):
                place = r.choice(_PLACES) + ("" if r.random() < 0.5 else f"{r.choice(_STEMS)}")
                name = f"{kind}.{place}.lg.jp"
                if name not in self.used:
                    self.used.add(name)
                    return name
                kind = r.choice(_LG_KINDS)
            raise RuntimeError("cannot find a free lg.jp name")
        if category == "prefecture":
            idn = self._idn(r.choice(_PREFECTURE_IDN)) if r.random() < 0.08 else None
            return idn or self._unique(self._company, r.choice(_PREFECTURE_SUFFIXES))
        if category == "geographic":
            return self._unique(self._company, r.choice(_GEOGRAPHIC_SUFFIXES))
        if category == "other":
            return self._unique(self._company, r.choice(("com", "com", "net")))
        raise ValueError(category)


# -- drawing profiles ----------------------------------------------------------------------------


def _draw(domain: str, category: str, seed: int) -> _Profile:
    """The quarter-independent part of one domain's profile."""
    r = random.Random(f"{seed}|{domain}")
    style = _STYLES.get(category, _DEFAULT)
    p = _Profile(domain, category)
    p.u_dmarc, p.u_pol, p.u_move, p.u_bimi = r.random(), r.random(), r.random(), r.random()
    if r.random() < style.nx:
        p.exists = False
        return p
    # Mail
    x = r.random()
    if x < style.mx_null:
        p.mx = "null"
    elif x < style.mx_null + style.mx_none:
        p.mx = "none"
    else:
        p.mx = _pick(r, style.mx)
        pool = _MAIL[p.mx].pool
        p.mx_no = r.randrange(1, pool + 1) if pool else 0
        p.backup_mx = p.mx == "self" and r.random() < 0.3
    mail = p.mx not in ("none", "null")
    # Name servers: hosting customers mostly keep the host's name servers.
    if p.mx in ("sakura", "xserver") and r.random() < 0.8:
        p.dns = p.mx
    else:
        p.dns = _pick(r, _DNS_WEIGHTS)
    if p.dns == "cloudflare":
        a, b = r.sample(_CLOUDFLARE_NAMES, 2)
        p.ns_names = tuple(sorted((f"{a}.ns.cloudflare.com", f"{b}.ns.cloudflare.com")))
    elif p.dns == "inhouse":
        p.ns_names = (f"ns1.{domain}", f"ns2.{domain}")
    else:
        p.ns_names = _DNS_HOSTS[p.dns]
    p.apex_a = p.mx == "self-apex" or r.random() < 0.85
    p.aaaa = p.apex_a and r.random() < 0.15
    p.www = p.apex_a and r.random() < 0.7
    p.wildcard = p.apex_a and r.random() < style.wildcard
    x = r.random()
    p.txt_noise = 3 if x < 0.003 else 2 if x < 0.01 else 1 if x < 0.35 else 0
    # SPF
    if r.random() < (
        style.spf_with_mx if mail else style.spf_without_mx if p.mx == "none" else 0.6
    ):
        x = r.random()
        if not mail:
            p.spf, p.spf_form, p.spf_all = "valid", "parked", "-all"
        elif x < 0.005:
            p.spf = "trap"
        elif x < 0.03:
            kinds = ["lookups", "nospf", "nx", "two"] + ([] if p.wildcard else ["void"])
            p.spf = r.choice(kinds)
            p.spf_all = "~all"
        else:
            p.spf = "valid"
            provider = _MAIL[p.mx]
            y = r.random()
            if y < 0.02:
                p.spf_form = "redirect-own"
            elif y < 0.03 and p.mx == "google":
                p.spf_form = "redirect-google"
            elif provider.include:
                p.spf_form = "include"
            else:
                p.spf_form = "a-mx" if p.mx == "self-apex" else r.choice(("mx", "mx", "ip"))
            p.spf_all = _pick(
                r,
                (("~all", 55), ("-all", 32), ("?all", 6), ("+all", 1.5), ("none", 5.5))
                if p.mx != "microsoft"
                else (("-all", 60), ("~all", 35), ("?all", 2), ("none", 3)),
            )
            if p.spf_form == "redirect-google":
                p.spf_all = "~all"  # Google's own record decides
            p.spf_ip = r.random() < 0.2
            p.senders = tuple(s for s in _SENDERS if r.random() < 0.06)
    # DKIM: the provider's selectors for some customers, third-party senders' always.
    keys: set[str] = set()
    if mail and r.random() < (0.55 if p.mx in ("google", "microsoft") else 0.2):
        keys.update(_MAIL[p.mx].dkim)
    for sender in p.senders:
        if _SENDERS[sender][1] and r.random() < 0.8:
            keys.add(_SENDERS[sender][1])  # type: ignore[arg-type]
    p.dkim = tuple(sorted(keys))
    p.dkim_2048 = r.random() < 0.5
    # DMARC, quarter-independent parts
    p.dmarc_invalid = r.random() < 0.005
    p.dmarc_rua = _pick(
        r,
        (
            ("none", 30),
            ("own", 40),
            ("vendor", 12),
            ("own+vendor", 8),
            ("gmail", 6),
            ("own+gmail", 4),
        ),
    )
    p.xserver_authorized = r.random() < 0.9
    p.dmarc_hosted = r.random() < 0.04
    p.dmarc_no_p = p.dmarc_rua != "none" and r.random() < 0.01
    p.dmarc_extra = r.getrandbits(5) & r.getrandbits(5) & r.getrandbits(5)  # each bit 1/8
    # MTA-STS, TLS-RPT
    if mail and r.random() < style.mta_sts:
        p.mta_sts = "valid" if r.random() < 0.85 else "invalid"
        if r.random() < 0.8:
            p.tlsrpt = "valid" if r.random() < 0.9 else "invalid"
    elif mail and r.random() < 0.01:
        p.tlsrpt = "valid" if r.random() < 0.9 else "invalid"
    return p


def _resolve_quarter(profiles: list[_Profile], quarter: str) -> None:
    """DMARC adoption by per-category quotas (exact shares), policies, BIMI for ``quarter``.

    Adopters are the domains with the lowest ``u_dmarc`` in their category, so every 2023Q4
    adopter still adopts in 2024Q2; a fifth of the 2023Q4 ``p=none`` domains move to quarantine
    or reject, and the new adopters mostly start at ``p=none``.
    """
    late = quarter == "2024Q2"
    by_category: dict[str, list[_Profile]] = {}
    for p in profiles:
        if p.exists:
            by_category.setdefault(p.category, []).append(p)
    for category, members in by_category.items():
        early_rate, late_rate = DMARC_RATES[category]
        style = _STYLES.get(category, _DEFAULT)
        pool = sorted((p for p in members if not p.dmarc_invalid), key=lambda p: p.u_dmarc)
        n_early = round(early_rate * len(members))
        n_late = round(late_rate * len(members))
        for rank, p in enumerate(pool):
            if rank >= (n_late if late else n_early):
                p.dmarc_policy = None
                continue
            ns = style.none_share
            if rank < n_early:
                policy = (
                    "none" if p.u_pol < ns else "quarantine" if p.u_pol < (1 + ns) / 2 else "reject"
                )
                if late and policy == "none" and p.u_move < 0.2:
                    policy = "quarantine" if p.u_move < 0.12 else "reject"
            else:
                ns = min(0.9, ns + 0.04)
                policy = (
                    "none" if p.u_pol < ns else "quarantine" if p.u_pol < (1 + ns) / 2 else "reject"
                )
            if p.dmarc_no_p:
                policy = "none"
            p.dmarc_policy = policy
            # xserver's 2024 default record: its customers' new records report to xserver.
            if p.mx == "xserver" and rank >= n_early and not p.dmarc_hosted:
                p.dmarc_rua = "xserver"
        for p in members:
            p.bimi = (
                p.dmarc_policy in ("quarantine", "reject")
                and not p.dmarc_extra & 16
                and p.u_bimi < 0.2
            )


# -- zone text -----------------------------------------------------------------------------------


def _txt(text: str) -> str:
    """A TXT record's data: quoted strings of at most 255 bytes (ASCII text here)."""
    chunks = [text[i : i + 255] for i in range(0, len(text), 255)] or [""]
    return " ".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks)


def _soa(origin: str, primary: str, serial: int) -> list[str]:
    return [
        f"$ORIGIN {origin}.",
        "$TTL 3600",
        f"@ IN SOA {primary}. hostmaster.{origin}. {serial} 3600 900 604800 300",
    ]


def _dkim_record(bits2048: bool) -> str:
    return f"v=DKIM1; k=rsa; p={DKIM_KEY_2048 if bits2048 else DKIM_KEY_1024}"


def _mx_hosts(p: _Profile) -> list[tuple[int, str]]:
    d = p.domain
    if p.mx == "google":
        if _h(d, "g") % 5 == 0:  # the 2023 single-host style
            return [(1, "smtp.google.com")]
        return [
            (1, "aspmx.l.google.com"), (5, "alt1.aspmx.l.google.com"),
            (5, "alt2.aspmx.l.google.com"), (10, "alt3.aspmx.l.google.com"),
            (10, "alt4.aspmx.l.google.com"),
        ]  # fmt: skip
    if p.mx == "microsoft":
        return [(0, f"{_slug(d)}.mail.protection.outlook.com")]
    if p.mx == "sakura":
        return [(10, f"www{p.mx_no}.sakura.ne.jp")]
    if p.mx == "xserver":
        return [(0, f"sv{p.mx_no}.xserver.jp")]
    if p.mx == "kagoya":
        return [(10, f"mail{p.mx_no}.kagoya.net")]
    if p.mx == "self":
        hosts = [(10, f"mail.{d}")]
        if p.backup_mx:
            hosts.append((20, f"mx2.{d}"))
        return hosts
    if p.mx == "self-apex":
        return [(10, d)]
    return []


def _spf_terms(p: _Profile) -> list[str]:
    """The mechanisms of a valid record (without all), within 10 lookups and no void lookup."""
    terms: list[str] = []
    provider = _MAIL.get(p.mx)
    if p.spf_form == "include" and provider and provider.include:
        terms.append(f"include:{provider.include}")
    elif p.spf_form == "mx":
        terms.append("mx")
    elif p.spf_form == "a-mx":
        terms += ["a", "mx"]
    elif p.spf_form == "ip":
        terms.append(f"ip4:{_ipv4(p.domain, 'mail')}")
    if p.spf_ip and p.spf_form != "ip":
        net = _ipv4(p.domain, "out").rsplit(".", 1)[0]
        terms.append(f"ip4:{net}.{_h(p.domain, 'out') % 32 * 8}/29")
    terms += [f"include:{_SENDERS[s][0]}" for s in p.senders]
    return terms


def _spf_records(p: _Profile) -> tuple[list[str], dict[str, list[str]]]:
    """TXT texts at the apex, and at other owners (relative), for this profile's SPF."""
    d = p.domain
    all_term = "" if p.spf_all == "none" else " " + p.spf_all
    extra: dict[str, list[str]] = {}
    if p.spf == "none":
        return [], extra
    if p.spf == "trap":  # not SPF: "v=spf10" (RFC 7208 4.5)
        return ["v=spf10 include:_spf.google.com ~all"], extra
    if p.spf == "lookups":  # 13 lookups > 10
        return [
            "v=spf1 a mx include:_spf.google.com include:spf.protection.outlook.com "
            "include:spf.sender.xserver.jp include:_spf.kagoya.net include:_spf.sakura.ne.jp "
            "include:amazonses.com include:sendgrid.net include:servers.mcsv.net ~all"
        ], extra
    if p.spf == "nospf":  # include of a name without SPF
        extra["spf"] = []
        return ["v=spf1 mx include:spf." + d + " ~all"], extra
    if p.spf == "nx":  # include of a name that does not exist
        return [f"v=spf1 mx include:_spf.oldmail.{d} ~all"], extra
    if p.spf == "two":
        return [f"v=spf1 mx{all_term}", "v=spf1 include:_spf.google.com ~all"], extra
    if p.spf == "void":  # three void lookups > 2
        return [f"v=spf1 mx a:old1.{d} a:old2.{d} a:old3.{d} ~all"], extra
    if p.spf_form == "parked":
        return ["v=spf1 -all"], extra
    if p.spf_form == "redirect-google":
        return ["v=spf1 redirect=_spf.google.com"], extra
    body = " ".join(["v=spf1", *_spf_terms(p)]) + all_term
    if p.spf_form == "redirect-own":
        extra["_spf"] = [" ".join(["v=spf1", "mx", *_spf_terms(p)]) + all_term]
        return [f"v=spf1 redirect=_spf.{d}"], extra
    return [body], extra


def _rua(p: _Profile) -> list[str]:
    d = p.domain
    if p.dmarc_hosted:
        return [f"mailto:rua@{_RUA_VENDOR}"]
    vendor = f"mailto:{_slug(d)}@{_RUA_VENDOR}"
    gmail = f"mailto:dmarc.{_h(d) % 100000}@{_RUA_UNAUTHORIZED}"
    return {
        "none": [],
        "own": [f"mailto:dmarc@{d}"],
        "vendor": [vendor],
        "own+vendor": [f"mailto:dmarc@{d}", vendor],
        "gmail": [gmail],
        "own+gmail": [f"mailto:dmarc@{d}", gmail],
        "xserver": ["mailto:dmarc-report@xserver.jp"],
    }[p.dmarc_rua]


def _rua_authorized(p: _Profile) -> bool | None:
    """RFC 7489 7.1: own organizational domain, or the destination's ``_report._dmarc`` record."""
    if not _rua(p):
        return None
    if p.dmarc_hosted:
        return True
    if p.dmarc_rua == "xserver":
        return p.xserver_authorized
    return "gmail" not in p.dmarc_rua


def _dmarc_text(p: _Profile) -> str:
    if p.dmarc_invalid:
        return "v=DMARC1; p=rejected"
    tags = ["v=DMARC1"]
    if not p.dmarc_no_p:
        tags.append(f"p={p.dmarc_policy}")
    if p.dmarc_extra & 1 and p.dmarc_policy != "none":
        tags.append(f"sp={p.dmarc_policy}")
    if p.dmarc_extra & 2:
        tags += ["adkim=s", "aspf=s"]
    rua = _rua(p)
    if rua:
        tags.append("rua=" + ",".join(rua))
    if p.dmarc_extra & 4:
        tags.append(f"ruf=mailto:dmarc@{p.domain}")
    if p.dmarc_extra & 16 and p.dmarc_policy == "quarantine":
        tags.append("pct=50")
    sep = ";" if _h(p.domain, "sep") % 10 == 0 else "; "
    return sep.join(tags)


def _domain_zone(p: _Profile, serial: int) -> str:
    d = p.domain
    lines = _soa(d, p.ns_names[0], serial)
    lines += [f"@ IN NS {ns}." for ns in p.ns_names]
    if p.dns == "inhouse":
        lines += [f"ns1 IN A {_ipv4(d, 'ns1')}", f"ns2 IN A {_ipv4(d, 'ns2')}"]
    if p.apex_a:
        lines.append(f"@ IN A {_ipv4(d)}")
    if p.aaaa:
        lines.append(f"@ IN AAAA 2001:db8:{_h(d) % 0xFFFF:x}::80")
    if p.www:
        lines.append("www IN CNAME @")
    if p.wildcard:
        lines.append(f"* IN A {_ipv4(d)}")
    if p.mx == "null":
        lines.append("@ IN MX 0 .")
    for pref, host in _mx_hosts(p):
        lines.append(f"@ IN MX {pref} {host}.")
    if p.mx == "self":
        lines.append(f"mail IN A {_ipv4(d, 'mail')}")
        if p.backup_mx:
            lines.append(f"mx2 IN A {_ipv4(d, 'mx2')}")
    apex_spf, other_spf = _spf_records(p)
    lines += [f"@ IN TXT {_txt(t)}" for t in apex_spf]
    for owner, texts in other_spf.items():
        if texts:
            lines += [f"{owner} IN TXT {_txt(t)}" for t in texts]
        else:
            lines.append(f"{owner} IN A {_ipv4(d, owner)}")  # exists, but holds no SPF
    if p.txt_noise:
        count = {1: 1 + _h(d, "n") % 2, 2: 8, 3: 20}[p.txt_noise]
        for i in range(count):
            token = hashlib.blake2b(f"{d}{i}".encode(), digest_size=24).hexdigest()
            kind = ("google-site-verification=", "MS=ms", "facebook-domain-verification=")[i % 3]
            lines.append(f"@ IN TXT {_txt(kind + token)}")
    if p.dmarc_invalid or p.dmarc_policy:
        if p.dmarc_hosted and not p.dmarc_invalid:
            lines.append(f"_dmarc IN CNAME {_slug(d)}.hosted.{_RUA_VENDOR}.")
        else:
            lines.append(f"_dmarc IN TXT {_txt(_dmarc_text(p))}")
            if p.dmarc_extra & 8:
                lines.append(f"_dmarc IN TXT {_txt('ms-domain-verification=' + _slug(d))}")
    for selector in p.dkim:
        if selector in ("selector1", "selector2"):
            target = f"{selector}-{_slug(d)}._domainkey.{_slug(d)}.onmicrosoft.com."
            lines.append(f"{selector}._domainkey IN CNAME {target}")
        elif selector == "k1":
            lines.append("k1._domainkey IN CNAME dkim.mcsv.net.")
        elif selector == "s1":
            lines.append(f"s1._domainkey IN CNAME s1.domainkey.u{_h(d) % 99999}.wl.sendgrid.net.")
        else:
            lines.append(f"{selector}._domainkey IN TXT {_txt(_dkim_record(p.dkim_2048))}")
    if p.mta_sts != "none":
        sts = f"v=STSv1; id={serial}T000000;" if p.mta_sts == "valid" else "v=STSv1;"
        lines += [f"_mta-sts IN TXT {_txt(sts)}", f"mta-sts IN A {_ipv4(d, 'sts')}"]
    if p.tlsrpt != "none":
        rpt = f"v=TLSRPTv1; rua=mailto:tlsrpt@{d}" if p.tlsrpt == "valid" else "v=TLSRPTv1;"
        lines.append(f"_smtp._tls IN TXT {_txt(rpt)}")
    if p.bimi:
        lines.append(
            f"default._bimi IN TXT {_txt(f'v=BIMI1; l=https://{d}/bimi/logo.svg; a=https://{d}/bimi/vmc.pem')}"
        )
    return "\n".join(lines) + "\n"


def _static_zone(origin: str, serial: int, ns: tuple[str, ...], records: list[str]) -> str:
    lines = _soa(origin, ns[0], serial)
    lines += [f"@ IN NS {n}." for n in ns]
    return "\n".join(lines + records) + "\n"


def _provider_zones(profiles: list[_Profile], serial: int) -> dict[str, str]:
    """The TLD zones and the shared providers' zones; some hold records for their customers."""
    xserver_auth: list[str] = []
    hosted: list[str] = []
    tenants: list[str] = []
    for p in profiles:
        if not p.exists:
            continue
        if p.dmarc_policy and p.dmarc_rua == "xserver" and p.xserver_authorized:
            xserver_auth.append(f'{p.domain}._report._dmarc IN TXT "v=DMARC1"')
        if p.dmarc_policy and p.dmarc_hosted and not p.dmarc_invalid:
            hosted.append(f"{_slug(p.domain)}.hosted IN TXT {_txt(_dmarc_text(p))}")
        if "selector1" in p.dkim:
            s = _slug(p.domain)
            for sel in ("selector1", "selector2"):
                tenants.append(f"{sel}-{s}._domainkey.{s} IN TXT {_txt(_dkim_record(True))}")

    def ns_of(origin: str) -> tuple[str, ...]:
        return (f"ns1.{origin}", f"ns2.{origin}")

    def ns_a(origin: str) -> list[str]:
        return [f"ns1 IN A {_ipv4(origin, 'ns1')}", f"ns2 IN A {_ipv4(origin, 'ns2')}"]

    zones: dict[str, str] = {}
    for tld in _TLD_ZONES:
        zones[tld] = _static_zone(tld, serial, (f"a.nic.{tld}", f"b.nic.{tld}"), [])
    google_hosts = [
        "aspmx.l",
        "alt1.aspmx.l",
        "alt2.aspmx.l",
        "alt3.aspmx.l",
        "alt4.aspmx.l",
        "smtp",
    ]
    zones["google.com"] = _static_zone(
        "google.com", serial, ns_of("google.com"),
        ns_a("google.com")
        + [f"{h} IN A {_ipv4(h, 'google')}" for h in google_hosts]
        + [
            '_spf IN TXT "v=spf1 include:_netblocks.google.com include:_netblocks2.google.com '
            'include:_netblocks3.google.com ~all"',
            '_netblocks IN TXT "v=spf1 ip4:192.0.2.0/26 ip4:198.51.100.0/26 ~all"',
            '_netblocks2 IN TXT "v=spf1 ip6:2001:db8:4860::/48 ~all"',
            '_netblocks3 IN TXT "v=spf1 ip4:203.0.113.0/26 ~all"',
        ],
    )  # fmt: skip
    zones["outlook.com"] = _static_zone(
        "outlook.com", serial, ns_of("outlook.com"),
        ns_a("outlook.com")
        + [
            'spf.protection IN TXT "v=spf1 ip4:198.51.100.64/26 ip6:2001:db8:f400::/48 -all"',
            "*.mail.protection IN A 198.51.100.70",
        ],
    )  # fmt: skip
    zones["onmicrosoft.com"] = _static_zone(
        "onmicrosoft.com", serial, ns_of("onmicrosoft.com"), ns_a("onmicrosoft.com") + tenants
    )
    zones["sakura.ne.jp"] = _static_zone(
        "sakura.ne.jp", serial, _DNS_HOSTS["sakura"],
        [f"www{i} IN A {_ipv4(str(i), 'sakura')}" for i in range(1, _MAIL["sakura"].pool + 1)]
        + ['_spf IN TXT "v=spf1 ip4:203.0.113.64/26 ~all"'],
    )  # fmt: skip
    zones["dns.ne.jp"] = _static_zone("dns.ne.jp", serial, _DNS_HOSTS["sakura"], ns_a("dns.ne.jp"))
    zones["xserver.jp"] = _static_zone(
        "xserver.jp", serial, _DNS_HOSTS["xserver"],
        [f"ns{i} IN A {_ipv4(str(i), 'xserver-ns')}" for i in range(1, 4)]
        + [f"sv{i} IN A {_ipv4(str(i), 'xserver')}" for i in range(1, _MAIL["xserver"].pool + 1)]
        + ['spf.sender IN TXT "v=spf1 ip4:203.0.113.128/26 ~all"', "@ IN MX 10 sv1"]
        + xserver_auth,
    )  # fmt: skip
    zones["kagoya.net"] = _static_zone(
        "kagoya.net", serial, ns_of("kagoya.net"),
        ns_a("kagoya.net")
        + [f"mail{i} IN A {_ipv4(str(i), 'kagoya')}" for i in range(1, _MAIL["kagoya"].pool + 1)]
        + ['_spf IN TXT "v=spf1 ip4:198.51.100.128/26 ~all"'],
    )  # fmt: skip
    zones["onamae.com"] = _static_zone(
        "onamae.com", serial, _DNS_HOSTS["onamae"],
        ["dns1 IN A 192.0.2.201", "dns2 IN A 192.0.2.202"],
    )  # fmt: skip
    zones["value-domain.com"] = _static_zone(
        "value-domain.com", serial, _DNS_HOSTS["value-domain"],
        [f"ns{i} IN A 198.51.100.{210 + i}" for i in range(1, 4)],
    )  # fmt: skip
    zones["cloudflare.com"] = _static_zone(
        "cloudflare.com", serial, ("ada.ns.cloudflare.com", "bob.ns.cloudflare.com"),
        ["*.ns IN A 198.51.100.220"],
    )  # fmt: skip
    zones["googledomains.com"] = _static_zone(
        "googledomains.com", serial, _DNS_HOSTS["google"][:2],
        [f"ns-cloud-a{i} IN A 203.0.113.{230 + i}" for i in range(1, 5)],
    )  # fmt: skip
    zones["amazonses.com"] = _static_zone(
        "amazonses.com", serial, ns_of("amazonses.com"),
        ns_a("amazonses.com") + ['@ IN TXT "v=spf1 ip4:192.0.2.128/27 -all"'],
    )  # fmt: skip
    zones["sendgrid.net"] = _static_zone(
        "sendgrid.net", serial, ns_of("sendgrid.net"),
        ns_a("sendgrid.net")
        + ['@ IN TXT "v=spf1 ip4:192.0.2.160/27 ~all"', f"*.wl IN TXT {_txt(_dkim_record(False))}"],
    )  # fmt: skip
    zones["mcsv.net"] = _static_zone(
        "mcsv.net", serial, ns_of("mcsv.net"),
        ns_a("mcsv.net")
        + ['servers IN TXT "v=spf1 ip4:198.51.100.192/27 ?all"', f"dkim IN TXT {_txt(_dkim_record(False))}"],
    )  # fmt: skip
    zones[_RUA_VENDOR] = _static_zone(
        _RUA_VENDOR, serial, ns_of(_RUA_VENDOR),
        ns_a(_RUA_VENDOR)
        + [f"@ IN MX 10 mx.{_RUA_VENDOR}.", f"mx IN A {_ipv4(_RUA_VENDOR)}"]
        + ['*._report._dmarc IN TXT "v=DMARC1"']
        + hosted,
    )  # fmt: skip
    return zones


#: Zones that are infrastructure, never in the scanned list.
PROVIDER_ZONES = (
    "google.com", "outlook.com", "onmicrosoft.com", "sakura.ne.jp", "dns.ne.jp", "xserver.jp",
    "kagoya.net", "onamae.com", "value-domain.com", "cloudflare.com", "googledomains.com",
    "amazonses.com", "sendgrid.net", "mcsv.net", _RUA_VENDOR,
)  # fmt: skip

# -- truth ---------------------------------------------------------------------------------------


def _truth(p: _Profile) -> dict:
    """The SPEC.md column values this domain must get; only values that are certain are given."""
    t: dict = {
        "domain": p.domain,
        "domain_unicode": to_unicode(p.domain),
        "category": p.category,
        "status": "ok" if p.exists else "nxdomain",
    }
    if not p.exists:
        return t
    hosts = sorted(_mx_hosts(p))
    t["mx_hosts"] = [h for _, h in hosts]
    t["mx_null"] = p.mx == "null"
    t["has_mx"] = bool(hosts)
    t["mx_provider"] = registrable_domain(hosts[0][1]) if hosts else None
    t["ns_hosts"] = sorted(p.ns_names)
    t["dns_provider"] = registrable_domain(p.ns_names[0])
    if p.spf in ("none", "trap"):
        t["spf_status"] = "none"
    elif p.spf == "valid":
        t["spf_status"] = "valid"
        t["spf_all"] = p.spf_all
    else:
        t["spf_status"] = "permerror"
    if p.dmarc_invalid:
        t["dmarc_status"] = "invalid"
    elif p.dmarc_policy:
        t["dmarc_status"] = "valid"
        t["dmarc_source"] = "domain"
        t["dmarc_policy"] = p.dmarc_policy
        if not p.dmarc_no_p:
            t["dmarc_p"] = p.dmarc_policy
        t["dmarc_rua_authorized"] = _rua_authorized(p)
    else:
        t["dmarc_status"] = "none"
    t["dkim_selectors"] = sorted(p.dkim)
    t["dkim_domainkey"] = "exists" if p.dkim or p.wildcard else "nxdomain"
    t["mta_sts_status"] = p.mta_sts
    t["tlsrpt_status"] = p.tlsrpt
    t["bimi_status"] = "valid" if p.bimi else "none"
    return t


# -- the local-government panel ------------------------------------------------------------------

#: Municipality kinds of the synthetic panel: (kind, label of its lg.jp name, weight).
_LG_PANEL_KINDS = (("city", "city", 40), ("town", "town", 45), ("village", "vill", 15))
#: Prefectures whose capital is a designated city with wards on the city's own domain.
_WARD_CITIES = 6


@lru_cache(maxsize=1)
def _geographic_places() -> dict[str, tuple[str, ...]]:
    """Place names the PSL lists under each prefecture (``<place>.<prefecture>.jp``, 地域型)."""
    text = (resources.files("publicsuffixlist") / "public_suffix_list.dat").read_text("utf-8")
    text = text.split("===END ICANN DOMAINS===", 1)[0]
    places: dict[str, list[str]] = {}
    for line in text.splitlines():
        labels = line.strip().split(".")
        if len(labels) == 3 and labels[2] == "jp" and labels[0].isascii() and labels[0].isalpha():
            places.setdefault(labels[1], []).append(labels[0])
    return {pref: tuple(sorted(set(names))) for pref, names in places.items()}


def _localgov_panel(
    names: _Names, seed: int
) -> tuple[list[tuple[str, str]], list[dict[str, str]], dict[str, float]]:
    """A synthetic panel of Japan's local governments: every prefecture, 2-8 municipalities each.

    Returns (domain, category) pairs to draw, the panel's rows (domain, prefecture,
    prefecture_en, name, kind; a designated city's wards share the city's domain) and each
    domain's DMARC lean (prefectures differ, so that a map of them shows something).
    """
    rng = random.Random(f"{seed}|localgov")
    places = _geographic_places()
    domains: list[tuple[str, str]] = []
    rows: list[dict[str, str]] = []
    lean: dict[str, float] = {}
    ward_prefectures = set(rng.sample(range(1, 48), _WARD_CITIES))
    for code, ja, en in PREFECTURES:
        pref = en.lower()
        weight = rng.uniform(0.35, 1.8)  # < 1: adopts earlier than the national quota says

        def add(domain: str, category: str, name: str, kind: str, ja=ja, en=en, w=weight) -> None:
            domains.append((domain, category))
            lean[domain] = w
            rows.append(
                {
                    "domain": domain,
                    "prefecture": ja,
                    "prefecture_en": en,
                    "name": name,
                    "kind": kind,
                }
            )

        add(f"pref.{pref}.lg.jp", "lg", ja, "prefecture")
        pool = list(places.get(pref, ()))
        rng.shuffle(pool)
        for i in range(rng.randint(2, 8)):
            kind, label = _pick_kind(rng) if i else ("city", "city")  # the capital first
            place = pool.pop() if pool else f"{pref}{i}"
            geographic = rng.random() < 0.3 and public_suffix(f"{label}.{place}.{pref}.jp") == (
                f"{place}.{pref}.jp"
            )
            domain = f"{label}.{place}.{pref}.jp" if geographic else f"{label}.{place}.lg.jp"
            if not names.claim(domain):
                continue
            name = f"{place.capitalize()} {kind.capitalize()}"
            add(domain, "geographic" if geographic else "lg", name, kind)
            if i == 0 and code in ward_prefectures:
                for ward in ("Chuo", "Kita", "Minami")[: rng.randint(2, 3)]:
                    rows.append({**rows[-1], "name": f"{name} {ward} Ward", "kind": "ward"})
    return domains, rows, lean


def _pick_kind(rng: random.Random) -> tuple[str, str]:
    kind = _pick(rng, tuple((k, w) for k, _, w in _LG_PANEL_KINDS))
    return kind, next(label for k, label, _ in _LG_PANEL_KINDS if k == kind)


# -- the population ------------------------------------------------------------------------------


class _ZoneTexts(Mapping[str, str]):
    """Zone origin (no trailing dot) → zone-file text, rendered on access."""

    def __init__(self, pop: Population) -> None:
        self._pop = pop

    def __getitem__(self, origin: str) -> str:
        p = self._pop._by_origin.get(origin)
        if p is not None:
            return _domain_zone(p, self._pop.serial)
        return self._pop._shared[origin]

    def __iter__(self) -> Iterator[str]:
        yield from self._pop._shared
        for p in self._pop._profiles:
            if p.exists:
                yield p.domain

    def __len__(self) -> int:
        return len(self._pop._shared) + len(self._pop._by_origin)

    def __contains__(self, origin: object) -> bool:
        return origin in self._pop._by_origin or origin in self._pop._shared


class _Truths(Mapping[str, dict]):
    """Domain → its expected column values (see :func:`_truth`), rendered on access."""

    def __init__(self, pop: Population) -> None:
        self._pop = pop

    def __getitem__(self, domain: str) -> dict:
        return _truth(self._pop._by_domain[domain])

    def __iter__(self) -> Iterator[str]:
        return (p.domain for p in self._pop._profiles)

    def __len__(self) -> int:
        return len(self._pop._profiles)


@dataclass
class Population:
    """One quarter of a synthetic population.

    ``zones`` maps every zone origin (registered domains that exist, provider zones, the ``jp``,
    ``com`` and ``net`` zones) to its zone-file text; ``domains`` is the list to scan (A-labels,
    names that no longer exist included); ``truth`` maps each listed domain to the column values
    a correct scan must produce: ``domain``, ``domain_unicode``, ``category``, ``status``, and
    for existing domains ``mx_hosts``, ``mx_null``, ``has_mx``, ``mx_provider``, ``ns_hosts``,
    ``dns_provider``, ``spf_status`` (plus ``spf_all`` when valid), ``dmarc_status`` (plus
    ``dmarc_source``, ``dmarc_policy``, ``dmarc_p`` where published, ``dmarc_rua_authorized``
    when valid), ``dkim_selectors`` (of default, selector1, selector2, google, k1, s1),
    ``dkim_domainkey``, ``mta_sts_status``, ``tlsrpt_status``, ``bimi_status``.
    """

    n: int
    seed: int
    quarter: str
    _profiles: list[_Profile] = field(repr=False)
    #: The local-government panel's rows (``generate(..., localgov=True)``): domain, prefecture,
    #: prefecture_en, name, kind; its domains are in ``domains`` too.
    panel: list[dict[str, str]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.serial = _SERIALS[self.quarter]
        self._by_domain = {p.domain: p for p in self._profiles}
        self._by_origin = {p.domain: p for p in self._profiles if p.exists}
        self.domains: list[str] = [p.domain for p in self._profiles]
        self.zones: Mapping[str, str] = _ZoneTexts(self)
        self.truth: Mapping[str, dict] = _Truths(self)

    @cached_property
    def _shared(self) -> dict[str, str]:
        return _provider_zones(self._profiles, self.serial)

    def write(self, directory: str | Path) -> Path:
        """Write ``domains.txt``, ``zones/<origin>.zone``, ``nsd.conf`` and ``truth.jsonl``.

        ``nsd.conf`` is a fragment of ``zone:`` clauses with absolute zone file paths, to be
        included after a ``server:`` section.
        """
        out = Path(directory).resolve()
        zdir = out / "zones"
        zdir.mkdir(parents=True, exist_ok=True)
        (out / "domains.txt").write_text("\n".join(self.domains) + "\n", encoding="ascii")
        conf: list[str] = [
            f"# {len(self.zones)} zones, population n={self.n} seed={self.seed} {self.quarter}"
        ]
        for origin, text in self.zones.items():
            path = zdir / f"{origin}.zone"
            path.write_text(text, encoding="ascii")
            conf += ["zone:", f'    name: "{origin}."', f'    zonefile: "{path}"']
        (out / "nsd.conf").write_text("\n".join(conf) + "\n", encoding="ascii")
        with open(out / "truth.jsonl", "w", encoding="utf-8") as fh:
            for domain in self.domains:
                fh.write(json.dumps(self.truth[domain], ensure_ascii=False) + "\n")
        return out


def generate(n: int, seed: int, quarter: str = "2024Q2", *, localgov: bool = False) -> Population:
    """A population of ``n`` listed domains for ``quarter``; the same (n, seed) gives the same names.

    ``localgov`` adds a synthetic local-government panel (``Population.panel``, names under lg.jp
    and the geographic types in every prefecture) beside the ``n`` domains, which stay the same.
    """
    if quarter not in QUARTERS:
        raise ValueError(f"quarter must be one of {', '.join(QUARTERS)}")
    if n < 0:
        raise ValueError("n must not be negative")
    rng = random.Random(seed)
    names = _Names(rng, set(PROVIDER_ZONES) | set(_TLD_ZONES) | {_RUA_UNAUTHORIZED})
    profiles = [
        _draw(names.make(category), category, seed)
        for category, count in _counts(n).items()
        for _ in range(count)
    ]
    rng.shuffle(
        profiles
    )  # the list interleaves categories, as a registry dump sorted by name would
    _resolve_quarter(profiles, quarter)
    if not localgov:
        return Population(n, seed, quarter, profiles)
    pairs, rows, lean = _localgov_panel(names, seed)
    panel = [_draw(domain, category, seed) for domain, category in pairs]
    for p in panel:
        p.u_dmarc = min(p.u_dmarc * lean[p.domain], 0.999999)
    _resolve_quarter(panel, quarter)  # its own quotas: the n domains' draws stay as they were
    return Population(n, seed, quarter, profiles + panel, rows)


def demo_population(*, localgov: bool = False) -> dict[str, Population]:
    """The bundled demo sample: 2,000 domains, both quarters, fixed seed (oldest first); with
    ``localgov``, the synthetic local-government panel beside them."""
    return {q: generate(DEMO_SIZE, DEMO_SEED, q, localgov=localgov) for q in QUARTERS}
