"""A misbehaving DNS server for fault injection: drops, delays, junk, truncation without TCP.

It answers every query the way a real server would (NOERROR with an MX for any name under a
served suffix, NXDOMAIN otherwise), but before or instead of that it can send junk, drop the
first attempts, or set TC with no TCP listener. A plain UDP socket in a thread.
"""

from __future__ import annotations

import os
import random
import socket
import struct
import threading
import time

import dns.flags
import dns.message
import dns.rcode
import dns.rrset


class FakeDns:
    """Modes: ``junk`` (junk replies before the real one), ``junk-only``, ``cname`` (every
    name is a CNAME to another), ``drop`` (drop the
    first ``drop_first`` attempts of every query), ``tc`` (truncated, no TCP), ``slow``.
    ``silent``: names whose queries (their own and their subtree's) are never answered, in any
    mode: a resolver that times out on some domains while it answers others."""

    def __init__(
        self,
        mode: str = "good",
        *,
        drop_first: int = 1,
        delay: float = 0.0,
        suffix: str = "jp",
        silent: tuple[str, ...] = (),
    ) -> None:
        self.mode = mode
        self.silent = silent
        self.drop_first = drop_first
        self.delay = delay
        self.suffix = suffix
        self.seen: dict[tuple[str, int], int] = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        resp = dns.message.make_response(query)
        q = query.question[0]
        name = q.name.to_text(omit_final_dot=True).lower()
        if self.mode == "cname":
            resp.answer.append(dns.rrset.from_text(q.name, 300, "IN", "CNAME", f"n.{name}."))
        elif name == self.suffix or name.endswith("." + self.suffix):
            if dns.rdatatype.to_text(q.rdtype) == "MX":
                resp.answer.append(dns.rrset.from_text(q.name, 300, "IN", "MX", f"10 mx.{name}."))
        else:
            resp.set_rcode(dns.rcode.NXDOMAIN)
        return resp

    def _junk(self, data: bytes) -> list[bytes]:
        qid = data[:2]
        wrong = struct.pack("!H", (struct.unpack("!H", qid)[0] + 1) & 0xFFFF)
        absurd = qid + b"\x81\x80" + b"\x00\x01\xff\xff\xff\xff\xff\xff" + data[12:]
        return [
            os.urandom(random.randint(0, 40)),  # random bytes
            qid + b"\x81",  # short header
            wrong + data[2:3] + bytes([data[3] | 0x80]) + data[4:],  # wrong ID
            absurd,  # absurd counts, right ID
            qid + b"\x01\x00" + data[4:],  # QR=0: a query, not a response
        ]

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            try:
                query = dns.message.from_wire(data)
            except Exception:
                continue
            key = (query.question[0].name.to_text(), query.question[0].rdtype)
            asked = key[0].rstrip(".").lower()
            if any(asked == n or asked.endswith("." + n) for n in self.silent):
                continue
            self.seen[key] = self.seen.get(key, 0) + 1
            if self.mode in ("junk", "junk-only"):
                for j in self._junk(data):
                    self.sock.sendto(j, addr)
                if self.mode == "junk-only":
                    continue
            if self.mode == "drop" and self.seen[key] <= self.drop_first:
                continue
            if self.delay:
                time.sleep(self.delay)
            resp = self._answer(query)
            if self.mode == "tc":
                resp.flags |= dns.flags.TC
                resp.answer = []
            self.sock.sendto(resp.to_wire(), addr)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
