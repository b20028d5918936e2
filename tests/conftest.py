"""Shared fixtures: a real NSD on loopback, and resolvers that misbehave."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from mailauth_survey.collect.domain import record_dict, scan_domain
from mailauth_survey.resolver import Fleet
from tests.nsd import Nsd


@pytest.fixture
def nsd_factory(tmp_path_factory) -> Iterator[Callable[[dict[str, str]], Nsd]]:
    """Start NSD with the zones a test writes; every server is stopped after the test."""
    started: list[Nsd] = []

    def start(zones: dict[str, str]) -> Nsd:
        server = Nsd(tmp_path_factory.mktemp("nsd"), zones)
        started.append(server)
        return server

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def silent_resolver() -> Iterator[str]:
    """A UDP port that reads queries and never answers (a dead resolver)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def write_list(path: Path, names: list[str]) -> Path:
    path.write_text("\n".join(names) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def fault_proxy() -> Iterator[Callable[..., object]]:
    """A fault-injecting UDP proxy in front of a server (tests/faultproxy.py); stopped after."""
    from tests.faultproxy import FaultProxy

    started: list[FaultProxy] = []

    def start(upstream: str, rules: dict[str, str] | None = None) -> FaultProxy:
        proxy = FaultProxy(upstream, rules)
        started.append(proxy)
        return proxy

    yield start
    for p in started:
        p.stop()


async def scan_domains(domains: Iterable[str], fleet: Fleet) -> list[tuple[dict, list[dict], list]]:
    """Each domain scanned as the scan does (no probes), its records as dicts."""
    await fleet.open()
    results = await asyncio.gather(*(scan_domain(d, fleet) for d in domains))
    return [(row, [record_dict(r) for r in recs], probes) for row, recs, probes in results]
