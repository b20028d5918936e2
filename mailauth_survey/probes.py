"""Network probes for transport security: the MTA-STS policy fetch and the SMTP STARTTLS probe.

Collect, then analyze: the functions here talk to the network and return *stored results*
(:class:`PolicyFetch`, :class:`SmtpProbe`), plain dataclasses that become rows of a snapshot's
``probes`` table (:func:`to_row`, :data:`PROBES_COLUMNS`). The verdict columns are pure functions
of those results (:func:`starttls_columns` here, ``mta_sts.policy_columns`` for the policy), so
``reanalyze`` rebuilds them with no network.

Manners (a national scan): no connection is ever made to an address that is not globally
routable (loopback, private, link-local, shared, reserved, IPv4-mapped forms of those...) unless
``allow_private`` is set (tests); an opt-out list of domains and networks is honoured by every
probe (the result is ``skipped`` with the reason, no packet sent); the scanner names itself in
the EHLO name and the HTTP User-Agent (with a URL about the survey); each MX host is probed once
per scan however many domains share it (:class:`SmtpProber`), one connection per address at a
time, under a global cap on open connections.

Both clients are small hand-written protocol clients over asyncio streams and the standard
library's :mod:`ssl`, with no runtime dependency:

* HTTPS: we must connect to an address the collector resolved (its resolver, its records table)
  while validating the certificate for ``mta-sts.<domain>``, never follow a redirect, read at
  most 64 KiB and bound the whole exchange by one timeout. ``urllib`` does its own resolution,
  follows redirects unless told otherwise and needs a thread per request; a minimal HTTP/1.1
  GET (Content-Length, chunked, or read to close, each bounded) does exactly what RFC 8461 3.3
  asks and nothing more.
* SMTP: ``smtplib`` is blocking; an asyncio client lets thousands of probes share one thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import ssl
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from . import __version__
from .answers import normalize_name
from .policies.mta_sts import mx_matches

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# --- Settings and the opt-out list -----------------------------------------------------------


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
    from .domains import BadName, normalize

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
        raise ValueError(f"{path}: not a domain or network: " + "; ".join(bad))
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


def _now() -> datetime:
    return datetime.now(UTC)


def _elapsed_ms(t0: float) -> float:
    return round((time.monotonic() - t0) * 1000, 1)


def _unique(addresses: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(a.strip() for a in addresses if a and a.strip()))


# --- TLS contexts ----------------------------------------------------------------------------

_CONTEXTS: dict[tuple[str, str | None], ssl.SSLContext] = {}


def _verifying_context(cafile: str | None, check_hostname: bool) -> ssl.SSLContext:
    """The default client context: the system trust store, plus ``cafile``'s CAs; cached.

    (``create_default_context(cafile=...)`` would trust ``cafile`` alone, as SSL_CERT_FILE
    does: a private CA must not cost the public ones.)
    """
    key = ("verify-name" if check_hostname else "verify-chain", cafile)
    ctx = _CONTEXTS.get(key)
    if ctx is None:
        ctx = ssl.create_default_context()
        if cafile:
            ctx.load_verify_locations(cafile=cafile)
        ctx.check_hostname = check_hostname
        ctx.verify_mode = ssl.CERT_REQUIRED
        _CONTEXTS[key] = ctx
    return ctx


def _unverified_context() -> ssl.SSLContext:
    """No verification and legacy protocols allowed: to learn what a server speaks at all."""
    key = ("unverified", None)
    ctx = _CONTEXTS.get(key)
    if ctx is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with warnings.catch_warnings(), contextlib.suppress(ValueError, ssl.SSLError):
            warnings.simplefilter("ignore", DeprecationWarning)  # measuring, not endorsing
            ctx.minimum_version = ssl.TLSVersion.TLSv1
        with contextlib.suppress(ssl.SSLError):
            ctx.set_ciphers("ALL:@SECLEVEL=0")
        _CONTEXTS[key] = ctx
    return ctx


def _ssl_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return exc.verify_message or str(exc)
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return str(exc) or type(exc).__name__


async def _close(writer: asyncio.StreamWriter | None) -> None:
    if writer is None:
        return
    with contextlib.suppress(Exception):
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), 1.0)


# --- MTA-STS policy fetch (RFC 8461 3.3) -----------------------------------------------------

POLICY_PATH = "/.well-known/mta-sts.txt"


@dataclass
class PolicyFetch:
    """The stored result of one MTA-STS policy fetch.

    ``status``: ``ok`` (HTTP 200, body within the limit), ``http-error`` (another status, or a
    response that is not HTTP), ``redirect`` (3xx; never followed, ``detail`` holds Location),
    ``too-large`` (body over ``max_policy_bytes``), ``tls-error`` (certificate invalid, for
    another name, expired; handshake failure), ``timeout``, ``connect-error``, ``dns-error`` (no
    address for the policy host), ``skipped`` (opt-out or non-global address; reason in
    ``detail``). ``body`` is kept only for ``ok``, decoded as UTF-8 with replacement.
    """

    domain: str
    url: str
    status: str
    address: str | None = None
    http_status: int | None = None
    content_type: str | None = None
    body: str | None = None
    detail: str | None = None
    fetched_at: datetime = field(default_factory=_now)
    duration_ms: float | None = None

    @property
    def host(self) -> str:
        return f"mta-sts.{self.domain}"


class _HttpError(Exception):
    """A response that is not usable HTTP/1.x."""


class _TooLarge(Exception):
    pass


def policy_url(domain: str, port: int = 443) -> str:
    host = f"mta-sts.{normalize_name(domain)}"
    return f"https://{host}{'' if port == 443 else f':{port}'}{POLICY_PATH}"


def dns_failure(domain: str, detail: str, settings: ProbeSettings | None = None) -> PolicyFetch:
    """The stored result for a policy host whose address lookup failed (``detail``: the rcode)."""
    port = settings.https_port if settings else 443
    return PolicyFetch(
        normalize_name(domain), policy_url(domain, port), "dns-error", detail=detail, duration_ms=0
    )


async def fetch_policy(domain: str, addresses: list[str], settings: ProbeSettings) -> PolicyFetch:
    """GET ``https://mta-sts.<domain>/.well-known/mta-sts.txt`` (RFC 8461 3.3).

    ``addresses`` are the A/AAAA addresses of ``mta-sts.<domain>`` the collector resolved. The
    allowed ones are tried in order until one accepts a connection; the first that answers
    decides. TLS with SNI, the chain and the name ``mta-sts.<domain>`` validated against the
    system trust store (or ``settings.cafile``); HTTP/1.1 with ``Host`` and the survey's
    User-Agent; 3xx is reported, never followed; at most ``max_policy_bytes`` are read (one more
    byte tells ``too-large``); ``settings.timeout`` bounds the whole fetch. Never raises (but
    for cancellation).
    """
    domain = normalize_name(domain)
    host = f"mta-sts.{domain}"
    fetch = PolicyFetch(domain, policy_url(domain, settings.https_port), "connect-error")
    t0 = time.monotonic()
    try:
        if domain_excluded(domain, settings):
            fetch.status, fetch.detail = "skipped", "excluded domain"
            return fetch
        addresses = _unique(addresses)
        if not addresses:
            fetch.status, fetch.detail = "dns-error", f"no address for {host}"
            return fetch
        reasons = {a: address_allowed(a, settings) for a in addresses}
        allowed = [a for a in addresses if reasons[a] is None]
        if not allowed:
            fetch.status = "skipped"
            fetch.address = addresses[0]
            fetch.detail = reasons[addresses[0]]
            return fetch
        try:
            async with asyncio.timeout(settings.timeout):
                errors = []
                for address in allowed:
                    fetch.address = address
                    try:
                        await _fetch_from(fetch, host, address, settings)
                        break
                    except OSError as exc:
                        if isinstance(exc, ssl.SSLError):
                            raise
                        errors.append(f"{address}: {exc.strerror or exc}")
                else:
                    fetch.status, fetch.detail = "connect-error", "; ".join(errors)[:500]
        except TimeoutError:
            fetch.status, fetch.detail = "timeout", f"no complete answer in {settings.timeout} s"
        except ssl.SSLError as exc:
            fetch.status, fetch.detail = "tls-error", _ssl_reason(exc)[:500]
        except _HttpError as exc:
            fetch.status, fetch.detail = "http-error", str(exc)[:500]
        except _TooLarge:
            fetch.status = "too-large"
            fetch.detail = f"body over {settings.max_policy_bytes} bytes"
        except (OSError, EOFError) as exc:  # connection lost half-way
            fetch.status, fetch.detail = "http-error", f"connection broken: {exc}"[:500]
        except Exception as exc:  # never take the scan down (e.g. a name SNI cannot carry)
            fetch.status = "connect-error"
            fetch.detail = f"fetch failed: {type(exc).__name__}: {exc}"[:500]
        if fetch.status != "ok":
            fetch.body = None
        return fetch
    finally:
        fetch.duration_ms = _elapsed_ms(t0)


async def _fetch_from(fetch: PolicyFetch, host: str, address: str, settings: ProbeSettings) -> None:
    """One GET on one address; fills ``fetch`` or raises (OSError only before TLS)."""
    ctx = _verifying_context(settings.cafile, check_hostname=True)
    reader, writer = await asyncio.open_connection(
        address, settings.https_port, ssl=ctx, server_hostname=host, limit=16384
    )
    try:
        port = settings.https_port
        authority = host if port == 443 else f"{host}:{port}"
        request = (
            f"GET {POLICY_PATH} HTTP/1.1\r\n"
            f"Host: {authority}\r\n"
            f"User-Agent: {settings.user_agent}\r\n"
            "Accept: text/plain\r\n"
            "Accept-Encoding: identity\r\n"
            "Connection: close\r\n\r\n"
        )
        writer.write(request.encode("ascii", "replace"))
        await writer.drain()
        status, headers = await _read_head(reader)
        fetch.http_status = status
        fetch.content_type = headers.get("content-type")
        if 300 <= status < 400:
            fetch.status = "redirect"
            fetch.detail = f"Location: {headers.get('location', '')}"[:500]
            return
        if status != 200:
            fetch.status, fetch.detail = "http-error", f"HTTP {status}"
            return
        body = await _read_body(reader, headers, settings.max_policy_bytes)
        fetch.status = "ok"
        fetch.body = body.decode("utf-8", "replace")
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            fetch.detail = f"Content-Encoding: {encoding[:40]}"
    except OSError as exc:
        if isinstance(exc, ssl.SSLError):
            raise
        raise _HttpError(f"connection broken: {exc}") from None
    finally:
        await _close(writer)


_MAX_HEADER_LINES = 100


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    try:
        line = await reader.readline()
    except ValueError:  # over the stream's limit
        raise _HttpError("header line too long") from None
    if not line.endswith(b"\n"):
        raise _HttpError("connection closed in the response head")
    return line.rstrip(b"\r\n")


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """Status code and headers (names lower-cased; repeated ones keep the first); 1xx skipped."""
    for _ in range(5):
        line = await _read_line(reader)
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise _HttpError(f"not an HTTP/1.x status line: {line[:80]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        for _ in range(_MAX_HEADER_LINES):
            line = await _read_line(reader)
            if not line:
                break
            name, sep, value = line.partition(b":")
            if not sep:
                raise _HttpError(f"malformed header line: {line[:80]!r}")
            key = name.strip().decode("latin-1").lower()
            headers.setdefault(key, value.strip().decode("latin-1"))
        else:
            raise _HttpError("too many header lines")
        if not 100 <= status < 200:
            return status, headers
    raise _HttpError("too many informational responses")


async def _read_body(reader: asyncio.StreamReader, headers: Mapping[str, str], limit: int) -> bytes:
    """The body, bounded: chunked, Content-Length, or up to the end of the connection."""
    try:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = bytearray()
            while True:
                size_line = (await _read_line(reader)).split(b";", 1)[0].strip()
                try:
                    size = int(size_line, 16)
                except ValueError:
                    raise _HttpError(f"bad chunk size {size_line[:20]!r}") from None
                if size < 0:
                    raise _HttpError(f"bad chunk size {size_line[:20]!r}")
                if size == 0:
                    return bytes(body)  # trailers, if any, are not read
                if len(body) + size > limit:
                    raise _TooLarge
                body += await reader.readexactly(size)
                await _read_line(reader)
        if "content-length" in headers:
            text = headers["content-length"].split(",")[0].strip()
            if not text.isdigit():
                raise _HttpError(f"bad Content-Length {text[:20]!r}")
            length = int(text)
            if length > limit:
                raise _TooLarge
            return await reader.readexactly(length)
        body = bytearray()
        while len(body) <= limit:
            chunk = await reader.read(limit + 1 - len(body))
            if not chunk:
                return bytes(body)
            body += chunk
        raise _TooLarge
    except asyncio.IncompleteReadError:
        raise _HttpError("body truncated") from None


# --- SMTP STARTTLS probe (RFC 3207) ----------------------------------------------------------


@dataclass
class SmtpProbe:
    """The stored result of probing one address of one MX host.

    ``status``: ``ok`` (STARTTLS advertised and a TLS handshake completed, whatever the
    certificate), ``no-starttls`` (EHLO did not advertise it), ``tls-error`` (advertised, but
    refused or no handshake could be completed), ``timeout``, ``connect-error``, ``smtp-error``
    (no 220 greeting, EHLO refused, a reply that is not SMTP), ``skipped`` (opt-out, non-global
    address, or over ``max_addresses``; reason in ``detail``).

    Certificate (only after a handshake): ``cert_valid`` the chain verifies against the trust
    store (OpenSSL, as senders do; expiry included), ``cert_name_match`` a subjectAltName DNS
    name matches the MX host name (RFC 6125, wildcard only as the whole leftmost label),
    ``cert_not_after`` and ``cert_expired`` (at ``probed_at``), ``cert_names`` the DNS names,
    ``cert_error`` why verification failed.
    """

    host: str
    address: str
    status: str
    banner: str | None = None
    ehlo_extensions: list[str] = field(default_factory=list)
    starttls_advertised: bool | None = None
    tls_version: str | None = None
    tls_cipher: str | None = None
    cert_valid: bool | None = None
    cert_name_match: bool | None = None
    cert_not_after: datetime | None = None
    cert_expired: bool | None = None
    cert_names: list[str] = field(default_factory=list)
    cert_error: str | None = None
    detail: str | None = None
    probed_at: datetime = field(default_factory=_now)
    duration_ms: float | None = None

    @property
    def handshake(self) -> bool:
        return self.status == "ok"

    @property
    def cert_ok(self) -> bool:
        """Valid chain, name matching, not expired: what MTA-STS (RFC 8461 4.2) asks."""
        return bool(self.cert_valid and self.cert_name_match and not self.cert_expired)


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
            s.detail = f"handshake: {_ssl_reason(exc)}"[:500]
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
        await _close(writer)


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
            s = await _session(host, address, settings, _verifying_context(settings.cafile, False))
        verified = s.status == "ok"
        if s.tls_failure is not None:
            failure = s.tls_failure
            async with asyncio.timeout(settings.timeout):
                s2 = await _session(host, address, settings, _unverified_context())
            if s2.status == "ok":
                s = s2
                probe.cert_valid = False
                probe.cert_error = _ssl_reason(failure)[:500]
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
            _cert_facts(probe, s.der)
    except TimeoutError:
        probe.status = "timeout"
        probe.detail = f"no complete dialogue in {settings.timeout} s"
    except Exception as exc:  # a probe never takes the scan down; the row says what happened
        probe.status = "smtp-error"
        probe.detail = f"probe failed: {type(exc).__name__}: {exc}"[:500]
    finally:
        probe.duration_ms = _elapsed_ms(t0)
    return probe


def _cert_facts(probe: SmtpProbe, der: bytes | None) -> None:
    if not der:
        probe.cert_error = probe.cert_error or "no certificate"
        probe.cert_valid = False
        return
    names, not_after = leaf_facts(der)
    probe.cert_names = names[:100]
    probe.cert_name_match = any(mx_matches(probe.host, n) for n in names)
    probe.cert_not_after = not_after
    probe.cert_expired = None if not_after is None else not_after < probe.probed_at


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
            return [_skipped(host, a, "excluded domain") for a in _unique(addresses)]
        fut = self._hosts.get(host)
        if fut is None:
            fut = asyncio.ensure_future(self._probe_host(host, _unique(addresses)))
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


# --- Verdicts (pure) -------------------------------------------------------------------------

STARTTLS_COLUMNS = ("starttls", "starttls_cert_valid", "tls_versions")

#: Statuses of an address that answered as an SMTP server and said whether it does STARTTLS.
_SPOKE_SMTP = frozenset({"ok", "no-starttls", "tls-error"})


def starttls_columns(mx_hosts: list[str] | None, probes: Iterable[SmtpProbe]) -> dict[str, Any]:
    """The STARTTLS columns of one domain from the stored probes of its MX hosts (pure).

    ``starttls``: True when every probed MX address that spoke SMTP (``ok``, ``no-starttls``,
    ``tls-error``) advertised STARTTLS and completed a handshake; False when one did not; null
    when none spoke SMTP (not probed, skipped, unreachable, timed out: unknown, never "no").
    ``starttls_cert_valid``: every completed handshake showed a valid chain, a matching name and
    an unexpired certificate; null without a handshake. ``tls_versions``: the distinct versions
    negotiated, sorted; null when ``starttls`` is.
    """
    out: dict[str, Any] = dict.fromkeys(STARTTLS_COLUMNS)
    if not mx_hosts:
        return out
    hosts = {normalize_name(h) for h in mx_hosts}
    spoke = [p for p in probes if normalize_name(p.host) in hosts and p.status in _SPOKE_SMTP]
    if not spoke:
        return out
    shook = [p for p in spoke if p.status == "ok"]
    out["starttls"] = len(shook) == len(spoke)
    out["tls_versions"] = sorted({p.tls_version for p in shook if p.tls_version})
    if shook:
        out["starttls_cert_valid"] = all(p.cert_ok for p in shook)
    return out


# --- Rows of the probes table ----------------------------------------------------------------

_STR = pa.string()
_TS = pa.timestamp("us", tz="UTC")

#: The ``probes`` table: one row per policy fetch (``kind`` ``mta-sts-policy``, ``host`` =
#: ``mta-sts.<domain>``) or per probed MX address (``kind`` ``smtp``, ``domain`` null: an MX
#: host's probe serves every domain that uses it). ``probed_at`` is a policy's ``fetched_at``.
PROBES_COLUMNS: dict[str, pa.DataType] = {
    "kind": _STR,
    "domain": _STR,
    "host": _STR,
    "address": _STR,
    "url": _STR,
    "status": _STR,
    "http_status": pa.int16(),
    "content_type": _STR,
    "body": _STR,
    "banner": _STR,
    "ehlo_extensions": pa.list_(_STR),
    "starttls_advertised": pa.bool_(),
    "tls_version": _STR,
    "tls_cipher": _STR,
    "cert_valid": pa.bool_(),
    "cert_name_match": pa.bool_(),
    "cert_not_after": _TS,
    "cert_expired": pa.bool_(),
    "cert_names": pa.list_(_STR),
    "cert_error": _STR,
    "detail": _STR,
    "probed_at": _TS,
    "duration_ms": pa.float32(),
}

PROBES_SCHEMA = pa.schema(list(PROBES_COLUMNS.items()))

KIND_POLICY = "mta-sts-policy"
KIND_SMTP = "smtp"


def to_row(probe: PolicyFetch | SmtpProbe) -> dict[str, Any]:
    """A flat row of the probes table (every column of :data:`PROBES_COLUMNS`)."""
    row: dict[str, Any] = dict.fromkeys(PROBES_COLUMNS)
    if isinstance(probe, PolicyFetch):
        row["kind"] = KIND_POLICY
        row["host"] = probe.host
        for f in fields(PolicyFetch):
            row["probed_at" if f.name == "fetched_at" else f.name] = getattr(probe, f.name)
    elif isinstance(probe, SmtpProbe):
        row["kind"] = KIND_SMTP
        for f in fields(SmtpProbe):
            value = getattr(probe, f.name)
            row[f.name] = list(value) if isinstance(value, list) else value
    else:
        raise TypeError(f"not a probe: {type(probe).__name__}")
    return row


def _clean(value: Any) -> Any:
    """A value as pyarrow or pandas gives it back → plain Python (NaN, NaT → None)."""
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp or NaT (both datetime subclasses)
        return None if value != value else value.to_pydatetime()
    if value is None or isinstance(value, str | bytes | bool | int | datetime):
        return value
    if isinstance(value, list | tuple):
        return list(value)
    if hasattr(value, "tolist"):  # numpy array or scalar
        value = value.tolist()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def from_row(row: Mapping[str, Any]) -> PolicyFetch | SmtpProbe:
    """The probe a row of the probes table was made from."""
    kind = row.get("kind")
    values = {k: _clean(v) for k, v in row.items()}
    if kind == KIND_POLICY:
        kwargs = {f.name: values.get(f.name) for f in fields(PolicyFetch)}
        kwargs["fetched_at"] = values.get("probed_at")
        if kwargs["http_status"] is not None:
            kwargs["http_status"] = int(kwargs["http_status"])
        return PolicyFetch(**kwargs)
    if kind == KIND_SMTP:
        kwargs = {f.name: values.get(f.name) for f in fields(SmtpProbe)}
        for name in ("ehlo_extensions", "cert_names"):
            kwargs[name] = list(kwargs[name]) if kwargs[name] is not None else []
        return SmtpProbe(**kwargs)
    raise ValueError(f"unknown probe kind {kind!r}")


# --- The leaf certificate, read without a library (DER, X.509) -------------------------------

_OID_SAN = bytes.fromhex("551d11")  # 2.5.29.17 subjectAltName


def _tlv(buf: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at ``pos``; ValueError if bad."""
    if pos + 2 > len(buf):
        raise ValueError("truncated")
    tag = buf[pos]
    length = buf[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or pos + n > len(buf):
            raise ValueError("bad length")
        length = int.from_bytes(buf[pos : pos + n], "big")
        pos += n
    end = pos + length
    if end > len(buf):
        raise ValueError("truncated")
    return tag, pos, end


def _children(buf: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    while start < end:
        tag, s, e = _tlv(buf, start)
        if e > end:
            raise ValueError("overrun")
        out.append((tag, s, e))
        start = e
    return out


def _der_time(tag: int, raw: bytes) -> datetime | None:
    text = raw.decode("ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    if not text.endswith("Z") or len(text) < 15:
        return None
    return datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)


def leaf_facts(der: bytes) -> tuple[list[str], datetime | None]:
    """(subjectAltName DNS names lower-cased, notAfter) of a DER certificate; never raises.

    Only what the verdicts need. The subject CN is not read: like Python's own host name check
    (and RFC 6125 when a SAN is present, which public CAs always include), names come from the
    subjectAltName extension.
    """
    names: list[str] = []
    not_after = None
    try:
        _, cs, ce = _tlv(der, 0)
        _, ts, te = _children(der, cs, ce)[0]
        items = _children(der, ts, te)
        i = 1 if items and items[0][0] == 0xA0 else 0  # [0] version
        validity = items[i + 3]  # serial, signature, issuer, validity
        times = _children(der, validity[1], validity[2])
        if len(times) == 2:
            tag, s, e = times[1]
            not_after = _der_time(tag, der[s:e])
        for tag, s, e in items[i + 6 :]:
            if tag != 0xA3:  # [3] extensions
                continue
            (_, xs, xe), *_ = _children(der, s, e)
            for _, es, ee in _children(der, xs, xe):
                parts = _children(der, es, ee)
                oid = parts[0]
                if der[oid[1] : oid[2]] != _OID_SAN:
                    continue
                octets = parts[-1]
                (_, ns, ne), *_ = _children(der, octets[1], octets[2])
                for gtag, gs, ge in _children(der, ns, ne):
                    if gtag == 0x82:  # dNSName [2] IA5String
                        names.append(der[gs:ge].decode("ascii", "replace").lower())
    except (ValueError, IndexError, UnicodeDecodeError):
        pass
    return names, not_after
