"""The latency benchmark (``benchmarks/run.py --latency``, ``make bench-latency``): the scan through
dnsdist in front of NSD with a field-like profile, against the same list scanned directly.

Profile (issue 22): every reply held 20, 80 or 250 ms (40/40/20 %, mean 90 ms), 1 % of queries
dropped, 1 % answered SERVFAIL (a fresh draw for each query: transient), and 2 % of the
domains lame (every query at or below them dropped). All by dnsdist's own rules (Lua config):
``DelayAction`` with ``ProbaRule`` (the last delay that matches wins), ``DropAction``,
``RCodeAction(DNSRCode.SERVFAIL)``, and a ``SuffixMatchNodeRule`` of the lame names. Loopback only.

Printed per run: domains/s; efficiency = queries sent/s ÷ (concurrency ÷ mean RTT of the
profile), over the whole run, and while the list lasts (the first query to the last domain's
start: the window's steady use, without the start-up and the last domains' drain); the tail
(time from the last good domain's last answer to the last domain's); answers lost (a query the truth answered NOERROR/NXDOMAIN that ended TIMEOUT or
SERVFAIL, outside the lame domains); domains whose columns differ from the truth; domains with
a definite "absent" where the truth has a record; domains marked failed outside the lame ones.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: (delay ms, share) of the profile; its mean RTT is the efficiency's reference.
DELAYS = ((20, 0.4), (80, 0.4), (250, 0.2))
MEAN_RTT_S = sum(ms * p for ms, p in DELAYS) / 1000
LOSS = 0.01
SERVFAIL = 0.01
LAME = 0.02
#: Columns that say nothing about the DNS answers (or depend on the clock).
IGNORED = {"scanned_at"}
#: (column, value that means "definitely absent") checked against the truth.
ABSENT = (
    ("spf_status", "none"),
    ("dmarc_status", "none"),
    ("mta_sts_status", "none"),
    ("tlsrpt_status", "none"),
    ("bimi_status", "none"),
    ("has_mx", False),
    ("dkim_domainkey", "nxdomain"),
)
FAILED_STATUSES = {"servfail", "timeout", "error", "refused"}
TARGETS = {"efficiency_1024": 0.70, "domains_per_s_defaults": 180.0, "tail_s": 3.0}


def dnsdist_exe() -> str:
    exe = shutil.which("dnsdist") or "/usr/bin/dnsdist"
    if not Path(exe).exists():
        raise RuntimeError("dnsdist is not installed: apt-get install dnsdist")
    return exe


def dnsdist_config(port: int, backend: str, lame: list[str]) -> str:
    """The Lua configuration of the profile (rules are matched in order)."""
    lines = [
        f'setLocal("127.0.0.1:{port}")',
        'setACL({"127.0.0.0/8"})',
        # (several sockets to NSD: each backend socket has the kernel's default receive buffer,
        # which one socket overflows in the bursts of a 1024-query window)
        f'newServer({{address="{backend}", checkName="jp.", checkType="SOA", mustResolve=true, '
        "sockets=8})",
        "setMaxUDPOutstanding(65535)",
        "setUDPSocketBufferSizes(4194304, 4194304)",  # (the frontend's)
        "lame = newSuffixMatchNode()",
        *(f'lame:add(newDNSName("{name}."))' for name in lame),
        "addAction(SuffixMatchNodeRule(lame), DropAction())",
        f"addAction(ProbaRule({LOSS}), DropAction())",
        f"addAction(ProbaRule({SERVFAIL}), RCodeAction(DNSRCode.SERVFAIL))",
    ]
    # Non-terminal delays; the last that matches is the one applied: 250 ms with p = 0.2, else
    # 80 ms with p = 0.4 / 0.8, else 20 ms.
    (d1, _), (d2, p2), (d3, p3) = DELAYS
    lines += [
        f"addAction(AllRule(), DelayAction({d1}))",
        f"addAction(ProbaRule({p2 / (1 - p3):.6f}), DelayAction({d2}))",
        f"addAction(ProbaRule({p3}), DelayAction({d3}))",
    ]
    return "\n".join(lines) + "\n"


class Dnsdist:
    """dnsdist with the profile on a free loopback port, until ``stop()``."""

    def __init__(self, rundir: Path, backend: str, lame: list[str], port: int) -> None:
        self.port = port
        rundir.mkdir(parents=True, exist_ok=True)
        self.conf = rundir / "dnsdist.conf"
        self.conf.write_text(dnsdist_config(port, backend, lame), encoding="utf-8")
        self.log = rundir / "dnsdist.log"
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, preexec=None) -> None:  # noqa: ANN001
        import dns.exception
        import dns.message
        import dns.query

        check = subprocess.run(
            [dnsdist_exe(), "--check-config", "-C", str(self.conf)], capture_output=True, text=True
        )
        if check.returncode != 0:
            raise RuntimeError(f"dnsdist --check-config: {(check.stderr or check.stdout)[-800:]}")
        self.proc = subprocess.Popen(
            [dnsdist_exe(), "--supervised", "--disable-syslog", "-C", str(self.conf)],
            stdin=subprocess.DEVNULL,
            stdout=open(self.log, "wb"),  # noqa: SIM115 - the child keeps it
            stderr=subprocess.STDOUT,
            preexec_fn=preexec,
        )
        deadline = time.monotonic() + 20
        good = 0
        while good < 5:  # (one answer may be a dropped or SERVFAIL draw)
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dnsdist did not start: {self.log.read_text()[-800:]}")
            try:
                reply = dns.query.udp(
                    dns.message.make_query("jp.", "SOA"), "127.0.0.1", port=self.port, timeout=0.5
                )
                good += reply.rcode() == 0
            except (dns.exception.DNSException, OSError):
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Run:
    name: str
    options: list[str]
    concurrency: int
    wall_s: float = 0.0
    domains: int = 0
    manifest: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)


def scan(cmd_base: list[str], domains_file: Path, out: Path, resolver: str, opts: list[str],
         cwd: Path, preexec=None) -> tuple[float, dict[str, Any]]:  # noqa: ANN001
    """One complete scan as a subprocess; (wall seconds, manifest)."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [*cmd_base, "scan", str(domains_file), "--out", str(out), "--snapshot", "bench",
           "--resolver", resolver, "--quiet", *opts]  # fmt: skip
    t0 = time.monotonic()
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, preexec_fn=preexec)
    wall = time.monotonic() - t0
    manifest_end = time.time()
    if res.returncode != 0:
        raise RuntimeError(f"scan exited with {res.returncode}: {res.stderr[-1500:]}")
    manifest = json.loads((out / "domains" / "snapshot=bench" / "_manifest.json").read_text())
    manifest["_exited"] = manifest_end
    return wall, manifest


def _table(out: Path, name: str, columns: list[str] | None = None) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for part in sorted((out / name / "snapshot=bench").glob("part-*.parquet")):
        rows.extend(pq.read_table(part, columns=columns).to_pylist())
    return rows


def compare(
    truth_out: Path, out: Path, lame: set[str], timeout: float, ended: float
) -> dict[str, Any]:
    """What the run under the profile got wrong or left unknown, against the direct scan."""
    truth = {r["domain"]: r for r in _table(truth_out, "domains")}
    got = {r["domain"]: r for r in _table(out, "domains")}
    differ, absent, failed, lame_not_timeout = [], [], [], []
    for domain, t in truth.items():
        g = got.get(domain)
        if g is None:
            differ.append(domain)
            continue
        if domain in lame:
            if g["status"] != "timeout":
                lame_not_timeout.append(domain)
            continue
        cols = [c for c in t if c not in IGNORED and t[c] != g.get(c)]
        if cols:
            differ.append(domain)
        for col, none in ABSENT:
            if g.get(col) == none and t.get(col) != none:
                absent.append((domain, col))
        if g.get("dkim_selectors") == [] and t.get("dkim_selectors"):
            absent.append((domain, "dkim_selectors"))
        if g["status"] != t["status"] or (
            cols and any(g.get(c) is None or g.get(c) == "temperror" for c in cols)
        ):
            failed.append(domain)
    # Answers lost: network queries the truth answered definitely, stored as a failure.
    cols = ["domain", "qname", "qtype", "rcode", "queried_at", "rtt_ms", "transport", "attempts"]
    t_rc = {(r["domain"], r["qname"], r["qtype"]): r["rcode"] for r in _table(truth_out, "records", cols)}
    lost = 0
    records = _table(out, "records", cols)
    done: dict[str, float] = {}
    began: dict[str, float] = {}
    rtts = []
    for r in records:
        if r["transport"] != "cache":
            at = r["queried_at"].timestamp()
            if at < began.get(r["domain"], float("inf")):
                began[r["domain"]] = at
        key = (r["domain"], r["qname"], r["qtype"])
        if r["domain"] not in lame and r["rcode"] in ("TIMEOUT", "SERVFAIL", "ERROR") and t_rc.get(
            key
        ) in ("NOERROR", "NXDOMAIN"):
            lost += 1
        # (queried_at: when the lookup was submitted; a TIMEOUT ends ``timeout`` after its send)
        took = timeout if r["rcode"] == "TIMEOUT" else (r["rtt_ms"] or 0) / 1000
        end = r["queried_at"].timestamp() + took
        if end > done.get(r["domain"], 0.0):
            done[r["domain"]] = end
        if r["transport"] == "udp" and r["rcode"] in ("NOERROR", "NXDOMAIN"):
            rtts.append(r["rtt_ms"])
    good_ends = [done[d] for d, g in got.items() if d not in lame and g["status"] == "ok" and d in done]
    tail = max(done.values()) - max(good_ends) if good_ends else None
    tail_exit = ended - max(good_ends) if good_ends else None
    # While the list lasts: from the first query to the start of the last domain (its first
    # lookup); the sends of the lookups submitted in it (attempts, counted at submission).
    first, last_start = min(began.values()), max(began.values())
    sent_while_list = sum(
        r["attempts"] for r in records
        if r["transport"] != "cache" and r["queried_at"].timestamp() <= last_start
    )  # fmt: skip
    return {
        "differ": len(differ),
        "differ_examples": differ[:5],
        "absent_where_truth_has_record": len(absent),
        "absent_examples": absent[:5],
        "failed_outside_lame": len(failed),
        "lame_not_timeout": len(lame_not_timeout),
        "answers_lost": lost,
        "tail_s": tail,
        "tail_to_exit_s": tail_exit,
        "mean_rtt_ms_measured": sum(rtts) / len(rtts) if rtts else None,
        "list_lasts_s": last_start - first,
        "queries_per_s_while_list": sent_while_list / max(1e-9, last_start - first),
    }


def run(args: Any, extra: list[str], workdir: Path, helpers: Any) -> int:
    """``helpers``: benchmarks/run.py's module (population, NSD, scan command, logging)."""
    log = helpers.log
    dnsdist_exe()
    popdir = helpers.population_dir(workdir, args.domains, args.seed)
    domains_file = popdir / "domains.txt"
    names = [n.strip() for n in domains_file.read_text(encoding="utf-8").split() if n.strip()]
    rng = random.Random(args.seed)
    lame = sorted(rng.sample(names, max(1, round(LAME * len(names)))))
    nsd = helpers.NsdServer(workdir / "nsd", popdir)
    dd = None
    runs = [
        Run("--concurrency 1024 --qps 0", ["--concurrency", "1024", "--qps", "0"], 1024),
        Run("defaults", [], 256),
    ]
    cmd = helpers.scan_command()
    try:
        nsd.start()
        dd = Dnsdist(workdir / "dnsdist", nsd.address, lame, helpers.free_port())
        dd.start(helpers.die_with_parent)
        log(f"NSD on {nsd.address}; dnsdist on {dd.address} with {len(lame)} lame domains")
        truth_out = workdir / "truth"
        wall, manifest = scan(cmd, domains_file, truth_out, nsd.address,
                              ["--qps", "0", "--concurrency", "512", *extra], helpers.REPO,
                              helpers.die_with_parent)  # fmt: skip
        log(f"truth (direct to NSD): {manifest['domains']:,} domains in {wall:.1f} s")
        default_conc = _default_concurrency(cmd, helpers.REPO)
        for r in runs:
            if r.name == "defaults":
                r.concurrency = default_conc
            out = workdir / f"run-{r.concurrency}-{len(r.options)}"
            r.wall_s, r.manifest = scan(cmd, domains_file, out, dd.address, [*r.options, *extra],
                                        helpers.REPO, helpers.die_with_parent)  # fmt: skip
            r.domains = int(r.manifest.get("domains", 0))
            q = r.manifest.get("queries", {})
            qps = q.get("queries", 0) / r.wall_s
            r.figures = {
                "domains_per_s": r.domains / r.wall_s,
                "queries_per_s": qps,
                "replies_per_s": q.get("replies", 0) / r.wall_s,
                "efficiency": qps / (r.concurrency / MEAN_RTT_S),
                "efficiency_replies": q.get("replies", 0) / r.wall_s / (r.concurrency / MEAN_RTT_S),
                "queries": q,
                "status_counts": r.manifest.get("status_counts"),
                **compare(
                    truth_out,
                    out,
                    set(lame),
                    float(r.manifest.get("options", {}).get("timeout", 2.5)),
                    r.manifest["_exited"],
                ),
            }
            bound = r.concurrency / MEAN_RTT_S
            r.figures["efficiency_while_list"] = r.figures["queries_per_s_while_list"] / bound
            log(f"{r.name}: {r.domains:,} domains in {r.wall_s:.1f} s")
    finally:
        if dd is not None:
            dd.stop()
        nsd.stop()
    report(runs, len(names), len(lame))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "profile": {"delays_ms": DELAYS, "loss": LOSS, "servfail": SERVFAIL, "lame": LAME},
            "machine": helpers.machine_info(),
            "runs": [{"name": r.name, "wall_s": r.wall_s, "domains": r.domains,
                      "concurrency": r.concurrency, **r.figures} for r in runs],
        }, indent=2, default=str) + "\n")  # fmt: skip
    return 0


def _default_concurrency(cmd: list[str], cwd: Path) -> int:
    import re

    out = subprocess.run([*cmd, "scan", "--help"], capture_output=True, text=True, cwd=cwd).stdout
    m = re.search(r"--concurrency.*?\[default:\s*(\d+)", out, re.S)
    return int(m.group(1)) if m else 256


def report(runs: list[Run], n: int, lame: int) -> None:
    print()
    print(
        f"profile: replies held {', '.join(f'{ms} ms {p:.0%}' for ms, p in DELAYS)} (mean "
        f"{MEAN_RTT_S * 1000:.0f} ms), {LOSS:.0%} dropped, {SERVFAIL:.0%} SERVFAIL, "
        f"{lame} of {n:,} domains lame (dnsdist rules in front of NSD, loopback)"
    )
    for r in runs:
        f = r.figures
        q = f["queries"]
        st = ", ".join(f"{k} {v:,}" for k, v in sorted((f["status_counts"] or {}).items()))
        print()
        print(f"{r.name} (concurrency {r.concurrency}): {r.domains:,} domains in {r.wall_s:.1f} s")
        print(f"  domains/s                 {f['domains_per_s']:,.1f}")
        print(
            f"  efficiency                {f['efficiency']:.0%} (queries sent {f['queries_per_s']:,.0f}/s"
            f" over {r.concurrency} / {MEAN_RTT_S * 1000:.0f} ms; replies: {f['efficiency_replies']:.0%})"
        )
        print(
            f"  while the list lasts      {f['efficiency_while_list']:.0%} (its first "
            f"{f['list_lasts_s']:.1f} s: the first query to the last domain's start)"
        )
        tail = f["tail_s"]
        print(
            f"  tail                      {tail:.2f} s after the last good domain's answer "
            f"({f['tail_to_exit_s']:.2f} s to the scan's exit)"
            if tail is not None
            else "  tail  -"
        )
        print(f"  answers lost              {f['answers_lost']:,}")
        print(f"  domains differing         {f['differ']:,} {f['differ_examples']}")
        print(f"  definite absent vs truth  {f['absent_where_truth_has_record']:,} {f['absent_examples']}")
        print(
            f"  failed outside lame       {f['failed_outside_lame']:,} "
            f"({f['failed_outside_lame'] / max(1, r.domains - lame):.2%}); lame not timeout "
            f"{f['lame_not_timeout']}"
        )
        print(
            f"  queries                   {q.get('queries', 0):,} sent, {q.get('retransmits', 0):,} "
            f"retransmitted, {q.get('late_replies', 0):,} late replies kept, "
            f"{q.get('servfail_retries', 0):,} SERVFAIL retried, {q.get('timeouts', 0):,} late attempts"
        )
        mrtt = f["mean_rtt_ms_measured"]
        print(f"  mean RTT of answers       {mrtt:.0f} ms (as the scan measured it)" if mrtt else "")
        print(f"  statuses                  {st}")
