"""Live evaluation: run a pure analysis function, fetch what it missed, run it again."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from typing import TypeVar

from ..answers import AnswerSet
from ..resolver import Fleet

T = TypeVar("T")

#: Evaluation is bounded by RFC 7208's limits; this only stops a pathological loop.
MAX_ROUNDS = 60


async def resolve_until_complete(fn: Callable[[AnswerSet], T], fleet: Fleet) -> T:
    """Call ``fn(dns)`` until it asks for nothing it does not have; return its last result."""
    dns = AnswerSet()
    result = fn(dns)
    for _ in range(MAX_ROUNDS):
        if not dns.missing:
            break
        need = sorted(dns.missing)
        dns.missing.clear()
        for lk in await asyncio.gather(*(fleet.resolve(q, t) for q, t in need)):
            dns.add(lk.answer)
        result = fn(dns)
    return result


def check_host_live(
    ip: str,
    sender: str,
    *,
    helo: str | None = None,
    resolvers: list[str] | None = None,
    timeout: float = 2.5,
) -> tuple[str, str]:
    """RFC 7208 check_host against live DNS; ``sender`` is an address or a bare domain."""
    from ..policies import spf

    try:
        ipaddress.ip_address(ip)
    except ValueError:
        raise ValueError(f"{ip!r} is not an IP address") from None
    if "@" in sender:
        domain = sender.rsplit("@", 1)[1]
    elif sender:
        domain, sender = sender, f"postmaster@{sender}"
    else:
        if not helo:
            raise ValueError("an empty sender needs --helo")
        domain, sender = helo, f"postmaster@{helo}"

    async def run() -> tuple[str, str]:
        fleet = Fleet(resolvers or None, timeout=timeout, qps=0, concurrency=32)
        try:
            return await resolve_until_complete(
                lambda dns: spf.check_host(ip, domain, sender, dns, helo=helo), fleet
            )
        finally:
            fleet.close()

    return asyncio.run(run())
