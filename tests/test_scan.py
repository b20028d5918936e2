"""End to end: scan lists against a real NSD on loopback and check the Parquet output."""

from __future__ import annotations

import gc
import json

import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from mailauth_survey import store
from mailauth_survey.cli import main
from mailauth_survey.collect import ScanError, ScanOptions, scan
from mailauth_survey.collect import spool as collect
from mailauth_survey.policies import spf
from tests.conftest import write_list
from tests.nsd import Nsd, zone

LEFT_SPF = "v=spf1 ip4:192.0.2.77 -all"  # a record no other test parses (what a scan leaves)
BIG_TXT = " ".join(f'"{c * 200}"' for c in "abcdefgh")  # 1,600 bytes: over a 1232-byte UDP reply

ZONES = {
    "jp": zone("jp"),
    **{
        f"a.{t}.jp": zone(f"a.{t}.jp", "@ MX 10 mx.a")
        for t in ("co", "or", "ne", "ac", "ad", "ed", "go", "gr")
    },
    "a.lg.jp": zone("a.lg.jp"),
    "a.jp": zone("a.jp"),
    "a.tokyo.jp": zone("a.tokyo.jp"),
    "a.shinjuku.tokyo.jp": zone("a.shinjuku.tokyo.jp"),
    "a.example": zone("a.example", f'@ TXT "{LEFT_SPF}"'),
    "xn--wgv71a119e.jp": zone("xn--wgv71a119e.jp", "@ MX 10 mx"),
    "nullmx.jp": zone("nullmx.jp", "@ MX 0 ."),
    "ordered.jp": zone(
        "ordered.jp",
        "@ MX 20 b.mx.ordered.jp.",
        "@ MX 10 z.mx.ordered.jp.",
        "@ MX 10 aspmx.l.google.com.",
        "@ MX 10 aspmx.l.google.com.",
        ns=("ns2.dnsprov.ne.jp", "ns.other-dns.com", "ns1.dnsprov.ne.jp"),
    ),
    "shared.jp": zone("shared.jp", "@ MX 10 aspmx.l.google.com."),
    "google.com": zone("google.com", "aspmx.l A 192.0.2.25", "aspmx.l AAAA 2001:db8::25"),
    "cname.co.jp": zone("cname.co.jp", "alias CNAME real.target-host.net."),
    "target-host.net": zone(
        "target-host.net", "real MX 10 mx.target-host.net.", 'real TXT "v=spf1 -all"'
    ),
    "big.jp": zone("big.jp", f"@ TXT {BIG_TXT}"),
}

LIST = [
    "# test population",
    *[f"A.{t}.JP." for t in ("co", "or", "ne", "ac", "ad", "ed", "go", "gr")],
    "a.lg.jp",
    "a.jp",
    "a.tokyo.jp",
    "a.shinjuku.tokyo.jp",
    "a.example",
    "日本語.jp",
    "nullmx.jp",
    "ordered.jp",
    "shared.jp",
    "alias.cname.co.jp",
    "big.jp",
    "missing.co.jp",
    "a.jp",  # duplicate
    "not a domain",
]


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    """One scan of the population above, shared by the tests of this module."""
    base = tmp_path_factory.mktemp("scan")
    server = Nsd(base / "nsd", ZONES)
    try:
        lst = write_list(base / "list.txt", LIST)
        errors: list[str] = []
        manifest = scan(
            [lst], base / "out", snapshot="2024-06-01",
            options=ScanOptions(resolvers=[server.address], timeout=1.0), on_error=errors.append,
        )  # fmt: skip
    finally:
        server.stop()
    domains = pd.read_parquet(base / "out" / "domains").set_index("domain")
    records = pd.read_parquet(base / "out" / "records")
    return {
        "dir": base / "out",
        "manifest": manifest,
        "errors": errors,
        "domains": domains,
        "records": records,
    }


def test_every_spec_column_present_with_arrow_types(scanned) -> None:
    part = next((scanned["dir"] / "domains" / "snapshot=2024-06-01").glob("part-*.parquet"))
    schema = pq.read_schema(part)
    for f in store.DOMAINS_SCHEMA:
        assert schema.field(f.name).type == f.type, f.name
    assert "snapshot" in scanned["domains"].columns  # hive partition column


def test_categories_of_every_jp_type(scanned) -> None:
    cat = scanned["domains"]["category"].to_dict()
    for t in ("co", "or", "ne", "ac", "ad", "ed", "go", "gr"):
        assert cat[f"a.{t}.jp"] == t
    assert cat["a.lg.jp"] == "lg"
    assert cat["a.jp"] == "general"
    assert cat["a.tokyo.jp"] == "prefecture"
    assert cat["a.shinjuku.tokyo.jp"] == "geographic"
    assert cat["a.example"] == "other"


def test_idn_stored_as_alabel_with_ulabel(scanned) -> None:
    row = scanned["domains"].loc["xn--wgv71a119e.jp"]
    assert row["domain_unicode"] == "日本語.jp"
    assert row["status"] == "ok"
    assert list(row["mx_hosts"]) == ["mx.xn--wgv71a119e.jp"]


def test_duplicates_scanned_once_and_bad_line_named(scanned) -> None:
    d = scanned["domains"]
    assert d.index.is_unique
    assert len(d) == len(
        {n.lower().rstrip(".") for n in LIST if not n.startswith("#") and " " not in n}
    )
    assert len(scanned["errors"]) == 1 and f":{len(LIST)}:" in scanned["errors"][0]
    assert scanned["manifest"]["bad_lines"] == 1


def test_null_mx_rfc7505_is_flagged_and_not_an_exchange(scanned) -> None:
    row = scanned["domains"].loc["nullmx.jp"]
    assert row["mx_null"]
    assert not row["has_mx"]
    assert list(row["mx_hosts"]) == []
    assert pd.isna(row["mx_provider"])


def test_no_mx_is_nodata_not_error(scanned) -> None:
    row = scanned["domains"].loc["a.jp"]
    assert row["status"] == "ok" and row["mx_status"] == "NOERROR"
    assert not row["has_mx"] and not row["mx_null"]


def test_nxdomain_domain(scanned) -> None:
    row = scanned["domains"].loc["missing.co.jp"]
    assert row["status"] == "nxdomain" and row["mx_status"] == "NXDOMAIN"
    assert not row["has_mx"]
    # RFC 8020: nothing below a name that does not exist is asked.
    asked = scanned["records"].query("domain == 'missing.co.jp'")["qname"]
    assert not any(
        q.endswith(".missing.co.jp") and q.startswith(("_domainkey", "_mta-sts")) for q in asked
    )


def test_mx_order_by_preference_then_name_and_provider(scanned) -> None:
    row = scanned["domains"].loc["ordered.jp"]
    assert list(row["mx_hosts"]) == ["aspmx.l.google.com", "z.mx.ordered.jp", "b.mx.ordered.jp"]
    assert row["mx_provider"] == "google.com"
    assert list(row["ns_hosts"]) == ["ns.other-dns.com", "ns1.dnsprov.ne.jp", "ns2.dnsprov.ne.jp"]
    assert row["dns_provider"] == "dnsprov.ne.jp"


def test_mx_host_addresses_collected_once_per_scan(scanned) -> None:
    r = scanned["records"].query("qname == 'aspmx.l.google.com' and qtype == 'A'")
    assert sorted(r["domain"]) == ["ordered.jp", "shared.jp"]
    assert sorted(r["transport"]) == ["cache", "udp"]  # the second domain read the scan's cache
    assert all("192.0.2.25" in a[0] for a in r["answers"])


def test_cname_chain_followed_across_zones(scanned) -> None:
    row = scanned["domains"].loc["alias.cname.co.jp"]
    assert row["status"] == "ok"
    assert list(row["mx_hosts"]) == ["mx.target-host.net"]
    mx = scanned["records"].query("qname == 'alias.cname.co.jp' and qtype == 'MX'").iloc[0]
    types = [a.split()[3] for a in mx["answers"]]
    assert types == ["CNAME", "MX"]


def test_truncated_answer_retried_over_tcp(scanned) -> None:
    r = scanned["records"].query("qname == 'big.jp' and qtype == 'TXT'").iloc[0]
    assert r["transport"] == "tcp"
    assert r["rcode"] == "NOERROR"
    from mailauth_survey.answers import Answer

    answer = Answer("big.jp", "TXT", r["rcode"], tuple(r["answers"]))
    assert len(answer.txt()[0]) == 1600


def test_manifest(scanned) -> None:
    m = json.loads(store.Snapshot(scanned["dir"], "2024-06-01").manifest.read_text())
    assert m["complete"] is True
    assert m["schema_version"] == store.SCHEMA_VERSION
    assert m["public_suffix_list"].startswith("publicsuffixlist ")
    assert len(m["inputs"][0]["sha256"]) == 64
    assert m["status_counts"] == {"nxdomain": 1, "ok": len(scanned["domains"]) - 1}
    assert m["started_at"] and m["finished_at"] and m["resolvers"]


def test_the_snapshot_layout_has_every_table_also_with_nothing_probed(scanned) -> None:
    """SPEC.md's five paths, each read by pandas with its snapshot column: no probe was made in
    this scan (no _mta-sts record, no --probe-smtp), and the probes table is there, empty."""
    out = scanned["dir"]
    assert store.Snapshot(out, "2024-06-01").manifest.exists()
    for table, schema in [("domains", store.DOMAINS_SCHEMA), ("records", store.RECORDS_SCHEMA),
                          ("probes", store.PROBES_SCHEMA), ("lists", None)]:  # fmt: skip
        assert list((out / table / "snapshot=2024-06-01").glob("part-*.parquet")), table
        frame = pd.read_parquet(out / table)
        assert "snapshot" in frame.columns, table
        if schema is not None:
            assert [c for c in frame.columns if c != "snapshot"] == schema.names, table
    assert len(pd.read_parquet(out / "probes")) == 0


def test_every_record_row_belongs_to_a_scanned_domain(scanned) -> None:
    r = scanned["records"]
    assert set(r["domain"]) == set(scanned["domains"].index)
    assert set(r["transport"]) <= {"udp", "tcp", "cache", "none"}


def test_spool_buckets_hold_each_name_once_and_their_sizes_say_so(tmp_path) -> None:
    """The progress total comes from ``bucket_size``, the scan's names from ``bucket_domains``."""
    lst = write_list(tmp_path / "l.txt", ["a.jp", "A.JP.", "b.jp", "c.co.jp", "b.jp", "d.jp"])
    work = tmp_path / "work"
    assert collect.spool([lst], work, 3, lambda msg: None) == (6, 0)
    names = [collect.bucket_domains(work, b) for b in range(3)]
    assert sorted(n for ns in names for n in ns) == ["a.jp", "b.jp", "c.co.jp", "d.jp"]
    assert [collect.bucket_size(work, b) for b in range(3)] == [len(ns) for ns in names]


def test_what_the_scan_leaves_is_out_of_the_collectors_sight(scanned) -> None:
    """The caches a scan fills live until the process exits. Frozen, the interpreter's
    collections at exit do not walk them (they took ~0.5 s after 100,000 domains)."""
    rec = spf.parse_record(LEFT_SPF)  # parsed by the scan, cached since
    assert scanned["domains"].loc["a.example", "spf_record"] == LEFT_SPF
    assert gc.is_tracked(rec)
    assert all(o is not rec for o in gc.get_objects())  # in no generation the collector walks


def test_unanswered_resolver_gives_timeout_not_absent(tmp_path) -> None:
    # (A resolver that answers nothing at all stops the scan: tests/test_validation.py.)
    from tests.fakedns import FakeDns

    server = FakeDns("good", silent=("quiet.co.jp", "other.jp"))
    lst = write_list(tmp_path / "l.txt", ["quiet.co.jp", "other.jp", "heard.jp"])
    try:
        scan(
            [lst],
            tmp_path / "out",
            snapshot="t",
            options=ScanOptions(resolvers=[server.address], timeout=0.2, retries=1),
        )
    finally:
        server.stop()
    d = pd.read_parquet(tmp_path / "out" / "domains").set_index("domain")
    for name in ("quiet.co.jp", "other.jp"):
        row = d.loc[name]
        assert row["status"] == "timeout"
        assert row["mx_status"] == "TIMEOUT"
        assert pd.isna(row["has_mx"])  # unknown, never "no MX"
        assert row["mx_hosts"] is None
        for col in ("spf_status", "dmarc_status", "mta_sts_status", "tlsrpt_status", "bimi_status"):
            assert row[col] not in ("none", "valid"), col
    assert d.loc["heard.jp", "status"] == "ok"
    r = pd.read_parquet(tmp_path / "out" / "records")
    r = r[r["domain"] != "heard.jp"]
    assert set(r["rcode"]) == {"TIMEOUT"}
    assert (r["attempts"] == 2).all()


def test_dead_member_of_fleet_loses_nothing(tmp_path, nsd_factory, silent_resolver) -> None:
    names = [f"d{i}.jp" for i in range(40)]
    server = nsd_factory({"jp": zone("jp"), **{n: zone(n, "@ MX 10 mx") for n in names}})
    lst = write_list(tmp_path / "l.txt", names)
    opts = ScanOptions(resolvers=[silent_resolver, server.address], timeout=0.3, retries=3)
    scan([lst], tmp_path / "out", snapshot="t", options=opts)
    d = pd.read_parquet(tmp_path / "out" / "domains")
    assert (d["status"] == "ok").all() and d["has_mx"].all()
    r = pd.read_parquet(tmp_path / "out" / "records")
    assert set(r["resolver"]) == {server.address}


def test_complete_snapshot_not_scanned_over(tmp_path, nsd_factory) -> None:
    server = nsd_factory({"jp": zone("jp"), "x.jp": zone("x.jp")})
    lst = write_list(tmp_path / "l.txt", ["x.jp"])
    opts = ScanOptions(resolvers=[server.address])
    scan([lst], tmp_path / "out", snapshot="s", options=opts)
    with pytest.raises(ScanError, match="complete"):
        scan([lst], tmp_path / "out", snapshot="s", options=opts)
    scan([lst], tmp_path / "out", snapshot="s", options=opts, force=True)
    assert len(pd.read_parquet(tmp_path / "out" / "domains")) == 1


def test_cli_scan_then_pandas_filters_one_snapshot(tmp_path, nsd_factory) -> None:
    server = nsd_factory(
        {"jp": zone("jp"), "x.jp": zone("x.jp", "@ MX 10 mx"), "y.jp": zone("y.jp")}
    )
    lst = write_list(tmp_path / "l.txt", ["x.jp", "y.jp", "bad name"])
    out = tmp_path / "results"
    runner = CliRunner()
    for label in ("2024-01-01", "2024-04-01"):
        res = runner.invoke(
            main,
            [
                "scan",
                str(lst),
                "--out",
                str(out),
                "--snapshot",
                label,
                "--resolver",
                server.address,
                "--quiet",
            ],
        )
        assert res.exit_code == 0, res.output
        assert f"{lst}:3:" in res.stderr
    all_ = pd.read_parquet(out / "domains")
    assert sorted(all_["snapshot"].astype(str).unique()) == ["2024-01-01", "2024-04-01"]
    one = pd.read_parquet(out / "domains", filters=[("snapshot", "==", "2024-04-01")])
    assert sorted(one["domain"]) == ["x.jp", "y.jp"]
    again = runner.invoke(
        main,
        [
            "scan",
            str(lst),
            "--out",
            str(out),
            "--snapshot",
            "2024-04-01",
            "--resolver",
            server.address,
            "--quiet",
        ],
    )
    assert again.exit_code != 0
    assert "complete" in again.stderr and len(again.stderr.strip().splitlines()) == 1


def test_cli_unreadable_list_is_one_line_error(tmp_path) -> None:
    res = CliRunner().invoke(
        main, ["scan", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "o"), "--quiet"]
    )
    assert res.exit_code != 0
    assert "nope.txt" in res.stderr and "Traceback" not in res.stderr
