"""MTA-STS policy (RFC 8461 3.2, 3.3, 4.1): the parser, MX matching, the verdict columns, and the
HTTPS fetch against a real TLS server on loopback with certificates from a private CA."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

from mailauth_survey.policies import mta_sts
from mailauth_survey.policies.mta_sts import (
    MAX_AGE_LIMIT,
    mx_matches,
    parse_policy,
    policy_columns,
)
from mailauth_survey.probes.https import fetch_policy
from mailauth_survey.probes.results import PolicyFetch
from mailauth_survey.probes.settings import ProbeSettings

RFC_EXAMPLE = (
    "version: STSv1\r\n"
    "mode: enforce\r\n"
    "mx: mail.example.com\r\n"
    "mx: *.example.net\r\n"
    "mx: backupmx.example.com\r\n"
    "max_age: 604800\r\n"
)


# --- parse_policy -----------------------------------------------------------------------------


def test_rfc8461_3_2_example_policy():
    rec = parse_policy(RFC_EXAMPLE)
    assert rec.valid, rec.errors
    assert rec.version == "STSv1"
    assert rec.mode == "enforce"
    assert rec.max_age == 604800
    assert rec.mx == ["mail.example.com", "*.example.net", "backupmx.example.com"]
    assert rec.warnings == []


def test_rfc8461_3_2_lf_line_endings_and_final_term_optional():
    rec = parse_policy(RFC_EXAMPLE.replace("\r\n", "\n").rstrip("\n"))
    assert rec.valid and rec.mx[1] == "*.example.net"


def test_rfc8461_3_2_white_space_after_delimiter_and_line_end():
    rec = parse_policy("version:STSv1\nmode:\t testing  \nmx:  mx.example.jp\t\nmax_age: 86400 \n")
    assert rec.valid, rec.errors
    assert (rec.mode, rec.mx, rec.max_age) == ("testing", ["mx.example.jp"], 86400)


@pytest.mark.parametrize("missing", ["version", "mode", "max_age"])
def test_rfc8461_3_2_required_fields(missing):
    lines = [ln for ln in RFC_EXAMPLE.split("\r\n") if ln and not ln.startswith(missing + ":")]
    rec = parse_policy("\n".join(lines))
    assert not rec.valid
    assert any(f"the {missing} field is required" in e for e in rec.errors)
    assert all(e.startswith("RFC 8461 3.2") for e in rec.errors)


def test_rfc8461_3_2_mx_required_unless_mode_none():
    rec = parse_policy("version: STSv1\nmode: enforce\nmax_age: 86400\n")
    assert not rec.valid and any("mx patterns are required" in e for e in rec.errors)
    assert not parse_policy("version: STSv1\nmode: testing\nmax_age: 86400\n").valid
    rec = parse_policy("version: STSv1\nmode: none\nmax_age: 86400\n")
    assert rec.valid and rec.mode == "none" and rec.mx == []


@pytest.mark.parametrize("value", ["STSv2", "stsv1", "STSv1;", ""])
def test_rfc8461_3_2_version_must_be_stsv1(value):
    rec = parse_policy(f"version: {value}\nmode: none\nmax_age: 1\n")
    assert not rec.valid


@pytest.mark.parametrize("value", ["Enforce", "reject", "", "enforce testing"])
def test_rfc8461_3_2_mode_values(value):
    rec = parse_policy(f"version: STSv1\nmode: {value}\nmx: mx.example.jp\nmax_age: 1\n")
    assert not rec.valid and rec.mode is None


@pytest.mark.parametrize(
    "value,ok",
    [
        ("0", True),
        ("31557600", True),
        ("0000086400", True),  # 1*10 DIGIT
        ("31557601", False),
        ("00000000001", False),  # 11 digits
        ("-1", False),
        ("1e5", False),
        ("", False),
        ("86400s", False),
    ],
)
def test_rfc8461_3_2_max_age_range(value, ok):
    rec = parse_policy(f"version: STSv1\nmode: none\nmax_age: {value}\n")
    assert rec.valid is ok
    if ok:
        assert 0 <= rec.max_age <= MAX_AGE_LIMIT


def test_rfc8461_3_2_unknown_keys_ignored():
    rec = parse_policy(RFC_EXAMPLE + "report_to: ops@example.jp\r\nx-note: anything at all\r\n")
    assert rec.valid
    assert rec.extensions == {"report_to": "ops@example.jp", "x-note": "anything at all"}
    assert len(rec.warnings) == 2


def test_rfc8461_3_2_keys_are_case_sensitive():
    rec = parse_policy("version: STSv1\nMode: enforce\nmx: mx.example.jp\nmax_age: 86400\n")
    assert not rec.valid
    assert any("the mode field is required" in e for e in rec.errors)
    assert any("case-sensitive" in w for w in rec.warnings)


def test_rfc8461_3_2_repeated_field_first_one_used():
    rec = parse_policy(
        "version: STSv1\nmode: testing\nmode: enforce\nmx: a.example.jp\n"
        "mx: b.example.jp\nmax_age: 100\nmax_age: 200\n"
    )
    assert rec.valid
    assert (rec.mode, rec.max_age, rec.mx) == ("testing", 100, ["a.example.jp", "b.example.jp"])
    assert sum("repeated" in w for w in rec.warnings) == 2


def test_rfc8461_3_2_field_order_free_version_not_first_warns():
    rec = parse_policy("mode: enforce\nmx: mx.example.jp\nmax_age: 86400\nversion: STSv1\n")
    assert rec.valid
    assert any("version is not the first field" in w for w in rec.warnings)


@pytest.mark.parametrize(
    "pattern",
    ["*.*.example.jp", "mx.*.example.jp", "*mx.example.jp", "mx example.jp", "-mx.example.jp", "*"],
)
def test_rfc8461_3_2_mx_pattern_syntax(pattern):
    rec = parse_policy(f"version: STSv1\nmode: enforce\nmx: {pattern}\nmax_age: 1\n")
    assert not rec.valid


def test_rfc8461_3_2_mx_pattern_lower_cased_trailing_dot_warned():
    rec = parse_policy("version: STSv1\nmode: enforce\nmx: MX1.Example.JP.\nmax_age: 1\n")
    assert rec.valid and rec.mx == ["mx1.example.jp"]
    assert any("trailing dot" in w for w in rec.warnings)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "<html><body>Not Found</body></html>",
        "version STSv1\nmode enforce\n",
        "v=STSv1; id=123",
        " version: STSv1\nmode: none\nmax_age: 1\n",
    ],
)
def test_rfc8461_3_2_malformed_bodies_are_invalid(text):
    rec = parse_policy(text)
    assert not rec.valid and rec.errors


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=400))
def test_parse_policy_never_raises(text):
    rec = parse_policy(text)
    assert isinstance(rec.errors, list)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["version", "mode", "max_age", "mx", "Mode", "x", "", "*"]),
            st.sampled_from([":", ": ", "", "=", ":\t"]),
            st.text(max_size=30),
        ),
        max_size=12,
    ),
    st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_parse_policy_never_raises_on_near_policies(lines, eol):
    parse_policy(eol.join(k + d + v for k, d, v in lines))


# --- mx_matches (RFC 8461 4.1) ----------------------------------------------------------------


@pytest.mark.parametrize(
    "host,pattern,expected",
    [
        ("mail.example.com", "*.example.com", True),  # the RFC's example
        ("example.com", "*.example.com", False),
        ("foo.bar.example.com", "*.example.com", False),
        ("mx1.example.jp", "mx1.example.jp", True),
        ("MX1.Example.JP.", "mx1.example.jp", True),
        ("mx1.example.jp", "MX1.EXAMPLE.JP.", True),
        ("mx1.example.jp", "*.EXAMPLE.jp.", True),
        ("mx1.example.jp", "mx2.example.jp", False),
        ("mx1.example.jp", "*", False),
        ("mx1.example.jp", "*.", False),
        ("mx1.example.jp", "mx*.example.jp", False),
        ("mx1.example.jp", "*.*.jp", False),
        ("*.example.jp", "*.example.jp", False),
        ("xexample.jp", "*.example.jp", False),
        ("", "*.example.jp", False),
    ],
)
def test_rfc8461_4_1_mx_matching(host, pattern, expected):
    assert mx_matches(host, pattern) is expected


@given(st.text(max_size=40), st.text(max_size=40))
def test_mx_matches_never_raises(host, pattern):
    assert mx_matches(host, pattern) in (True, False)


# --- policy_columns (pure) --------------------------------------------------------------------


def _fetch(status="ok", body=RFC_EXAMPLE, ctype="text/plain; charset=utf-8", http=200):
    return PolicyFetch(
        domain="example.com",
        url="https://mta-sts.example.com/.well-known/mta-sts.txt",
        status=status,
        http_status=http,
        content_type=ctype,
        body=body if status == "ok" else None,
    )


def test_policy_columns_valid_policy_mx_match():
    cols = policy_columns("example.com", "valid", _fetch(), ["mail.example.com", "mx9.example.net"])
    assert cols == {
        "mta_sts_policy_status": "valid",
        "mta_sts_mode": "enforce",
        "mta_sts_max_age": 604800,
        "mta_sts_mx_match": True,
    }
    assert set(cols) == set(mta_sts.POLICY_COLUMNS)


def test_policy_columns_mx_outside_patterns():
    cols = policy_columns("example.com", "valid", _fetch(), ["mail.example.com", "a.b.example.net"])
    assert cols["mta_sts_mx_match"] is False


@pytest.mark.parametrize("mx_hosts", [None, []])
def test_policy_columns_mx_match_null_without_mx(mx_hosts):
    assert policy_columns("example.com", "valid", _fetch(), mx_hosts)["mta_sts_mx_match"] is None


def test_policy_columns_mode_none_has_no_mx_verdict():
    body = "version: STSv1\nmode: none\nmax_age: 86400\n"
    cols = policy_columns("example.com", "valid", _fetch(body=body), ["mx.example.com"])
    assert cols["mta_sts_policy_status"] == "valid"
    assert cols["mta_sts_mode"] == "none"
    assert cols["mta_sts_mx_match"] is None


def test_policy_columns_invalid_policy():
    cols = policy_columns("example.com", "valid", _fetch(body="<html>hi</html>"), ["mx.example"])
    assert cols == {
        "mta_sts_policy_status": "invalid",
        "mta_sts_mode": None,
        "mta_sts_max_age": None,
        "mta_sts_mx_match": None,
    }


@pytest.mark.parametrize(
    "txt,expected", [("none", "none"), ("invalid", "none"), ("temperror", None), (None, None)]
)
def test_policy_columns_without_valid_txt_record(txt, expected):
    # RFC 8461 3.1: without one valid STS TXT record senders look for no policy; a failed TXT
    # lookup is unknown, never "none".
    assert policy_columns("example.com", txt, _fetch(), ["x"])["mta_sts_policy_status"] == expected


def test_policy_columns_valid_txt_but_not_fetched_is_unknown():
    assert policy_columns("example.com", "valid", None, ["x"])["mta_sts_policy_status"] is None


@pytest.mark.parametrize(
    "fetch_status,expected",
    [
        ("redirect", "redirect"),
        ("http-error", "http-error"),
        ("too-large", "too-large"),
        ("tls-error", "tls-error"),
        ("timeout", "timeout"),
        ("connect-error", "error"),
        ("dns-error", "error"),
        ("skipped", "skipped"),
        ("something-new", "error"),
    ],
)
def test_policy_columns_fetch_failures(fetch_status, expected):
    cols = policy_columns("example.com", "valid", _fetch(status=fetch_status), ["x"])
    assert cols["mta_sts_policy_status"] == expected
    assert expected in mta_sts.POLICY_STATUSES
    assert cols["mta_sts_mode"] is None and cols["mta_sts_mx_match"] is None


def test_rfc8461_3_3_media_type_other_than_text_plain_is_a_warning():
    status, rec = mta_sts.policy_status("valid", _fetch(ctype="text/html"))
    assert status == "valid"
    assert any("RFC 8461 3.3" in w for w in rec.warnings)


def test_txt_record_analysis_unchanged():
    # The TXT half keeps its behaviour (the policy half is only appended).
    assert mta_sts.parse_record("v=STSv1; id=20240101").valid
    assert mta_sts.COLUMNS == ("mta_sts_status", "mta_sts_id")


# --- fetch_policy against a real HTTPS server on loopback -------------------------------------

GOOD = "version: STSv1\nmode: enforce\nmx: mx1.example.jp\nmx: *.mx.example.jp\nmax_age: 86400\n"


def _response(status: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return f"HTTP/1.1 {status}\r\n{head}\r\n".encode() + body


def _plain(body: bytes, ctype: str = "text/plain") -> bytes:
    return _response("200 OK", {"Content-Type": ctype, "Content-Length": str(len(body))}, body)


def _chunked(body: bytes, size: int = 1000) -> bytes:
    chunks = b"".join(
        f"{len(body[i : i + size]):x}\r\n".encode() + body[i : i + size] + b"\r\n"
        for i in range(0, len(body), size)
    )
    return _response(
        "200 OK",
        {"Content-Type": "text/plain", "Transfer-Encoding": "chunked"},
        chunks + b"0\r\n\r\n",
    )


def _to_close(body: bytes) -> bytes:
    return _response("200 OK", {"Content-Type": "text/plain", "Connection": "close"}, body)


BIG = b"version: STSv1\n" + b"# padding\n" * 7000  # > 64 KiB

ROUTES: dict[str, bytes | None] = {
    "good": _plain(GOOD.encode()),
    "crlf": _plain(GOOD.replace("\n", "\r\n").encode()),
    "chunked": _chunked(GOOD.encode(), size=7),
    "toclose": _to_close(GOOD.encode()),
    "redirect": _response(
        "301 Moved Permanently",
        {
            "Location": "https://mta-sts.target.example.jp/.well-known/mta-sts.txt",
            "Content-Length": "0",
        },
    ),
    "target": _plain(GOOD.encode()),
    "large": _plain(BIG),
    "large-chunked": _chunked(BIG, size=4096),
    "large-toclose": _to_close(BIG),
    "exact": _plain(b"x" * 65536),
    "malformed": _plain(b"<html><body>Welcome to nginx!</body></html>", "text/html"),
    "notfound": _response("404 Not Found", {"Content-Length": "9"}, b"not found"),
    "garbage": b"SSH-2.0-OpenSSH_9.6\r\n",
    "truncated": _response("200 OK", {"Content-Length": "500"}, b"version: STSv1\n"),
    "slow": None,  # never answers
}


@dataclass
class HttpsServer:
    port: int
    cafile: str
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def hits(self, label: str) -> int:
        return sum(1 for host, _, _ in self.requests if host == f"mta-sts.{label}.example.jp")


@contextlib.asynccontextmanager
async def https_server(
    ca: trustme.CA, cafile: str, names: list[str], host: str = "127.0.0.1"
) -> AsyncIterator[HttpsServer]:
    cert = ca.issue_cert(*names)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    tasks: set[asyncio.Task] = set()
    state = HttpsServer(0, cafile)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.add(asyncio.current_task())
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            lines = head.split("\r\n")
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (ln.partition(":") for ln in lines[1:] if ":" in ln)
            }
            vhost = headers.get("host", "").rsplit(":", 1)[0]
            state.requests.append((vhost, lines[0], headers))
            label = vhost.removeprefix("mta-sts.").removesuffix(".example.jp")
            answer = ROUTES.get(label, _response("404 Not Found", {"Content-Length": "0"}))
            if answer is None:
                await asyncio.sleep(30)
                return
            writer.write(answer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host, 0, ssl=ctx)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        for t in list(tasks):
            t.cancel()
        await asyncio.sleep(0)


@pytest.fixture
def ca(tmp_path: Path) -> tuple[trustme.CA, str]:
    authority = trustme.CA()
    cafile = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(cafile))
    return authority, str(cafile)


@pytest.fixture
async def web(ca) -> AsyncIterator[HttpsServer]:
    authority, cafile = ca
    names = [f"mta-sts.{label}.example.jp" for label in ROUTES]
    async with https_server(authority, cafile, names) as server:
        yield server


def _settings(server: HttpsServer, **kw) -> ProbeSettings:
    base = dict(
        allow_private=True,
        cafile=server.cafile,
        https_port=server.port,
        timeout=3,
        info_url="https://survey.example.jp/about",
    )
    base.update(kw)
    return ProbeSettings(**base)


@pytest.mark.parametrize("label", ["good", "crlf", "chunked", "toclose"])
async def test_fetch_good_policy(web, label):
    fetch = await fetch_policy(f"{label}.example.jp", ["127.0.0.1"], _settings(web))
    assert fetch.status == "ok", fetch.detail
    assert fetch.http_status == 200
    assert fetch.content_type == "text/plain"
    assert parse_policy(fetch.body).valid
    assert fetch.address == "127.0.0.1"
    assert fetch.url == f"https://mta-sts.{label}.example.jp:{web.port}/.well-known/mta-sts.txt"
    assert fetch.duration_ms is not None and fetch.fetched_at.tzinfo is not None
    cols = policy_columns(
        f"{label}.example.jp", "valid", fetch, ["mx1.example.jp", "a.mx.example.jp"]
    )
    assert cols == {
        "mta_sts_policy_status": "valid",
        "mta_sts_mode": "enforce",
        "mta_sts_max_age": 86400,
        "mta_sts_mx_match": True,
    }


async def test_fetch_sends_host_user_agent_and_get(web):
    await fetch_policy("good.example.jp", ["127.0.0.1"], _settings(web))
    host, request_line, headers = web.requests[-1]
    assert request_line == "GET /.well-known/mta-sts.txt HTTP/1.1"
    assert host == "mta-sts.good.example.jp"
    assert headers["host"] == f"mta-sts.good.example.jp:{web.port}"
    assert headers["user-agent"].startswith("mailauth-survey/")
    assert headers["user-agent"].endswith("(+https://survey.example.jp/about)")


async def test_rfc8461_3_3_redirect_not_followed(web):
    fetch = await fetch_policy("redirect.example.jp", ["127.0.0.1"], _settings(web))
    assert fetch.status == "redirect"
    assert fetch.http_status == 301
    assert "mta-sts.target.example.jp" in fetch.detail
    assert fetch.body is None
    assert web.hits("redirect") == 1
    assert web.hits("target") == 0  # never followed
    cols = policy_columns("redirect.example.jp", "valid", fetch, ["mx1.example.jp"])
    assert cols["mta_sts_policy_status"] == "redirect"


@pytest.mark.parametrize("label", ["large", "large-chunked", "large-toclose"])
async def test_rfc8461_3_3_oversized_policy(web, label):
    fetch = await fetch_policy(f"{label}.example.jp", ["127.0.0.1"], _settings(web))
    assert fetch.status == "too-large", fetch.detail
    assert fetch.body is None


async def test_policy_of_exactly_64_kib_is_read(web):
    fetch = await fetch_policy("exact.example.jp", ["127.0.0.1"], _settings(web))
    assert fetch.status == "ok" and len(fetch.body) == 65536


async def test_fetch_malformed_policy_is_invalid(web):
    fetch = await fetch_policy("malformed.example.jp", ["127.0.0.1"], _settings(web))
    assert fetch.status == "ok" and fetch.content_type == "text/html"
    cols = policy_columns("malformed.example.jp", "valid", fetch, ["mx1.example.jp"])
    assert cols["mta_sts_policy_status"] == "invalid"


async def test_fetch_404(web):
    fetch = await fetch_policy("notfound.example.jp", ["127.0.0.1"], _settings(web))
    assert (fetch.status, fetch.http_status, fetch.body) == ("http-error", 404, None)


@pytest.mark.parametrize("label", ["garbage", "truncated"])
async def test_fetch_broken_http(web, label):
    fetch = await fetch_policy(f"{label}.example.jp", ["127.0.0.1"], _settings(web))
    assert fetch.status == "http-error", fetch
    assert fetch.body is None


async def test_fetch_slow_server_times_out(web):
    fetch = await fetch_policy("slow.example.jp", ["127.0.0.1"], _settings(web, timeout=0.5))
    assert fetch.status == "timeout"
    assert fetch.duration_ms < 3000


async def test_fetch_wrong_name_certificate_is_tls_error(ca):
    authority, cafile = ca
    async with https_server(authority, cafile, ["www.example.jp"]) as server:
        fetch = await fetch_policy("good.example.jp", ["127.0.0.1"], _settings(server))
    assert fetch.status == "tls-error"
    assert "mismatch" in fetch.detail.lower() or "match" in fetch.detail.lower()
    assert server.requests == []  # no request was sent over the bad connection
    assert policy_columns("good.example.jp", "valid", fetch, None)["mta_sts_policy_status"] == (
        "tls-error"
    )


async def test_fetch_untrusted_ca_is_tls_error(ca, tmp_path):
    authority, _ = ca
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    async with https_server(authority, str(other), ["mta-sts.good.example.jp"]) as server:
        fetch = await fetch_policy("good.example.jp", ["127.0.0.1"], _settings(server))
    assert fetch.status == "tls-error"
    assert "certificate" in fetch.detail


async def test_fetch_expired_certificate_is_tls_error(tmp_path):
    import datetime as dt

    authority = trustme.CA()
    cafile = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(cafile))
    now = dt.datetime.now(dt.UTC)
    cert = authority.issue_cert(
        "mta-sts.good.example.jp",
        not_before=now - dt.timedelta(days=30),
        not_after=now - dt.timedelta(days=1),
    )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)

    async def handle(reader, writer):
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        fetch = await fetch_policy(
            "good.example.jp",
            ["127.0.0.1"],
            ProbeSettings(allow_private=True, cafile=str(cafile), https_port=port, timeout=3),
        )
    finally:
        server.close()
    assert fetch.status == "tls-error" and "expired" in fetch.detail


async def test_fetch_connect_error_tries_next_address(web):
    # 127.0.0.2 has no server on that port: refused, then 127.0.0.1 answers.
    fetch = await fetch_policy("good.example.jp", ["127.0.0.2", "127.0.0.1"], _settings(web))
    assert fetch.status == "ok" and fetch.address == "127.0.0.1"
    fetch = await fetch_policy("good.example.jp", ["127.0.0.2"], _settings(web))
    assert fetch.status == "connect-error"
    assert (
        policy_columns("good.example.jp", "valid", fetch, None)["mta_sts_policy_status"] == "error"
    )


async def test_fetch_without_address_is_dns_error(web):
    fetch = await fetch_policy("good.example.jp", [], _settings(web))
    assert fetch.status == "dns-error"


async def test_fetch_non_global_address_skipped_without_connecting(web):
    fetch = await fetch_policy(
        "good.example.jp", ["127.0.0.1"], _settings(web, allow_private=False)
    )
    assert (fetch.status, fetch.detail) == ("skipped", "non-global address")
    assert web.requests == []


async def test_fetch_excluded_domain_and_network_skipped(web):
    s = _settings(web, exclude_domains=frozenset({"example.jp"}))
    fetch = await fetch_policy("good.example.jp", ["127.0.0.1"], s)
    assert (fetch.status, fetch.detail) == ("skipped", "excluded domain")
    s = _settings(web, exclude_networks=("127.0.0.0/8",))
    fetch = await fetch_policy("good.example.jp", ["127.0.0.1"], s)
    assert (fetch.status, fetch.detail) == ("skipped", "excluded network")
    assert web.requests == []


def test_probe_settings_user_agent_default():
    assert ProbeSettings().user_agent.startswith("mailauth-survey/")
    assert ProbeSettings(info_url="https://x.example/").user_agent.endswith("(+https://x.example/)")
    assert ProbeSettings(user_agent="custom/1").user_agent == "custom/1"
