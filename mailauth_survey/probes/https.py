"""The MTA-STS policy fetch (RFC 8461 3.3): one HTTPS GET, written by hand over asyncio streams.

Why not a library: we must connect to an address the collector resolved (its resolver, its
records table) while validating the certificate for ``mta-sts.<domain>``, never follow a
redirect, read at most 64 KiB and bound the whole exchange by one timeout. ``urllib`` does its own
resolution, follows redirects unless told otherwise and needs a thread per request; a minimal
HTTP/1.1 GET (Content-Length, chunked, or read to close, each bounded) does exactly what RFC 8461
3.3 asks and nothing more.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping

from ..answers import normalize_name
from .results import PolicyFetch
from .settings import ProbeSettings, address_allowed, domain_excluded, unique_addresses
from .tls import close_stream, elapsed_ms, ssl_reason, verifying_context

POLICY_PATH = "/.well-known/mta-sts.txt"


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
        addresses = unique_addresses(addresses)
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
            fetch.status, fetch.detail = "tls-error", ssl_reason(exc)[:500]
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
        fetch.duration_ms = elapsed_ms(t0)


async def _fetch_from(fetch: PolicyFetch, host: str, address: str, settings: ProbeSettings) -> None:
    """One GET on one address; fills ``fetch`` or raises (OSError only before TLS)."""
    ctx = verifying_context(settings.cafile, check_hostname=True)
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
        await close_stream(writer)


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
