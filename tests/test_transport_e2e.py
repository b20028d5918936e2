"""Transport security end to end: a scan with MTA-STS policy fetches and STARTTLS probes.

NSD serves the zones; a real HTTPS server (trustme certificate) serves the policies; aiosmtpd
speaks SMTP with STARTTLS; everything on loopback, which only ``allow_private`` permits.
"""

from __future__ import annotations

import asyncio

import pandas as pd
import pytest
import trustme

from mailauth_survey.analysis import reanalyze
from mailauth_survey.collect import ScanOptions, scan
from tests.conftest import write_list
from tests.test_mta_sts_policy import https_server
from tests.test_probes import smtpd

ZONE_RECORDS = [
    # good: a valid policy whose patterns cover its MX (RFC 8461 4.1)
    "good MX 10 mx1.example.jp.",
    '_mta-sts.good TXT "v=STSv1; id=20240601"',
    "mta-sts.good A 127.0.0.1",
    # redirect: the policy host answers 301, which must not be followed (RFC 8461 3.3)
    "redirect MX 10 mx1.example.jp.",
    '_mta-sts.redirect TXT "v=STSv1; id=1"',
    "mta-sts.redirect A 127.0.0.1",
    # plain: no MTA-STS at all
    "plain MX 10 mx1.example.jp.",
    "mx1 A 127.0.0.1",
]
NAMES = ["good.example.jp", "redirect.example.jp", "plain.example.jp"]


@pytest.fixture
def ca(tmp_path):
    authority = trustme.CA()
    cafile = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(cafile))
    return authority, str(cafile)


async def test_scan_with_policy_fetch_and_starttls(tmp_path, nsd_factory, ca) -> None:
    from tests.nsd import zone

    authority, cafile = ca
    server = nsd_factory({"jp": zone("jp"), "example.jp": zone("example.jp", *ZONE_RECORDS)})
    lst = write_list(tmp_path / "l.txt", NAMES)
    out = tmp_path / "out"
    names = [f"mta-sts.{n}" for n in NAMES]
    with smtpd(authority.issue_cert("mx1.example.jp")) as mail:
        async with https_server(authority, cafile, names) as web:
            opts = ScanOptions(
                resolvers=[server.address], allow_private=True, cafile=cafile,
                https_port=web.port, probe_smtp=True, smtp_port=mail.port, probe_timeout=5,
                ehlo_name="scanner.survey.example.jp",
            )  # fmt: skip
            await asyncio.to_thread(scan, [lst], out, snapshot="t", options=opts)
            assert web.hits("redirect") == 1 and web.hits("target") == 0  # not followed
        assert mail.recorder.ehlo_names and set(mail.recorder.ehlo_names) == {
            "scanner.survey.example.jp"
        }
        assert len(mail.recorder.ehlo_names) <= 2  # one MX host, probed once for three domains

    d = pd.read_parquet(out / "domains").set_index("domain")
    good = d.loc["good.example.jp"]
    assert good["mta_sts_policy_status"] == "valid"
    assert good["mta_sts_mode"] == "enforce" and good["mta_sts_max_age"] == 86400
    assert good["mta_sts_mx_match"]
    assert d.loc["redirect.example.jp", "mta_sts_policy_status"] == "redirect"
    assert d.loc["plain.example.jp", "mta_sts_policy_status"] == "none"
    for name in NAMES:
        assert d.loc[name, "starttls"] and d.loc[name, "starttls_cert_valid"]
        assert len(d.loc[name, "tls_versions"]) >= 1

    probes = pd.read_parquet(out / "probes")
    assert sorted(probes.loc[probes["kind"] == "mta-sts-policy", "domain"]) == [
        "good.example.jp",
        "redirect.example.jp",
    ]
    assert (probes["kind"] == "smtp").sum() == 1  # the shared MX host's one address, once

    before = d.sort_index()
    reanalyze(out, "t")
    after = pd.read_parquet(out / "domains").set_index("domain").sort_index()
    pd.testing.assert_frame_equal(before, after)


def test_loopback_mx_not_probed_without_allow_private(tmp_path, nsd_factory) -> None:
    from tests.nsd import zone

    server = nsd_factory({"jp": zone("jp"), "example.jp": zone("example.jp", *ZONE_RECORDS)})
    lst = write_list(tmp_path / "l.txt", ["plain.example.jp"])
    opts = ScanOptions(resolvers=[server.address], probe_smtp=True, smtp_port=1, probe_timeout=1)
    scan([lst], tmp_path / "out", snapshot="t", options=opts)
    d = pd.read_parquet(tmp_path / "out" / "domains").set_index("domain")
    assert pd.isna(d.loc["plain.example.jp", "starttls"])  # nothing probed: unknown, not "no"
    p = pd.read_parquet(tmp_path / "out" / "probes")
    assert list(p["status"]) == ["skipped"] and "non-global" in p["detail"].iloc[0]


def test_bad_opt_out_list_is_one_line_error(tmp_path) -> None:
    from click.testing import CliRunner

    from mailauth_survey.cli import main

    lst = write_list(tmp_path / "l.txt", ["a.jp"])
    bad = tmp_path / "optout.txt"
    bad.write_text("# opt-outs\nexample.jp\n10.0.0.0/33\n")
    res = CliRunner().invoke(
        main, ["scan", str(lst), "--out", str(tmp_path / "o"), "--exclude", str(bad), "--quiet"]
    )
    assert res.exit_code != 0
    assert "optout.txt" in res.stderr and "3" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_skipped_probes_are_counted_in_the_summary_and_an_smtp_opt_out_leaves_a_row(
    tmp_path, nsd_factory
) -> None:
    """Every probe skipped (loopback addresses without --allow-private, an opt-out): the scan
    says so, and the SMTP opt-out is in the probes table as the HTTPS one is (issue 20, 7)."""
    from click.testing import CliRunner

    from mailauth_survey.cli import main
    from tests.nsd import zone

    server = nsd_factory({"jp": zone("jp"), "example.jp": zone("example.jp", *ZONE_RECORDS)})
    lst = write_list(tmp_path / "l.txt", NAMES)
    optout = write_list(tmp_path / "optout.txt", ["redirect.example.jp"])
    out = tmp_path / "out"
    res = CliRunner().invoke(
        main,
        ["scan", str(lst), "--out", str(out), "--snapshot", "t", "--resolver", server.address,
         "--probe-smtp", "--probe-timeout", "1", "--exclude", str(optout)],
        terminal_width=100,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    p = pd.read_parquet(out / "probes")
    assert set(p["status"]) == {"skipped"}
    opted = p[(p["kind"] == "smtp") & (p["domain"] == "redirect.example.jp")]
    assert list(opted["detail"]) == ["excluded domain"]
    summary = [line for line in res.stderr.splitlines() if "probes skipped" in line]
    assert len(summary) == 1, res.stderr
    assert summary[0].startswith(f"{len(p)} probes skipped")
    assert "non-global address" in summary[0] and "opt-out" in summary[0]
    before = pd.read_parquet(out / "domains").set_index("domain").sort_index()
    reanalyze(out, "t")  # the opt-out's own rows do not leak into other domains' verdicts
    after = pd.read_parquet(out / "domains").set_index("domain").sort_index()
    pd.testing.assert_frame_equal(before, after)
