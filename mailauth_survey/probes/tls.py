"""What the HTTPS and SMTP clients share: the TLS client contexts, OpenSSL's reason for a
failure, closing a stream, timing an exchange."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import warnings

_CONTEXTS: dict[tuple[str, str | None], ssl.SSLContext] = {}


def verifying_context(cafile: str | None, check_hostname: bool) -> ssl.SSLContext:
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


def unverified_context() -> ssl.SSLContext:
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


def ssl_reason(exc: BaseException) -> str:
    """OpenSSL's words for a TLS failure (the verification message when there is one)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return exc.verify_message or str(exc)
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return str(exc) or type(exc).__name__


async def close_stream(writer: asyncio.StreamWriter | None) -> None:
    """Close a connection, waiting a second at most; a peer gone already is no error."""
    if writer is None:
        return
    with contextlib.suppress(Exception):
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), 1.0)


def elapsed_ms(t0: float) -> float:
    """Milliseconds since ``t0`` (a ``time.monotonic()``), to one decimal."""
    return round((time.monotonic() - t0) * 1000, 1)
