"""A UDP proxy in front of a real server (NSD) that injects faults by name: SERVFAIL, drops
(timeouts), delays, and transient SERVFAIL (the first N queries of a name only).

Rules match a query name equal to a key or below it (``{"k1._domainkey.a.jp": "servfail"}``);
the longest matching key wins. Actions: ``servfail``, ``drop``, ``servfail-once`` (SERVFAIL the
first time that (name, type) is asked, then forward), ``drop-once``, ``delay:SECONDS`` (forward,
and hold the reply that long). Everything else is forwarded unchanged. One thread, one
``selectors`` loop; loopback only.
"""

from __future__ import annotations

import heapq
import selectors
import socket
import threading
import time
from collections import Counter


def _qname(data: bytes) -> tuple[str, int] | None:
    """(lower-case name without trailing dot, qtype) of a query's question, or None."""
    labels, pos = [], 12
    try:
        while data[pos]:
            n = data[pos]
            labels.append(data[pos + 1 : pos + 1 + n].decode("ascii", "replace").lower())
            pos += 1 + n
        qtype = int.from_bytes(data[pos + 1 : pos + 3], "big")
    except IndexError:
        return None
    return ".".join(labels), qtype


def servfail_reply(query: bytes) -> bytes:
    """The query turned into a SERVFAIL response: QR and RA set, rcode 2, question kept."""
    flags = (query[2] | 0x80, (query[3] & 0x70) | 0x80 | 2)
    qend = 12
    while query[qend]:
        qend += 1 + query[qend]
    qend += 5
    return query[:2] + bytes(flags) + b"\x00\x01\x00\x00\x00\x00\x00\x00" + query[12:qend]


class FaultProxy:
    """Forwards to ``upstream`` (``HOST:PORT``) with the faults of ``rules``."""

    def __init__(self, upstream: str, rules: dict[str, str] | None = None) -> None:
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.rules = {k.rstrip(".").lower(): v for k, v in (rules or {}).items()}
        self.seen: Counter[tuple[str, int]] = Counter()  # queries received, by (name, qtype)
        self.faults: Counter[str] = Counter()  # faults injected, by action
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.up.connect(self.upstream)
        self._clients: dict[int, tuple[tuple[str, int], bytes, float]] = {}
        self._next_id = 0
        self._later: list[tuple[float, int, bytes, tuple[str, int]]] = []
        self._serial = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _action(self, name: str) -> str | None:
        best = None
        for key, action in self.rules.items():
            if (name == key or name.endswith("." + key)) and (best is None or len(key) > best[0]):
                best = (len(key), action)
        return best[1] if best else None

    def _on_query(self, data: bytes, addr: tuple[str, int]) -> None:
        q = _qname(data)
        if q is None:
            return
        with self._lock:
            self.seen[q] += 1
            count = self.seen[q]
        action = self._action(q[0])
        delay = 0.0
        if action == "servfail" or (action == "servfail-once" and count == 1):
            self.faults["servfail"] += 1
            self.sock.sendto(servfail_reply(data), addr)
            return
        if action == "drop" or (action == "drop-once" and count == 1):
            self.faults["drop"] += 1
            return
        if action and action.startswith("delay:"):
            delay = float(action.split(":", 1)[1])
            self.faults["delay"] += 1
        self._next_id = (self._next_id + 1) & 0xFFFF
        self._clients[self._next_id] = (addr, data[:2], delay)
        self.up.send(self._next_id.to_bytes(2, "big") + data[2:])

    def _on_reply(self, data: bytes) -> None:
        found = self._clients.pop(int.from_bytes(data[:2], "big"), None)
        if found is None:
            return
        addr, qid, delay = found
        reply = qid + data[2:]
        if delay:
            self._serial += 1
            heapq.heappush(self._later, (time.monotonic() + delay, self._serial, reply, addr))
        else:
            self.sock.sendto(reply, addr)

    def _serve(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ, "client")
        sel.register(self.up, selectors.EVENT_READ, "upstream")
        while not self._stop.is_set():
            wait = 0.05
            if self._later:
                wait = max(0.0, min(wait, self._later[0][0] - time.monotonic()))
            for key, _ in sel.select(wait):
                try:
                    if key.data == "client":
                        data, addr = self.sock.recvfrom(65535)
                        self._on_query(data, addr)
                    else:
                        self._on_reply(self.up.recv(65535))
                except OSError:
                    continue
            now = time.monotonic()
            while self._later and self._later[0][0] <= now:
                _, _, reply, addr = heapq.heappop(self._later)
                self.sock.sendto(reply, addr)
        sel.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
        self.up.close()
