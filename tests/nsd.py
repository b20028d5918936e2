"""A real authoritative DNS server for the tests: NSD on a free loopback port.

Rate limiting is off (``rrl-ratelimit: 0``; Debian's build has it on), one server process. Zones
are zone-file texts the tests write; ``zone()`` builds one with SOA and NS at the apex.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import dns.message
import dns.query


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


def zone(
    origin: str, *records: str, ns: tuple[str, ...] = ("ns1.example-dns.net", "ns2.example-dns.net")
) -> str:
    """A zone file: SOA and NS at the apex, then ``records`` (relative or absolute owners)."""
    origin = origin.rstrip(".") + "."
    lines = [
        f"$ORIGIN {origin}",
        "$TTL 300",
        f"@ IN SOA {ns[0]}. hostmaster.{origin} 1 3600 600 86400 300",
    ]
    lines += [f"@ IN NS {n}." for n in ns]
    lines += list(records)
    return "\n".join(lines) + "\n"


class Nsd:
    """NSD serving ``zones`` ({origin: zone text}) on 127.0.0.1:port until ``stop()``."""

    def __init__(self, workdir: Path, zones: dict[str, str]) -> None:
        exe = shutil.which("nsd")
        if exe is None:
            raise RuntimeError(
                "nsd is not installed: 'make test' installs it (apt-get install nsd)"
            )
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        conf = [
            "server:",
            "  ip-address: 127.0.0.1",
            f"  port: {self.port}",
            '  username: ""',
            '  chroot: ""',
            f'  zonesdir: "{self.dir}"',
            f'  pidfile: "{self.dir}/nsd.pid"',
            f'  xfrdfile: "{self.dir}/xfrd.state"',
            f'  zonelistfile: "{self.dir}/zone.list"',
            f'  logfile: "{self.dir}/nsd.log"',
            '  database: ""',
            "  server-count: 1",
            "  rrl-ratelimit: 0",
            "  verbosity: 1",
            "  tcp-count: 200",
            "remote-control:",
            "  control-enable: no",
        ]
        for i, (origin, text) in enumerate(sorted(zones.items())):
            fname = f"z{i}.zone"
            (self.dir / fname).write_text(text, encoding="utf-8")
            conf += ["zone:", f"  name: {origin.rstrip('.')}.", f'  zonefile: "{fname}"']
        self.first_zone = sorted(zones)[0] if zones else None
        self.conf = self.dir / "nsd.conf"
        self.conf.write_text("\n".join(conf) + "\n", encoding="utf-8")
        check = subprocess.run(["nsd-checkconf", str(self.conf)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"nsd-checkconf: {check.stderr.strip() or check.stdout.strip()}")
        self.proc = subprocess.Popen(
            [exe, "-d", "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self._wait_ready()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        name = (self.first_zone or "example").rstrip(".") + "."
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                log = (
                    (self.dir / "nsd.log").read_text(errors="replace")
                    if (self.dir / "nsd.log").exists()
                    else ""
                )
                raise RuntimeError(f"nsd exited: {err.strip()} {log.strip()[-2000:]}")
            try:
                dns.query.udp(
                    dns.message.make_query(name, "SOA"), "127.0.0.1", port=self.port, timeout=0.3
                )
                return
            except (dns.exception.Timeout, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("nsd did not start answering")

    def stop(self) -> None:
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen) -> None:
    """Terminate a test server, killing it when it does not stop within 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
