"""Snapshots at fsspec URLs: S3 (a moto server on loopback), memory://, file:// across Dask workers.

Every scan here runs against NSD and is compared with a scan of the same list into a local folder.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import fsspec
import pandas as pd
import pytest

from mailauth_survey import report, store
from mailauth_survey.analysis import reanalyze
from mailauth_survey.collect import ScanCounters, ScanError, ScanOptions, retry_errors, scan
from tests.conftest import write_list
from tests.nsd import free_port
from tests.test_resume import NAMES, _population

BUCKET = "mailauth-test"
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    """A moto S3 server on loopback with one bucket; fsspec's config points s3fs at it.

    The endpoint goes through fsspec's own configuration (as ``FSSPEC_S3_ENDPOINT_URL`` would set
    it), the credentials through the usual AWS variables: no option of the code is involved.
    """
    import moto.server as moto_server  # the test extra; `make test` installs it (and s3fs)

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved_env = {k: os.environ.get(k) for k in FAKE_AWS}
    saved_conf = fsspec.config.conf.get("s3")
    os.environ.update(FAKE_AWS)
    fsspec.config.conf["s3"] = {"endpoint_url": endpoint}
    try:
        fs = fsspec.filesystem("s3")
        fs.mkdir(BUCKET)
        yield endpoint
    finally:
        if saved_conf is None:
            fsspec.config.conf.pop("s3", None)
        else:
            fsspec.config.conf["s3"] = saved_conf
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


@pytest.fixture
def small_buckets(monkeypatch):
    monkeypatch.setattr("mailauth_survey.collect.spool.BUCKET_BYTES", 300)


@pytest.fixture(scope="module")
def population(tmp_path_factory) -> Iterator[dict]:
    """NSD serving the population, its list, and one reference scan into a local folder."""
    from tests.nsd import Nsd

    base = tmp_path_factory.mktemp("fsspec")
    server = Nsd(base / "nsd", _population())
    try:
        lst = write_list(base / "list.txt", NAMES)
        opts = ScanOptions(resolvers=[server.address], qps=0)
        mp = pytest.MonkeyPatch()
        mp.setattr("mailauth_survey.collect.spool.BUCKET_BYTES", 300)
        try:
            local = scan([lst], base / "local", snapshot="q", options=opts)
        finally:
            mp.undo()
        yield {"server": server, "list": lst, "local": base / "local", "manifest": local}
    finally:
        server.stop()


def _frames(where: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(domains, records) read by pandas through fsspec, in a comparable form.

    ``filesystem=``: given a bare ``s3://`` URL, pandas would use pyarrow's own S3 client, which
    does not read fsspec's configuration.
    """
    loc = store.Location.of(where)
    fs, path = loc.fs, loc.path
    d = pd.read_parquet(f"{path}/domains", filesystem=fs).drop(columns=["scanned_at", "snapshot"])
    d = d.sort_values("domain").reset_index(drop=True)
    r = pd.read_parquet(f"{path}/records", filesystem=fs)
    r = r[["domain", "qname", "qtype", "rcode", "answers"]]
    r["answers"] = r["answers"].map(tuple)
    r = r.sort_values(["domain", "qname", "qtype"]).reset_index(drop=True)
    return d, r


def _loaded(where) -> pd.DataFrame:
    df = report.load(where).drop(columns=["scanned_at"])
    return df.sort_values("domain").reset_index(drop=True)


def _assert_same_snapshot(where: str, local) -> None:
    d1, r1 = _frames(str(local))
    d2, r2 = _frames(where)
    pd.testing.assert_frame_equal(d1, d2)
    pd.testing.assert_frame_equal(r1, r2)
    pd.testing.assert_frame_equal(_loaded(local), _loaded(where))


def _keys(prefix: str) -> list[str]:
    fs = fsspec.filesystem("s3")
    fs.invalidate_cache()
    return sorted(fs.find(f"{BUCKET}/{prefix}"))


def test_location_of_paths_and_urls(tmp_path) -> None:
    local = store.location(tmp_path)
    assert local.local and local.path == str(tmp_path) and str(local) == str(tmp_path)
    assert store.location(f"file://{tmp_path}") == local
    mem = store.location("memory://loc-test/out")
    assert not mem.local and mem.object_store and mem.process_local
    snap = store.Snapshot("memory://loc-test/out", "q")
    d, r = snap.domains, snap.records
    assert str(d) == "memory:///loc-test/out/domains/snapshot=q" and r.name == "snapshot=q"
    assert d.parent.parent == mem and d.glob("part-*.parquet") == []


def test_scan_into_s3_equals_local_scan(s3, population, small_buckets) -> None:
    url = f"s3://{BUCKET}/equal"
    before = set(os.listdir(tempfile.gettempdir()))
    opts = ScanOptions(resolvers=[population["server"].address], qps=0)
    m = scan([population["list"]], url, snapshot="q", options=opts)
    assert m["complete"] and m["domains"] == len(NAMES)
    assert m["status_counts"] == population["manifest"]["status_counts"]
    _assert_same_snapshot(url, population["local"])
    snap = store.Snapshot(url, "q")
    assert snap.read_manifest() == json.loads(snap.manifest.read_text())
    assert report.snapshots(url) == ["q"]
    keys = _keys("equal")
    assert not [k for k in keys if ".tmp-" in k or "/.work" in k or ".write-test" in k]
    assert len([k for k in keys if "/domains/" in k and k.endswith(".parquet")]) == m["buckets"]
    # The spool went to a local temporary folder, removed at the end.
    assert not [n for n in set(os.listdir(tempfile.gettempdir())) - before if "mailauth" in n]
    # A finished snapshot is not overwritten silently, on S3 as on disk.
    with pytest.raises(ScanError, match="is complete"):
        scan([population["list"]], url, snapshot="q", options=opts)


def test_resume_on_s3_skips_finished_parts(s3, population, small_buckets) -> None:
    url = f"s3://{BUCKET}/resume"
    opts = ScanOptions(resolvers=[population["server"].address], qps=0)
    scan([population["list"]], url, snapshot="q", options=opts)
    # "Interrupted": the manifest not complete yet, one bucket's domains part never written.
    manifest = store.Snapshot(url, "q").read_manifest()
    manifest["complete"] = False
    store.Snapshot(url, "q").write_manifest(manifest)
    ddir = store.Snapshot(url, "q").domains
    parts = ddir.glob("part-*.parquet")
    assert len(parts) > 2
    lost = parts[1]
    lost_rows = store.num_rows(lost)
    lost.unlink()
    fs = fsspec.filesystem("s3")
    etags = {p.name: fs.info(p.path)["ETag"] for p in ddir.glob("part-*.parquet")}

    seen: list[ScanCounters] = []
    m = scan([population["list"]], url, snapshot="q", options=opts, on_progress=seen.append)
    assert m["complete"] and m["domains"] == len(NAMES)
    assert seen[-1].skipped == len(NAMES) - lost_rows  # only the lost bucket was scanned again
    fs.invalidate_cache()
    after = {p.name: fs.info(p.path)["ETag"] for p in ddir.glob("part-*.parquet")}
    assert set(after) == set(etags) | {lost.name}
    assert {k: after[k] for k in etags} == etags  # the finished parts were not rewritten
    _assert_same_snapshot(url, population["local"])


def test_reanalyze_and_retry_errors_on_s3(s3, population, small_buckets) -> None:
    url = f"s3://{BUCKET}/reanalyze"
    opts = ScanOptions(resolvers=[population["server"].address], qps=0)
    scan([population["list"]], url, snapshot="q", options=opts)
    before = _loaded(url)
    assert reanalyze(url, "q") == len(NAMES)
    pd.testing.assert_frame_equal(before, _loaded(url))
    # Nothing failed, so --retry-errors rewrites nothing but records that it ran.
    m = retry_errors(url, "q", options=opts)
    assert m["retries"][0]["domains"] == 0
    pd.testing.assert_frame_equal(before, _loaded(url))


def test_force_deletes_the_parts_on_s3(s3, population, small_buckets, tmp_path) -> None:
    url = f"s3://{BUCKET}/force"
    opts = ScanOptions(resolvers=[population["server"].address], qps=0)
    scan([population["list"]], url, snapshot="q", options=opts)
    stale = store.Snapshot(url, "q").domains / "part-09999.parquet"
    stale.write_bytes(b"not parquet")  # from an earlier scan with more buckets
    scan([population["list"]], url, snapshot="q", options=opts, force=True)
    assert not stale.exists()
    _assert_same_snapshot(url, population["local"])


def test_cli_scan_and_report_with_fsspec_environment(s3, population, tmp_path) -> None:
    """The CLI takes the URL as --out and DIR; the endpoint comes from FSSPEC_S3_ENDPOINT_URL."""
    url = f"s3://{BUCKET}/cli"
    env = {
        **os.environ,
        **FAKE_AWS,
        "FSSPEC_S3_ENDPOINT_URL": s3,
        "MAILAUTH_SURVEY_BUCKET_BYTES": "300",
    }
    cli = [sys.executable, "-m", "mailauth_survey.cli"]
    res = subprocess.run(
        [*cli, "scan", str(population["list"]), "--out", url, "--snapshot", "q",
         "--resolver", population["server"].address, "--qps", "0", "--quiet"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    ours = subprocess.run(
        [*cli, "report", url, "--format", "json"], env=env, capture_output=True, text=True
    )
    theirs = subprocess.run(
        [*cli, "report", str(population["local"]), "--format", "json"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert ours.returncode == 0, ours.stderr
    assert json.loads(ours.stdout) == json.loads(theirs.stdout)


def test_scan_into_memory_equals_local_scan(population, small_buckets) -> None:
    url = "memory://mailauth-test/scan"
    fs = fsspec.filesystem("memory")
    if fs.exists("/mailauth-test"):
        fs.rm("/mailauth-test", recursive=True)
    opts = ScanOptions(resolvers=[population["server"].address], qps=0)
    m = scan([population["list"]], url, snapshot="q", options=opts)
    assert m["complete"] and m["domains"] == len(NAMES)
    _assert_same_snapshot(url, population["local"])
    assert reanalyze(url, "q") == len(NAMES)
    pd.testing.assert_frame_equal(_loaded(url), _loaded(population["local"]))
    assert not [k for k in fs.find("/mailauth-test/scan") if ".tmp-" in k or ".work" in k]
    # Other processes would not see memory://: no --workers or --cluster with it.
    with pytest.raises(ScanError, match="this process only"):
        scan([population["list"]], "memory://mailauth-test/w", snapshot="q",
             options=ScanOptions(resolvers=[population["server"].address], workers=2))  # fmt: skip


def test_report_errors_for_urls(s3) -> None:
    with pytest.raises(report.ReportError, match="no snapshots here"):
        report.load(f"s3://{BUCKET}/nothing-here")
    with pytest.raises(report.ReportError, match="no snapshots here"):
        report.load("memory://mailauth-test/nothing-here")


def test_cluster_scan_into_file_url_equals_local(population, small_buckets, tmp_path) -> None:
    url = f"file://{tmp_path}/dask"
    opts = ScanOptions(resolvers=[population["server"].address], qps=0, cluster="local:2")
    m = scan([population["list"]], url, snapshot="q", options=opts)
    assert {s["shard"] for s in m["shards"]} == set(range(m["buckets"]))
    _assert_same_snapshot(url, population["local"])
    assert not (tmp_path / "dask" / ".work").exists()


def test_cluster_scan_into_s3_equals_local(s3, population, small_buckets) -> None:
    """Dask worker processes write their shards to S3: the endpoint travels with the Location."""
    url = f"s3://{BUCKET}/dask"
    opts = ScanOptions(resolvers=[population["server"].address], qps=0, cluster="local:2")
    m = scan([population["list"]], url, snapshot="q", options=opts)
    assert len(m["shards"]) == m["buckets"] and m["domains"] == len(NAMES)
    assert sum(s["domains"] for s in m["shards"]) == len(NAMES)
    _assert_same_snapshot(url, population["local"])


def test_snapshot_handle_names_every_table_and_pickles(tmp_path) -> None:
    """One place knows the layout (SPEC.md): DIR/<table>/snapshot=LABEL, the manifest in domains."""
    snap = store.Snapshot("memory://snap-test/out", "2026Q4")
    assert [str(f) for f in snap.folders] == [
        f"memory:///snap-test/out/{t}/snapshot=2026Q4"
        for t in ("domains", "records", "probes", "lists")
    ]
    assert snap.manifest == snap.domains / "_manifest.json" and snap.read_manifest() is None
    snap.write_manifest({"complete": False})
    assert snap.read_manifest() == {"complete": False}
    assert pickle.loads(pickle.dumps(snap)) == snap  # handed to worker processes and Dask tasks
    with pytest.raises(ValueError, match="no table 'prob'"):
        snap.table("prob")
