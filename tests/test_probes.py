"""SMTP STARTTLS probes against real servers on loopback (aiosmtpd with trustme certificates, and
a hand-written server for misbehaviour and concurrency), the safety rules, the verdict columns
and the probes table rows."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pytest
import trustme
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from mailauth_survey.policies.apex import MAX_MX_HOSTS
from mailauth_survey.probes.results import (
    STARTTLS_COLUMNS,
    PolicyFetch,
    SmtpProbe,
    from_row,
    starttls_columns,
    to_row,
)
from mailauth_survey.probes.settings import (
    ProbeSettings,
    address_allowed,
    domain_excluded,
    load_exclusions,
)
from mailauth_survey.probes.smtp import SmtpProber, probe_smtp
from mailauth_survey.probes.x509 import read_leaf
from mailauth_survey.store import PROBES_COLUMNS, PROBES_SCHEMA
from tests.nsd import free_port

EHLO_NAME = "scanner.survey.example.jp"


# --- aiosmtpd servers ---------------------------------------------------------------------------


class Recorder:
    """aiosmtpd handler that remembers the EHLO names it was given."""

    def __init__(self) -> None:
        self.ehlo_names: list[str] = []

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.ehlo_names.append(hostname)
        session.host_name = hostname
        return responses


@dataclass
class Smtpd:
    port: int
    recorder: Recorder


@pytest.fixture
def authority(tmp_path: Path) -> tuple[trustme.CA, str]:
    ca = trustme.CA()
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, str(path)


@contextlib.contextmanager
def smtpd(cert: trustme.LeafCert | None) -> Iterator[Smtpd]:
    ctx = None
    if cert is not None:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
    recorder = Recorder()
    port = free_port()
    controller = Controller(
        recorder,
        hostname="127.0.0.1",
        port=port,
        tls_context=ctx,
        require_starttls=False,
        server_hostname="mx1.example.jp",
    )
    controller.start()
    try:
        yield Smtpd(port, recorder)
    finally:
        controller.stop()


def settings_for(port: int, cafile: str | None = None, **kw) -> ProbeSettings:
    base = dict(allow_private=True, smtp_port=port, cafile=cafile, timeout=5, ehlo_name=EHLO_NAME)
    base.update(kw)
    return ProbeSettings(**base)


async def test_starttls_with_valid_certificate(authority):
    ca, cafile = authority
    with smtpd(ca.issue_cert("mx1.example.jp")) as server:
        probes = await probe_smtp(
            "mx1.example.jp", ["127.0.0.1"], settings_for(server.port, cafile)
        )
    assert len(probes) == 1
    p = probes[0]
    assert p.status == "ok", p.detail
    assert (p.host, p.address) == ("mx1.example.jp", "127.0.0.1")
    assert p.banner.startswith("mx1.example.jp")
    assert "STARTTLS" in p.ehlo_extensions and p.starttls_advertised
    assert p.tls_version in ("TLSv1.2", "TLSv1.3")
    assert p.tls_cipher
    assert p.cert_valid is True and p.cert_name_match is True and p.cert_expired is False
    assert p.cert_names == ["mx1.example.jp"]
    assert p.cert_not_after > p.probed_at
    assert p.cert_error is None
    assert server.recorder.ehlo_names == [EHLO_NAME]  # one connection, the configured name
    assert starttls_columns(["mx1.example.jp"], probes) == {
        "starttls": True,
        "starttls_cert_valid": True,
        "tls_versions": [p.tls_version],
    }


async def test_no_starttls(authority):
    with smtpd(None) as server:
        (p,) = await probe_smtp("mx1.example.jp", ["127.0.0.1"], settings_for(server.port))
    assert p.status == "no-starttls"
    assert p.starttls_advertised is False
    assert p.tls_version is None and p.cert_valid is None
    assert p.ehlo_extensions  # the server's other extensions are kept
    assert server.recorder.ehlo_names == [EHLO_NAME]
    assert starttls_columns(["mx1.example.jp"], [p]) == {
        "starttls": False,
        "starttls_cert_valid": None,
        "tls_versions": [],
    }


async def test_certificate_for_another_name_is_still_starttls(authority):
    ca, cafile = authority
    with smtpd(ca.issue_cert("other.example.net")) as server:
        (p,) = await probe_smtp("mx1.example.jp", ["127.0.0.1"], settings_for(server.port, cafile))
    assert p.status == "ok"  # a certificate failure is not "no STARTTLS"
    assert p.cert_valid is True  # the chain is fine ...
    assert p.cert_name_match is False  # ... for the wrong name
    cols = starttls_columns(["mx1.example.jp"], [p])
    assert cols["starttls"] is True and cols["starttls_cert_valid"] is False


async def test_wildcard_certificate_matches_one_label(authority):
    ca, cafile = authority
    with smtpd(ca.issue_cert("*.example.jp")) as server:
        s = settings_for(server.port, cafile)
        (one,) = await probe_smtp("mx1.example.jp", ["127.0.0.1"], s)
        (two,) = await probe_smtp("a.mx1.example.jp", ["127.0.0.1"], s)
    assert one.cert_name_match is True
    assert two.cert_name_match is False


async def test_expired_certificate(authority):
    ca, cafile = authority
    now = dt.datetime.now(dt.UTC)
    cert = ca.issue_cert(
        "mx1.example.jp",
        not_before=now - dt.timedelta(days=60),
        not_after=now - dt.timedelta(days=1),
    )
    with smtpd(cert) as server:
        (p,) = await probe_smtp("mx1.example.jp", ["127.0.0.1"], settings_for(server.port, cafile))
        ehlos = list(server.recorder.ehlo_names)
    assert p.status == "ok"
    assert p.tls_version in ("TLSv1.2", "TLSv1.3")
    assert p.cert_valid is False and "expired" in p.cert_error
    assert p.cert_expired is True and p.cert_name_match is True
    assert p.cert_not_after < p.probed_at
    assert ehlos == [EHLO_NAME, EHLO_NAME]  # verifying handshake, then one without verification
    cols = starttls_columns(["mx1.example.jp"], [p])
    assert cols["starttls"] is True and cols["starttls_cert_valid"] is False


class PemLeaf:
    """A leaf certificate and its key in PEM files, served like a trustme.LeafCert."""

    def __init__(self, folder: Path, cert: x509.Certificate, key) -> None:
        self.cert, self.key = folder / "leaf.pem", folder / "leaf.key"
        self.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    def configure_cert(self, ctx: ssl.SSLContext) -> None:
        ctx.load_cert_chain(str(self.cert), str(self.key))


def san_less_leaf(ca: trustme.CA, folder: Path) -> tuple[PemLeaf, x509.Certificate]:
    """A leaf for CN=mx1.example.jp with no subjectAltName, signed by ``ca`` (trustme always
    adds one)."""
    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mx1.example.jp")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(ca_key, hashes.SHA256())
    )
    return PemLeaf(folder, cert, key), ca_cert


async def test_certificate_without_subject_alt_name_matches_no_name(authority, tmp_path):
    """RFC 9525 6.3: the subject CN is no DNS-ID, so a SAN-less certificate names no host; the
    chain is still valid and the rest of the certificate is still recorded."""
    ca, cafile = authority
    leaf, ca_cert = san_less_leaf(ca, tmp_path)
    with smtpd(leaf) as server:
        (p,) = await probe_smtp("mx1.example.jp", ["127.0.0.1"], settings_for(server.port, cafile))
    assert p.status == "ok" and p.cert_valid is True and p.cert_error is None
    assert p.cert_names == [] and p.cert_name_match is False
    assert p.cert_issuer == ca_cert.subject.rfc4514_string()
    assert (p.cert_key_type, p.cert_key_bits) == ("ec", 256)
    assert p.cert_not_before < p.probed_at < p.cert_not_after
    assert starttls_columns(["mx1.example.jp"], [p])["starttls_cert_valid"] is False


async def test_probe_records_issuer_key_and_signature_algorithm(authority):
    ca, cafile = authority
    with smtpd(ca.issue_cert("mx1.example.jp", key_type=trustme.KeyType.RSA)) as server:
        (p,) = await probe_smtp("mx1.example.jp", ["127.0.0.1"], settings_for(server.port, cafile))
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    assert p.cert_ok and p.cert_error is None
    assert p.cert_issuer == ca_cert.subject.rfc4514_string()
    assert (p.cert_key_type, p.cert_key_bits) == ("rsa", 2048)
    assert p.cert_signature_algorithm == "ecdsa-with-sha256"  # trustme's CA key is ECDSA


async def test_host_name_that_sni_cannot_carry_does_not_raise(authority):
    ca, cafile = authority
    host = "a" * 70 + ".example.jp"  # a label over 63 octets
    with smtpd(ca.issue_cert("mx1.example.jp")) as server:
        prober = SmtpProber(settings_for(server.port, cafile))
        (p,) = await prober.probe(host, ["127.0.0.1"])
    assert p.status in ("tls-error", "smtp-error")
    assert p.detail


def test_settings_reject_header_injection():
    with pytest.raises(ValueError):
        ProbeSettings(ehlo_name="x\r\nMAIL FROM:<a@b>")
    with pytest.raises(ValueError):
        ProbeSettings(user_agent="ua\r\nX-Evil: 1")
    with pytest.raises(ValueError):
        ProbeSettings(max_connections=0)


async def test_prober_aclose_cancels_running_probes():
    async with raw_smtp(mode="silent") as server:
        prober = SmtpProber(settings_for(server.port, timeout=30))
        task = asyncio.ensure_future(prober.probe("mx.example.jp", ["127.0.0.1"]))
        await asyncio.sleep(0.1)
        await prober.aclose()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert prober.results() == []


async def test_untrusted_issuer(authority, tmp_path):
    ca, _ = authority
    other = tmp_path / "other.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    with smtpd(ca.issue_cert("mx1.example.jp")) as server:
        (p,) = await probe_smtp(
            "mx1.example.jp", ["127.0.0.1"], settings_for(server.port, str(other))
        )
    assert p.status == "ok"
    assert p.cert_valid is False and "issuer" in p.cert_error
    assert p.cert_name_match is True and p.cert_expired is False


# --- a hand-written SMTP server: misbehaviour, counting connections -----------------------------


@dataclass
class RawSmtp:
    """Counts connections and the most open at once; answers per ``mode``."""

    mode: str = "plain"  # plain, refuse-tls, bad-greeting, not-smtp, silent
    delay: float = 0.0
    port: int = 0
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    ehlo_names: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    tasks: set = field(default_factory=set)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.tasks.add(asyncio.current_task())
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            if self.mode == "silent":
                await asyncio.sleep(30)
                return
            await asyncio.sleep(self.delay)
            if self.mode == "bad-greeting":
                writer.write(b"554 5.7.1 no service for you\r\n")
                await writer.drain()
                return
            if self.mode == "not-smtp":
                writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                await writer.drain()
                return
            writer.write(b"220-raw.example.jp ESMTP\r\n220 hello\r\n")
            while line := await reader.readline():
                cmd = line.decode().strip()
                self.commands.append(cmd)
                verb = cmd.split(" ", 1)[0].upper()
                if verb == "EHLO":
                    self.ehlo_names.append(cmd.split(" ", 1)[1])
                    ext = b"250-STARTTLS\r\n" if self.mode == "refuse-tls" else b""
                    writer.write(b"250-raw.example.jp\r\n" + ext + b"250 PIPELINING\r\n")
                elif verb == "STARTTLS":
                    writer.write(b"454 4.7.0 TLS not available\r\n")
                elif verb == "QUIT":
                    writer.write(b"221 bye\r\n")
                    await writer.drain()
                    return
                else:
                    writer.write(b"502 no\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.open_now -= 1
            writer.close()


@contextlib.asynccontextmanager
async def raw_smtp(hosts: tuple[str, ...] = ("127.0.0.1",), **kw) -> AsyncIterator[RawSmtp]:
    state = RawSmtp(**kw)
    servers = []
    for attempt in range(20):
        try:
            port = 0
            for h in hosts:
                srv = await asyncio.start_server(state.handle, h, port)
                servers.append(srv)
                port = srv.sockets[0].getsockname()[1]
            state.port = port
            break
        except OSError:
            for srv in servers:
                srv.close()
            servers = []
            if attempt == 19:
                raise
    try:
        yield state
    finally:
        for srv in servers:
            srv.close()
        for t in list(state.tasks):
            t.cancel()
        await asyncio.sleep(0)


async def test_starttls_advertised_but_refused_is_tls_error():
    async with raw_smtp(mode="refuse-tls") as server:
        (p,) = await probe_smtp("mx.example.jp", ["127.0.0.1"], settings_for(server.port))
    assert p.status == "tls-error"
    assert p.starttls_advertised is True and p.tls_version is None
    assert "454" in p.detail
    assert server.commands[-1] == "QUIT"  # polite
    assert starttls_columns(["mx.example.jp"], [p])["starttls"] is False


@pytest.mark.parametrize("mode", ["bad-greeting", "not-smtp"])
async def test_smtp_errors(mode):
    async with raw_smtp(mode=mode) as server:
        (p,) = await probe_smtp("mx.example.jp", ["127.0.0.1"], settings_for(server.port))
    assert p.status == "smtp-error"
    assert starttls_columns(["mx.example.jp"], [p])["starttls"] is None


async def test_quit_is_sent():
    async with raw_smtp() as server:
        (p,) = await probe_smtp("mx.example.jp", ["127.0.0.1"], settings_for(server.port))
    assert p.status == "no-starttls"
    assert server.commands == [f"EHLO {EHLO_NAME}", "QUIT"]


async def test_silent_server_times_out():
    async with raw_smtp(mode="silent") as server:
        (p,) = await probe_smtp(
            "mx.example.jp", ["127.0.0.1"], settings_for(server.port, timeout=0.3)
        )
    assert p.status == "timeout"
    assert p.duration_ms < 3000


async def test_connection_refused():
    (p,) = await probe_smtp("mx.example.jp", ["127.0.0.1"], settings_for(free_port()))
    assert p.status == "connect-error"
    assert starttls_columns(["mx.example.jp"], [p])["starttls"] is None


async def test_shared_mx_host_probed_once():
    async with raw_smtp(delay=0.1) as server:
        prober = SmtpProber(settings_for(server.port))
        first, second = await asyncio.gather(
            prober.probe("MX.shared.example.jp.", ["127.0.0.1"], domain="a.example.jp"),
            prober.probe("mx.shared.example.jp", ["127.0.0.1"], domain="b.example.jp"),
        )
        third = await prober.probe("mx.shared.example.jp", ["127.0.0.1"])
    assert server.connections == 1
    assert first == second == third
    assert first[0].status == "no-starttls"
    assert len(prober) == 1 and prober.results() == first


async def test_one_connection_per_address_at_a_time():
    async with raw_smtp(delay=0.05) as server:
        prober = SmtpProber(settings_for(server.port, max_connections=10))
        await asyncio.gather(*(prober.probe(f"mx{i}.example.jp", ["127.0.0.1"]) for i in range(5)))
    assert server.connections == 5
    assert server.most_open == 1


@pytest.mark.parametrize("cap", [1, 2])
async def test_global_connection_cap(cap):
    addresses = tuple(f"127.0.0.{i}" for i in range(1, 6))
    async with raw_smtp(addresses, delay=0.1) as server:
        prober = SmtpProber(settings_for(server.port, max_connections=cap))
        results = await asyncio.gather(
            *(prober.probe(f"mx{i}.example.jp", [a]) for i, a in enumerate(addresses))
        )
    assert all(r[0].status == "no-starttls" for r in results)
    assert server.connections == 5
    assert server.most_open == cap


async def test_addresses_of_one_host_probed_in_turn():
    addresses = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
    async with raw_smtp(addresses, delay=0.05) as server:
        probes = await probe_smtp(
            "mx.example.jp", [*addresses, "127.0.0.1"], settings_for(server.port)
        )
    assert [p.address for p in probes] == list(addresses)  # duplicates dropped
    assert server.most_open == 1 and server.connections == 3


async def test_address_limit():
    async with raw_smtp() as server:
        probes = await probe_smtp(
            "mx.example.jp", ["127.0.0.1", "127.0.0.2"], settings_for(server.port, max_addresses=1)
        )
    assert [p.status for p in probes] == ["no-starttls", "skipped"]
    assert probes[1].detail == "address limit"
    assert server.connections == 1


# --- safety ------------------------------------------------------------------------------------


async def test_loopback_skipped_without_allow_private():
    async with raw_smtp() as server:
        (p,) = await probe_smtp(
            "mx.example.jp", ["127.0.0.1"], settings_for(server.port, allow_private=False)
        )
    assert (p.status, p.detail) == ("skipped", "non-global address")
    assert server.connections == 0
    assert starttls_columns(["mx.example.jp"], [p]) == dict.fromkeys(STARTTLS_COLUMNS)


async def test_excluded_network_and_domain_skipped():
    async with raw_smtp() as server:
        s = settings_for(server.port, exclude_networks=("127.0.0.0/24",))
        (p,) = await probe_smtp("mx.example.jp", ["127.0.0.1"], s)
        assert (p.status, p.detail) == ("skipped", "excluded network")
        s = settings_for(server.port, exclude_domains=frozenset({"Example.JP."}))
        (p,) = await probe_smtp("mx.example.jp", ["127.0.0.1"], s)
        assert (p.status, p.detail) == ("skipped", "excluded domain")
        # A domain on the opt-out list gets no probe of its (unlisted) MX host...
        s = settings_for(server.port, exclude_domains=frozenset({"optout.example.net"}))
        prober = SmtpProber(s)
        (p,) = await prober.probe(
            "mx.provider.example.jp", ["127.0.0.1"], domain="optout.example.net"
        )
        assert (p.status, p.detail) == ("skipped", "excluded domain")
        assert server.connections == 0
        # ...and that does not stop the host being probed for another domain.
        (p,) = await prober.probe(
            "mx.provider.example.jp", ["127.0.0.1"], domain="other.example.net"
        )
        assert p.status == "no-starttls"
    assert server.connections == 1


@pytest.mark.parametrize(
    "ip,reason",
    [
        ("8.8.8.8", None),
        ("2001:4860:4860::8888", None),
        ("::ffff:8.8.8.8", None),
        ("127.0.0.1", "non-global address"),
        ("::1", "non-global address"),
        ("::ffff:127.0.0.1", "non-global address"),
        ("::ffff:10.1.2.3", "non-global address"),
        ("10.0.0.1", "non-global address"),
        ("172.16.5.4", "non-global address"),
        ("192.168.1.1", "non-global address"),
        ("169.254.169.254", "non-global address"),
        ("100.64.0.1", "non-global address"),  # shared address space (CGNAT)
        ("192.0.2.1", "non-global address"),  # documentation
        ("0.0.0.0", "non-global address"),
        ("224.0.0.1", "non-global address"),
        ("fe80::1", "non-global address"),
        ("fc00::1", "non-global address"),
        ("not an address", "invalid address"),
    ],
)
def test_address_allowed(ip, reason):
    assert address_allowed(ip, ProbeSettings()) == reason


def test_address_allowed_private_and_exclusions():
    s = ProbeSettings(allow_private=True, exclude_networks=("192.0.2.0/24", "2001:db8::/32"))
    assert address_allowed("127.0.0.1", s) is None
    assert address_allowed("192.0.2.7", s) == "excluded network"
    assert address_allowed("::ffff:192.0.2.7", s) == "excluded network"
    assert address_allowed("2001:db8::25", s) == "excluded network"
    s = ProbeSettings(exclude_networks=("8.8.8.0/24",))
    assert address_allowed("8.8.8.8", s) == "excluded network"


def test_load_exclusions(tmp_path):
    path = tmp_path / "optout.txt"
    path.write_text(
        "# opt-outs\n\nExample.JP.\n*.optout.co.jp  # whole subtree\n"
        "192.0.2.0/24\n2001:db8::/32\n198.51.100.7\n例え.jp\n",
        encoding="utf-8",
    )
    domains, networks = load_exclusions(path)
    assert domains == {"example.jp", "optout.co.jp", "xn--r8jz45g.jp"}
    assert [str(n) for n in networks] == ["192.0.2.0/24", "2001:db8::/32", "198.51.100.7/32"]
    s = ProbeSettings(exclude_domains=domains, exclude_networks=networks)
    assert domain_excluded("mta-sts.example.jp", s) and domain_excluded("example.jp", s)
    assert not domain_excluded("example.co.jp", s) and not domain_excluded("xexample.jp", s)


def test_load_exclusions_rejects_bad_lines(tmp_path):
    path = tmp_path / "optout.txt"
    path.write_text("example.jp\nnot a name\n10.0.0.0/33\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2.*line 3"):
        load_exclusions(path)


# --- verdicts (pure) ----------------------------------------------------------------------------


def _p(
    host="mx1.example.jp", address="192.0.2.1", status="ok", version="TLSv1.3", **kw
) -> SmtpProbe:
    base = dict(cert_valid=True, cert_name_match=True, cert_expired=False, starttls_advertised=True)
    if status != "ok":
        base = dict(starttls_advertised=status == "tls-error")
        version = None
    base.update(kw)
    return SmtpProbe(host=host, address=address, status=status, tls_version=version, **base)


def test_starttls_columns_all_good_several_versions():
    probes = [_p(), _p(host="mx2.example.jp", version="TLSv1.2")]
    assert starttls_columns(["mx1.example.jp", "mx2.example.jp"], probes) == {
        "starttls": True,
        "starttls_cert_valid": True,
        "tls_versions": ["TLSv1.2", "TLSv1.3"],
    }


def test_starttls_columns_one_mx_without_starttls():
    probes = [_p(), _p(host="mx2.example.jp", status="no-starttls")]
    cols = starttls_columns(["mx1.example.jp", "mx2.example.jp"], probes)
    assert cols == {"starttls": False, "starttls_cert_valid": True, "tls_versions": ["TLSv1.3"]}


def test_starttls_columns_unreachable_addresses_do_not_count():
    probes = [
        _p(),
        _p(address="2001:db8::1", status="connect-error"),
        _p(address="192.0.2.2", status="timeout"),
        _p(address="192.0.2.3", status="skipped"),
        _p(address="192.0.2.4", status="smtp-error"),
    ]
    assert starttls_columns(["mx1.example.jp"], probes)["starttls"] is True


def test_starttls_an_mx_host_that_could_not_be_asked_is_unknown_not_yes():
    """"Every MX did STARTTLS" in three values: a host none of whose addresses spoke SMTP
    (unreachable, timed out, or no address found: no probe at all) leaves the domain unknown,
    never a yes; a host that answered without STARTTLS still makes it a no."""
    hosts = ["mx1.example.jp", "mx2.example.jp"]
    unreachable = [_p(), _p(host="mx2.example.jp", address="192.0.2.9", status="timeout")]
    assert starttls_columns(hosts, unreachable) == dict.fromkeys(STARTTLS_COLUMNS) | {
        "starttls_cert_valid": True
    }
    assert starttls_columns(hosts, [_p()])["starttls"] is None  # mx2: address lookup failed
    three = [*hosts, "mx3.example.jp"]
    refused = [_p(), _p(host="mx3.example.jp", status="no-starttls")]
    assert starttls_columns(three, refused)["starttls"] is False


def test_starttls_judges_the_mx_hosts_that_are_probed():
    """The probes ask the first MAX_MX_HOSTS exchanges (as DANE reads them); an eleventh that
    was never asked does not make the domain unknown."""
    hosts = [f"mx{i}.example.jp" for i in range(MAX_MX_HOSTS + 1)]
    probes = [_p(host=h) for h in hosts[:MAX_MX_HOSTS]]
    assert starttls_columns(hosts, probes)["starttls"] is True


@pytest.mark.parametrize(
    "kw",
    [
        dict(cert_valid=False),
        dict(cert_name_match=False),
        dict(cert_expired=True),
        dict(cert_valid=None),
        dict(cert_name_match=None),
    ],
)
def test_starttls_columns_any_bad_certificate(kw):
    probes = [_p(), _p(host="mx2.example.jp", **kw)]
    cols = starttls_columns(["mx1.example.jp", "mx2.example.jp"], probes)
    assert cols["starttls"] is True and cols["starttls_cert_valid"] is False


def test_starttls_columns_unparsed_expiry_trusts_the_verified_chain():
    # OpenSSL checked the dates when it verified the chain.
    probes = [_p(cert_expired=None)]
    assert starttls_columns(["mx1.example.jp"], probes)["starttls_cert_valid"] is True


def test_starttls_columns_not_applicable():
    assert starttls_columns(None, [_p()]) == dict.fromkeys(STARTTLS_COLUMNS)
    assert starttls_columns([], [_p()]) == dict.fromkeys(STARTTLS_COLUMNS)
    assert starttls_columns(["mx1.example.jp"], []) == dict.fromkeys(STARTTLS_COLUMNS)
    # probes of other hosts are not this domain's
    assert starttls_columns(["mx9.example.jp"], [_p()]) == dict.fromkeys(STARTTLS_COLUMNS)
    # host names compared normalized
    assert starttls_columns(["MX1.example.jp."], [_p()])["starttls"] is True


# --- rows of the probes table -------------------------------------------------------------------


def test_rows_round_trip_through_arrow_and_pandas():
    now = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC)
    smtp = SmtpProbe(
        host="mx1.example.jp",
        address="192.0.2.1",
        status="ok",
        banner="mx1 ESMTP",
        ehlo_extensions=["SIZE 100", "STARTTLS"],
        starttls_advertised=True,
        tls_version="TLSv1.3",
        tls_cipher="TLS_AES_128_GCM_SHA256",
        cert_valid=False,
        cert_name_match=True,
        cert_not_after=now + dt.timedelta(days=90),
        cert_expired=False,
        cert_names=["mx1.example.jp"],
        cert_error="self-signed certificate",
        probed_at=now,
        duration_ms=12.5,
    )
    policy = PolicyFetch(
        domain="example.jp",
        url="https://mta-sts.example.jp/.well-known/mta-sts.txt",
        status="http-error",
        address="192.0.2.9",
        http_status=404,
        content_type="text/html",
        detail="HTTP 404",
        fetched_at=now,
        duration_ms=3.0,
    )
    bare = SmtpProbe(host="mx2.example.jp", address="192.0.2.2", status="skipped", probed_at=now)
    rows = [to_row(smtp), to_row(policy), to_row(bare)]
    assert all(list(r) == list(PROBES_COLUMNS) for r in rows)
    assert rows[1]["kind"] == "mta-sts-policy" and rows[1]["host"] == "mta-sts.example.jp"
    assert rows[0]["kind"] == "smtp" and rows[0]["domain"] is None
    table = pa.Table.from_pylist(rows, schema=PROBES_SCHEMA)
    assert [from_row(r) for r in table.to_pylist()] == [smtp, policy, bare]
    frame = table.to_pandas()
    back = [from_row(r) for r in frame.to_dict("records")]
    assert back == [smtp, policy, bare]


def test_rows_keep_the_certificate_facts_through_arrow_and_pandas():
    now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    full = SmtpProbe(
        host="mx1.example.jp",
        address="192.0.2.1",
        status="ok",
        cert_valid=True,
        cert_name_match=True,
        cert_not_before=now - dt.timedelta(days=30),
        cert_not_after=now + dt.timedelta(days=60),
        cert_expired=False,
        cert_names=["mx1.example.jp"],
        cert_issuer="CN=R11,O=Let's Encrypt,C=US",
        cert_key_type="rsa",
        cert_key_bits=2048,
        cert_signature_algorithm="rsa-with-sha256",
        probed_at=now,
    )
    bare = SmtpProbe(host="mx2.example.jp", address="192.0.2.2", status="skipped", probed_at=now)
    table = pa.Table.from_pylist([to_row(full), to_row(bare)], schema=PROBES_SCHEMA)
    back = [from_row(r) for r in table.to_pandas().to_dict("records")]
    assert back == [full, bare]
    assert type(back[0].cert_key_bits) is int  # pandas gave 2048.0 beside a null


def test_rows_of_snapshots_made_before_the_certificate_columns_still_read():
    """A probes part written before cert_not_before ... cert_signature_algorithm existed."""
    now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    probe = SmtpProbe(host="mx1.example.jp", address="192.0.2.1", status="ok", probed_at=now)
    new = ("cert_not_before", "cert_issuer", "cert_key_type", "cert_key_bits")
    old_row = {k: v for k, v in to_row(probe).items() if k not in (*new, "cert_signature_algorithm")}
    assert from_row(old_row) == probe


def test_to_row_rejects_other_objects():
    with pytest.raises(TypeError):
        to_row({"kind": "smtp"})
    with pytest.raises(ValueError):
        from_row({"kind": "dane"})


# --- certificate reading ------------------------------------------------------------------------


def test_leaf_facts_reads_names_and_expiry():
    ca = trustme.CA()
    after = dt.datetime(2031, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    cert = ca.issue_cert("mx1.example.jp", "*.mx.example.jp", "192.0.2.1", not_after=after)
    der = ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())
    leaf = read_leaf(der)
    assert leaf.dns_names == ["mx1.example.jp", "*.mx.example.jp"]  # the IP SAN is not a DNS name
    assert leaf.not_after == after
    short = read_leaf(der[:100])
    assert (short.dns_names, short.not_after) == ([], None)


@given(st.binary(max_size=300))
def test_leaf_facts_never_raises(data):
    leaf = read_leaf(data)
    assert isinstance(leaf.dns_names, list)
