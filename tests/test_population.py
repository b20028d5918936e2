"""The synthetic population: deterministic, valid zone files, published .jp proportions, and a
truth that matches what its zones actually serve."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dns.name
import dns.zone
import pytest

from mailauth_survey.domains import ATTRIBUTE_TYPES, CATEGORIES, category, registrable_domain
from mailauth_survey.synthetic import population
from mailauth_survey.synthetic.authserver import CNAME, MX, NXDOMAIN, TXT, Responder
from mailauth_survey.synthetic.population import QUARTERS, Population, demo_population, generate


@pytest.fixture(scope="module")
def demo() -> dict[str, Population]:
    return demo_population()


@pytest.fixture(scope="module")
def small() -> Population:
    return generate(300, 5)


def ok_truths(pop: Population) -> list[dict]:
    return [t for t in pop.truth.values() if t["status"] == "ok"]


# -- determinism and format -----------------------------------------------------------------------


def test_same_seed_same_population(small: Population) -> None:
    again = generate(300, 5)
    assert again.domains == small.domains
    assert dict(again.zones) == dict(small.zones)
    assert dict(again.truth) == dict(small.truth)
    other = generate(300, 6)
    assert other.domains != small.domains


def test_quarters_share_the_names_and_the_stable_parts(demo: dict[str, Population]) -> None:
    early, late = demo["2023Q4"], demo["2024Q2"]
    assert early.domains == late.domains
    stable = (
        "status",
        "category",
        "mx_hosts",
        "ns_hosts",
        "spf_status",
        "spf_all",
        "dkim_selectors",
    )
    for domain in early.domains:
        a, b = early.truth[domain], late.truth[domain]
        assert all(a.get(k) == b.get(k) for k in stable), domain


def test_every_zone_parses_with_dnspython(small: Population) -> None:
    for origin, text in small.zones.items():
        zone = dns.zone.from_text(text, origin + ".", relativize=False)  # checks SOA and NS at apex
        assert zone.origin == dns.name.from_text(origin)


@pytest.mark.skipif(shutil.which("nsd-checkzone") is None, reason="nsd-checkzone not installed")
def test_every_zone_passes_nsd_checkzone(small: Population, tmp_path: Path) -> None:
    out = small.write(tmp_path)

    def check(origin: str) -> str | None:
        run = subprocess.run(
            ["nsd-checkzone", origin, str(out / "zones" / f"{origin}.zone")],
            capture_output=True,
            text=True,
        )
        return None if run.returncode == 0 else f"{origin}: {run.stdout}{run.stderr}"

    with ThreadPoolExecutor(8) as pool:
        failures = [f for f in pool.map(check, small.zones) if f]
    assert not failures, failures[:5]


@pytest.mark.skipif(shutil.which("nsd-checkconf") is None, reason="nsd-checkconf not installed")
def test_written_files_and_nsd_conf_fragment(small: Population, tmp_path: Path) -> None:
    out = small.write(tmp_path / "pop")
    assert (out / "domains.txt").read_text().split() == small.domains
    assert len(list((out / "zones").glob("*.zone"))) == len(small.zones)
    assert len((out / "truth.jsonl").read_text().splitlines()) == len(small.domains)
    conf = tmp_path / "nsd.conf"
    conf.write_text(
        f'server:\n  zonesdir: "{tmp_path}"\n  username: ""\n  chroot: ""\n'
        f'include: "{out / "nsd.conf"}"\n'
    )
    run = subprocess.run(["nsd-checkconf", str(conf)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    fragment = (out / "nsd.conf").read_text()
    assert fragment.count("zone:") == len(small.zones)


# -- proportions ------------------------------------------------------------------------------------


def test_categories_match_the_registry_types(demo: dict[str, Population]) -> None:
    pop = demo["2024Q2"]
    assert len(pop.domains) == population.DEMO_SIZE == len(set(pop.domains))
    seen = Counter()
    for domain in pop.domains:
        t = pop.truth[domain]
        assert t["category"] == category(domain), domain  # the truth agrees with domains.py
        seen[t["category"]] += 1
    assert set(seen) == set(CATEGORIES)
    jp = sum(v for k, v in seen.items() if k != "other")
    assert 0.66 <= seen["general"] / jp <= 0.70  # 汎用JP 68%
    attribute = sum(seen[k] for k in ATTRIBUTE_TYPES) + seen["geographic"]
    assert 0.29 <= attribute / jp <= 0.33  # 属性型・地域型 31%
    assert 0.005 <= seen["prefecture"] / jp <= 0.02  # 都道府県型 1%
    idn = [t for t in pop.truth.values() if t["domain"] != t["domain_unicode"]]
    assert idn and all("xn--" in t["domain"] for t in idn)


def test_mail_setups_are_a_realistic_mix(demo: dict[str, Population]) -> None:
    pop = demo["2024Q2"]
    truths = list(pop.truth.values())
    ok = ok_truths(pop)
    assert 0.02 <= sum(t["status"] == "nxdomain" for t in truths) / len(truths) <= 0.06
    assert all(t["domain"] not in pop.zones for t in truths if t["status"] == "nxdomain")
    assert sum(t["mx_null"] for t in ok) >= 20
    assert sum(not t["has_mx"] and not t["mx_null"] for t in ok) >= 100
    providers = Counter(t["mx_provider"] for t in ok if t["has_mx"])
    for shared in ("google.com", "outlook.com", "sakura.ne.jp", "xserver.jp", "kagoya.net"):
        assert providers[shared] >= 20, shared
    with_mx = [t for t in ok if t["has_mx"]]
    assert 0.70 <= sum(t["spf_status"] == "valid" for t in with_mx) / len(with_mx) <= 0.95
    assert 10 <= sum(t["spf_status"] == "permerror" for t in ok) <= 0.05 * len(ok)
    alls = Counter(t["spf_all"] for t in ok if t["spf_status"] == "valid")
    assert {"-all", "~all", "?all", "+all", "none"} <= set(alls)
    selectors = Counter(s for t in ok for s in t["dkim_selectors"])
    assert set(selectors) == {"default", "selector1", "selector2", "google", "k1", "s1"}
    for kind in ("mta_sts_status", "tlsrpt_status"):
        assert Counter(t[kind] for t in ok)["valid"] >= 5, kind
        assert Counter(t[kind] for t in ok)["invalid"] >= 1, kind
    assert sum(t["bimi_status"] == "valid" for t in ok) >= 3
    rua = Counter(t.get("dmarc_rua_authorized") for t in ok if t["dmarc_status"] == "valid")
    assert rua[True] and rua[False] and rua[None]


@pytest.mark.parametrize(
    ("quarter", "low", "high"), [("2023Q4", 0.06, 0.12), ("2024Q2", 0.27, 0.37)]
)
def test_dmarc_adoption_as_published(
    demo: dict[str, Population], quarter: str, low: float, high: float
) -> None:
    ok = ok_truths(demo[quarter])
    valid = [t for t in ok if t["dmarc_status"] == "valid"]
    assert low <= len(valid) / len(ok) <= high  # IAjapan/JPRS: 8.6% → 31.8%
    assert sum(t["dmarc_policy"] == "none" for t in valid) / len(valid) > 0.70
    assert {t["dmarc_policy"] for t in valid} == {"none", "quarantine", "reject"}
    assert any(t["dmarc_status"] == "invalid" for t in ok)
    rate = {
        c: sum(t["dmarc_status"] == "valid" for t in ok if t["category"] == c)
        / max(1, sum(t["category"] == c for t in ok))
        for c in CATEGORIES
    }
    assert rate["go"] == max(rate.values())  # go.jp highest
    assert rate["ed"] == min(rate[c] for c in ATTRIBUTE_TYPES)  # ed.jp lagging


def test_growth_from_2023q4_to_2024q2(demo: dict[str, Population]) -> None:
    early, late = demo["2023Q4"], demo["2024Q2"]
    order = {"none": 0, "quarantine": 1, "reject": 2}
    moved = Counter()
    for domain in early.domains:
        a, b = early.truth[domain], late.truth[domain]
        if a.get("dmarc_status") == "valid":
            assert b["dmarc_status"] == "valid", domain  # adopters stay
            assert order[b["dmarc_policy"]] >= order[a["dmarc_policy"]], domain  # never relax
            moved[(a["dmarc_policy"], b["dmarc_policy"])] += 1
    assert moved[("none", "quarantine")] and moved[("none", "reject")]
    assert moved[("none", "none")] > moved[("none", "quarantine")] + moved[("none", "reject")]

    def lg_rate(pop: Population) -> float:
        lg = [t for t in ok_truths(pop) if t["category"] == "lg"]
        return sum(t["dmarc_status"] == "valid" for t in lg) / len(lg)

    def rise(c: str) -> float:
        rates = []
        for pop in (early, late):
            members = [t for t in ok_truths(pop) if t["category"] == c]
            rates.append(sum(t["dmarc_status"] == "valid" for t in members) / len(members))
        return rates[1] - rates[0]

    assert rise("lg") == max(rise(c) for c in CATEGORIES)  # lg.jp rising fastest
    assert lg_rate(late) > lg_rate(early)


# -- the truth matches what the zones serve -------------------------------------------------------


def _strings(rdata: bytes) -> str:
    out, i = [], 0
    while i < len(rdata):
        out.append(rdata[i + 1 : i + 1 + rdata[i]].decode("utf-8", "replace"))
        i += 1 + rdata[i]
    return "".join(out)


def _txt(responder: Responder, name: str) -> tuple[int, list[str]]:
    ans = responder.answer(name, "TXT")
    return ans.rcode, [_strings(rd) for rr in ans.answer if rr.rdtype == TXT for rd in rr.rdatas]


def _spf_all(responder: Responder, record: str) -> str:
    terms = record.split()[1:]
    for term in terms:
        if term in ("-all", "~all", "?all", "+all", "all"):
            return term if term != "all" else "+all"
    redirect = [t.split("=", 1)[1] for t in terms if t.startswith("redirect=")]
    if redirect:
        [target] = [t for t in _txt(responder, redirect[0])[1] if t.startswith("v=spf1 ")]
        return _spf_all(responder, target)
    return "none"


@pytest.mark.parametrize("quarter", QUARTERS)
def test_truth_matches_the_served_zones(quarter: str) -> None:
    pop = generate(800, 11, quarter)
    responder = Responder()
    for origin, text in pop.zones.items():
        responder.add_zone(text, origin)
    for domain in pop.domains:
        t = pop.truth[domain]
        soa = responder.answer(domain, "SOA")
        if t["status"] == "nxdomain":
            assert soa.rcode == NXDOMAIN, domain
            continue
        assert soa.rcode == 0 and soa.answer, domain
        # MX
        mx = responder.answer(domain, "MX")
        exchanges = sorted(
            (int.from_bytes(rd[:2], "big"), dns.name.from_wire(rd, 2)[0].to_text().rstrip("."))
            for rr in mx.answer
            if rr.rdtype == MX
            for rd in rr.rdatas
        )
        assert t["mx_null"] == (exchanges == [(0, "")]), domain
        assert t["mx_hosts"] == [h for _, h in exchanges if h], domain
        if t["has_mx"]:
            assert t["mx_provider"] == registrable_domain(t["mx_hosts"][0])
        # SPF
        spf = [s for s in _txt(responder, domain)[1] if s == "v=spf1" or s.startswith("v=spf1 ")]
        if t["spf_status"] == "none":
            assert not spf, domain
        else:
            assert spf, domain
        if t["spf_status"] == "valid":
            assert len(spf) == 1 and t["spf_all"] == _spf_all(responder, spf[0]), domain
        # DMARC (a CNAME at _dmarc is followed by the answer)
        dmarc = [s for s in _txt(responder, f"_dmarc.{domain}")[1] if s.startswith("v=DMARC1")]
        assert (t["dmarc_status"] == "none") == (not dmarc), domain
        if t["dmarc_status"] == "valid":
            tags = dict(
                (k.strip(), v.strip())
                for k, v in (p.split("=", 1) for p in dmarc[0].split(";") if "=" in p)
            )
            assert tags.get("p", "none") == t["dmarc_policy"], domain
            rua = [u.split("@", 1)[1] for u in tags.get("rua", "").split(",") if "@" in u]
            authorized = [
                registrable_domain(host) == registrable_domain(domain)
                or any(
                    s.startswith("v=DMARC1")
                    for s in _txt(responder, f"{domain}._report._dmarc.{host}")[1]
                )
                for host in rua
            ]
            assert t["dmarc_rua_authorized"] == (all(authorized) if rua else None), domain
        # DKIM
        rcode, _ = _txt(responder, f"_domainkey.{domain}")
        assert t["dkim_domainkey"] == ("exists" if rcode == 0 else "nxdomain"), domain
        keys = [
            s
            for s in ("default", "selector1", "selector2", "google", "k1", "s1")
            if any("p=" in x for x in _txt(responder, f"{s}._domainkey.{domain}")[1])
        ]
        assert t["dkim_selectors"] == sorted(keys), domain
        # MTA-STS, TLS-RPT, BIMI: a record is published exactly when the truth says so
        for owner, prefix, key in (
            ("_mta-sts", "v=STSv1", "mta_sts_status"),
            ("_smtp._tls", "v=TLSRPTv1", "tlsrpt_status"),
            ("default._bimi", "v=BIMI1", "bimi_status"),
        ):
            found = [s for s in _txt(responder, f"{owner}.{domain}")[1] if s.startswith(prefix)]
            assert (t[key] == "none") == (not found), (domain, key)


def test_cnames_lead_into_provider_zones() -> None:
    pop = generate(800, 11)
    responder = Responder()
    for origin, text in pop.zones.items():
        responder.add_zone(text, origin)
    hosted = [
        d
        for d in pop.domains
        if "hosted" in pop.zones.get(d, "") and "_dmarc IN CNAME" in pop.zones[d]
    ]
    assert hosted
    ans = responder.answer(f"_dmarc.{hosted[0]}", "TXT")
    assert [rr.rdtype for rr in ans.answer] == [CNAME, TXT]


# -- speed ----------------------------------------------------------------------------------------


def test_demo_population_is_quick() -> None:
    start = time.perf_counter()
    pops = demo_population()
    for pop in pops.values():
        sum(len(text) for text in pop.zones.values())
    assert time.perf_counter() - start < 5.0  # under 2 s on a developer's machine
    assert list(pops) == list(QUARTERS)


@pytest.mark.slow
def test_hundred_thousand_domains_well_under_a_minute() -> None:
    start = time.perf_counter()
    pop = generate(100_000, 1)
    assert len(pop.domains) == 100_000
    assert time.perf_counter() - start < 30.0
