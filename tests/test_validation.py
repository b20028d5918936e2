"""Every bad input is answered before anything is touched: one line on stderr naming the input
and what was expected, a non-zero exit, and nothing that existed changed (issue 20)."""

from __future__ import annotations

import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from mailauth_survey import store
from mailauth_survey.cli import main
from tests.conftest import write_list
from tests.nsd import zone

NAMES = ["a.jp", "b.jp", "c.jp"]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def served(nsd_factory):
    return nsd_factory({"jp": zone("jp"), **{n: zone(n, "@ MX 10 mx") for n in NAMES}})


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error: ") and "Traceback" not in stderr
    return lines[0]


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and modification time (to see nothing moved)."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _closed_udp_port() -> int:
    """A loopback UDP port nothing listens on (ICMP port unreachable answers it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- 2: --resolver -----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["not_an_ip", "1.2.3.4.5", "127.0.0.1:99999", "127.0.0.1:abc"])
def test_bad_resolver_is_one_line_and_no_folder_is_made(tmp_path, bad) -> None:
    lst = write_list(tmp_path / "l.txt", NAMES)
    out = tmp_path / "results"
    res = CliRunner().invoke(main, ["scan", str(lst), "--out", str(out), "--resolver", bad])
    assert res.exit_code != 0
    line = _one_error_line(res.stderr)
    assert f"--resolver {bad!r}: expected IP[:PORT]" in line
    assert not out.exists()
    res = CliRunner().invoke(main, ["spf-check", "192.0.2.1", "a@a.jp", "--resolver", bad])
    assert res.exit_code != 0
    assert f"--resolver {bad!r}: expected IP[:PORT]" in _one_error_line(res.stderr)


def test_a_host_name_is_looked_up_once_and_the_scan_names_its_addresses() -> None:
    """SPEC.md: --resolver HOST[:PORT]. The name is looked up before anything starts; the fleet,
    the manifest and the records table name the addresses it had then."""
    from mailauth_survey.resolver import check_resolvers

    found = check_resolvers(["localhost:5353", "127.0.0.2"])
    assert "127.0.0.1:5353" in found and found[-1] == "127.0.0.2"
    assert all(a.startswith(("127.", "[::1]")) for a in found)
    assert check_resolvers(["localhost"])[0] in ("127.0.0.1", "::1")
    res = CliRunner().invoke(
        main, ["spf-check", "192.0.2.1", "a@a.jp", "--resolver", "no-such-host.invalid"]
    )
    assert res.exit_code != 0
    assert "'no-such-host.invalid': host name not found" in _one_error_line(res.stderr)
    helped = CliRunner().invoke(main, ["scan", "--help"], terminal_width=100)
    assert "HOST[:PORT]" in helped.output


def test_scan_with_a_resolver_host_name_records_its_address(tmp_path, served) -> None:
    port = served.address.rsplit(":", 1)[1]
    lst = write_list(tmp_path / "l.txt", NAMES)
    out = tmp_path / "results"
    res = CliRunner().invoke(main, ["scan", str(lst), "--out", str(out), "--snapshot", "q",
                                    "--resolver", f"localhost:{port}", "--quiet"])  # fmt: skip
    assert res.exit_code == 0, res.output
    manifest = store.Snapshot(out, "q").read_manifest()
    assert f"127.0.0.1:{port}" in manifest["resolvers"] and manifest["complete"]
    assert "localhost" not in str(manifest["resolvers"])
    records = pd.read_parquet(out / "records")
    assert set(records["resolver"].dropna()) <= set(manifest["resolvers"])


# --- 3: every numeric option has a range --------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--qps", "-5"),
        ("--concurrency", "0"),
        ("--timeout", "0"),
        ("--retries", "-1"),
        ("--dead-after", "0"),
        ("--workers", "0"),
        ("--probe-timeout", "-1"),
    ],
)
def test_numeric_options_out_of_range_are_refused_at_once(tmp_path, served, option, value) -> None:
    """--qps -5 was taken and the scan hung forever at 0/? (a subprocess: the old code hangs)."""
    lst = write_list(tmp_path / "l.txt", NAMES)
    out = tmp_path / "results"
    cmd = [sys.executable, "-m", "mailauth_survey.cli", "scan", str(lst), "--out", str(out),
           "--resolver", served.address, "--quiet", option, value]  # fmt: skip
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"scan {option} {value} did not end")
    assert res.returncode == 2
    assert f"'{option}'" in _one_error_line(res.stderr)
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--snapshot", "../up"], "--snapshot"),
        (["--cluster", "local:0"], "--cluster"),
        (["--cluster", "local:x"], "--cluster"),
        (["--ehlo-name", "mx.example.jp\r\nRSET"], "--ehlo-name"),
        (["--info-url", "javascript:alert(1)"], "--info-url"),
        (["--workers", "2", "--cluster", "local:2"], "--workers and --cluster"),
    ],
)
def test_other_scan_options_are_checked_before_anything(tmp_path, args, named) -> None:
    lst = write_list(tmp_path / "l.txt", NAMES)
    out = tmp_path / "results"
    res = CliRunner().invoke(main, ["scan", str(lst), "--out", str(out), *args])
    assert res.exit_code != 0
    assert named in _one_error_line(res.stderr)
    assert not out.exists()


# --- 4: lists that hold nothing to scan, or are not text ---------------------------------------


def test_empty_list_is_refused_with_no_snapshot(tmp_path, served) -> None:
    out = tmp_path / "results"
    for name, content in [("empty.txt", b""), ("bad.txt", b"not a name\nx\n# only bad lines\n")]:
        lst = tmp_path / name
        lst.write_bytes(content)
        res = CliRunner().invoke(
            main, ["scan", str(lst), "--out", str(out), "--resolver", served.address, "--quiet"]
        )
        assert res.exit_code != 0
        assert res.stderr.splitlines()[-1] == f"Error: {lst}: no domains to scan" + (
            " (2 bad lines)" if name == "bad.txt" else ""
        )
        assert not store.list_snapshots(out)
        assert not out.exists()


def test_binary_list_is_refused_by_name_and_bytes_never_echoed(tmp_path, served) -> None:
    out = tmp_path / "results"
    binary = tmp_path / "names.bin"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 40)
    res = CliRunner().invoke(
        main, ["scan", str(binary), "--out", str(out), "--resolver", served.address, "--quiet"]
    )
    assert res.exit_code != 0
    assert _one_error_line(res.stderr) == (
        f"Error: {binary}: not a text file (NUL bytes); expected a domain list in UTF-8"
    )
    assert not out.exists()
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("".join(f"caf\xe9{i}.jp\n" for i in range(10)).encode("latin-1"))
    res = CliRunner().invoke(
        main, ["scan", str(latin1), "--out", str(out), "--resolver", served.address, "--quiet"]
    )
    assert res.exit_code != 0
    assert "not UTF-8 text" in _one_error_line(res.stderr) and str(latin1) in res.stderr
    assert not out.exists()


def test_bad_lines_are_escaped_and_cut(tmp_path, served) -> None:
    lst = tmp_path / "l.txt"
    lst.write_text("a.jp\n\x1b[2Jclear.jp\n" + "long name " * 50 + "\n", encoding="utf-8")
    out = tmp_path / "results"
    res = CliRunner().invoke(
        main, ["scan", str(lst), "--out", str(out), "--resolver", served.address, "--quiet"]
    )
    assert res.exit_code == 0, res.output
    bad = [line for line in res.stderr.splitlines() if line.startswith(str(lst))]
    assert len(bad) == 2
    assert "\x1b" not in res.stderr and "\\x1b[2Jclear.jp" in bad[0]
    assert all(len(line) < len(str(lst)) + 200 for line in bad)


# --- 5: nothing listens at the resolver; no reply at all ----------------------------------------


def test_unreachable_resolver_fails_fast_in_one_line(tmp_path) -> None:
    lst = write_list(tmp_path / "l.txt", NAMES)
    out = tmp_path / "results"
    port = _closed_udp_port()
    res = CliRunner().invoke(
        main, ["scan", str(lst), "--out", str(out), "--resolver", f"127.0.0.1:{port}"]
    )
    assert res.exit_code != 0
    line = _one_error_line(res.stderr)
    assert f"127.0.0.1:{port}" in line and "connection refused" in line
    assert not out.exists()
    res = CliRunner().invoke(
        main, ["spf-check", "192.0.2.1", "a@a.jp", "--resolver", f"127.0.0.1:{port}"]
    )
    assert res.exit_code != 0 and "connection refused" in _one_error_line(res.stderr)


def test_a_scan_with_no_reply_at_all_is_never_complete(tmp_path, silent_resolver) -> None:
    """A short list against a silent resolver ended in seconds with every domain a timeout,
    exit 0 and `complete: true`: the timeouts were the fleet's, not the domains'."""
    lst = write_list(tmp_path / "l.txt", NAMES)
    out = tmp_path / "results"
    res = CliRunner().invoke(
        main,
        ["scan", str(lst), "--out", str(out), "--snapshot", "q", "--resolver", silent_resolver,
         "--timeout", "0.2", "--retries", "0", "--quiet"],
    )  # fmt: skip
    assert res.exit_code != 0
    assert "no resolver answered" in _one_error_line(res.stderr)
    manifest = store.Snapshot(out, "q").read_manifest()
    assert manifest is None or manifest["complete"] is False
    ddir = store.Snapshot(out, "q").domains
    assert not ddir.glob("part-*.parquet")


# --- 1: --force never loses the old snapshot ----------------------------------------------------


def test_force_with_a_bad_input_changes_nothing(tmp_path, served) -> None:
    lst = write_list(tmp_path / "l.txt", NAMES)
    out = tmp_path / "results"
    base = ["scan", str(lst), "--out", str(out), "--snapshot", "2023Q4", "--quiet"]
    assert CliRunner().invoke(main, [*base, "--resolver", served.address]).exit_code == 0
    before = _tree(out)
    for bad in (["--resolver", "not-an-ip"], ["--resolver", f"127.0.0.1:{_closed_udp_port()}"]):
        res = CliRunner().invoke(main, [*base, "--force", *bad])
        assert res.exit_code != 0
        _one_error_line(res.stderr)
        assert _tree(out) == before
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    res = CliRunner().invoke(
        main, ["scan", str(empty), *base[2:], "--force", "--resolver", served.address]
    )
    assert res.exit_code != 0 and _tree(out) == before
    assert store.Snapshot(out, "2023Q4").read_manifest()["complete"] is True


def test_force_replaces_the_snapshot_and_leaves_nothing_beside_it(tmp_path, served) -> None:
    out = tmp_path / "results"
    first = write_list(tmp_path / "first.txt", NAMES[:1])
    second = write_list(tmp_path / "second.txt", NAMES)
    for lst in (first, second):
        res = CliRunner().invoke(
            main,
            ["scan", str(lst), "--out", str(out), "--snapshot", "q", "--force",
             "--resolver", served.address, "--quiet"],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
    d = pd.read_parquet(out / "domains")
    assert sorted(d["domain"]) == NAMES and d["domain"].is_unique
    assert set(pd.read_parquet(out / "records")["domain"]) == set(NAMES)
    assert store.Snapshot(out, "q").read_manifest()["inputs"][0]["path"] == str(second)
    assert not (out / store.RESCAN_FOLDER).exists()


def test_readme_says_what_force_does() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "--force" in readme and "DIR/.rescan/LABEL" in readme


# --- 6: charts in the base install ---------------------------------------------------------------


def test_matplotlib_and_the_japanese_font_are_core_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = {d.split(">")[0].split("=")[0].split("[")[0].strip() for d in project["dependencies"]}
    assert {"matplotlib", "matplotlib-fontja"} <= names


def test_chart_without_matplotlib_is_one_line(tmp_path) -> None:
    """Should matplotlib be missing anyway (a broken install), `chart` says so in one line."""
    script = (
        "import sys; sys.modules['matplotlib'] = None; sys.modules['matplotlib_fontja'] = None\n"
        "from mailauth_survey.cli import main\n"
        f"main(['chart', {str(tmp_path)!r}, '--out', {str(tmp_path / 'c.png')!r}])\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert res.returncode != 0
    assert "matplotlib" in _one_error_line(res.stderr)


# --- 8: --ca-file adds to the system roots ------------------------------------------------------


def test_ca_file_is_added_to_the_system_roots(tmp_path, served) -> None:
    import ssl

    import trustme

    from mailauth_survey.probes.tls import verifying_context

    ca = trustme.CA()
    cafile = tmp_path / "lab-ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    system = len(ssl.create_default_context().get_ca_certs())
    ctx = verifying_context(str(cafile), check_hostname=True)
    subjects = [c["subject"] for c in ctx.get_ca_certs()]
    assert len(subjects) == system + 1  # the system's roots, and the lab's
    lst = write_list(tmp_path / "l.txt", NAMES)
    out = tmp_path / "results"
    res = CliRunner().invoke(
        main,
        ["scan", str(lst), "--out", str(out), "--snapshot", "q", "--resolver", served.address,
         "--ca-file", str(cafile), "--quiet"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert store.Snapshot(out, "q").read_manifest()["options"]["cafile"] == str(cafile)
    not_pem = write_list(tmp_path / "not-pem.txt", ["hello"])
    res = CliRunner().invoke(
        main, ["scan", str(lst), "--out", str(tmp_path / "o2"), "--ca-file", str(not_pem)]
    )
    assert res.exit_code != 0 and "--ca-file" in _one_error_line(res.stderr)
    assert not (tmp_path / "o2").exists()


# --- the other commands ---------------------------------------------------------------------------


def test_reanalyze_checks_the_snapshot_before_it_rewrites_anything(tmp_path, served) -> None:
    lst = write_list(tmp_path / "l.txt", NAMES)
    out = tmp_path / "results"
    base = ["--out", str(out), "--snapshot", "q", "--resolver", served.address, "--quiet"]
    assert CliRunner().invoke(main, ["scan", str(lst), *base]).exit_code == 0
    before = _tree(out)
    for label, expected in (("../q", "--snapshot"), ("nope", "nope")):
        res = CliRunner().invoke(main, ["reanalyze", str(out), "--snapshot", label])
        assert res.exit_code != 0
        assert expected in _one_error_line(res.stderr)
    assert _tree(out) == before


def test_retry_errors_refuses_lists_and_a_silent_fleet_replaces_nothing(
    tmp_path, served, silent_resolver
) -> None:
    """--retry-errors ignored the LIST given with it; against a resolver that never replied it
    replaced every failed domain's rows and records with new timeouts."""
    from tests.fakedns import FakeDns

    lst = write_list(tmp_path / "l.txt", [*NAMES, "quiet.jp"])
    out = tmp_path / "results"
    flaky = FakeDns("good", silent=("quiet.jp",))
    try:
        res = CliRunner().invoke(
            main,
            ["scan", str(lst), "--out", str(out), "--snapshot", "q", "--resolver", flaky.address,
             "--timeout", "0.2", "--retries", "0", "--quiet"],
        )  # fmt: skip
    finally:
        flaky.stop()
    assert res.exit_code == 0, res.output
    before = _tree(out)
    retry = ["scan", "--out", str(out), "--snapshot", "q", "--retry-errors", "--quiet"]
    res = CliRunner().invoke(main, [*retry[:1], str(lst), *retry[1:]])
    assert res.exit_code != 0 and "--retry-errors takes no LIST" in _one_error_line(res.stderr)
    res = CliRunner().invoke(
        main, [*retry, "--resolver", silent_resolver, "--timeout", "0.2", "--retries", "0"]
    )
    assert res.exit_code != 0
    assert "no resolver answered" in _one_error_line(res.stderr)
    assert _tree(out) == before
