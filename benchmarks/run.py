"""The scan benchmark: one command, every figure side by side, as ratios to references measured
in the same run on the same machine (the machines are shared and noisy; absolute figures are not).

    .venv/bin/python benchmarks/run.py [--domains 100000] [--checkdmarc 300] [--workdir DIR]
        [--concurrency N] [--workers N] [--keep] [--json FILE] [-- extra scan options]
    .venv/bin/python benchmarks/run.py --rss-scaling 20000,200000

What it does (see benchmarks/README.md):

1. generates a synthetic .jp population of N domains (``mailauth_survey.synthetic.population``) and writes
   its zone files;
2. serves them with NSD on a loopback port (``server-count: 1``, rate limiting off) and notes its
   start-up time and memory;
3. runs the complete scan (``mailauth-survey scan --qps 0``: collection, analysis, Parquet) as a
   subprocess: wall time, peak RSS of its process tree, CPU time;
4. measures the same NSD's capacity with ``dnsperf`` on the scan's own query mix (the network
   queries of the records table);
5. runs checkdmarc against the same NSD on the first K domains of the same list;
6. prints the figures, their references, the ratios and the targets of issue 5 (PASS/FAIL).

Nothing here asserts anything in the test suite; the exit status is 0 when the run completed,
whatever the targets say (``--strict`` makes a missed target exit 1).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
SEED = 20240601
#: Issue 5's targets.
TARGET_CHECKDMARC_RATIO = 30.0
TARGET_DNSPERF_SHARE = 0.08
TARGET_RSS_MB = 500.0
TARGET_RSS_SCALING = 1.2
DNSPERF_SECONDS = 8
#: Two sending threads and a few sockets: the most NSD (one server process) answered on 2 cores.
DNSPERF_ARGS = "-T 2 -c 4 -q 200"
DNSPERF_MAX_LINES = 400_000


class BenchError(RuntimeError):
    """A problem that ends the run, reported in one line."""


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def python_exe() -> str:
    """The venv's Python when there is one (the package and checkdmarc live there)."""
    exe = VENV_BIN / "python"
    return str(exe) if exe.exists() else sys.executable


# --- processes and memory -------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """pid and every process below it (via /proc/PID/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except OSError:
            continue
    return out


def _status_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kb(pid: int) -> int:
    """Proportional set size (shared pages split between sharers); RSS when unreadable."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return _status_kb(pid, "VmRSS")


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class TreeSampler(threading.Thread):
    """Samples a process tree every ``interval`` seconds: the peak of its summed RSS, and each
    process's high-water mark (VmHWM: its largest RSS ever, so a peak between samples counts).

    Not ``ru_maxrss``: Linux carries the RSS of the process that forked the scan (this
    benchmark, holding a generated population) into the scan's ``ru_maxrss`` at exec.
    """

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_kb = 0
        self.hwm_kb: dict[int, int] = {}
        self.max_procs = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            pids = descendants(self.pid)
            self.max_procs = max(self.max_procs, len(pids))
            self.peak_kb = max(self.peak_kb, sum(_status_kb(p, "VmRSS") for p in pids))
            for p in pids:
                self.hwm_kb[p] = max(self.hwm_kb.get(p, 0), _status_kb(p, "VmHWM"))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (the test servers' helper)."""
    from tests.nsd import free_port as test_free_port  # the repository root is on sys.path

    try:
        return test_free_port()
    except RuntimeError as exc:
        raise BenchError(str(exc)) from None


try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None


def die_with_parent() -> None:
    """In a child before exec: SIGTERM when the benchmark dies, even by SIGKILL (Linux)."""
    if _prctl is not None:
        _prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _kill(proc: subprocess.Popen | None, grace: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()


# --- the population ---------------------------------------------------------------------------


def population_dir(workdir: Path, n: int, seed: int) -> Path:
    """The written population of (n, seed) under workdir, generated unless already there."""
    from mailauth_survey.synthetic import population

    out = workdir / f"population-{n}-{seed}"
    conf = out / "nsd.conf"
    if conf.exists() and (out / "domains.txt").exists():
        with open(conf, encoding="ascii") as fh:
            head = fh.readline()
        if f"population n={n} seed={seed} " in head:
            log(f"population of {n:,} domains: reusing {out}")
            return out
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.monotonic()
    pop = population.generate(n, seed)
    t1 = time.monotonic()
    pop.write(out)
    log(
        f"population of {n:,} domains, {len(pop.zones):,} zones: generated in {t1 - t0:.1f} s, "
        f"written in {time.monotonic() - t1:.1f} s to {out}"
    )
    return out


# --- NSD ----------------------------------------------------------------------------------------


@dataclass
class NsdInfo:
    zones: int
    startup_s: float
    pss_mb: float
    server_rss_mb: float


class NsdServer:
    """NSD serving a population's zones on 127.0.0.1:port until ``stop()``."""

    def __init__(self, rundir: Path, popdir: Path) -> None:
        exe = shutil.which("nsd") or "/usr/sbin/nsd"
        if not Path(exe).exists():
            raise BenchError(
                "nsd is not installed: 'make test' installs it, or 'apt-get install nsd dnsperf'"
            )
        self.exe = exe
        self.dir = rundir
        shutil.rmtree(rundir, ignore_errors=True)
        rundir.mkdir(parents=True)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        with open(popdir / "nsd.conf", encoding="ascii") as fh:
            self.zones = sum(1 for line in fh if line == "zone:\n")
        conf = [
            "server:",
            "  ip-address: 127.0.0.1",
            f"  port: {self.port}",
            '  username: ""',
            '  chroot: ""',
            f'  zonesdir: "{rundir}"',
            f'  pidfile: "{rundir}/nsd.pid"',
            f'  xfrdfile: "{rundir}/xfrd.state"',
            f'  xfrdir: "{rundir}"',
            f'  zonelistfile: "{rundir}/zone.list"',
            f'  logfile: "{rundir}/nsd.log"',
            '  database: ""',
            "  zonefiles-write: 0",
            "  server-count: 1",
            "  rrl-ratelimit: 0",
            "  verbosity: 0",
            "  tcp-count: 1000",
            "  tcp-timeout: 30",
            "  receive-buffer-size: 8388608",
            "  send-buffer-size: 8388608",
            "remote-control:",
            "  control-enable: no",
            f'include: "{popdir / "nsd.conf"}"',
        ]
        self.conf = rundir / "nsd.conf"
        self.conf.write_text("\n".join(conf) + "\n", encoding="utf-8")
        checkconf = shutil.which("nsd-checkconf") or "/usr/sbin/nsd-checkconf"
        if Path(checkconf).exists():
            check = subprocess.run([checkconf, str(self.conf)], capture_output=True, text=True)
            if check.returncode != 0:
                raise BenchError(f"nsd-checkconf: {(check.stderr or check.stdout).strip()[:500]}")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 1800.0) -> NsdInfo:
        import dns.exception
        import dns.message
        import dns.query
        import dns.rcode

        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [self.exe, "-d", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "nsd.stderr", "wb"),  # noqa: SIM115 - the child keeps it
            preexec_fn=die_with_parent,
        )
        query = dns.message.make_query("jp.", "SOA")
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"nsd exited at start-up: {self._log_tail()}")
            if time.monotonic() - t0 > timeout:
                raise BenchError(f"nsd did not answer within {timeout:.0f} s: {self._log_tail()}")
            try:
                reply = dns.query.udp(query, "127.0.0.1", port=self.port, timeout=0.5)
                if reply.rcode() == dns.rcode.NOERROR:
                    break
            except (dns.exception.DNSException, OSError):
                pass
            time.sleep(0.1)
        startup = time.monotonic() - t0
        time.sleep(0.5)  # let xfrd settle before measuring memory
        pids = descendants(self.proc.pid)
        return NsdInfo(
            zones=self.zones,
            startup_s=startup,
            pss_mb=sum(pss_kb(p) for p in pids) / 1024,
            server_rss_mb=max((_status_kb(p, "VmRSS") for p in pids), default=0) / 1024,
        )

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(p) for p in descendants(self.proc.pid)) if self.proc else 0.0

    def _log_tail(self) -> str:
        parts = []
        for name in ("nsd.stderr", "nsd.log"):
            path = self.dir / name
            if path.exists():
                parts.append(path.read_text(errors="replace").strip()[-1500:])
        return " | ".join(p for p in parts if p) or "(no log)"

    def stop(self) -> None:
        if self.proc is None:
            return
        pids = descendants(self.proc.pid) if self.proc.poll() is None else []
        _kill(self.proc)
        for pid in pids[1:]:  # children that outlived the parent, by their own ids
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


# --- the scan -----------------------------------------------------------------------------------


@dataclass
class ScanResult:
    domains: int
    wall_s: float
    cpu_s: float
    hwm_mb: float  # the largest single process's high-water mark (VmHWM)
    hwm_sum_mb: float  # the processes' high-water marks summed: a bound on the tree's peak
    tree_peak_mb: float  # sampled peak of the summed RSS of the tree
    processes: int
    queries: int  # sent on the network (UDP datagrams + TCP queries, retries included)
    cache_hits: int
    replies: int
    timeouts: int
    tcp: int
    records: int  # rows of the records table (answers read, cache included)
    status_counts: dict[str, int]
    nsd_cpu_s: float
    command: list[str] = field(default_factory=list)

    @property
    def peak_rss_mb(self) -> float:
        """The summed high-water marks: never below the tree's true peak, whenever it fell."""
        return max(self.hwm_sum_mb, self.tree_peak_mb)

    @property
    def domains_per_s(self) -> float:
        return self.domains / self.wall_s

    @property
    def queries_per_s(self) -> float:
        return self.queries / self.wall_s


def scan_command() -> list[str]:
    exe = VENV_BIN / "mailauth-survey"
    if exe.exists():
        return [str(exe)]
    return [python_exe(), "-m", "mailauth_survey.cli"]


def scan_supports(option: str) -> bool:
    out = subprocess.run(
        [*scan_command(), "scan", "--help"], capture_output=True, text=True, cwd=REPO
    ).stdout
    return option in out


def run_scan(
    domains_file: Path, out: Path, nsd: NsdServer, args: argparse.Namespace, extra: list[str]
) -> ScanResult:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        *scan_command(),
        "scan",
        str(domains_file),
        "--out",
        str(out),
        "--snapshot",
        "bench",
        "--resolver",
        nsd.address,
        "--qps",
        "0",
        "--concurrency",
        str(args.concurrency),
        "--quiet",
    ]
    if args.workers is not None:
        cmd += ["--workers", str(args.workers)]
    cmd += extra
    log("scan: " + " ".join(cmd))
    nsd_cpu0 = nsd.cpu_seconds()
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=die_with_parent,
    )
    sampler = TreeSampler(proc.pid)
    sampler.start()
    stderr_chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: stderr_chunks.append(proc.stderr.read()), daemon=True)
    reader.start()
    try:
        # wait4 gives the rusage of this child (and the descendants it reaped) alone, whatever
        # else the benchmark has started.
        _pid, status, usage = os.wait4(proc.pid, 0)
    except BaseException:
        _kill(proc)
        raise
    finally:
        sampler.stop()
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join(5)
    nsd_cpu = nsd.cpu_seconds() - nsd_cpu0
    err = b"".join(stderr_chunks).decode(errors="replace").strip()
    if proc.returncode != 0:
        raise BenchError(f"scan exited with {proc.returncode}: {err[-2000:]}")
    from mailauth_survey import store

    manifest_path = store.Snapshot(out, "bench").manifest
    if not manifest_path.exists():
        raise BenchError(f"scan wrote no manifest at {manifest_path}")
    manifest = json.loads(manifest_path.read_text())
    if not manifest.get("domains"):
        raise BenchError(f"the scan stored no domains: {err[-1000:]}")
    q = manifest.get("queries", {})
    import pyarrow.parquet as pq

    records = sum(
        pq.ParquetFile(p).metadata.num_rows
        for p in (out / "records" / "snapshot=bench").glob("part-*.parquet")
    )
    return ScanResult(
        domains=int(manifest.get("domains", 0)),
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        hwm_mb=max(sampler.hwm_kb.values(), default=0) / 1024,
        hwm_sum_mb=sum(sampler.hwm_kb.values()) / 1024,
        tree_peak_mb=sampler.peak_kb / 1024,
        processes=sampler.max_procs,
        queries=int(q.get("queries", 0)),
        cache_hits=int(q.get("cache_hits", 0)),
        replies=int(q.get("replies", 0)),
        timeouts=int(q.get("timeouts", 0)),
        tcp=int(q.get("tcp", 0)),
        records=records,
        status_counts=manifest.get("status_counts", {}),
        nsd_cpu_s=nsd_cpu,
        command=cmd,
    )


# --- dnsperf ------------------------------------------------------------------------------------


def dnsperf_exe() -> str:
    exe = shutil.which("dnsperf") or "/usr/bin/dnsperf"
    if not Path(exe).exists():
        raise BenchError(
            "dnsperf is not installed: 'make test' installs it, or 'apt-get install nsd dnsperf'"
        )
    return exe


def query_file_from_records(out: Path, dest: Path, seed: int) -> int:
    """dnsperf's input: the scan's network queries (not its cache hits), shuffled."""
    import pyarrow.parquet as pq

    lines: list[str] = []
    for part in sorted((out / "records" / "snapshot=bench").glob("part-*.parquet")):
        t = pq.read_table(part, columns=["qname", "qtype", "transport"]).to_pydict()
        lines.extend(
            f"{n} {ty}"
            for n, ty, tr in zip(t["qname"], t["qtype"], t["transport"], strict=True)
            if tr != "cache"
        )
    rng = random.Random(seed)
    if len(lines) > DNSPERF_MAX_LINES:
        lines = rng.sample(lines, DNSPERF_MAX_LINES)
    else:
        rng.shuffle(lines)
    if not lines:
        raise BenchError("the scan's records table holds no network queries for dnsperf")
    dest.write_text("\n".join(lines) + "\n", encoding="ascii")
    return len(lines)


@dataclass
class DnsperfResult:
    qps: float  # the best of the runs: the server's capacity on this machine now
    runs_qps: list[float]
    sent: int
    completed: int
    lost: int
    seconds: float
    command: list[str]
    nsd_cpu_s: float  # NSD's CPU time during the best run


def run_dnsperf(nsd: NsdServer, qfile: Path, args: argparse.Namespace) -> DnsperfResult:
    """dnsperf against NSD, ``--dnsperf-runs`` times; the best run is the capacity."""
    cmd = [
        dnsperf_exe(),
        "-s",
        "127.0.0.1",
        "-p",
        str(nsd.port),
        "-d",
        str(qfile),
        "-l",
        str(args.dnsperf_seconds),
        *args.dnsperf_args.split(),
    ]
    log("dnsperf: " + " ".join(cmd))
    best: DnsperfResult | None = None
    runs: list[float] = []
    for _ in range(max(1, args.dnsperf_runs)):
        cpu0 = nsd.cpu_seconds()
        res = subprocess.run(
            cmd, capture_output=True, text=True, timeout=args.dnsperf_seconds + 120
        )
        nsd_cpu = nsd.cpu_seconds() - cpu0
        out = res.stdout + res.stderr
        m = re.search(r"Queries per second:\s+([\d.]+)", out)
        if res.returncode != 0 or not m:
            raise BenchError(f"dnsperf failed ({res.returncode}): {out.strip()[-1500:]}")

        def num(pattern: str, out: str = out) -> int:
            mm = re.search(pattern, out)
            return int(mm.group(1)) if mm else 0

        secs = re.search(r"Run time \(s\):\s+([\d.]+)", out)
        runs.append(float(m.group(1)))
        result = DnsperfResult(
            qps=float(m.group(1)),
            runs_qps=runs,
            sent=num(r"Queries sent:\s+(\d+)"),
            completed=num(r"Queries completed:\s+(\d+)"),
            lost=num(r"Queries lost:\s+(\d+)"),
            seconds=float(secs.group(1)) if secs else float(args.dnsperf_seconds),
            command=cmd,
            nsd_cpu_s=nsd_cpu,
        )
        if best is None or result.qps > best.qps:
            best = result
    assert best is not None
    return best


# --- checkdmarc ---------------------------------------------------------------------------------


def ensure_checkdmarc() -> str:
    """checkdmarc's version in the venv, installed with pip on first use (bench-only dependency)."""
    py = python_exe()
    probe = [py, "-c", "import importlib.metadata as m; print(m.version('checkdmarc'))"]
    res = subprocess.run(probe, capture_output=True, text=True)
    if res.returncode != 0:
        log("checkdmarc is not installed: pip install checkdmarc (benchmark-only dependency)")
        inst = subprocess.run(
            [py, "-m", "pip", "install", "-q", "checkdmarc"], capture_output=True, text=True
        )
        if inst.returncode != 0:
            raise BenchError(
                f"pip install checkdmarc failed: {(inst.stderr or inst.stdout).strip()[-800:]}"
            )
        res = subprocess.run(probe, capture_output=True, text=True)
        if res.returncode != 0:
            raise BenchError(f"checkdmarc still not importable: {res.stderr.strip()[-800:]}")
    return res.stdout.strip()


@dataclass
class CheckdmarcResult:
    version: str
    domains: int
    seconds: float
    escapes_blocked: int
    http_blocked: int
    errors: int  # checks that ended in a DNS failure (timeout, SERVFAIL...), not "no record"
    runs_per_s: list[float] = field(default_factory=list)  # every run; this one is the fastest

    @property
    def domains_per_s(self) -> float:
        return self.domains / self.seconds


def fastest_checkdmarc(runs: list[CheckdmarcResult]) -> CheckdmarcResult | None:
    """The fastest run, with every run's rate: the reference is checkdmarc at its best."""
    if not runs:
        return None
    best = max(runs, key=lambda r: r.domains_per_s)
    best.runs_per_s = [r.domains_per_s for r in runs]
    return best


def run_checkdmarc(nsd: NsdServer, domains_file: Path, k: int, workdir: Path) -> CheckdmarcResult:
    version = ensure_checkdmarc()
    with open(domains_file, encoding="ascii") as fh:
        domains = [line.strip() for _, line in zip(range(k), fh, strict=False) if line.strip()]
    listfile = workdir / f"checkdmarc-{len(domains)}.txt"
    listfile.write_text("\n".join(domains) + "\n", encoding="ascii")
    cmd = [
        python_exe(),
        str(Path(__file__).resolve()),
        "--checkdmarc-child",
        str(nsd.port),
        str(listfile),
    ]
    log(f"checkdmarc {version} on the first {len(domains)} domains")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60 + 10 * len(domains))
    if res.returncode != 0:
        raise BenchError(f"checkdmarc run failed: {res.stderr.strip()[-1500:]}")
    data = json.loads(res.stdout.strip().splitlines()[-1])
    return CheckdmarcResult(version=version, **data)


def checkdmarc_child(port: int, listfile: str) -> None:
    """In a subprocess: checkdmarc over the list, against NSD on 127.0.0.1:port and nothing else.

    DNS goes to our NSD through the resolver and nameserver objects given to checkdmarc. Anything
    else (HTTPS fetches of MTA-STS policies and BIMI files, system-resolver lookups, any
    connection off loopback) is refused at once and counted, so that checkdmarc is timed on its
    DNS work, not on timeouts: that favours checkdmarc, never our scanner.
    """
    import inspect
    import ipaddress
    import logging
    import warnings

    import dns.nameserver
    import dns.resolver

    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")
    counts = {"escapes_blocked": 0, "http_blocked": 0}

    def loopback(host: object) -> bool:
        try:
            return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
        except ValueError:
            return str(host) == "localhost"

    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *a, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
        if host is not None and not loopback(host):
            counts["escapes_blocked"] += 1
            raise socket.gaierror(socket.EAI_NONAME, "benchmark: no lookups off loopback")
        return real_getaddrinfo(host, *a, **kw)

    def guard(method):  # noqa: ANN001, ANN202
        def wrapped(self, *a):  # noqa: ANN001, ANN002, ANN202
            addr = a[-1]
            if isinstance(addr, tuple) and not loopback(addr[0]):
                counts["escapes_blocked"] += 1
                raise OSError(101, "benchmark: network unreachable off loopback")
            return method(self, *a)

        return wrapped

    socket.getaddrinfo = getaddrinfo
    for name in ("connect", "connect_ex", "sendto"):
        setattr(socket.socket, name, guard(getattr(socket.socket, name)))

    import requests

    def no_http(self, method, url, *a, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
        counts["http_blocked"] += 1
        raise requests.ConnectionError(f"benchmark: no HTTP ({url})")

    requests.Session.request = no_http
    with contextlib.suppress(ImportError):
        import httpx

        def no_httpx(self, request, *a, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
            counts["http_blocked"] += 1
            raise httpx.ConnectError("benchmark: no HTTP", request=request)

        httpx.HTTPTransport.handle_request = no_httpx

    import checkdmarc

    ns = dns.nameserver.Do53Nameserver("127.0.0.1", port)
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [ns]
    resolver.timeout = resolver.lifetime = 2.0
    params = inspect.signature(checkdmarc.check_domains).parameters
    kwargs: dict[str, Any] = {}
    if "resolver" in params:
        kwargs["resolver"] = resolver
    if "nameservers" in params:
        kwargs["nameservers"] = [ns]
    if "timeout" in params:
        kwargs["timeout"] = 2.0
    if "check_mx_tls" in params:
        kwargs["check_mx_tls"] = False
    elif "skip_tls" in params:
        kwargs["skip_tls"] = True
    domains = [d for d in Path(listfile).read_text(encoding="ascii").split() if d]
    t0 = time.perf_counter()
    results = checkdmarc.check_domains(domains, **kwargs)
    seconds = time.perf_counter() - t0
    if isinstance(results, dict):
        results = [results]
    # "does not exist" is an answer; count only the failures to get one (none expected).
    failed = re.compile(r"timed out|timeout|SERVFAIL|REFUSED|no nameservers|lifetime", re.I)
    errors = sum(
        1
        for r in results
        for key in ("soa", "ns", "mx", "spf", "dmarc", "smtp_tls_reporting")
        if isinstance(r.get(key), dict) and failed.search(str(r[key].get("error") or ""))
    )
    print(json.dumps({"domains": len(results), "seconds": seconds, "errors": errors, **counts}))


# --- output -------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    py = python_exe()
    uv = subprocess.run(
        [py, "-c", "import uvloop; print(uvloop.__version__)"], capture_output=True, text=True
    )
    pyver = subprocess.run(
        [py, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    nsd_v = subprocess.run(
        [shutil.which("nsd") or "nsd", "-v"], capture_output=True, text=True
    ).stderr.splitlines()
    return {
        "nproc": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
        "cpu": _cpu_model(),
        "python": pyver,
        "uvloop": uv.stdout.strip() if uv.returncode == 0 else None,
        "platform": platform.platform(),
        "nsd": nsd_v[0] if nsd_v else None,
        "loadavg_start": os.getloadavg(),
    }


def _cpu_model() -> str | None:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else "PASS" if ok else "FAIL"


def print_table(rows: list[tuple[str, str, str, str, str, str]]) -> None:
    head = ("figure", "value", "reference", "ratio", "target", "result")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(6)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*head))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(line.format(*r).rstrip())


def report(
    figures: dict[str, Any],
    scan: ScanResult,
    perf: DnsperfResult | None,
    cd: CheckdmarcResult | None,
    nsd_info: NsdInfo,
) -> bool:
    m = figures["machine"]
    print()
    print(
        f"machine: {m['nproc']} CPUs ({m['affinity']} usable) {m['cpu'] or ''}; "
        f"Python {m['python']}; uvloop {m['uvloop'] or 'absent'}; {m['nsd']}; "
        f"load average at start {m['loadavg_start'][0]:.2f}"
    )
    print(
        f"NSD: {nsd_info.zones:,} zones, start-up {nsd_info.startup_s:.1f} s, "
        f"memory {nsd_info.pss_mb:,.0f} MB PSS (largest process {nsd_info.server_rss_mb:,.0f} MB RSS)"
    )
    print(
        f"scan: {scan.domains:,} domains in {scan.wall_s:.1f} s wall, {scan.cpu_s:.1f} s CPU "
        f"({scan.cpu_s / scan.wall_s:.2f} cores), {scan.processes} process(es); NSD CPU during "
        f"the scan {scan.nsd_cpu_s:.1f} s ({scan.nsd_cpu_s / scan.wall_s:.2f} cores)"
    )
    st = ", ".join(f"{k} {v:,}" for k, v in sorted(scan.status_counts.items()))
    print(
        f"      statuses: {st}; sent {scan.queries:,} queries (TCP {scan.tcp:,}, timeouts "
        f"{scan.timeouts:,}), {scan.cache_hits:,} cache hits, {scan.records:,} records rows"
    )
    if perf:
        print(
            f"dnsperf: best of {len(perf.runs_qps)} runs "
            f"({', '.join(f'{q:,.0f}' for q in perf.runs_qps)} q/s), {perf.seconds:.0f} s each; "
            f"best run: {perf.completed:,} completed, {perf.lost:,} lost, NSD CPU "
            f"{perf.nsd_cpu_s / perf.seconds:.2f} cores; " + " ".join(perf.command[1:])
        )
    if cd:
        print(
            f"checkdmarc {cd.version}: best of {len(cd.runs_per_s)} runs "
            f"({', '.join(f'{r:.2f}' for r in cd.runs_per_s)} domains/s, before and after the "
            f"scan); best run: {cd.domains} domains in {cd.seconds:.1f} s "
            f"({cd.http_blocked} HTTP fetches and {cd.escapes_blocked} off-loopback connections "
            f"refused at once)"
        )
    print()
    rows: list[tuple[str, str, str, str, str, str]] = []
    oks: list[bool] = []
    ratio_cd = scan.domains_per_s / cd.domains_per_s if cd else None
    ok = None if ratio_cd is None else ratio_cd >= TARGET_CHECKDMARC_RATIO
    rows.append(
        (
            "scan domains/s",
            f"{scan.domains_per_s:,.1f}",
            f"checkdmarc {cd.domains_per_s:,.2f} domains/s" if cd else "(checkdmarc not run)",
            f"{ratio_cd:,.1f}x" if ratio_cd else "",
            f">= {TARGET_CHECKDMARC_RATIO:.0f}x",
            verdict(ok),
        )
    )
    oks += [ok] if ok is not None else []
    share = scan.queries_per_s / perf.qps if perf else None
    ok = None if share is None else share >= TARGET_DNSPERF_SHARE
    rows.append(
        (
            "scan queries/s (sent)",
            f"{scan.queries_per_s:,.0f}",
            f"dnsperf {perf.qps:,.0f} q/s" if perf else "(dnsperf not run)",
            f"{share:.1%}" if share is not None else "",
            f">= {TARGET_DNSPERF_SHARE:.0%}",
            verdict(ok),
        )
    )
    oks += [ok] if ok is not None else []
    rows.append(
        (
            "queries per domain (sent)",
            f"{scan.queries / scan.domains:.2f}",
            f"+ {scan.cache_hits / scan.domains:.2f} cache hits",
            "",
            "",
            "",
        )
    )
    rows.append(
        (
            "scan CPU per domain",
            f"{1000 * scan.cpu_s / scan.domains:.2f} ms",
            f"{scan.cpu_s / scan.wall_s:.2f} cores busy on average",
            "",
            "",
            "",
        )
    )
    rows.append(
        (
            "records rows per domain",
            f"{scan.records / scan.domains:.2f}",
            "",
            "",
            "",
            "",
        )
    )
    ok = scan.peak_rss_mb < TARGET_RSS_MB
    rows.append(
        (
            "peak RSS of the scan",
            f"{scan.peak_rss_mb:,.0f} MB",
            f"largest process {scan.hwm_mb:,.0f} MB, sampled tree {scan.tree_peak_mb:,.0f} MB",
            f"{scan.peak_rss_mb / TARGET_RSS_MB:.2f} of limit",
            f"< {TARGET_RSS_MB:.0f} MB",
            verdict(ok),
        )
    )
    oks.append(ok)
    print_table(rows)
    return all(oks)


# --- the runs -----------------------------------------------------------------------------------


def preflight(need_dnsperf: bool) -> None:
    try:
        import dns.message  # noqa: F401
        import pyarrow  # noqa: F401

        import mailauth_survey  # noqa: F401
    except ImportError as exc:
        raise BenchError(
            f"{exc}: run the benchmark with the project's venv (make bench, or "
            ".venv/bin/python benchmarks/run.py)"
        ) from None
    if not (shutil.which("nsd") or Path("/usr/sbin/nsd").exists()):
        raise BenchError(
            "nsd is not installed: 'make test' installs it, or 'apt-get install nsd dnsperf'"
        )
    if need_dnsperf:
        dnsperf_exe()


def main_run(args: argparse.Namespace, extra: list[str], workdir: Path) -> int:
    preflight(need_dnsperf=not args.no_dnsperf)
    if args.workers is not None and not scan_supports("--workers"):
        raise BenchError("this mailauth-survey scan has no --workers option yet")
    figures: dict[str, Any] = {"machine": machine_info(), "domains_requested": args.domains}
    popdir = population_dir(workdir, args.domains, args.seed)
    nsd = NsdServer(workdir / "nsd", popdir)
    try:
        log(f"starting NSD on {nsd.address} with {nsd.zones:,} zones")
        nsd_info = nsd.start()
        log(f"NSD answers after {nsd_info.startup_s:.1f} s, {nsd_info.pss_mb:,.0f} MB")
        cd_runs: list[CheckdmarcResult] = []

        def checkdmarc_run() -> None:
            cd_runs.append(run_checkdmarc(nsd, popdir / "domains.txt", args.checkdmarc, workdir))
            log(f"checkdmarc: {cd_runs[-1].domains_per_s:.2f} domains/s")

        # checkdmarc runs before and after the scan (the machine's pace drifts); the faster
        # run is the reference.
        if args.checkdmarc > 0 and args.checkdmarc_runs > 1:
            checkdmarc_run()
        scan = run_scan(popdir / "domains.txt", workdir / "scan-out", nsd, args, extra)
        log(
            f"scan: {scan.domains:,} domains in {scan.wall_s:.1f} s, "
            f"{scan.domains_per_s:,.0f} domains/s, peak RSS {scan.peak_rss_mb:,.0f} MB"
        )
        perf = None
        if not args.no_dnsperf:
            qfile = workdir / "dnsperf-queries.txt"
            lines = query_file_from_records(workdir / "scan-out", qfile, args.seed)
            log(f"dnsperf query file: {lines:,} queries from the scan's records table")
            perf = run_dnsperf(nsd, qfile, args)
            log(f"dnsperf: {perf.qps:,.0f} q/s")
        if args.checkdmarc > 0:
            while len(cd_runs) < max(1, args.checkdmarc_runs):
                checkdmarc_run()
        cd = fastest_checkdmarc(cd_runs)
    finally:
        nsd.stop()
    figures.update(
        nsd=vars(nsd_info),
        scan={
            **{k: v for k, v in vars(scan).items()},
            "domains_per_s": scan.domains_per_s,
            "queries_per_s": scan.queries_per_s,
            "queries_per_domain": scan.queries / scan.domains,
            "peak_rss_mb": scan.peak_rss_mb,
        },
        dnsperf=vars(perf) if perf else None,
        checkdmarc={**vars(cd), "domains_per_s": cd.domains_per_s} if cd else None,
        ratios={
            "vs_checkdmarc": scan.domains_per_s / cd.domains_per_s if cd else None,
            "dnsperf_share": scan.queries_per_s / perf.qps if perf else None,
        },
        targets={
            "vs_checkdmarc": TARGET_CHECKDMARC_RATIO,
            "dnsperf_share": TARGET_DNSPERF_SHARE,
            "peak_rss_mb": TARGET_RSS_MB,
        },
    )
    all_ok = report(figures, scan, perf, cd, nsd_info)
    figures["all_targets_met"] = all_ok
    figures["machine"]["loadavg_end"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str) + "\n")
        log(f"figures written to {args.json}")
    return 1 if args.strict and not all_ok else 0


def main_rss_scaling(args: argparse.Namespace, extra: list[str], workdir: Path) -> int:
    preflight(need_dnsperf=False)
    sizes = [int(s.replace("_", "")) for s in args.rss_scaling.split(",") if s.strip()]
    if len(sizes) < 2:
        raise BenchError("--rss-scaling needs at least two sizes, e.g. 20000,200000")
    results: list[tuple[int, NsdInfo, ScanResult]] = []
    for n in sizes:
        popdir = population_dir(workdir, n, args.seed)
        nsd = NsdServer(workdir / "nsd", popdir)
        try:
            log(f"starting NSD on {nsd.address} with {nsd.zones:,} zones")
            info = nsd.start()
            log(f"NSD answers after {info.startup_s:.1f} s, {info.pss_mb:,.0f} MB")
            scan = run_scan(popdir / "domains.txt", workdir / "scan-out", nsd, args, extra)
        finally:
            nsd.stop()
        log(
            f"{n:,} domains: {scan.domains_per_s:,.0f} domains/s, peak RSS {scan.peak_rss_mb:,.0f} MB"
        )
        results.append((n, info, scan))
    m = machine_info()
    print()
    print(f"machine: {m['nproc']} CPUs; Python {m['python']}; uvloop {m['uvloop'] or 'absent'}")
    print()
    rows = []
    base = results[0][2].peak_rss_mb
    for n, info, scan in results:
        rows.append(
            (
                f"{n:,} domains",
                f"{scan.peak_rss_mb:,.0f} MB",
                f"{scan.domains_per_s:,.0f} domains/s; NSD {info.startup_s:.0f} s, {info.pss_mb:,.0f} MB",
                f"{scan.peak_rss_mb / base:.2f}x",
                f"<= {TARGET_RSS_SCALING}x, < {TARGET_RSS_MB:.0f} MB",
                verdict(
                    scan.peak_rss_mb / base <= TARGET_RSS_SCALING
                    and scan.peak_rss_mb < TARGET_RSS_MB
                ),
            )
        )
    print_table(rows)
    ratio = results[-1][2].peak_rss_mb / base
    ok = ratio <= TARGET_RSS_SCALING
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "machine": m,
                    "sizes": [
                        {
                            "domains": n,
                            "nsd": vars(i),
                            "scan": vars(s),
                            "peak_rss_mb": s.peak_rss_mb,
                        }
                        for n, i, s in results
                    ],
                    "rss_ratio": ratio,
                    "target": TARGET_RSS_SCALING,
                },
                indent=2,
                default=str,
            )
            + "\n"
        )
    return 1 if args.strict and not ok else 0


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(
        description="Scan benchmark: figures side by side with dnsperf and checkdmarc on the "
        "same NSD. Unknown options are passed to 'mailauth-survey scan'.",
    )
    p.add_argument(
        "--domains", type=int, help="population size (100000; 10000 with --latency)"
    )
    p.add_argument(
        "--latency", action="store_true",
        help="instead: the latency benchmark, dnsdist in front of NSD (benchmarks/latency.py)",
    )  # fmt: skip
    p.add_argument(
        "--checkdmarc", type=int, default=300, metavar="K",
        help="checkdmarc on the first K domains (300; 0: skip)",
    )  # fmt: skip
    p.add_argument(
        "--checkdmarc-runs", type=int, default=2, metavar="N",
        help="checkdmarc runs, the first before the scan; the fastest is the reference (2)",
    )  # fmt: skip
    p.add_argument("--workdir", type=Path, help="keep everything here (reuses the population)")
    p.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    p.add_argument("--concurrency", type=int, default=512, help="scan --concurrency (512)")
    p.add_argument("--workers", type=int, help="scan --workers, when the scanner has it")
    p.add_argument("--seed", type=int, default=SEED, help=f"population seed ({SEED})")
    p.add_argument("--json", metavar="FILE", help="write every figure to FILE")
    p.add_argument("--no-dnsperf", action="store_true", help="skip the dnsperf reference")
    p.add_argument(
        "--dnsperf-args", default=DNSPERF_ARGS,
        help=f"dnsperf options besides server, port, file and -l ('{DNSPERF_ARGS}')",
    )  # fmt: skip
    p.add_argument(
        "--dnsperf-runs", type=int, default=3, help="dnsperf runs; the best is the capacity (3)"
    )
    p.add_argument(
        "--dnsperf-seconds", type=int, default=DNSPERF_SECONDS, help="dnsperf -l, per run (8)"
    )
    p.add_argument(
        "--rss-scaling", metavar="N1,N2[,...]",
        help="instead: scan each size and compare peak RSS (e.g. 100000,1000000)",
    )  # fmt: skip
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args, extra = p.parse_known_args(argv)
    if extra and extra[0] == "--":
        extra = extra[1:]
    if args.domains is None:
        args.domains = 10_000 if args.latency else 100_000
    if args.domains < 1:
        p.error("--domains must be at least 1")
    return args, extra


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--checkdmarc-child"]:
        checkdmarc_child(int(argv[1]), argv[2])
        return 0
    args, extra = parse_args(argv)
    sys.path.insert(0, str(REPO))

    def on_term(signum, frame):  # noqa: ANN001, ANN202
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    if args.workdir:
        workdir = args.workdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        cleanup = False
    else:
        workdir = Path(tempfile.mkdtemp(prefix="mailauth-bench-"))
        cleanup = not args.keep
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    log(f"work folder {workdir}")
    try:
        if args.rss_scaling:
            return main_rss_scaling(args, extra, workdir)
        if args.latency:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            import latency

            preflight(need_dnsperf=False)
            try:
                return latency.run(args, extra, workdir, sys.modules[__name__])
            except RuntimeError as exc:
                raise BenchError(str(exc)) from None
        return main_run(args, extra, workdir)
    except BenchError as exc:
        print(f"benchmark: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("benchmark: interrupted", file=sys.stderr)
        return 130
    finally:
        if cleanup:
            shutil.rmtree(workdir, ignore_errors=True)
        elif not args.workdir:
            log(f"kept {workdir}")


if __name__ == "__main__":
    sys.exit(main())
