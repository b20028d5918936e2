"""The stored results of the transport-security probes and the verdicts made from them (pure).

Collect, then analyze: :mod:`.https` and :mod:`.smtp` talk to the network and return these plain
dataclasses (:class:`PolicyFetch`, :class:`SmtpProbe`), which become rows of a snapshot's
``probes`` table (:func:`to_row`, :data:`mailauth_survey.store.PROBES_COLUMNS`) and come back from it (:func:`from_row`).
The verdict columns are pure functions of them (:func:`starttls_columns`, and
``mta_sts.policy_columns`` for the policy), so ``reanalyze`` rebuilds them with no network. Nothing
here may import the network half of the package.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from ..answers import normalize_name
from ..policies import mta_sts
from ..policies.apex import MAX_MX_HOSTS
from ..store import PROBES_COLUMNS


def _now() -> datetime:
    return datetime.now(UTC)


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
    ``cert_not_before``, ``cert_issuer`` (RFC 4514), ``cert_key_type`` and ``cert_key_bits``,
    ``cert_signature_algorithm``; ``cert_error`` why verification failed, or which part of the
    certificate could not be read (those facts are then null: unknown, not absent).
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
    cert_not_before: datetime | None = None
    cert_issuer: str | None = None
    cert_key_type: str | None = None
    cert_key_bits: int | None = None
    cert_signature_algorithm: str | None = None
    cert_error: str | None = None
    detail: str | None = None
    probed_at: datetime = field(default_factory=_now)
    duration_ms: float | None = None

    @property
    def cert_ok(self) -> bool:
        """Valid chain, name matching, not expired: what MTA-STS (RFC 8461 4.2) asks."""
        return bool(self.cert_valid and self.cert_name_match and not self.cert_expired)


# --- Verdicts (pure) -------------------------------------------------------------------------

STARTTLS_COLUMNS = ("starttls", "starttls_cert_valid", "tls_versions")

#: Statuses of an address that answered as an SMTP server and said whether it does STARTTLS.
_SPOKE_SMTP = frozenset({"ok", "no-starttls", "tls-error"})


def starttls_columns(mx_hosts: list[str] | None, probes: Iterable[SmtpProbe]) -> dict[str, Any]:
    """The STARTTLS columns of one domain from the stored probes of its MX hosts (pure).

    An MX host's addresses that spoke SMTP (``ok``, ``no-starttls``, ``tls-error``) judge it:
    yes when each did STARTTLS with a completed handshake, no when one did not, unknown when
    none spoke (not probed, skipped, unreachable, no address). ``starttls`` is the conjunction
    over the hosts (the first :data:`MAX_MX_HOSTS`, as probed) in three values: False when a
    host is no, True only when every host is yes, otherwise null: a host that could not be
    asked is never counted as a yes. ``starttls_cert_valid``: every completed handshake showed
    a valid chain, a matching name and an unexpired certificate; null without a handshake.
    ``tls_versions``: the distinct versions negotiated, sorted; null when ``starttls`` is.
    """
    out: dict[str, Any] = dict.fromkeys(STARTTLS_COLUMNS)
    if not mx_hosts:
        return out
    hosts = [normalize_name(h) for h in mx_hosts[:MAX_MX_HOSTS]]
    spoke_by_host: dict[str, list[SmtpProbe]] = {h: [] for h in hosts}
    for p in probes:
        host = normalize_name(p.host)
        if host in spoke_by_host and p.status in _SPOKE_SMTP:
            spoke_by_host[host].append(p)
    spoke = [p for ps in spoke_by_host.values() for p in ps]
    shook = [p for p in spoke if p.status == "ok"]
    if shook:
        out["starttls_cert_valid"] = all(p.cert_ok for p in shook)
    if len(shook) < len(spoke):
        out["starttls"] = False
    elif all(spoke_by_host.values()):
        out["starttls"] = True
    if out["starttls"] is not None:
        out["tls_versions"] = sorted({p.tls_version for p in shook if p.tls_version})
    return out


@dataclass
class DomainProbes:
    """The stored probes a domain's transport-security columns are computed from."""

    policy: PolicyFetch | None = None  # the MTA-STS policy fetch; None: none was made
    smtp: list[SmtpProbe] | None = None  # its MX hosts' STARTTLS probes; None: not probed


def transport_columns(
    domain: str, row: dict[str, Any], probes: DomainProbes | None
) -> dict[str, Any]:
    """MTA-STS policy and STARTTLS columns (pure): null where nothing was probed."""
    probes = probes or DomainProbes()
    cols = mta_sts.policy_columns(domain, row["mta_sts_status"], probes.policy, row["mx_hosts"])
    if probes.smtp is None:
        cols.update(dict.fromkeys(STARTTLS_COLUMNS))
    else:
        cols.update(starttls_columns(row["mx_hosts"], probes.smtp))
    return cols


# --- Rows of the probes table ----------------------------------------------------------------

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
        if kwargs["cert_key_bits"] is not None:  # pandas gives a float where a column has nulls
            kwargs["cert_key_bits"] = int(kwargs["cert_key_bits"])
        return SmtpProbe(**kwargs)
    raise ValueError(f"unknown probe kind {kind!r}")
