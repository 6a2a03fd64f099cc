"""Certificate facts from the DER the server sent: who it names, who signed it, when it expires.

Read with ``cryptography`` rather than ``getpeercert()``, which returns nothing useful when verification is off,
so an expired or untrusted certificate still shows its dates and names.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import ssl
from datetime import UTC, datetime

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from gatewatch.clock import iso
from gatewatch.probe.result import TlsInfo


def client_context(verify: bool, ca_file: str | None) -> ssl.SSLContext:
    """Cached: loading the CA store costs tens of milliseconds, and a context is safe to share between threads."""
    try:
        stamp = os.stat(ca_file).st_mtime_ns if ca_file else 0
    except OSError:
        stamp = -1
    return _context(verify, ca_file, stamp)


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


def describe(der: bytes, host: str, now: datetime, *, verified: bool, verify_error: str | None,
             version: str | None, cipher: str | None, checked: bool = True) -> TlsInfo:
    try:
        cert = x509.load_der_x509_certificate(der)
        cert.not_valid_after_utc  # noqa: B018 - fail here, not half-way through
    except Exception as exc:  # noqa: BLE001 - OpenSSL accepted what cryptography cannot parse: say so, keep going
        return TlsInfo(version=version, cipher=cipher, subject=f"<unparseable certificate: {exc}>"[:200], issuer="",
                       sans=[], not_before="", not_after="", days_to_expiry=0.0, self_signed=False,
                       verified=verified, verify_error=verify_error, hostname_match=verified, checked=checked)
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    sans = subject_alt_names(cert)
    return TlsInfo(
        version=version,
        cipher=cipher,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        sans=sans,
        not_before=iso(not_before),
        not_after=iso(not_after),
        days_to_expiry=round((not_after - now.astimezone(UTC)).total_seconds() / 86400, 3),
        self_signed=is_self_signed(cert),
        verified=verified,
        verify_error=verify_error,
        hostname_match=hostname_matches(host, sans, cert),
        checked=checked,
    )


def subject_alt_names(cert: x509.Certificate) -> list[str]:
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


def hostname_matches(host: str, sans: list[str], cert: x509.Certificate) -> bool:
    """RFC 6125 in short: SANs win; a wildcard covers exactly one left-most label; IPs match IP SANs only."""
    host = host.rstrip(".").lower()
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None:
        return any(_same_ip(ip, s) for s in sans)
    names = [s.lower() for s in sans if not _is_ip(s)]
    if not sans:  # legacy: the common name, only when there are no SANs at all
        names = [a.value.lower() for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
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
