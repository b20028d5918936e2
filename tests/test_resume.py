"""Never lose a scan: SIGKILL mid-way and resume; --retry-errors in place."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from mailauth_survey import store
from mailauth_survey.collect import ScanError, ScanOptions, retry_errors, scan
from tests.conftest import write_list
from tests.nsd import zone

N = 300
NAMES = [f"d{i:03d}.jp" for i in range(N)] + [f"gone{i}.jp" for i in range(20)]


def _population() -> dict[str, str]:
    records = []
    for i in range(N):
        records += [f"d{i:03d} MX 10 mx{i % 7}.hosting.jp.", f'd{i:03d} TXT "v=spf1 mx -all"']
        if i % 3 == 0:
            records.append(f'_dmarc.d{i:03d} TXT "v=DMARC1; p=none"')
    hosting = [f"mx{k} A 192.0.2.{k + 1}" for k in range(7)]
    return {"jp": zone("jp", *records), "hosting.jp": zone("hosting.jp", *hosting)}


def _cmd(lst, out, address, qps) -> list[str]:
    # Few domains in flight, so the small buckets finish one after the other.
    return [
        sys.executable, "-m", "mailauth_survey.cli", "scan", str(lst), "--out", str(out),
        "--snapshot", "q", "--resolver", address, "--qps", str(qps), "--concurrency", "8", "--quiet",
    ]  # fmt: skip


def _comparable(out) -> tuple[pd.DataFrame, pd.DataFrame]:
    d = pd.read_parquet(out / "domains").drop(columns=["scanned_at", "snapshot"])
    d = d.sort_values("domain").reset_index(drop=True)
    r = pd.read_parquet(out / "records")[["domain", "qname", "qtype", "rcode", "answers"]]
    r["answers"] = r["answers"].map(tuple)
    r = r.sort_values(["domain", "qname", "qtype"]).reset_index(drop=True)
    return d, r


def test_sigkill_then_resume_equals_uninterrupted_scan(tmp_path, nsd_factory) -> None:
    server = nsd_factory(_population())
    lst = write_list(tmp_path / "list.txt", NAMES)
    env = {**os.environ, "MAILAUTH_SURVEY_BUCKET_BYTES": "200"}  # many small parts
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(lst, killed, server.address, 300), env=env, stderr=subprocess.PIPE)
    ddir = store.Snapshot(killed, "q").domains
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(ddir.glob("part-*.parquet"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    parts_before = len(list(ddir.glob("part-*.parquet")))
    assert parts_before >= 3
    manifest = json.loads(store.Snapshot(killed, "q").manifest.read_text())
    assert manifest["complete"] is False  # only the end of a scan marks it complete

    resumed = subprocess.run(
        _cmd(lst, killed, server.address, 0), env=env, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(store.Snapshot(killed, "q").manifest.read_text())["complete"] is True

    whole = tmp_path / "whole"
    done = subprocess.run(
        _cmd(lst, whole, server.address, 0), env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr

    d1, r1 = _comparable(killed)
    d2, r2 = _comparable(whole)
    assert d1["domain"].is_unique and len(d1) == len(NAMES)
    pd.testing.assert_frame_equal(d1, d2)
    pd.testing.assert_frame_equal(r1, r2)
    assert not list(ddir.glob(".part-*"))  # no temporary part left behind


def test_retry_errors_rescans_only_failed_domains_in_place(tmp_path, nsd_factory) -> None:
    from tests.fakedns import FakeDns

    names = ["d000.jp", "d001.jp", "d002.jp"]
    lst = write_list(tmp_path / "l.txt", [*names, "d003.jp"])
    out = tmp_path / "out"
    flaky = FakeDns("good", silent=tuple(names))  # d003.jp answered: the scan heard replies
    try:
        scan(
            [lst],
            out,
            snapshot="q",
            options=ScanOptions(resolvers=[flaky.address], timeout=0.1, retries=0),
        )
    finally:
        flaky.stop()
    before = pd.read_parquet(out / "domains").set_index("domain")
    assert set(before.loc[names, "status"]) == {"timeout"}
    assert before.loc["d003.jp", "status"] == "ok"

    server = nsd_factory(_population())
    manifest = retry_errors(out, "q", options=ScanOptions(resolvers=[server.address]))
    after = pd.read_parquet(out / "domains").set_index("domain")
    assert sorted(after.index) == [*names, "d003.jp"]
    assert set(after["status"]) == {"ok"}
    assert all(
        list(h) == [f"mx{i % 7}.hosting.jp"] for i, h in enumerate(after.loc[names, "mx_hosts"])
    )
    r = pd.read_parquet(out / "records")
    assert "TIMEOUT" not in set(r["rcode"])  # the old answers were replaced, not appended
    assert manifest["status_counts"] == {"ok": 4}
    assert manifest["retries"][0]["domains"] == 3


def test_workers_give_the_same_snapshot_as_one_process(tmp_path, nsd_factory) -> None:
    server = nsd_factory(_population())
    lst = write_list(tmp_path / "list.txt", NAMES)
    env = {**os.environ, "MAILAUTH_SURVEY_BUCKET_BYTES": "400"}
    for out, workers in (("one", "1"), ("two", "2")):
        cmd = _cmd(lst, tmp_path / out, server.address, 0) + ["--workers", workers]
        res = subprocess.run(cmd, env=env, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
    d1, r1 = _comparable(tmp_path / "one")
    d2, r2 = _comparable(tmp_path / "two")
    pd.testing.assert_frame_equal(d1, d2)
    pd.testing.assert_frame_equal(r1, r2)
    m = json.loads(store.Snapshot(tmp_path / "two", "q").manifest.read_text())
    assert m["options"]["workers"] == 2 and m["domains"] == len(NAMES)
    m1 = json.loads(store.Snapshot(tmp_path / "one", "q").manifest.read_text())
    # Every process's queries are counted (this one's share too): two processes each keep their
    # own cache of shared names, so they ask at least as much as one.
    assert m["queries"]["queries"] >= m1["queries"]["queries"] > 0
    assert m["queries"]["replies"] >= m1["queries"]["replies"] > 0


def test_workers_started_before_spooling_all_end(tmp_path, nsd_factory, monkeypatch) -> None:
    """The other processes start while the list is spooled: whether they get buckets, get none
    (more workers than buckets) or the scan fails before handing any out, none is left running."""
    import multiprocessing

    from mailauth_survey.collect import spool as collect

    server = nsd_factory(_population())
    lst = write_list(tmp_path / "list.txt", NAMES[:30])
    opts = ScanOptions(resolvers=[server.address], qps=0, concurrency=8, workers=3)
    monkeypatch.setattr(collect, "BUCKET_BYTES", 150)  # two buckets, three workers
    m = scan([lst], tmp_path / "two", snapshot="q", options=opts)
    assert m["buckets"] == 2 and m["domains"] == 30 and m["status_counts"] == {"ok": 30}
    assert multiprocessing.active_children() == []

    def broken_spool(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(collect, "spool", broken_spool)
    with pytest.raises(OSError, match="disk full"):
        scan([lst], tmp_path / "broken", snapshot="q", options=opts)
    assert multiprocessing.active_children() == []


def test_workers_waiting_for_buckets_end_when_the_parent_dies(tmp_path) -> None:
    """A scan killed while it spools (before handing out buckets) leaves no worker waiting."""
    script = f"""
import os, sys
from pathlib import Path
from mailauth_survey import store
from mailauth_survey.collect import ScanOptions
from mailauth_survey.collect.workers import Workers
d = store.Location.of({str(tmp_path)!r})
w = Workers(Path({str(tmp_path)!r}), store.Snapshot(d, 'q'), ScanOptions(workers=2))
print(w.procs[0].pid, flush=True)
os._exit(0)  # as if killed: no clean-up, no orders
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    pid = int(res.stdout.split()[0])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    pytest.fail("the worker outlived its parent")


def test_workers_stop_in_one_line_when_no_resolver_answers(tmp_path, silent_resolver) -> None:
    """The scanning parent and its worker both see the silence; the scan ends with one line."""
    lst = write_list(tmp_path / "list.txt", NAMES)
    env = {**os.environ, "MAILAUTH_SURVEY_BUCKET_BYTES": "400"}
    cmd = _cmd(lst, tmp_path / "out", silent_resolver, 0) + [
        "--workers", "2", "--timeout", "0.2", "--retries", "0", "--dead-after", "1",
    ]  # fmt: skip
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no resolver answered" in lines[0], res.stderr
    ddir = store.Snapshot(tmp_path / "out", "q").domains
    assert not list(ddir.glob("part-*.parquet"))


def test_no_resolver_answering_stops_the_scan_and_stores_nothing(
    tmp_path, nsd_factory, silent_resolver
) -> None:
    lst = write_list(tmp_path / "l.txt", NAMES[:40])
    out = tmp_path / "out"
    opts = ScanOptions(
        resolvers=[silent_resolver], timeout=0.2, retries=0, dead_after=1.0, concurrency=8
    )
    started = time.monotonic()
    with pytest.raises(ScanError, match="no resolver answered") as err:
        scan([lst], out, snapshot="q", options=opts)
    assert time.monotonic() - started < 30
    assert "\n" not in str(err.value)
    snap = store.Snapshot(out, "q")
    ddir, rdir = snap.domains, snap.records
    assert not list(ddir.glob("part-*.parquet")) and not list(rdir.glob("part-*.parquet"))
    # With a resolver back, the same scan resumes and completes.
    server = nsd_factory(_population())
    scan([lst], out, snapshot="q", options=ScanOptions(resolvers=[server.address]))
    d = pd.read_parquet(out / "domains")
    assert sorted(d["domain"]) == sorted(NAMES[:40]) and (d["status"] == "ok").all()


def test_resume_without_snapshot_continues_the_unfinished_one_of_the_same_lists(
    tmp_path, nsd_factory, monkeypatch
) -> None:
    """The default label is the UTC date of the scan's start (SPEC.md): a scan interrupted
    before midnight and run again after it, with the same lists and no --snapshot, continues
    its snapshot rather than starting another one. A scan of other lists starts its own."""
    import mailauth_survey.collect.manifest as manifests
    from mailauth_survey.policies.dkim import SELECTORS

    server = nsd_factory(_population())
    lst = write_list(tmp_path / "list.txt", NAMES[:40])
    monkeypatch.setenv("MAILAUTH_SURVEY_BUCKET_BYTES", "200")
    options = ScanOptions(resolvers=[server.address], qps=0, concurrency=8)
    out = tmp_path / "results"
    monkeypatch.setattr(manifests, "default_label", lambda: "2026-12-03")
    first = scan([lst], out, options=options)
    assert first["snapshot"] == "2026-12-03" and first["complete"]
    assert first["dkim_selectors"] == list(SELECTORS)  # the methods name them
    # As if stopped before its end: a part missing, the manifest not complete.
    snap = store.Snapshot(out, "2026-12-03")
    manifest = snap.read_manifest()
    manifest["complete"] = False
    snap.write_manifest(manifest)
    parts = sorted(snap.domains.glob("part-*.parquet"))
    parts[-1].unlink()
    monkeypatch.setattr(manifests, "default_label", lambda: "2026-12-04")  # after midnight UTC
    said: list[str] = []
    resumed = scan([lst], out, options=options, on_error=said.append)
    assert resumed["snapshot"] == "2026-12-03" and resumed["complete"]
    assert resumed["started_at"] == first["started_at"]
    assert store.list_snapshots(out) == ["2026-12-03"]
    assert len(pd.read_parquet(out / "domains")) == 40
    assert any("2026-12-03" in line for line in said), said
    # Other lists: a snapshot of their own, today's.
    other = write_list(tmp_path / "other.txt", NAMES[40:50])
    assert scan([other], out, options=options)["snapshot"] == "2026-12-04"
    # An unfinished snapshot of last quarter is not mixed into a new scan: it is named.
    manifest = snap.read_manifest()
    manifest["complete"], manifest["started_at"] = False, "2026-09-01T10:00:00+00:00"
    snap.write_manifest(manifest)
    monkeypatch.setattr(manifests, "default_label", lambda: "2026-12-05")
    said.clear()
    assert scan([lst], out, options=options, on_error=said.append)["snapshot"] == "2026-12-05"
    assert any("--snapshot 2026-12-03" in line for line in said), said
