"""Scans on a Dask cluster (distributed.LocalCluster, worker processes) against NSD."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import distributed  # the cluster extra; `make test` installs it
import pandas as pd
import pytest

from mailauth_survey import store
from mailauth_survey.collect import ScanOptions, scan
from tests.conftest import write_list
from tests.test_resume import NAMES, _comparable, _population


@pytest.fixture
def small_buckets(monkeypatch):
    monkeypatch.setattr("mailauth_survey.collect.spool.BUCKET_BYTES", 300)


def test_sharded_scan_equals_single_process(tmp_path, nsd_factory, small_buckets) -> None:
    server = nsd_factory(_population())
    lst = write_list(tmp_path / "list.txt", NAMES)
    opts = ScanOptions(resolvers=[server.address], qps=0)
    scan([lst], tmp_path / "one", snapshot="q", options=opts)
    m = scan(
        [lst],
        tmp_path / "dask",
        snapshot="q",
        options=ScanOptions(resolvers=[server.address], qps=0, cluster="local:2"),
    )
    d1, r1 = _comparable(tmp_path / "one")
    d2, r2 = _comparable(tmp_path / "dask")
    pd.testing.assert_frame_equal(d1, d2)
    pd.testing.assert_frame_equal(r1, r2)
    assert len(m["shards"]) == m["buckets"] > 1
    assert {s["shard"] for s in m["shards"]} == set(range(m["buckets"]))
    assert len({s["worker"] for s in m["shards"]}) >= 1
    assert sum(s["domains"] for s in m["shards"]) == len(NAMES)


def test_worker_killed_mid_scan_every_domain_once(tmp_path, nsd_factory, small_buckets) -> None:
    server = nsd_factory(_population())
    lst = write_list(tmp_path / "list.txt", NAMES)
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = distributed.Client(cluster)
    try:
        pids = client.run(os.getpid)
        out = tmp_path / "out"
        opts = ScanOptions(resolvers=[server.address], qps=250, cluster=cluster.scheduler_address)
        result: dict = {}
        t = threading.Thread(
            target=lambda: result.update(m=scan([lst], out, snapshot="q", options=opts))
        )
        t.start()
        ddir = store.Snapshot(out, "q").domains
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(list(ddir.glob("part-*.parquet"))) < 2:
            time.sleep(0.05)
        os.kill(next(iter(pids.values())), signal.SIGKILL)  # a worker dies mid-shard
        t.join(180)
        assert not t.is_alive()
        assert "m" in result
    finally:
        client.close()
        cluster.close()
    d = pd.read_parquet(out / "domains")
    assert d["domain"].is_unique and sorted(d["domain"]) == sorted(NAMES)
    r = pd.read_parquet(out / "records")
    assert set(r["domain"]) == set(NAMES)
    assert json.loads(store.Snapshot(out, "q").manifest.read_text())["complete"] is True
