"""Certificate facts from the DER the server sent: who it names, who signed it, when it expires.

Read with ``cryptography`` rather than ``getpeercert()``, which returns nothing useful when verification is off,
so an expired or untrusted certificate still shows its dates and names.

A fleet usually presents few distinct certificates, so what the DER says (names, dates, self-signature) is read
once per certificate (cached by SHA-256 fingerprint) and only what depends on the probe (host, clock, verification)
is computed per attempt. The engine calls ``describe`` after the TLS phase's timer stops. ``cryptography`` is
imported on the first certificate, not when the engine is imported (it costs about 100 ms at cold start).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import os
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gatewatch.clock import iso
from gatewatch.probe.result import TlsInfo

if TYPE_CHECKING:
    from cryptography import x509

CERT_CACHE_SIZE = 1024  # distinct certificates kept (a few hundred bytes each)
_iso = functools.lru_cache(maxsize=2 * CERT_CACHE_SIZE)(iso)  # a certificate's dates, rendered once


CA_RECHECK_S = 1.0  # how soon a changed CA file is seen
_stamps: dict[str, tuple[float, int]] = {}


def client_context(verify: bool, ca_file: str | None) -> ssl.SSLContext:
    """Cached: loading the CA store costs tens of milliseconds, and a context is safe to share between threads.

    A CA file's mtime is looked at once a second, not once a probe: ``os.stat`` drops the GIL, and at pool 50 each
    drop is a hand-off between threads.
    """
    return _context(verify, ca_file, _stamp(ca_file) if ca_file else 0)


def _stamp(ca_file: str) -> int:
    now = time.monotonic()
    seen = _stamps.get(ca_file)
    if seen is not None and now - seen[0] < CA_RECHECK_S:
        return seen[1]
    try:
        stamp = os.stat(ca_file).st_mtime_ns
    except OSError:
        stamp = -1
    if len(_stamps) > 256:
        _stamps.clear()
    _stamps[ca_file] = (now, stamp)
    return stamp


@functools.lru_cache(maxsize=32)
def _context(verify: bool, ca_file: str | None, _stamp: int) -> ssl.SSLContext:
    if verify:
        ctx = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    # Many servers close without close_notify; for a probe that is an end of stream, not an error.
    ctx.options |= getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    return ctx


@dataclass(frozen=True)
class CertFacts:
    """What one certificate says, independent of who probed it and when."""

    subject: str
    issuer: str
    sans: tuple[str, ...]
    common_names: tuple[str, ...]
    not_before: datetime | None
    not_after: datetime | None
    self_signed: bool
    error: str | None = None  # set when OpenSSL accepted what cryptography cannot parse


_cache: dict[bytes, CertFacts] = {}
_cache_lock = threading.Lock()


def cert_facts(der: bytes, decoded: dict[str, Any] | Callable[[], dict[str, Any]] | None = None) -> CertFacts:
    """Parsed once per certificate: the SHA-256 of the DER is the key (bounded, oldest dropped first).

    ``decoded`` is ``getpeercert()`` of a verified connection: OpenSSL has read the certificate already, so the
    facts come from it without loading ``cryptography`` (about 15 MiB and 100 ms); it is empty when verification
    was off, and then the DER is parsed.
    """
    key = hashlib.sha256(der).digest()
    facts = _cache.get(key)
    if facts is None:
        if callable(decoded):
            decoded = decoded()  # getpeercert() decodes the whole certificate: only on a cache miss
        facts = _from_decoded(decoded) if decoded else None
        facts = facts or _parse(der)
        with _cache_lock:
            if len(_cache) >= CERT_CACHE_SIZE:
                _cache.pop(next(iter(_cache)))
            _cache[key] = facts
    return facts


# OpenSSL's long attribute names in getpeercert(), as RFC 4514 writes them (what cryptography's rfc4514_string says)
_RDN_NAMES = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C",
              "stateOrProvinceName": "ST", "localityName": "L", "streetAddress": "STREET", "domainComponent": "DC",
              "userId": "UID"}


def _from_decoded(decoded: dict[str, Any]) -> CertFacts | None:
    """Facts from ``getpeercert()``; None when it holds something this cannot render as cryptography would."""
    try:
        subject, issuer = decoded["subject"], decoded["issuer"]
        names = [_rfc4514(subject), _rfc4514(issuer)]
        alt = decoded.get("subjectAltName", ())
        sans = [v for k, v in alt if k == "DNS"] + [str(ipaddress.ip_address(v.strip())) for k, v in alt
                                                    if k == "IP Address"]
        return CertFacts(
            subject=names[0], issuer=names[1], sans=tuple(sans),
            common_names=tuple(v for rdn in subject for k, v in rdn if k == "commonName"),
            not_before=cert_time(decoded["notBefore"]),
            not_after=cert_time(decoded["notAfter"]),
            self_signed=subject == issuer,  # a verified chain: a leaf naming itself as issuer is a trusted root
        )
    except (KeyError, ValueError, TypeError):
        return None


_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                                          "Dec"), 1)}


def cert_time(text: str) -> datetime:
    """``getpeercert()``'s ``"Nov 29 01:00:00 2026 GMT"`` as ``ssl.cert_time_to_seconds`` reads it, without its
    ``time.strptime`` (whose first use imports ``_strptime``: 3 ms and 0.6 MiB in every fresh process)."""
    month, day, clock, year, zone = text.split()
    hour, minute, second = clock.split(":")
    if zone != "GMT":
        raise ValueError(f"not a certificate time: {text!r}")
    return datetime(int(year), _MONTHS[month.title()], int(day), int(hour), int(minute), int(second), tzinfo=UTC)


@functools.lru_cache(maxsize=1024)
def a_label(name: str) -> str:
    """A host name as TLS carries it (IDNA A-labels), as ``SSLContext.wrap_socket`` encodes it.

    An ASCII name takes the ``idna`` codec's own ASCII path (label lengths checked, the name unchanged) without
    importing the codec (``unicodedata``, ``stringprep``: 1 ms and 0.6 MiB at its first use in a process).
    """
    if name.isascii():
        labels = name.split(".")
        if any(not 0 < len(label) < 64 for label in labels[:-1]) or len(labels[-1]) >= 64:
            raise UnicodeError("label empty or too long")
        return name
    return name.encode("idna").decode("ascii")


def _rfc4514(rdns: tuple) -> str:
    parts = []
    for rdn in reversed(rdns):
        atoms = []
        for name, value in rdn:
            if name not in _RDN_NAMES:
                raise ValueError(name)  # an OID cryptography prints dotted: let it render this one
            atoms.append(f"{_RDN_NAMES[name]}={_escape(value)}")
        parts.append("+".join(atoms))
    return ",".join(parts)


def _escape(value: str) -> str:
    out = "".join("\\" + c if c in ',+"\\<>;' else c for c in value)
    if out[:1] in ("#", " "):
        out = "\\" + out
    if out.endswith(" ") and not out.endswith("\\ "):
        out = out[:-1] + "\\ "
    return out


def _parse(der: bytes) -> CertFacts:
    from cryptography import x509

    try:
        cert = x509.load_der_x509_certificate(der)
        not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    except Exception as exc:  # noqa: BLE001 - OpenSSL accepted what cryptography cannot parse: say so, keep going
        return CertFacts(subject="", issuer="", sans=(), common_names=(), not_before=None, not_after=None,
                         self_signed=False, error=f"<unparseable certificate: {exc}>"[:200])
    return CertFacts(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        sans=tuple(subject_alt_names(cert)),
        common_names=tuple(a.value for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)),
        not_before=not_before,
        not_after=not_after,
        self_signed=is_self_signed(cert),
    )


def describe(der: bytes, host: str, now: datetime, *, verified: bool, verify_error: str | None,
             version: str | None, cipher: str | None, checked: bool = True,
             decoded: dict[str, Any] | Callable[[], dict[str, Any]] | None = None) -> TlsInfo:
    facts = cert_facts(der, decoded)
    if facts.error is not None or facts.not_after is None or facts.not_before is None:
        return TlsInfo(version=version, cipher=cipher, subject=facts.error or "<unparseable certificate>",
                       issuer="", sans=[], not_before="", not_after="", days_to_expiry=0.0, self_signed=False,
                       verified=verified, verify_error=verify_error, hostname_match=verified, checked=checked)
    return TlsInfo(
        version=version,
        cipher=cipher,
        subject=facts.subject,
        issuer=facts.issuer,
        sans=list(facts.sans),
        not_before=_iso(facts.not_before),
        not_after=_iso(facts.not_after),
        days_to_expiry=round((facts.not_after - now.astimezone(UTC)).total_seconds() / 86400, 3),
        self_signed=facts.self_signed,
        verified=verified,
        verify_error=verify_error,
        hostname_match=hostname_matches(host, facts.sans, facts.common_names),
        checked=checked,
    )


def subject_alt_names(cert: x509.Certificate) -> list[str]:
    from cryptography import x509
    from cryptography.x509.oid import ExtensionOID

    try:
        ext = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        return []
    names = [str(n) for n in ext.get_values_for_type(x509.DNSName)]
    names += [str(ip) for ip in ext.get_values_for_type(x509.IPAddress)]
    return names


def is_self_signed(cert: x509.Certificate) -> bool:
    if cert.subject != cert.issuer:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except Exception:  # noqa: BLE001 - any failure means "not signed by its own key"
        return False
    return True


@functools.lru_cache(maxsize=4096)  # the same host and certificate every round
def hostname_matches(host: str, sans: tuple[str, ...], common_names: tuple[str, ...]) -> bool:
    """RFC 6125 in short: SANs win; a wildcard covers exactly one left-most label; IPs match IP SANs only."""
    host = host.rstrip(".").lower()
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None:
        return any(_same_ip(ip, s) for s in sans)
    try:  # certificates name internationalised hosts in their A-label form, as the handshake's SNI does
        host = a_label(host)
    except UnicodeError:
        pass
    names = [s.lower() for s in sans if not _is_ip(s)]
    if not sans:  # legacy: the common name, only when there are no SANs at all
        names = [str(n).lower() for n in common_names]
    return any(_dns_match(host, n) for n in names)


def _dns_match(host: str, pattern: str) -> bool:
    pattern = pattern.rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return host == pattern


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _same_ip(ip, text: str) -> bool:
    try:
        return ipaddress.ip_address(text) == ip
    except ValueError:
        return False
