"""How probes behave (:class:`ProbeSettings`) and what they may touch: the opt-out list and the
rule that only globally routable addresses are contacted. No network here."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..answers import normalize_name

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def default_user_agent(info_url: str | None) -> str:
    """``mailauth-survey/<version> (+URL)``: the survey names itself and where to read about it."""
    ua = f"mailauth-survey/{__version__}"
    return f"{ua} (+{info_url})" if info_url else ua


@dataclass
class ProbeSettings:
    """How probes behave; one object for the whole scan.

    ``timeout`` bounds one whole exchange (one HTTPS fetch; one SMTP connection), in seconds.
    ``max_connections`` caps open probe connections over the scan. ``max_addresses`` caps the
    addresses probed per MX host (the rest are recorded as ``skipped``). ``cafile`` (PEM) is
    trusted in addition to the system trust store (a lab CA, an enterprise proxy; tests pass
    their private CA). Ports are overridable for tests.
    """

    timeout: float = 10.0
    ehlo_name: str = "mailauth-survey.invalid"
    info_url: str | None = None
    user_agent: str = ""  # "" → default_user_agent(info_url)
    allow_private: bool = False
    exclude_domains: frozenset[str] = frozenset()
    exclude_networks: tuple[IPNetwork, ...] = ()
    max_connections: int = 20
    max_addresses: int = 4
    https_port: int = 443
    smtp_port: int = 25
    cafile: str | None = None
    max_policy_bytes: int = 65536

    def __post_init__(self) -> None:
        if not self.user_agent:
            self.user_agent = default_user_agent(self.info_url)
        self.exclude_domains = frozenset(normalize_name(d) for d in self.exclude_domains)
        self.exclude_networks = tuple(
            ipaddress.ip_network(n, strict=False) if isinstance(n, str) else n
            for n in self.exclude_networks
        )
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if not self.ehlo_name or any(c.isspace() or not c.isprintable() for c in self.ehlo_name):
            raise ValueError(f"EHLO name {self.ehlo_name!r}: a domain or address literal is needed")
        if any(c in "\r\n" for c in self.user_agent):
            raise ValueError("the User-Agent must be one line")


def load_exclusions(path: str | Path) -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    """Read an opt-out list: one domain or network (CIDR, or a bare address) a line.

    ``#`` starts a comment; blank lines are ignored; domains are normalized (UTS 46 A-labels,
    lower case, no trailing dot; a leading ``*.`` is dropped since a domain's whole subtree is
    excluded anyway). A line that is neither is an error (ValueError naming the line numbers):
    an opt-out list must never be half-read.
    """
    from ..domains import BadName, normalize

    domains: set[str] = set()
    networks: list[IPNetwork] = []
    bad: list[str] = []
    text = Path(path).read_text(encoding="utf-8-sig")
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            networks.append(ipaddress.ip_network(line, strict=False))
            continue
        except ValueError:
            pass
        name = line[2:] if line.startswith("*.") else line
        try:
            domains.add(normalize(name).domain)
        except BadName as exc:
            bad.append(f"line {number}: {exc}")
    if bad:
        more = f"; and {len(bad) - 3} more" if len(bad) > 3 else ""  # (one line, however many)
        raise ValueError(f"{path}: not a domain or network: " + "; ".join(bad[:3]) + more)
    return frozenset(domains), tuple(networks)


def domain_excluded(name: str, settings: ProbeSettings) -> bool:
    """Whether ``name`` or a domain above it is on the opt-out list."""
    if not settings.exclude_domains:
        return False
    labels = normalize_name(name).split(".")
    return any(".".join(labels[i:]) in settings.exclude_domains for i in range(len(labels)))


def address_allowed(ip: str, settings: ProbeSettings) -> str | None:
    """None when a probe may connect to ``ip``; otherwise the reason it may not.

    ``"invalid address"``, ``"non-global address"`` (not ``is_global``: loopback, private,
    link-local, shared address space, documentation, multicast...; IPv4-mapped IPv6 addresses are
    judged as the IPv4 address they carry) unless ``allow_private``, ``"excluded network"``.
    """
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return "invalid address"
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if not settings.allow_private and (not addr.is_global or addr.is_multicast):
        return "non-global address"
    if any(addr in net for net in settings.exclude_networks if net.version == addr.version):
        return "excluded network"
    return None


def unique_addresses(addresses: Iterable[str]) -> list[str]:
    """The addresses, stripped, empty ones and repeats dropped, in their order."""
    return list(dict.fromkeys(a.strip() for a in addresses if a and a.strip()))
