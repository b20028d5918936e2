"""`scan --cluster` as an operator runs it (issue 20, point 9): the scheduler and its workers are
checked before anything is written, the shard record survives a killed command, the command's
tasks end with it, the progress counts the whole snapshot, no dashboard warning."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import distributed
import pytest
from click.testing import CliRunner

from mailauth_survey import store
from mailauth_survey.cli import main
from mailauth_survey.collect import ScanCounters, ScanOptions, scan
from tests.conftest import write_list
from tests.test_resume import NAMES, _cmd, _population


def _closed_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def no_workers():
    """A real Dask scheduler with no worker."""
    cluster = distributed.LocalCluster(
        n_workers=0, processes=True, dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    )  # fmt: skip
    yield cluster.scheduler_address
    cluster.close()


def test_unreachable_scheduler_is_one_line_before_anything_is_written(tmp_path) -> None:
    lst = write_list(tmp_path / "l.txt", NAMES[:5])
    out = tmp_path / "results"
    address = f"tcp://127.0.0.1:{_closed_tcp_port()}"
    res = CliRunner().invoke(main, ["scan", str(lst), "--out", str(out), "--cluster", address])
    assert res.exit_code != 0
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"Error: --cluster {address}: no Dask scheduler")
    assert not out.exists()  # (it spooled the list and wrote an empty snapshot first)


def test_scheduler_without_workers_waits_visibly_and_gives_up(tmp_path, no_workers) -> None:
    """It waited silently, forever (a subprocess: the old code never ends)."""
    lst = write_list(tmp_path / "l.txt", NAMES[:5])
    out = tmp_path / "results"
    cmd = [sys.executable, "-m", "mailauth_survey.cli", "scan", str(lst), "--out", str(out),
           "--cluster", no_workers, "--cluster-wait", "2", "--quiet"]  # fmt: skip
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("scan --cluster waited forever for a worker")
    assert res.returncode != 0
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert lines[0] == f"waiting up to 2 s for a Dask worker to join the scheduler at {no_workers}"
    assert lines[-1].startswith(f"Error: --cluster {no_workers}: no worker joined")
    assert len(lines) == 2, res.stderr
    assert not out.exists()


def test_local_cluster_without_a_dashboard_does_not_warn_about_port_8787(tmp_path, nsd_factory):
    server = nsd_factory(_population())
    lst = write_list(tmp_path / "l.txt", NAMES[:10])
    busy = socket.socket()
    try:
        busy.bind(("127.0.0.1", 8787))  # (if another process has it, it is taken all the same)
        busy.listen()
    except OSError:
        pass
    try:
        cmd = _cmd(lst, tmp_path / "out", server.address, 0) + ["--cluster", "local:1"]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    finally:
        busy.close()
    assert res.returncode == 0, res.stderr
    assert "8787" not in res.stderr and "warn" not in res.stderr.lower(), res.stderr


def test_killed_cluster_scan_keeps_every_shard_record_and_its_tasks_end(
    tmp_path, nsd_factory
) -> None:
    server = nsd_factory(_population())
    lst = write_list(tmp_path / "list.txt", NAMES)
    out = tmp_path / "out"
    env = {**os.environ, "MAILAUTH_SURVEY_BUCKET_BYTES": "300"}
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    )  # fmt: skip
    client = distributed.Client(cluster)
    try:
        cmd = _cmd(lst, out, server.address, 60) + ["--cluster", cluster.scheduler_address]
        proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
        ddir = store.Snapshot(out, "q").domains
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(ddir.glob("part-*.parquet")) < 2:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        first = {p.name for p in ddir.glob("part-*.parquet")}
        assert first
        # The command is gone: its tasks are cancelled and stop at their next progress check
        # (they would otherwise go on until their shard is done, at 60 queries/s).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            busy = client.run(lambda dask_worker: len(dask_worker.state.executing))
            if not any(busy.values()):
                break
            time.sleep(0.2)
        assert not any(busy.values()), busy

        resumed = subprocess.run(
            _cmd(lst, out, server.address, 0) + ["--cluster", cluster.scheduler_address],
            env=env, capture_output=True, text=True,
        )  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr
    finally:
        client.close()
        cluster.close()
    manifest = store.Snapshot(out, "q").read_manifest()
    assert manifest["complete"] is True
    shards = manifest["shards"]
    assert [s["shard"] for s in shards] == list(range(manifest["buckets"]))  # both runs'
    assert all(s["worker"].startswith("tcp://") for s in shards)
    assert sum(s["domains"] for s in shards) == len(NAMES)


@pytest.mark.parametrize("how", ["one process", "workers", "cluster"])
def test_progress_on_a_resume_counts_the_whole_snapshot(
    tmp_path, nsd_factory, monkeypatch, how
) -> None:
    """A resume's progress line counted only this run's statuses (nxdomain 125) while the
    summary counted the snapshot's (198): both count the snapshot."""
    server = nsd_factory(_population())
    lst = write_list(tmp_path / "list.txt", NAMES)
    out = tmp_path / "out"
    monkeypatch.setattr("mailauth_survey.collect.spool.BUCKET_BYTES", 400)
    opts = ScanOptions(resolvers=[server.address], qps=0)
    scan([lst], out, snapshot="q", options=opts)
    snap = store.Snapshot(out, "q")
    manifest = snap.read_manifest()
    # As if the first scan had been cut short: one part missing, the manifest incomplete.
    parts = snap.domains.glob("part-*.parquet")
    assert len(parts) > 2
    parts[0].unlink()
    manifest["complete"] = False
    snap.write_manifest(manifest)
    seen: list[ScanCounters] = []
    opts = ScanOptions(
        resolvers=[server.address], qps=0,
        workers=2 if how == "workers" else 1,
        cluster="local:2" if how == "cluster" else None,
    )  # fmt: skip
    again = scan([lst], out, snapshot="q", options=opts, on_progress=seen.append)
    last = seen[-1]
    assert last.done == last.total == len(NAMES)
    assert dict(last.by_status) == again["status_counts"]
    assert sum(last.by_status.values()) == len(NAMES)


def test_workers_joining_later_never_run_more_shards_than_the_caps_were_split_for(
    tmp_path, nsd_factory, monkeypatch
) -> None:
    """--qps and --concurrency were split by the workers present at the start, and every shard
    submitted at once: a worker that joined later ran shards beside them, each with a whole
    share of the caps. Now no more shards run at once than there were worker threads at the
    start (the shard records' times show it)."""
    import threading

    monkeypatch.setattr("mailauth_survey.collect.spool.BUCKET_BYTES", 300)
    server = nsd_factory(_population())
    lst = write_list(tmp_path / "list.txt", NAMES)
    out = tmp_path / "out"
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    )  # fmt: skip
    client = distributed.Client(cluster)
    try:
        opts = ScanOptions(resolvers=[server.address], qps=100, cluster=cluster.scheduler_address)
        result: dict = {}
        t = threading.Thread(
            target=lambda: result.update(m=scan([lst], out, snapshot="q", options=opts))
        )
        t.start()
        ddir = store.Snapshot(out, "q").domains
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not ddir.glob("part-*.parquet"):
            time.sleep(0.05)
        cluster.scale(2)  # a second worker joins mid-scan
        client.wait_for_workers(2, timeout=60)
        t.join(300)
        assert not t.is_alive() and "m" in result
    finally:
        client.close()
        cluster.close()
    shards = result["m"]["shards"]
    assert len(shards) == result["m"]["buckets"] > 3
    events = sorted([(s["started"], 1) for s in shards] + [(s["finished"], -1) for s in shards])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak == 1  # one worker thread at the start: one shard at a time, all the caps its
