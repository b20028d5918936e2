"""The resolver fleet: asyncio DNS over one connected UDP socket per resolver, TCP on truncation.

Why hand-made rather than a stub resolver library: a national scan makes tens of millions of
queries, and it must keep every outcome apart (NOERROR, NODATA, NXDOMAIN, SERVFAIL, REFUSED,
TIMEOUT). Each resolver has one socket whose 16-bit query IDs are multiplexed; a reply is
accepted only when its ID, name and type match a query in flight, and junk is counted, never
stored. A resolver that stops answering is set aside for a while and its load moves to the
others. Names that many domains share (provider SPF includes, MX hosts, report destinations) are
answered from a per-scan cache.

Retransmission is adaptive (RFC 6298 style, as Unbound does for its upstreams): each resolver
keeps a smoothed round-trip time and its variance, and an attempt that is late by that measure
(``srtt + 4 * rttvar``, and at least 1.25 times a slowly decaying maximum of its recent round
trips, with a floor, doubled for each further attempt) is sent again, to another resolver of the
fleet when there is one. Earlier attempts stay valid: whichever reply comes first
completes the query, so an answer that was only slow is not lost. ``timeout`` is the whole time
one question may take from its first send; a SERVFAIL is asked once more (another resolver, or
the same after a short pause) before it is kept.

The hot path is callback-driven: a query is a small object, not a task; a reply completes its
future from the datagram callback; every deadline lives in one timer wheel (20 ms slots) swept
by one periodic timer, after the sockets are drained (a reply that came while the loop was busy
is not late); the queries/s cap is a token bucket checked as queries are dispatched.
asyncio-throttle's sleep-and-poll acquire and a timer per query cost more than the rest of a
query together at tens of thousands per second. The concurrency cap counts attempts that may
still be answered in time: an attempt late by its resolver's measure gives its place up.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import re
import socket
import struct
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from . import wire
from .answers import (
    ERROR,
    NOERROR,
    NXDOMAIN,
    SERVFAIL,
    TIMEOUT,
    Answer,
    normalize_name,
    valid_qname,
)

DEFAULT_PORT = 53
MAX_CNAME_CHAIN = 8
#: More records than this in one answer is junk from a hostile or broken zone.
MAX_ANSWER_RECORDS = 256
SOCKET_BUFFER = 4 << 20
#: How often the timer wheel is swept (seconds): the granularity of every deadline.
TICK = 0.02
#: Retransmission timeout bounds: a floor (a busy event loop and a shared machine delay replies
#: by tens of milliseconds), and the first estimate, before any reply was timed.
RTO_FLOOR = 0.2
RTO_INITIAL = 0.4
#: The decaying maximum of round trips loses this share per reply (half-life ~700 replies).
RTT_HI_DECAY = 0.999
#: Margin over that maximum below which an attempt is not taken as late.
RTT_HI_MARGIN = 1.25
#: The pause before a SERVFAIL is asked again of the same resolver (fleet of one).
SERVFAIL_PAUSE = 0.25


class ResolverAddressError(ValueError):
    """A resolver given in a form the fleet cannot use; the message names it and what is expected."""


#: What ``--resolver`` takes, in the words of its error messages.
ADDRESS_FORM = "expected IP[:PORT] (IPv4, IPv4:port, IPv6 or [IPv6]:port) or HOST[:PORT]"


def parse_address(text: str) -> tuple[str, int]:
    """``IP[:PORT]``, ``[V6]:PORT`` or a bare IPv6 address → (host, port).

    Only addresses: a host name is looked up once, before the scan, by :func:`check_resolvers`,
    so that the fleet, the records table and the manifest name each resolver by the address it
    had then (a name may resolve to several addresses, or to another one tomorrow).
    """
    raw = text
    text = text.strip()
    port_text: str | None = None
    if text.startswith("["):
        host, close, rest = text[1:].partition("]")
        if not close or (rest and not rest.startswith(":")):
            raise ResolverAddressError(f"{raw!r}: {ADDRESS_FORM}")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host = text
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ResolverAddressError(f"{raw!r}: {ADDRESS_FORM}") from None
    if text.startswith("[") and ip.version != 6:
        raise ResolverAddressError(f"{raw!r}: {ADDRESS_FORM}")
    if port_text is None:
        return host, DEFAULT_PORT
    if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
        raise ResolverAddressError(f"{raw!r}: {ADDRESS_FORM}, with a port from 1 to 65535")
    return host, int(port_text)


#: A host name (letters somewhere, dots between labels), with an optional port: looked up.
_NAME_RE = re.compile(r"^(?=[^:]*[A-Za-z])[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.?(?::([^:]*))?$")


def check_resolvers(resolvers: Iterable[str]) -> list[str]:
    """Every resolver of a fleet, checked before anything starts (raises ResolverAddressError).

    Addresses are kept as given. A ``HOST[:PORT]`` (SPEC.md) is looked up here, once, with the
    system's resolver, and stands for every address it has (``IP:PORT``, ``[IPv6]:PORT``), in
    the order given: the fleet, the manifest and the records table name those addresses.
    """
    out: list[str] = []
    for r in resolvers:
        try:
            parse_address(r)
        except ResolverAddressError:
            name = _NAME_RE.match(r.strip())
            if name is None:
                raise
            out += [a for a in _look_up(r, r.strip()) if a not in out]
        else:
            out.append(r)
    return out


def _look_up(raw: str, text: str) -> list[str]:
    """The addresses of ``HOST[:PORT]`` as the fleet takes them."""
    host, _, port_text = text.partition(":")
    if port_text and not (
        port_text.isascii() and port_text.isdigit() and 1 <= int(port_text) <= 65535
    ):
        raise ResolverAddressError(f"{raw!r}: {ADDRESS_FORM}, with a port from 1 to 65535")
    try:
        infos = socket.getaddrinfo(host.rstrip("."), None, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise ResolverAddressError(f"{raw!r}: host name not found ({why})") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not port_text:
        return addresses
    return [f"[{a}]:{port_text}" if ":" in a else f"{a}:{port_text}" for a in addresses]


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
    timeouts: int = 0  # attempts late by their resolver's measure (sent again or given up)
    junk: int = 0  # replies rejected as malformed or unmatched (incl. a second reply to a query)
    tcp: int = 0
    cache_hits: int = 0
    retransmits: int = 0  # attempts after the first (late, lost, or after a SERVFAIL)
    late_replies: int = 0  # replies to an attempt after a later one was sent: kept, not lost
    servfail_retries: int = 0
    by_rcode: dict[str, int] = field(default_factory=dict)

    def merge(self, other: Stats | Mapping[str, Any]) -> None:
        """Add ``other``'s counts (another process's, as a Stats or its ``asdict``) to these."""
        part = asdict(other) if isinstance(other, Stats) else other
        for key, value in part.items():
            if key == "by_rcode":
                for rcode, count in value.items():
                    self.by_rcode[rcode] = self.by_rcode.get(rcode, 0) + count
            else:
                setattr(self, key, getattr(self, key) + value)


class _Proto(asyncio.DatagramProtocol):
    def __init__(self, upstream: Upstream) -> None:
        # The upstream's own method, called by the loop for each datagram (no frame between).
        self.datagram_received = upstream.on_datagram  # type: ignore[method-assign]
        self.upstream = upstream

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable on the connected socket: nothing listens there. Other ICMP
        # errors surface as timeouts; the retry logic handles them.
        if isinstance(exc, ConnectionRefusedError):
            self.upstream.fleet._on_refused(self.upstream)


class _Batch:
    """The lookups of one collection round: one future for all of them, done with the last.

    A future per query and ``asyncio.gather`` over them cost more than the rest of a query's
    bookkeeping together.
    """

    __slots__ = ("future", "results", "left", "single")

    def __init__(self, future: asyncio.Future, size: int, single: bool = False) -> None:
        self.future = future
        self.results: list[Lookup | None] = [None] * size
        self.left = size
        self.single = single  # the future's result is the one Lookup, not a list

    def put(self, index: int, result: Lookup) -> None:
        self.results[index] = result
        self.left -= 1
        if self.left == 0 and not self.future.done():  # (done: the waiter was cancelled)
            self.future.set_result(self.results[0] if self.single else self.results)


class _Query:
    """One (qname, qtype) being resolved: attempts, CNAME steps, and the batch slot to fill.

    ``upstream``/``qid``/``sent`` are the latest attempt's; ``earlier`` holds the attempts sent
    before it that may still be answered (None while there is one attempt, the common case).
    """

    __slots__ = (
        "qname", "qtype", "target", "batch", "index", "attempt", "attempts", "tried",
        "upstream", "qid", "gen", "sent", "when", "records", "seen", "rtt", "transport",
        "failure", "first_ad", "resolver", "key", "finished", "question", "earlier",
        "holding", "rto", "deadline", "resend_at", "bonus", "queued",
    )  # fmt: skip

    def __init__(self, qname: str, qtype: str, batch: _Batch, index: int, when: float) -> None:
        self.qname = qname
        self.qtype = qtype
        self.target = qname  # the name asked in the current step of a CNAME chain
        self.batch = batch
        self.index = index
        self.attempt = 0  # attempts of the current step
        self.attempts = 0  # over all steps
        self.tried = 0  # bit i: resolver i was tried in the current step
        self.upstream: Upstream | None = None
        self.qid = -1
        self.gen = 0  # the current attempt's serial: its timer entry names it
        self.sent = 0.0
        self.when = when
        self.records: list[str] | None = None  # the CNAME chain so far (None: first step)
        self.seen: set[str] | None = None  # names of the chain (None: first step)
        self.rtt = 0.0
        self.transport = "udp"
        self.failure = ERROR
        self.first_ad: bool | None = None
        self.resolver = ""
        self.key: tuple[str, str] | None = None  # set when the result feeds the shared cache
        self.finished = False
        self.question: bytes | None = None  # the question section sent for ``target``
        self.earlier: list[tuple[Upstream, int, float]] | None = None
        self.holding = False  # the latest attempt holds a place of the concurrency cap
        self.rto = 0.0  # the latest attempt's retransmission timeout (before backoff)
        self.deadline = 0.0  # first send of the step + the fleet's timeout
        self.resend_at = 0.0  # when the next attempt is due
        self.bonus = 0  # attempts allowed beyond retries + 1 (a SERVFAIL asked again)
        self.queued = False  # waiting in the fleet's retransmission queue


class Upstream:
    """One resolver: a connected UDP socket with an ID map, and health bookkeeping."""

    def __init__(self, index: int, host: str, port: int, fleet: Fleet) -> None:
        self.index = index
        self.host, self.port = host, port
        self.name = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        self.fleet = fleet
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: dict[int, _Query] = {}
        self.consecutive_timeouts = 0
        self.down_until = 0.0
        self.down_for = 0.0
        self.refused = False  # an ICMP port unreachable came back since its last reply
        self.sock: socket.socket | None = None
        # RFC 6298 2: smoothed round-trip time and its mean deviation (seconds; None: no sample).
        self.srtt: float | None = None
        self.rttvar = 0.0
        # A decaying maximum of the round trips: a resolver's are not one mode (cached answers
        # in a millisecond, recursion in tens or hundreds), and srtt + 4 rttvar, right for one
        # path's jitter, dips below the slow mode after a run of fast replies.
        self.rtt_hi = 0.0
        self.rto = RTO_INITIAL

    @property
    def inflight(self) -> int:
        return len(self.pending)

    async def open(self) -> None:
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
        self.sock = sock
        self.transport, _ = await loop.create_datagram_endpoint(lambda: _Proto(self), sock=sock)

    def new_id(self) -> int:
        pending = self.pending
        while True:
            qid = random.getrandbits(16)
            if qid not in pending:
                return qid

    def on_datagram(self, data: bytes, addr: object = None) -> None:
        """One reply (``addr``: the connected socket's peer, unused)."""
        stats = self.fleet.stats
        if len(data) < 12:
            stats.junk += 1
            return
        qid = (data[0] << 8) | data[1]
        q = self.pending.get(qid)
        if q is None:
            stats.junk += 1  # after its query ended (a second reply), or unsolicited
            return
        try:
            resp = wire.parse_response(data, q.question, q.target, q.qtype)
        except wire.WireError:
            stats.junk += 1
            return
        if resp.qname != q.target or resp.qtype != q.qtype:
            stats.junk += 1  # a spoofed or stale reply: keep waiting for the real one
            return
        del self.pending[qid]
        self.fleet._on_reply(q, resp, self, qid)

    def drain(self) -> None:
        """Read the replies already in the socket's buffer (the loop reads one or a few per
        turn): before deadlines are swept, so an answer that came in time is not taken as late."""
        sock = self.sock
        if sock is None:
            return
        on_datagram = self.on_datagram
        for _ in range(4096):
            try:
                data = sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionRefusedError:
                # (read here, the ICMP error would not reach the transport's error_received)
                self.fleet._on_refused(self)
                return
            except OSError:
                return  # (other ICMP errors: the retry logic handles them)
            on_datagram(data)

    def sample(self, rtt: float, floor: float, cap: float) -> None:
        """One measured round trip (RFC 6298 2.2-2.3: alpha 1/8, beta 1/4, K = 4); the timeout
        is also kept above the recent slowest replies (``rtt_hi``)."""
        srtt = self.srtt
        if srtt is None:
            self.srtt = rtt
            self.rttvar = rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(srtt - rtt)
            self.srtt = srtt = 0.875 * srtt + 0.125 * rtt
        hi = self.rtt_hi * RTT_HI_DECAY
        if rtt > hi:
            hi = rtt
        self.rtt_hi = hi
        rto = max(self.srtt + max(TICK, 4 * self.rttvar), hi * RTT_HI_MARGIN)
        self.rto = cap if rto > cap or cap < floor else floor if rto < floor else rto

    def healthy(self, now: float) -> bool:
        return now >= self.down_until

    def note_reply(self) -> None:
        self.refused = False
        self.consecutive_timeouts = 0
        self.down_for = 0.0
        self.down_until = 0.0

    def note_timeout(self, now: float, threshold: int) -> None:
        self.consecutive_timeouts += 1
        if self.consecutive_timeouts >= threshold:
            # Set aside, and try again later: 2 s, doubling up to a minute.
            self.down_for = min(60.0, self.down_for * 2 or 2.0)
            self.down_until = now + self.down_for
            self.consecutive_timeouts = 0

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class NoResolverAnswering(RuntimeError):
    """Every resolver of the fleet has been silent for too long, or refused (nothing listens
    there) before any replied: the scan must stop."""


class Fleet:
    """Resolve (qname, qtype) through one or more resolvers with retries, caps and a cache.

    Must be created inside a running event loop.
    """

    def __init__(
        self,
        resolvers: Iterable[str] | None = None,
        *,
        timeout: float = 2.5,
        retries: int = 2,
        qps: float = 0,
        concurrency: int = 256,
        payload: int = 1232,
        cache_size: int = 30_000,
        dead_after: float = 45.0,
        down_threshold: int = 5,
    ) -> None:
        names = list(resolvers or []) or system_resolvers()
        self.stats = Stats()
        self.upstreams = [Upstream(i, *parse_address(r), self) for i, r in enumerate(names)]
        self.timeout = timeout
        self.retries = retries
        self.payload = payload
        self._frame = wire.query_frame(payload)  # (raises WireError for a payload out of range)
        self.down_threshold = down_threshold
        self.dead_after = dead_after
        self.concurrency = max(1, concurrency)
        self.qps = float(qps or 0)
        self._loop = asyncio.get_running_loop()
        self._tokens = max(1.0, self.qps * TICK) if self.qps else 0.0
        self._token_time = self._loop.time()
        self._ready: deque[_Query] = deque()  # waiting for a slot or a token
        self._resend: deque[_Query] = deque()  # retransmissions: sent before new queries
        self._max_attempts = retries + 1
        # Every attempt's retransmission timeout is capped so that all of them, doubled each
        # time (sent at 0, 1, 3, 7 ... times it), are sent with one more of it left to answer
        # in ``timeout``.
        self._rto_cap = timeout / 2**retries
        for u in self.upstreams:
            u.rto = self._clamp(RTO_INITIAL)
        # The timer wheel: slot → [(resolver index, query id, attempt serial)]. No reference to
        # the query, so an answered query is freed at once, not kept for its deadline (nor seen
        # by the collector of cyclic garbage, which walks every young object still alive).
        self._wheel: dict[int, list[tuple[int, int, int]]] = {}
        self._wheel_pos = int(self._loop.time() / TICK)
        self._serial = 0
        self._tick_handle: asyncio.TimerHandle | None = None
        self._flush_handle: asyncio.Handle | None = None
        self._inflight_count = 0
        self._cache: OrderedDict[tuple[str, str], Lookup] = OrderedDict()
        self._cache_size = cache_size
        self._joining: dict[tuple[str, str], list[tuple[_Batch, int]]] = {}
        self._last_reply = self._loop.time()
        self._opened = False
        self._dead: NoResolverAnswering | None = None  # set when every resolver refused

    @property
    def names(self) -> list[str]:
        return [u.name for u in self.upstreams]

    # --- health ---------------------------------------------------------------------------

    def silent_for(self) -> float:
        """Seconds since any resolver of the fleet last replied."""
        return self._loop.time() - self._last_reply

    @property
    def pending_timers(self) -> int:
        """Entries in the timer wheel (answered queries' entries stay until their slot)."""
        return sum(len(b) for b in self._wheel.values())

    def _clamp(self, rto: float) -> float:
        """``rto`` within [RTO_FLOOR, the cap]; the cap wins when a short timeout puts it lower."""
        cap = self._rto_cap
        return cap if rto > cap or cap < RTO_FLOOR else max(RTO_FLOOR, rto)

    def _on_refused(self, up: Upstream) -> None:
        """ICMP port unreachable from ``up`` (ECONNREFUSED on its connected socket).

        Set aside like a resolver that stopped answering; when every resolver of the fleet has
        refused and none ever replied, nothing listens at any of the addresses given: every
        query waiting fails at once with :class:`NoResolverAnswering`, rather than each one
        after its timeouts, and so does every query asked later.
        """
        up.refused = True
        up.down_for = min(60.0, up.down_for * 2 or 2.0)
        up.down_until = self._loop.time() + up.down_for
        if self._dead is not None or self.stats.replies:
            return
        if all(u.refused for u in self.upstreams):
            self._dead = NoResolverAnswering(
                f"no DNS server at {', '.join(self.names)}: connection refused (ICMP port "
                "unreachable); expected a resolver listening there"
            )
            self._fail_all(self._dead)

    def _fail_all(self, exc: BaseException) -> None:
        """End every lookup in flight or waiting with ``exc``."""
        batches: dict[int, _Batch] = {}
        for u in self.upstreams:
            for q in u.pending.values():
                batches[id(q.batch)] = q.batch
            u.pending.clear()
        for queue in (self._ready, self._resend):
            for q in queue:
                batches[id(q.batch)] = q.batch
            queue.clear()
        for waiting in self._joining.values():
            for batch, _ in waiting:
                batches[id(batch)] = batch
        self._joining.clear()
        self._inflight_count = 0
        for batch in batches.values():
            if not batch.future.done():
                batch.future.set_exception(exc)

    def check_alive(self) -> None:
        """Raise :class:`NoResolverAnswering` when no resolver replied for ``dead_after`` s."""
        if self._dead is not None:
            raise self._dead
        if self.stats.queries and self.silent_for() > self.dead_after:
            raise NoResolverAnswering(
                f"no resolver answered for {self.dead_after:.0f} s ({', '.join(self.names)})"
            )

    # --- the public call ------------------------------------------------------------------

    async def open(self) -> None:
        """Open the resolvers' sockets (once)."""
        if not self._opened:
            for u in self.upstreams:
                await u.open()
            self._opened = True

    async def resolve(self, qname: str, qtype: str, *, shared: bool = False) -> Lookup:
        """One query with retries, CNAME chasing and (for shared names) the per-scan cache."""
        await self.open()
        return await self.lookup(qname, qtype, shared=shared)

    def lookup(self, qname: str, qtype: str, *, shared: bool = False) -> asyncio.Future:
        """A future of the :class:`Lookup`; the sockets must be open (see :meth:`resolve`)."""
        batch = _Batch(self._loop.create_future(), 1, single=True)
        self._submit(batch, 0, normalize_name(qname), qtype.upper(), shared, time.time())
        return batch.future

    def lookup_all(
        self, queries: Iterable[tuple[str, str, bool]], *, normalized: bool = False
    ) -> asyncio.Future:
        """A future of the list of :class:`Lookup` of ``(qname, qtype, shared)`` queries, in order.

        ``shared``: other domains may ask the same name, so its answer is kept in the scan's cache.
        ``normalized``: the names are lower case without a trailing dot and the types upper case
        (an AnswerSet's keys, as the collector asks them), so they are taken as they are.
        """
        queries = list(queries)
        batch = _Batch(self._loop.create_future(), len(queries))
        if not queries:
            batch.future.set_result([])
        when = time.time()
        submit = self._submit
        for i, (qname, qtype, shared) in enumerate(queries):
            if not normalized:
                qname, qtype = normalize_name(qname), qtype.upper()
            submit(batch, i, qname, qtype, shared, when)
        return batch.future

    def cached(self, key: tuple[str, str], when: float | None = None) -> Lookup | None:
        """The scan's cached answer for a shared ``(qname, qtype)`` (normal form), if it holds one.

        Counted as a cache hit, as a lookup answered from the cache is.
        """
        hit = self._cache.get(key)
        if hit is None:
            return None
        self._cache.move_to_end(key)
        self.stats.cache_hits += 1
        return Lookup(
            hit.answer, 0.0, 0, hit.resolver, "cache", time.time() if when is None else when
        )

    def _submit(
        self, batch: _Batch, index: int, qname: str, qtype: str, shared: bool, when: float
    ) -> None:
        """Queue one query; ``qname`` and ``qtype`` in normal form."""
        if self._dead is not None:
            if not batch.future.done():
                batch.future.set_exception(self._dead)
            return
        key = None
        if shared:
            key = (qname, qtype)
            hit = self.cached(key, when)
            if hit is not None:
                batch.put(index, hit)
                return
            waiting = self._joining.get(key)
            if waiting is not None:
                # The same name is already being asked: share its answer.
                waiting.append((batch, index))
                return
            self._joining[key] = []
        q = _Query(qname, qtype, batch, index, when)
        q.key = key
        if not valid_qname(qname):
            q.failure = ERROR
            q.transport = "none"
            self._finish(q, Answer(qname, qtype, ERROR))
            return
        self._ready.append(q)
        self._dispatch_soon()

    # --- dispatch, timeouts, replies --------------------------------------------------------

    def _pick(self, avoid: int) -> Upstream:
        """The least busy healthy resolver not in the ``avoid`` bit set (bit i: resolver i)."""
        ups = self.upstreams
        if len(ups) == 1:
            return ups[0]
        now = self._loop.time()
        healthy = [u for u in ups if u.healthy(now)]
        pool = [u for u in healthy if not (avoid >> u.index) & 1] or healthy
        if not pool:
            return min(ups, key=lambda u: u.down_until)  # all set aside: probe the first back
        return min(pool, key=lambda u: (u.inflight, random.random()))

    def _dispatch(self) -> None:
        ready, resend = self._ready, self._resend
        if not ready and not resend:
            return
        now = self._loop.time()
        if self.qps:
            self._tokens = min(
                max(1.0, self.qps * TICK), self._tokens + (now - self._token_time) * self.qps
            )
            self._token_time = now
        head, tail = self._frame
        stats = self.stats
        pending_serial = self._serial
        while self._inflight_count < self.concurrency:
            if resend:
                q = resend[0]
                if q.finished:  # (answered late while it waited)
                    resend.popleft()
                    q.queued = False
                    continue
                if now >= q.deadline:  # (waited for a place past its deadline)
                    resend.popleft()
                    q.queued = False
                    self._give_up(q, now)
                    continue
            elif ready:
                q = ready[0]
            else:
                break
            if self.qps:
                if self._tokens < 1.0:
                    self._ensure_tick()
                    break
                self._tokens -= 1.0
            (resend if resend else ready).popleft()
            q.queued = False
            up = self._pick(q.tried)
            if q.attempt:
                stats.retransmits += 1
                last = q.upstream
                if last is not None and last.pending.get(q.qid) is q:
                    # still valid: a late reply to it completes the query
                    if q.earlier is None:
                        q.earlier = [(last, q.qid, q.sent)]
                    else:
                        q.earlier.append((last, q.qid, q.sent))
            else:
                q.deadline = now + self.timeout
            q.tried |= 1 << up.index
            q.upstream = up
            q.qid = up.new_id()
            q.attempt += 1
            q.attempts += 1
            q.sent = now
            self._serial += 1
            q.gen = self._serial
            rto = q.rto = up.rto
            q.resend_at = now + rto * (1 << (q.attempt - 1))
            try:
                question = q.question
                if question is None:
                    question = q.question = wire.question(q.target, q.qtype)
            except wire.WireError:
                q.failure = ERROR
                q.transport = "none"
                self._give_up(q, now)
                continue
            up.pending[q.qid] = q
            self._inflight_count += 1
            q.holding = True
            stats.queries += 1
            with contextlib.suppress(OSError):  # (lost like a dropped datagram: retried)
                up.transport.sendto(q.qid.to_bytes(2, "big") + head + question + tail)
            self._at(now + rto, q)
        if self._serial != pending_serial:
            self._ensure_tick()  # (once, for all the deadlines just added)

    def _at(self, when: float, q: _Query) -> None:
        """Check ``q``'s latest attempt at ``when`` (not before; up to one TICK after)."""
        slot = int(when / TICK) + 1
        if slot < self._wheel_pos:
            slot = self._wheel_pos
        entry = (q.upstream.index, q.qid, q.gen)
        bucket = self._wheel.get(slot)
        if bucket is None:
            self._wheel[slot] = [entry]
        else:
            bucket.append(entry)

    def _dispatch_soon(self) -> None:
        """Send what waits once the replies at hand are handled: a burst of datagrams.

        A query sent alone wakes the idle resolver each time (a cross-CPU wakeup in the kernel,
        several times the cost of the send itself); sent together, the resolver is still awake
        for all but the first.
        """
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        self._dispatch()

    def _ensure_tick(self) -> None:
        if self._tick_handle is None:
            self._tick_handle = self._loop.call_later(TICK, self._tick)

    def _tick(self) -> None:
        """Read what the sockets hold, check the attempts now due, refill tokens, dispatch."""
        self._tick_handle = None
        for up in self.upstreams:
            up.drain()
        now = self._loop.time()
        wheel = self._wheel
        current = int(now / TICK)
        if not wheel:
            self._wheel_pos = current + 1
        upstreams = self.upstreams
        while self._wheel_pos <= current:
            bucket = wheel.pop(self._wheel_pos, None)
            self._wheel_pos += 1
            if bucket is None:
                continue
            for index, qid, gen in bucket:
                q = upstreams[index].pending.get(qid)
                if q is not None and q.gen == gen:
                    self._expire(q, now)
        self._dispatch()
        if wheel or self._ready or self._resend:
            self._ensure_tick()

    def _expire(self, q: _Query, now: float) -> None:
        """The latest attempt of ``q`` is due for a check: late, to send again, or given up."""
        if q.holding and now >= q.sent + q.rto:
            # Late by its resolver's measure: presumed lost, it gives its place up (a reply to
            # it is still taken until the deadline).
            q.holding = False
            self._inflight_count -= 1
            self.stats.timeouts += 1
            q.upstream.note_timeout(now, self.down_threshold)
            if q.failure != SERVFAIL:
                q.failure = TIMEOUT
        if now >= q.deadline:
            self._give_up(q, now)
            return
        if q.attempt < self._max_attempts + q.bonus:
            if now < q.resend_at:
                self._at(q.resend_at, q)
                return
            if q.deadline - now >= q.rto / 2:
                self._queue_resend(q)
                return
        self._at(q.deadline, q)

    def _queue_resend(self, q: _Query) -> None:
        """Queue the next attempt of ``q`` (once: a timer and a SERVFAIL may both ask)."""
        if not q.finished and not q.queued:
            q.queued = True
            self._resend.append(q)
            self._dispatch_soon()

    def _forget(self, q: _Query) -> None:
        """Drop every attempt of ``q`` from the resolvers' ID maps, and its place."""
        up = q.upstream
        if up is not None and up.pending.get(q.qid) is q:
            del up.pending[q.qid]
        if q.earlier is not None:
            for u, qid, _sent in q.earlier:
                if u.pending.get(qid) is q:
                    del u.pending[qid]
            q.earlier = None
        if q.holding:
            q.holding = False
            self._inflight_count -= 1

    def _give_up(self, q: _Query, now: float) -> None:
        """No definite reply within the deadline: store the failure (TIMEOUT, SERVFAIL, ...)."""
        self._forget(q)
        self.stats.by_rcode[q.failure] = self.stats.by_rcode.get(q.failure, 0) + 1
        q.rtt += (now - q.sent) * 1000
        q.resolver = q.resolver or (q.upstream.name if q.upstream else "")
        self._finish(q, Answer(q.qname, q.qtype, q.failure, tuple(q.records or ())))

    def _on_reply(self, q: _Query, resp: wire.Response, up: Upstream, qid: int) -> None:
        now = self._loop.time()
        stats = self.stats
        if up is q.upstream and qid == q.qid:
            sent = q.sent
            self._forget(q)
        else:
            # A reply to an earlier attempt: the one that was only slow, not lost. Every
            # attempt is forgotten (the latest too) before this one becomes the query's.
            stats.late_replies += 1
            sent = next(s for u, i, s in q.earlier if u is up and i == qid)
            self._forget(q)
            q.upstream, q.qid, q.sent = up, qid, sent
        up.sample(now - sent, RTO_FLOOR, self._rto_cap)
        up.rto = self._clamp(up.rto)
        self._last_reply = now
        up.note_reply()
        stats.replies += 1
        if resp.rcode == SERVFAIL and not q.bonus and self.retries:
            # Often transient: asked once more (another resolver first) before it is kept.
            q.bonus = 1
            q.failure = SERVFAIL
            stats.servfail_retries += 1
            if len(self.upstreams) > 1:
                self._queue_resend(q)
            elif now + SERVFAIL_PAUSE < q.deadline:
                self._loop.call_later(SERVFAIL_PAUSE, self._queue_resend, q)
            else:
                self._step_done(q, resp, now)
            self._dispatch_soon()
            return
        if resp.tc:
            self._loop.create_task(self._tcp(q, up))
        else:
            self._step_done(q, resp, now)
        self._dispatch_soon()

    async def _tcp(self, q: _Query, up: Upstream) -> None:
        """The UDP answer was truncated: ask again over TCP (RFC 7766)."""
        self.stats.queries += 1
        self.stats.tcp += 1
        q.transport = "tcp"
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(up.host, up.port)
                try:
                    qid = random.getrandbits(16)
                    data = wire.make_query(qid, q.target, q.qtype, payload=65535)
                    writer.write(struct.pack("!H", len(data)) + data)
                    await writer.drain()
                    while True:
                        (length,) = struct.unpack("!H", await reader.readexactly(2))
                        resp = wire.parse_response(await reader.readexactly(length))
                        if resp.id == qid and resp.qname == q.target and resp.qtype == q.qtype:
                            break
                        self.stats.junk += 1
                finally:
                    writer.close()
        except TimeoutError:
            self.stats.timeouts += 1
            q.failure = TIMEOUT
            self._give_up(q, self._loop.time())
            return
        except (OSError, asyncio.IncompleteReadError, wire.WireError, struct.error):
            self.stats.junk += 1
            q.failure = ERROR
            self._give_up(q, self._loop.time())
            return
        self._step_done(q, resp, self._loop.time())

    def _step_done(self, q: _Query, resp: wire.Response, now: float) -> None:
        """A definite reply for the current step; follow a CNAME chain that ends without data."""
        stats = self.stats
        stats.by_rcode[resp.rcode] = stats.by_rcode.get(resp.rcode, 0) + 1
        q.rtt += (now - q.sent) * 1000
        if q.first_ad is None:
            q.first_ad = resp.ad
            q.resolver = q.upstream.name
        else:
            q.first_ad = q.first_ad and resp.ad  # every step of a CNAME chain must validate
        if len(resp.records) > MAX_ANSWER_RECORDS:
            # A zone's answer is bounded like everything a zone controls; an absurd one is an
            # error, stated, never a silently shortened record set.
            self._finish(q, Answer(q.qname, q.qtype, ERROR, tuple(q.records or ())))
            return
        records = q.records
        if records is None:  # the first step (almost always the only one)
            got = resp.records
        else:
            for r in resp.records:
                if r not in records:
                    records.append(r)
            got = tuple(records)
        answer = Answer(q.qname, q.qtype, resp.rcode, got, bool(q.first_ad and resp.ad))
        if resp.rcode == NOERROR and q.qtype != "CNAME" and got:
            target = answer.cname_target()
            seen = q.seen or {q.qname}
            if (
                target is not None
                and target not in seen
                and len(seen) <= MAX_CNAME_CHAIN
                and valid_qname(target)
            ):
                seen.add(target)
                q.seen = seen
                q.records = list(dict.fromkeys(got))
                q.target = target
                q.question = None
                q.attempt = 0
                q.tried = 0
                q.bonus = 0
                q.failure = ERROR
                self._ready.append(q)
                self._dispatch_soon()
                return
        self._finish(q, answer)

    def _finish(self, q: _Query, answer: Answer) -> None:
        if q.finished:
            return
        q.finished = True
        result = Lookup(answer, q.rtt, q.attempts, q.resolver, q.transport, q.when)
        q.batch.put(q.index, result)
        if q.key is not None:
            if answer.rcode in (NOERROR, NXDOMAIN):
                self._cache[q.key] = result
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            now = time.time()
            for batch, index in self._joining.pop(q.key, ()):
                self.stats.cache_hits += 1
                batch.put(index, Lookup(answer, 0.0, 0, result.resolver, "cache", now))

    def close(self) -> None:
        for handle in (self._tick_handle, self._flush_handle):
            if handle is not None:
                handle.cancel()
        self._tick_handle = self._flush_handle = None
        for u in self.upstreams:
            u.close()
