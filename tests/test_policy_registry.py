"""The policy-module registry and the apex module: what ``analysis`` relies on of each module."""

from __future__ import annotations

import pytest

from mailauth_survey import analysis, policies, store
from mailauth_survey.answers import Answer, AnswerSet
from mailauth_survey.policies import apex, dane
from mailauth_survey.probes.results import STARTTLS_COLUMNS
from tests.builders import txt


def _world(name: str = "example.jp") -> AnswerSet:
    return AnswerSet(
        [
            Answer(name, "MX", "NOERROR", (f"{name}. 300 IN MX 10 mx.{name}.",)),
            txt(name, "v=spf1 mx -all"),
            Answer(name, "NS", "NOERROR", (f"{name}. 300 IN NS ns.example.net.",)),
            txt(f"_dmarc.{name}", "v=DMARC1; p=reject"),
        ]
    )


@pytest.mark.parametrize("module", policies.MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_every_module_returns_exactly_its_columns(module) -> None:
    """The registry's contract: analyze returns every column it declares and no other, with or
    without the answers it asks (a missing answer never drops a column)."""
    for dns in (AnswerSet(), _world()):
        assert set(module.analyze("example.jp", dns)) == set(module.COLUMNS)
    assert isinstance(module.first_queries("example.jp", _world()), tuple)


def test_the_modules_columns_make_up_the_domains_table() -> None:
    """Identity, apex, the registry's modules and the transport columns: each domains-table
    column comes from exactly one of them."""
    from_parts = [
        *("domain", "domain_unicode", "category", "scanned_at"),
        *apex.COLUMNS,
        *(c for m in policies.MODULES for c in m.COLUMNS),
        *policies.mta_sts.POLICY_COLUMNS,
        *STARTTLS_COLUMNS,
    ]
    assert len(from_parts) == len(set(from_parts))
    assert set(from_parts) == set(store.DOMAIN_COLUMNS)


def test_analysis_runs_the_registry_in_order(monkeypatch) -> None:
    """analysis reads the registry when it runs: a module left out gives no columns."""
    row = analysis.analyze_domain("example.jp", _world())
    assert row["dmarc_status"] == "valid"
    monkeypatch.setattr(
        policies, "MODULES", tuple(m for m in policies.MODULES if m is not policies.dmarc)
    )
    row = analysis.analyze_domain("example.jp", _world())
    assert row["dmarc_status"] is None and row["spf_status"] is not None


# --- the one MX parser ------------------------------------------------------------------------

RDATAS = ["20 b.example.jp.", "10 B.Example.JP.", "0 .", "10 a.example.jp.", "x y", "70000 c.jp."]


def test_mx_records_order_and_null_mx_rfc7505() -> None:
    """RFC 7505 3: the null MX is the exchange "."; RFC 1035 3.3.9: PREFERENCE is 16 bits."""
    assert apex.mx_records(RDATAS) == [
        (0, ""),
        (10, "a.example.jp"),
        (10, "b.example.jp"),
        (20, "b.example.jp"),
    ]
    assert apex.parse_mx(RDATAS) == (["a.example.jp", "b.example.jp"], True)


def test_apex_dane_and_spf_read_mx_alike() -> None:
    """The apex columns and DANE's hosts read one answer the same way (apex.mx_records)."""
    rrs = tuple(f"example.jp. 300 IN MX {r}" for r in RDATAS)
    dns = AnswerSet([Answer("example.jp", "MX", "NOERROR", rrs)])
    cols = apex.mx_columns("example.jp", dns)
    assert cols["mx_hosts"] == dane.mx_hosts(dns, "example.jp") == ["a.example.jp", "b.example.jp"]
    assert cols["mx_null"] is True
