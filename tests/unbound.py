"""A validating resolver for the tests: Unbound in front of NSD serving zones the test signs.

:class:`DnssecLab` builds a small DNSSEC world on loopback:

* a parent zone (``jp.`` in the tests) signed with a KSK and a ZSK (``ldns-keygen``,
  ``ldns-signzone``), whose DS is Unbound's only trust anchor;
* child zones delegated from it (NS, plus DS where the child should be secure), each one
  :class:`Child` saying how it is signed: signed with its DS in the parent (secure), unsigned
  (insecure: the parent's NSEC proves there is no DS), signed without a DS in the parent (an
  island: insecure, since a zone signed by its own key is no chain of trust), signed with
  signatures whose validity ended (bogus), or signed and then tampered with (bogus);
* one NSD (:class:`tests.nsd.Nsd`) serving all of them, and one Unbound validating with
  ``module-config: "validator iterator"``, a ``stub-zone`` per zone pointing at NSD.

Tools: Debian packages ``unbound`` and ``ldnsutils`` (``apt-get install unbound ldnsutils``).
Nothing is written outside the work directory; both servers are stopped by :meth:`stop`.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.query

from tests.nsd import Nsd, free_port, stop_process

TOOLS = ("unbound", "unbound-checkconf", "ldns-keygen", "ldns-signzone")

#: The algorithm of every generated key (RFC 8624 3.1: MUST for signing and for validation).
ALGORITHM = "ECDSAP256SHA256"

DAY = 86400


def missing_tools() -> list[str]:
    """The tools of :data:`TOOLS` that are not on PATH (``/usr/sbin`` included)."""
    return [t for t in TOOLS if _which(t) is None]


def require_tools() -> None:
    missing = missing_tools()
    if missing:
        raise RuntimeError(
            f"{', '.join(missing)} not installed: 'make test' installs them "
            "(apt-get install unbound ldnsutils)"
        )


def _which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin")


def _run(args: list[str], cwd: Path) -> str:
    exe = _which(args[0])
    if exe is None:
        require_tools()
    done = subprocess.run([exe, *args[1:]], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


# --- keys and signing ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    """A zone's KSK and ZSK (base names of ``K<zone>+<alg>+<id>`` files) and the KSK's DS."""

    origin: str
    ksk: str
    zsk: str
    ds: str  # "origin.\tIN\tDS\t<tag> <alg> 2 <digest>" (SHA-256, RFC 4509)


def keygen(workdir: Path, origin: str, algorithm: str = ALGORITHM) -> Keys:
    """Generate a KSK (flags 257) and a ZSK (256) for ``origin`` in ``workdir``."""
    origin = origin.rstrip(".") + "."
    ksk = _run(["ldns-keygen", "-a", algorithm, "-k", origin], workdir).strip()
    zsk = _run(["ldns-keygen", "-a", algorithm, origin], workdir).strip()
    ds = (workdir / f"{ksk}.ds").read_text().strip()
    return Keys(origin, ksk, zsk, ds)


def sign(
    workdir: Path,
    keys: Keys,
    text: str,
    *,
    inception: float | None = None,
    expiration: float | None = None,
) -> str:
    """``text`` signed with ``keys`` (NSEC). Validity: a day ago to ten years from now.

    RRSIG times are 32-bit serial numbers (RFC 4034 3.1.5), so an expiration more than 68 years
    away would read as the past; ten years is safe.
    """
    now = time.time()
    inception = now - DAY if inception is None else inception
    expiration = now + 3650 * DAY if expiration is None else expiration
    stem = keys.origin.rstrip(".") or "root"
    src = workdir / f"{stem}.zone"
    out = workdir / f"{stem}.zone.signed"
    src.write_text(text, encoding="utf-8")
    _run(
        [
            "ldns-signzone",
            "-o", keys.origin,
            "-i", str(int(inception)),
            "-e", str(int(expiration)),
            "-f", str(out),
            str(src), keys.ksk, keys.zsk,
        ],
        workdir,
    )  # fmt: skip
    return out.read_text(encoding="utf-8")


def tamper_rrset(signed: str, owner: str, rtype: str, edit: Callable[[str], str]) -> str:
    """Change the rdata of the ``owner``/``rtype`` records of a signed zone (not their RRSIG).

    The RRSIG then no longer matches the RRset, so a validator finds it bogus (RFC 4035 5.3.3).
    """
    owner = owner.rstrip(".").lower() + "."
    out = []
    for line in signed.splitlines():
        parts = line.split("\t")
        if len(parts) >= 5 and parts[0].lower() == owner and parts[3].upper() == rtype.upper():
            parts[4] = edit(parts[4])
            line = "\t".join(parts)
        out.append(line)
    return "\n".join(out) + "\n"


# --- Unbound ---------------------------------------------------------------------------------


class Unbound:
    """Unbound validating on 127.0.0.1:port, with ``stubs`` ({zone: "127.0.0.1@port"}).

    ``trust_anchors`` are DS or DNSKEY records in zone-file format; ``insecure`` zones are
    declared ``domain-insecure`` (no validation below them).
    """

    def __init__(
        self,
        workdir: Path,
        stubs: dict[str, str],
        trust_anchors: list[str],
        insecure: tuple[str, ...] = (),
    ) -> None:
        require_tools()
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        conf = [
            "server:",
            "  interface: 127.0.0.1",
            f"  port: {self.port}",
            "  do-ip6: no",
            "  do-not-query-localhost: no",
            '  username: ""',
            '  chroot: ""',
            f'  directory: "{self.dir}"',
            f'  pidfile: "{self.dir}/unbound.pid"',
            f'  logfile: "{self.dir}/unbound.log"',
            "  use-syslog: no",
            "  verbosity: 1",
            "  val-log-level: 2",
            "  num-threads: 1",
            '  module-config: "validator iterator"',
            "  qname-minimisation: no",
            "  harden-dnssec-stripped: yes",
            "  val-permissive-mode: no",
            "  prefetch: no",
            "  ede: yes",
            "  access-control: 127.0.0.0/8 allow",
        ]
        conf += [f'  trust-anchor: "{_one_line(ta)}"' for ta in trust_anchors]
        conf += [f'  domain-insecure: "{z.rstrip(".")}."' for z in insecure]
        conf += ["remote-control:", "  control-enable: no"]
        for zone_name, addr in sorted(stubs.items()):
            conf += ["stub-zone:", f'  name: "{zone_name.rstrip(".")}."', f"  stub-addr: {addr}"]
        self.conf = self.dir / "unbound.conf"
        self.conf.write_text("\n".join(conf) + "\n", encoding="utf-8")
        check = subprocess.run(
            [_which("unbound-checkconf"), str(self.conf)], capture_output=True, text=True
        )
        if check.returncode != 0:
            raise RuntimeError(f"unbound-checkconf: {check.stderr.strip() or check.stdout.strip()}")
        self._stderr = open(self.dir / "unbound.stderr", "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [_which("unbound"), "-d", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )
        self.probe = next(iter(sorted(stubs)), ".")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        texts = []
        for name in ("unbound.log", "unbound.stderr"):
            p = self.dir / name
            if p.exists():
                texts.append(p.read_text(errors="replace"))
        return "\n".join(texts)

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Until Unbound answers (any rcode) a query for the first stub zone's SOA."""
        deadline = time.monotonic() + timeout
        query = dns.message.make_query(self.probe.rstrip(".") + ".", "SOA")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"unbound exited: {self.log().strip()[-2000:]}")
            try:
                dns.query.udp(query, "127.0.0.1", port=self.port, timeout=0.5)
                return
            except (dns.exception.Timeout, OSError):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"unbound did not start answering: {self.log().strip()[-2000:]}")

    def stop(self) -> None:
        stop_process(self.proc)
        self._stderr.close()


def _one_line(rr: str) -> str:
    """A key or DS record as one line with its comment (``;{id = ...}``) cut."""
    return " ".join(rr.split(";", 1)[0].split())


# --- the lab ---------------------------------------------------------------------------------


@dataclass
class Child:
    """A zone delegated from the lab's parent, and how it is signed.

    ``signed`` and ``ds``: signed with its DS in the parent is *secure*; unsigned is *insecure*
    (the parent's signed NSEC proves no DS, RFC 4035 5.2); signed with no DS in the parent is an
    island, also insecure. ``expired``: signatures whose validity ended a month ago (RFC 4035
    5.3.1), so everything in it is *bogus*. ``tamper`` edits the signed text afterwards (see
    :func:`tamper_rrset`) to make one RRset bogus.
    """

    text: str
    signed: bool = True
    ds: bool = True
    expired: bool = False
    tamper: Callable[[str], str] | None = None


class DnssecLab:
    """NSD with a signed parent zone and its children, and Unbound validating from its DS."""

    def __init__(
        self,
        workdir: Path,
        parent: str,
        parent_text: str,
        children: dict[str, Child],
        *,
        algorithm: str = ALGORITHM,
    ) -> None:
        require_tools()
        started = time.monotonic()
        self.dir = workdir
        keydir = workdir / "keys"
        keydir.mkdir(parents=True, exist_ok=True)
        self.parent = parent.rstrip(".").lower()
        zones: dict[str, str] = {}
        delegations: list[str] = []
        self.keys: dict[str, Keys] = {}
        now = time.time()
        for origin, child in sorted(children.items()):
            origin = origin.rstrip(".").lower()
            if not origin.endswith("." + self.parent):
                raise ValueError(f"{origin} is not below {self.parent}")
            text = child.text
            if child.signed:
                keys = keygen(keydir, origin, algorithm)
                self.keys[origin] = keys
                window = (now - 60 * DAY, now - 30 * DAY) if child.expired else (None, None)
                text = sign(keydir, keys, text, inception=window[0], expiration=window[1])
                if child.tamper is not None:
                    text = child.tamper(text)
                if child.ds:
                    delegations.append(keys.ds)
            delegations += [f"{origin}. IN NS {ns}" for ns in _apex_ns(child.text, origin)]
            zones[origin] = text
        parent_keys = keygen(keydir, self.parent, algorithm)
        self.keys[self.parent] = parent_keys
        self.trust_anchor = parent_keys.ds
        zones[self.parent] = sign(
            keydir, parent_keys, parent_text.rstrip("\n") + "\n" + "\n".join(delegations) + "\n"
        )
        self.zones = zones
        self.nsd = Nsd(workdir / "nsd", zones)
        try:
            self.unbound = Unbound(
                workdir / "unbound",
                stubs=dict.fromkeys(zones, f"127.0.0.1@{self.nsd.port}"),
                trust_anchors=[self.trust_anchor],
            )
            self.unbound.wait_ready()
        except Exception:
            self.nsd.stop()
            raise
        #: Seconds from nothing to a validating resolver answering (keys, signing, both servers).
        self.startup_seconds = time.monotonic() - started

    @property
    def address(self) -> str:
        """The validating resolver (Unbound)."""
        return self.unbound.address

    @property
    def authoritative(self) -> str:
        """NSD itself (answers without AD: it does not validate)."""
        return self.nsd.address

    def stop(self) -> None:
        try:
            self.unbound.stop()
        finally:
            self.nsd.stop()


def _apex_ns(text: str, origin: str) -> list[str]:
    """The apex NS targets of a zone written by :func:`tests.nsd.zone` (``@ IN NS host.``)."""
    found = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] in ("@", origin + ".") and parts[-2].upper() == "NS":
            found.append(parts[-1])
    return found or ["ns1.example-dns.net."]
