"""`scan --force` never loses the old snapshot: the rescan is written beside it and replaces it
only once complete (issue 20, point 1)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pandas as pd
from click.testing import CliRunner

from mailauth_survey import store
from mailauth_survey.cli import main
from tests.conftest import write_list
from tests.test_resume import NAMES, _cmd, _comparable, _population


def test_sigkill_mid_forced_rescan_leaves_the_old_snapshot_readable_and_the_rescan_resumable(
    tmp_path, nsd_factory
) -> None:
    server = nsd_factory(_population())
    env = {**os.environ, "MAILAUTH_SURVEY_BUCKET_BYTES": "200"}  # many small parts
    out = tmp_path / "results"
    old_list = write_list(tmp_path / "old.txt", NAMES[:60])
    new_list = write_list(tmp_path / "new.txt", NAMES)
    done = subprocess.run(_cmd(old_list, out, server.address, 0), env=env, capture_output=True)
    assert done.returncode == 0, done.stderr
    old_domains, old_records = _comparable(out)
    assert len(old_domains) == 60

    forced = _cmd(new_list, out, server.address, 300) + ["--force"]
    proc = subprocess.Popen(forced, env=env, stderr=subprocess.PIPE)
    staged = store.Snapshot(store.rescan_root(out, "q"), "q").domains
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(staged.glob("part-*.parquet")) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = {p.name: os.stat(p.path).st_ino for p in staged.glob("part-*.parquet")}
    assert len(kept) >= 3  # killed mid-way: the rescan had begun writing

    # The old snapshot is as it was: complete, readable by pandas and by `report`.
    manifest = store.Snapshot(out, "q").read_manifest()
    assert manifest["complete"] is True and manifest["inputs"][0]["path"] == str(old_list)
    d, r = _comparable(out)
    pd.testing.assert_frame_equal(d, old_domains)
    pd.testing.assert_frame_equal(r, old_records)
    report = CliRunner().invoke(main, ["report", str(out), "--format", "json"])
    assert report.exit_code == 0, report.output

    # The same forced command again resumes the rescan (the parts written before the kill are
    # kept, not scanned again) and puts it in place of the old snapshot.
    resumed = subprocess.run(
        _cmd(new_list, out, server.address, 0) + ["--force"], env=env, capture_output=True
    )
    assert resumed.returncode == 0, resumed.stderr
    ddir = store.Snapshot(out, "q").domains
    now = {p.name: os.stat(p.path).st_ino for p in ddir.glob("part-*.parquet")}
    assert all(now.get(name) == inode for name, inode in kept.items())
    d, r = _comparable(out)
    assert sorted(d["domain"]) == sorted(NAMES) and d["domain"].is_unique
    assert set(r["domain"]) == set(NAMES)
    assert store.Snapshot(out, "q").read_manifest()["inputs"][0]["path"] == str(new_list)
    assert not (out / store.RESCAN_FOLDER).exists()


def test_a_swap_cut_short_is_finished_by_the_next_scan(tmp_path, nsd_factory, monkeypatch) -> None:
    """Killed between the tables of the swap: the next scan of the label finishes it first."""
    server = nsd_factory(_population())
    out = tmp_path / "results"
    first = write_list(tmp_path / "first.txt", NAMES[:5])
    second = write_list(tmp_path / "second.txt", NAMES[5:12])
    base = ["--out", str(out), "--snapshot", "q", "--resolver", server.address, "--quiet"]
    assert CliRunner().invoke(main, ["scan", str(first), *base]).exit_code == 0

    real_move = store._move
    moved: list[str] = []

    def move_then_die(src, dst):
        if moved:  # one table is in place (lists), the records and domains are not yet
            raise SystemExit("killed mid-swap")
        real_move(src, dst)
        moved.append(dst.path)

    monkeypatch.setattr(store, "_move", move_then_die)
    res = CliRunner().invoke(main, ["scan", str(second), *base, "--force"])
    assert res.exit_code != 0 and moved
    monkeypatch.setattr(store, "_move", real_move)

    # The next scan of the label finishes the swap before it decides anything: the
    # second list's snapshot is there, whole.
    res = CliRunner().invoke(main, ["scan", str(second), *base])
    assert res.exit_code != 0 and "complete" in res.stderr  # nothing to do: it is complete
    d = pd.read_parquet(out / "domains")
    assert sorted(d["domain"]) == sorted(NAMES[5:12])
    assert set(pd.read_parquet(out / "records")["domain"]) == set(NAMES[5:12])
    assert not (out / store.RESCAN_FOLDER).exists()
