"""The facts of a server's leaf certificate that the probes table records."""

from __future__ import annotations

from datetime import UTC, datetime

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
