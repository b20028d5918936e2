"""The SMTP STARTTLS probe (RFC 3207) and the prober that probes each MX host once per scan.

Manners (a national scan): no connection is ever made to an address that is not globally
routable (loopback, private, link-local, shared, reserved, IPv4-mapped forms of those...) unless
``allow_private`` is set (tests); an opt-out list of domains and networks is honoured by every
probe (the result is ``skipped`` with the reason, no packet sent); the scanner names itself in
the EHLO name; each MX host is probed once per scan however many domains share it
(:class:`SmtpProber`), one connection per address at a time, under a global cap on open
connections.

A hand-written client over asyncio streams and the standard library's :mod:`ssl`: ``smtplib`` is
blocking, and an asyncio client lets thousands of probes share one thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..answers import normalize_name
from ..policies.mta_sts import mx_matches
from .results import SmtpProbe
from .settings import ProbeSettings, address_allowed, domain_excluded, unique_addresses
from .tls import close_stream, elapsed_ms, ssl_reason, unverified_context, verifying_context
from .x509 import read_leaf


class _SmtpError(Exception):
    pass


@dataclass
class _Session:
    """What one SMTP connection learned."""

    status: str = "connect-error"
    banner: str | None = None
    extensions: list[str] = field(default_factory=list)
    advertised: bool | None = None
    tls_version: str | None = None
    tls_cipher: str | None = None
    der: bytes | None = None
    tls_failure: BaseException | None = None  # the handshake failed with this
    detail: str | None = None


_MAX_REPLY_LINES = 64


async def _reply(reader: asyncio.StreamReader) -> tuple[int, list[str]]:
    """One SMTP reply: (code, the text of each line)."""
    lines: list[str] = []
    for _ in range(_MAX_REPLY_LINES):
        try:
            raw = await reader.readline()
        except ValueError:
            raise _SmtpError("reply line too long") from None
        if not raw.endswith(b"\n"):
            raise _SmtpError("connection closed" if not raw else "connection closed mid-reply")
        line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
        if len(line) < 3 or not line[:3].isdigit() or line[3:4] not in ("", " ", "-"):
            raise _SmtpError(f"not an SMTP reply: {line[:80]!r}")
        lines.append(line[4:])
        if line[3:4] != "-":
            return int(line[:3]), lines
    raise _SmtpError("reply too long")


async def _command(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, cmd: str
) -> tuple[int, list[str]]:
    writer.write(cmd.encode("ascii", "replace") + b"\r\n")
    await writer.drain()
    return await _reply(reader)


async def _session(
    host: str, address: str, settings: ProbeSettings, ctx: ssl.SSLContext
) -> _Session:
    """Greeting, EHLO, STARTTLS, handshake with ``ctx``, QUIT. Raises TimeoutError only."""
    s = _Session()
    writer = None
    try:
        try:
            reader, writer = await asyncio.open_connection(address, settings.smtp_port, limit=8192)
        except OSError as exc:
            s.detail = f"{exc.strerror or exc}"[:500]
            return s
        s.status = "smtp-error"
        code, lines = await _reply(reader)
        s.banner = "\n".join(lines)[:1000]
        if code != 220:
            s.detail = f"greeting {code}"
            return s
        code, lines = await _command(reader, writer, f"EHLO {settings.ehlo_name}")
        if code != 250:
            s.detail = f"EHLO answered {code} {' '.join(lines)[:200]}"
            await _quit(reader, writer)
            return s
        s.extensions = [ln[:200] for ln in lines[1:]]
        s.advertised = any(ext.split(" ", 1)[0].upper() == "STARTTLS" for ext in s.extensions)
        if not s.advertised:
            s.status = "no-starttls"
            await _quit(reader, writer)
            return s
        code, lines = await _command(reader, writer, "STARTTLS")
        if code != 220:
            s.status = "tls-error"
            s.detail = f"STARTTLS answered {code} {' '.join(lines)[:200]}"
            await _quit(reader, writer)
            return s
        try:
            await writer.start_tls(ctx, server_hostname=host)
        except (ssl.SSLError, ConnectionError) as exc:
            s.status = "tls-error"
            s.tls_failure = exc
            s.detail = f"handshake: {ssl_reason(exc)}"[:500]
            return s
        except ValueError as exc:  # local: a name the SNI extension cannot carry
            s.status = "tls-error"
            s.detail = f"no handshake attempted: {exc}"[:500]
            return s
        tls = writer.get_extra_info("ssl_object")
        s.status = "ok"
        if tls is not None:
            s.tls_version = tls.version()
            cipher = tls.cipher()
            s.tls_cipher = cipher[0] if cipher else None
            s.der = tls.getpeercert(binary_form=True)
        await _quit(reader, writer)
        return s
    except _SmtpError as exc:
        s.detail = str(exc)[:500]
        return s
    except OSError as exc:
        s.detail = f"connection broken: {exc}"[:500]
        return s
    finally:
        await close_stream(writer)


async def _quit(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A polite QUIT; its answer is awaited briefly and not judged."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(_command(reader, writer, "QUIT"), 2.0)


async def probe_address(host: str, address: str, settings: ProbeSettings) -> SmtpProbe:
    """Probe one MX address (no checks of the address here: see :func:`probe_smtp`).

    The first connection does the handshake with a verifying context (the default client
    context: trust store, modern protocol versions; the name is checked separately). When it
    succeeds, one connection told everything. When the handshake fails for any TLS reason, the
    certificate is recorded as not valid with OpenSSL's reason, and a second connection repeats
    the dialogue with verification off and legacy versions allowed, to learn whether TLS works
    at all and with which version, cipher and certificate: a certificate failure is not "no
    STARTTLS". Python's ``ssl`` cannot report a verification result without aborting the
    handshake, so this is the simplest way to get both answers from OpenSSL itself (and the
    verdict is the one OpenSSL-based senders reach, not a stricter or looser re-implementation).
    ``settings.timeout`` bounds each connection. Never raises (but for cancellation).
    """
    probe = SmtpProbe(host=host, address=address, status="connect-error")
    t0 = time.monotonic()
    try:
        async with asyncio.timeout(settings.timeout):
            s = await _session(host, address, settings, verifying_context(settings.cafile, False))
        verified = s.status == "ok"
        if s.tls_failure is not None:
            failure = s.tls_failure
            async with asyncio.timeout(settings.timeout):
                s2 = await _session(host, address, settings, unverified_context())
            if s2.status == "ok":
                s = s2
                probe.cert_valid = False
                probe.cert_error = ssl_reason(failure)[:500]
            else:
                s.detail = f"{s.detail}; without verification: {s2.status} {s2.detail or ''}"[:500]
        probe.status = s.status
        probe.banner = s.banner
        probe.ehlo_extensions = s.extensions
        probe.starttls_advertised = s.advertised
        probe.detail = s.detail
        if s.status == "ok":
            probe.tls_version = s.tls_version
            probe.tls_cipher = s.tls_cipher
            if verified:
                probe.cert_valid = True
            record_certificate(probe, s.der)
    except TimeoutError:
        probe.status = "timeout"
        probe.detail = f"no complete dialogue in {settings.timeout} s"
    except Exception as exc:  # a probe never takes the scan down; the row says what happened
        probe.status = "smtp-error"
        probe.detail = f"probe failed: {type(exc).__name__}: {exc}"[:500]
    finally:
        probe.duration_ms = elapsed_ms(t0)
    return probe


def record_certificate(probe: SmtpProbe, der: bytes | None) -> None:
    """Record what the leaf certificate says; what cannot be read is a finding, not a crash."""
    if not der:
        probe.cert_error = probe.cert_error or "no certificate"
        probe.cert_valid = False
        return
    leaf = read_leaf(der)
    probe.cert_names = leaf.dns_names[:100]
    probe.cert_not_before = leaf.not_before
    probe.cert_not_after = leaf.not_after
    probe.cert_issuer = leaf.issuer
    probe.cert_key_type = leaf.key_type
    probe.cert_key_bits = leaf.key_bits
    probe.cert_signature_algorithm = leaf.signature_algorithm
    if leaf.error is not None:
        probe.cert_error = "; ".join(filter(None, (probe.cert_error, leaf.error)))[:500]
    if leaf.names_read:  # else unknown (null), not "no match"
        probe.cert_name_match = any(mx_matches(probe.host, n) for n in leaf.dns_names)
    probe.cert_expired = None if leaf.not_after is None else leaf.not_after < probe.probed_at


async def probe_smtp(
    host: str, addresses: Sequence[str], settings: ProbeSettings
) -> list[SmtpProbe]:
    """Probe each address of one MX host in turn (one connection at a time).

    One result per distinct address: addresses that may not be probed (opt-out, non-global,
    beyond ``max_addresses``) are ``skipped`` with the reason and never contacted.
    """
    return await SmtpProber(settings).probe(host, addresses)


def _skipped(host: str, address: str, reason: str) -> SmtpProbe:
    return SmtpProbe(host=host, address=address, status="skipped", detail=reason, duration_ms=0)


class SmtpProber:
    """Probes MX hosts once per scan, gently.

    Each host is probed once however many domains ask (later callers await the first probe's
    result; the addresses given by the first caller are the ones probed); at most one
    connection per address at a time; at most ``max_connections`` connections open over the
    whole prober. Make one per scan, inside the running event loop.
    """

    def __init__(self, settings: ProbeSettings) -> None:
        self.settings = settings
        self._slots = asyncio.Semaphore(settings.max_connections)
        self._address_locks: dict[str, asyncio.Lock] = {}
        self._hosts: dict[str, asyncio.Future[list[SmtpProbe]]] = {}

    def __len__(self) -> int:
        return len(self._hosts)

    async def aclose(self) -> None:
        """Cancel probes still running (an interrupted scan)."""
        pending = [f for f in self._hosts.values() if not f.done()]
        for fut in pending:
            fut.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def results(self) -> list[SmtpProbe]:
        """Every finished probe so far (for the probes table)."""
        out: list[SmtpProbe] = []
        for fut in self._hosts.values():
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                out.extend(fut.result())
        return out

    async def probe(
        self, host: str, addresses: Sequence[str], domain: str | None = None
    ) -> list[SmtpProbe]:
        """The probes of ``host`` (made now, or earlier in this scan).

        ``domain``, when given, is the domain asking: if it is on the opt-out list, nothing is
        probed for it (and nothing is cached, so other domains may still have the host probed).
        """
        host = normalize_name(host)
        if domain is not None and domain_excluded(domain, self.settings):
            return [_skipped(host, a, "excluded domain") for a in unique_addresses(addresses)]
        fut = self._hosts.get(host)
        if fut is None:
            fut = asyncio.ensure_future(self._probe_host(host, unique_addresses(addresses)))
            self._hosts[host] = fut
        return list(await asyncio.shield(fut))

    async def _probe_host(self, host: str, addresses: list[str]) -> list[SmtpProbe]:
        settings = self.settings
        out: list[SmtpProbe] = []
        probed = 0
        for address in addresses:
            if domain_excluded(host, settings):
                reason: str | None = "excluded domain"
            else:
                reason = address_allowed(address, settings)
            if reason is None and probed >= settings.max_addresses:
                reason = "address limit"
            if reason is not None:
                out.append(_skipped(host, address, reason))
                continue
            probed += 1
            lock = self._address_locks.setdefault(address, asyncio.Lock())
            async with lock, self._slots:
                out.append(await probe_address(host, address, settings))
        return out
