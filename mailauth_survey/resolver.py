"""The resolver fleet: asyncio DNS over one connected UDP socket per resolver, TCP on truncation.

Why hand-made rather than a stub resolver library: a national scan makes tens of millions of
queries, and it must keep every outcome apart (NOERROR, NODATA, NXDOMAIN, SERVFAIL, REFUSED,
TIMEOUT). Each resolver has one socket whose 16-bit query IDs are multiplexed; a reply is
accepted only when its ID, name and type match a query in flight, and junk is counted, never
stored. A resolver that stops answering is set aside for a while and its load moves to the
others. Names that many domains share (provider SPF includes, MX hosts, report destinations) are
answered from a per-scan cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from asyncio_throttle import Throttler

from . import wire
from .answers import ERROR, NOERROR, NXDOMAIN, TIMEOUT, Answer, normalize_name, valid_qname

DEFAULT_PORT = 53
MAX_CNAME_CHAIN = 8
SOCKET_BUFFER = 4 << 20


def parse_address(text: str) -> tuple[str, int]:
    """``HOST[:PORT]``, ``[V6]:PORT`` or a bare IPv6 address → (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else DEFAULT_PORT
        return host, port
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, DEFAULT_PORT


def system_resolvers(path: str = "/etc/resolv.conf") -> list[str]:
    """The nameservers of resolv.conf (the default fleet when none is given)."""
    found = []
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    found.append(parts[1])
    except OSError:
        pass
    return found or ["127.0.0.1"]


@dataclass(slots=True)
class Lookup:
    """An answer with how it was obtained (the records table keeps both)."""

    answer: Answer
    rtt_ms: float
    attempts: int
    resolver: str
    transport: str  # udp | tcp | cache | none
    when: float  # time.time()


@dataclass
class Stats:
    queries: int = 0  # datagrams and TCP queries sent
    replies: int = 0
    timeouts: int = 0
    junk: int = 0  # replies rejected as malformed or unmatched
    tcp: int = 0
    cache_hits: int = 0
    by_rcode: dict[str, int] = field(default_factory=dict)


class _Proto(asyncio.DatagramProtocol):
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream

    def datagram_received(self, data: bytes, addr) -> None:  # noqa: ANN001
        self.upstream._on_datagram(data)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP errors surface as timeouts; the retry logic handles them


class Upstream:
    """One resolver: a connected UDP socket with an ID map, and health bookkeeping."""

    def __init__(self, host: str, port: int, stats: Stats, *, max_inflight: int) -> None:
        self.host, self.port = host, port
        self.name = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        self.stats = stats
        self.max_inflight = max_inflight
        self._transport: asyncio.DatagramTransport | None = None
        self._pending: dict[int, tuple[asyncio.Future, str, str]] = {}
        self.consecutive_timeouts = 0
        self.down_until = 0.0
        self.down_for = 0.0
        self.last_reply = 0.0

    @property
    def inflight(self) -> int:
        return len(self._pending)

    async def _ensure(self) -> None:
        if self._transport is None or self._transport.is_closing():
            loop = asyncio.get_running_loop()
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            # Large buffers: a burst of replies while the loop analyses must not be dropped
            # (a drop is a retry at best, a timeout at worst).
            for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
            sock.setblocking(False)
            sock.connect((self.host, self.port))
            self._transport, _ = await loop.create_datagram_endpoint(lambda: _Proto(self), sock=sock)

    def _on_datagram(self, data: bytes) -> None:
        if len(data) < 12:
            self.stats.junk += 1
            return
        qid = (data[0] << 8) | data[1]
        entry = self._pending.get(qid)
        if entry is None:
            self.stats.junk += 1
            return
        fut, qname, qtype = entry
        try:
            resp = wire.parse_response(data)
        except wire.WireError:
            self.stats.junk += 1
            return
        if resp.qname != qname or resp.qtype != qtype:
            self.stats.junk += 1  # a spoofed or stale reply: keep waiting for the real one
            return
        del self._pending[qid]
        if not fut.done():
            fut.set_result(resp)

    def _new_id(self) -> int:
        while True:
            qid = random.getrandbits(16)
            if qid not in self._pending:
                return qid

    async def query_udp(
        self, qname: str, qtype: str, timeout: float, payload: int
    ) -> wire.Response:
        await self._ensure()
        loop = asyncio.get_running_loop()
        qid = self._new_id()
        fut = loop.create_future()
        self._pending[qid] = (fut, qname, qtype)
        data = wire.make_query(qid, qname, qtype, payload=payload)
        handle = loop.call_later(timeout, _expire, fut)
        try:
            self.stats.queries += 1
            self._transport.sendto(data)
            return await fut
        finally:
            handle.cancel()
            self._pending.pop(qid, None)

    async def query_tcp(self, qname: str, qtype: str, timeout: float) -> wire.Response:
        self.stats.queries += 1
        self.stats.tcp += 1
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(self.host, self.port)
            try:
                qid = self._new_id()
                data = wire.make_query(qid, qname, qtype, payload=65535)
                writer.write(struct.pack("!H", len(data)) + data)
                await writer.drain()
                while True:
                    (length,) = struct.unpack("!H", await reader.readexactly(2))
                    resp = wire.parse_response(await reader.readexactly(length))
                    if resp.id == qid and resp.qname == qname and resp.qtype == qtype:
                        return resp
                    self.stats.junk += 1
            finally:
                writer.close()

    def healthy(self, now: float) -> bool:
        return now >= self.down_until

    def note_reply(self, now: float) -> None:
        self.consecutive_timeouts = 0
        self.down_for = 0.0
        self.down_until = 0.0
        self.last_reply = now

    def note_timeout(self, now: float, threshold: int) -> None:
        self.consecutive_timeouts += 1
        if self.consecutive_timeouts >= threshold:
            # Set aside, and try again later: 2 s, doubling up to a minute.
            self.down_for = min(60.0, self.down_for * 2 or 2.0)
            self.down_until = now + self.down_for
            self.consecutive_timeouts = 0

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def _expire(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())


class NoResolverAnswering(RuntimeError):
    """Every resolver of the fleet has been silent for too long: the scan must stop."""


class Fleet:
    """Resolve (qname, qtype) through one or more resolvers with retries, caps and a cache."""

    def __init__(
        self,
        resolvers: Iterable[str] | None = None,
        *,
        timeout: float = 2.5,
        retries: int = 2,
        qps: float = 0,
        concurrency: int = 256,
        payload: int = 1232,
        cache_size: int = 200_000,
        dead_after: float = 45.0,
        down_threshold: int = 5,
    ) -> None:
        names = list(resolvers or []) or system_resolvers()
        self.stats = Stats()
        per_upstream = max(1, concurrency)
        self.upstreams = [
            Upstream(*parse_address(r), self.stats, max_inflight=per_upstream) for r in names
        ]
        self.timeout = timeout
        self.retries = retries
        self.payload = payload
        self.down_threshold = down_threshold
        self.dead_after = dead_after
        self._throttle = Throttler(rate_limit=qps, period=1.0) if qps and qps > 0 else None
        self._slots = asyncio.Semaphore(concurrency)
        self._cache: OrderedDict[tuple[str, str], Lookup] = OrderedDict()
        self._cache_size = cache_size
        self._inflight: dict[tuple[str, str], asyncio.Future] = {}
        self._started = time.monotonic()
        self._last_reply = time.monotonic()

    @property
    def names(self) -> list[str]:
        return [u.name for u in self.upstreams]

    def _pick(self, avoid: set[int]) -> Upstream:
        now = time.monotonic()
        ups = self.upstreams
        healthy = [i for i, u in enumerate(ups) if u.healthy(now)]
        pool = [i for i in healthy if i not in avoid] or healthy
        if not pool:
            # All set aside: probe the one that comes back first.
            return min(ups, key=lambda u: u.down_until)
        best = min(pool, key=lambda i: (ups[i].inflight, random.random()))
        return ups[best]

    def silent_for(self) -> float:
        """Seconds since any resolver of the fleet last replied."""
        return time.monotonic() - self._last_reply

    @property
    def max_wait(self) -> float:
        """The longest one query can take before it is given up (all attempts and backoffs)."""
        return (self.retries + 1) * self.timeout + min(2.0, 0.1 * 2**self.retries)

    def check_alive(self) -> None:
        """Raise :class:`NoResolverAnswering` when no resolver replied for ``dead_after`` s."""
        if self.stats.queries and self.silent_for() > self.dead_after:
            raise NoResolverAnswering(
                f"no resolver answered for {self.dead_after:.0f} s ({', '.join(self.names)})"
            )

    async def resolve(self, qname: str, qtype: str, *, shared: bool = False) -> Lookup:
        """One query with retries, CNAME chasing and (for shared names) the per-scan cache."""
        qname = normalize_name(qname)
        qtype = qtype.upper()
        if not shared:
            return await self._resolve_chain(qname, qtype)
        key = (qname, qtype)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            self.stats.cache_hits += 1
            return Lookup(hit.answer, 0.0, 0, hit.resolver, "cache", time.time())
        pending = self._inflight.get(key)
        if pending is not None:
            found: Lookup = await asyncio.shield(pending)
            self.stats.cache_hits += 1
            return Lookup(found.answer, 0.0, 0, found.resolver, "cache", time.time())
        fut = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            result = await self._resolve_chain(qname, qtype)
            if result.answer.rcode in (NOERROR, NXDOMAIN):
                self._cache[key] = result
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            fut.set_result(result)
            return result
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved
            raise
        finally:
            del self._inflight[key]

    async def _resolve_chain(self, qname: str, qtype: str) -> Lookup:
        """Ask for qname; when the answer ends in a CNAME without data, follow the chain."""
        first = await self._resolve_one(qname, qtype)
        answer = first.answer
        records = list(answer.records)
        seen = {qname}
        rtt, attempts = first.rtt_ms, first.attempts
        transport = first.transport
        for _ in range(MAX_CNAME_CHAIN):
            if qtype == "CNAME" or answer.rcode != NOERROR:
                break
            target = Answer(qname, qtype, answer.rcode, tuple(records)).cname_target()
            if target is None or target in seen or not valid_qname(target):
                break
            seen.add(target)
            step = await self._resolve_one(target, qtype)
            rtt += step.rtt_ms
            attempts += step.attempts
            if step.transport == "tcp":
                transport = "tcp"
            answer = step.answer
            records.extend(r for r in answer.records if r not in records)
        final = Answer(qname, qtype, answer.rcode, tuple(records), first.answer.ad and answer.ad)
        return Lookup(final, rtt, attempts, first.resolver, transport, first.when)

    async def _resolve_one(self, qname: str, qtype: str) -> Lookup:
        when = time.time()
        if not valid_qname(qname):
            return Lookup(Answer(qname, qtype, ERROR), 0.0, 0, "", "none", when)
        tried: set[int] = set()
        attempts = 0
        failure = ERROR  # TIMEOUT as soon as one attempt timed out
        upstream = self.upstreams[0]
        started = time.monotonic()
        for attempt in range(self.retries + 1):
            upstream = self._pick(tried)
            tried.add(self.upstreams.index(upstream))
            if attempt:
                await asyncio.sleep(min(0.05 * 2 ** (attempt - 1), 1.0) * (0.5 + random.random()))
            if self._throttle is not None:
                async with self._throttle:
                    pass
            attempts += 1
            t0 = time.monotonic()
            transport = "udp"
            async with self._slots:
                try:
                    resp = await upstream.query_udp(qname, qtype, self.timeout, self.payload)
                    if resp.tc:
                        transport = "tcp"
                        resp = await upstream.query_tcp(qname, qtype, self.timeout)
                except (TimeoutError, asyncio.IncompleteReadError, wire.WireError, OSError) as exc:
                    now = time.monotonic()
                    if isinstance(exc, TimeoutError):
                        failure = TIMEOUT
                        self.stats.timeouts += 1
                        upstream.note_timeout(now, self.down_threshold)
                    else:
                        self.stats.junk += 1
                    continue
            now = time.monotonic()
            upstream.note_reply(now)
            self._last_reply = now
            self.stats.replies += 1
            self.stats.by_rcode[resp.rcode] = self.stats.by_rcode.get(resp.rcode, 0) + 1
            answer = Answer(qname, qtype, resp.rcode, resp.records, resp.ad)
            return Lookup(answer, (now - t0) * 1000, attempts, upstream.name, transport, when)
        self.stats.by_rcode[failure] = self.stats.by_rcode.get(failure, 0) + 1
        rtt = (time.monotonic() - started) * 1000
        return Lookup(Answer(qname, qtype, failure), rtt, attempts, upstream.name, "udp", when)

    def close(self) -> None:
        for u in self.upstreams:
            u.close()
