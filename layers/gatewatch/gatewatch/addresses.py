"""Which IP addresses a probe may be sent to by someone else (a redirect), and which hosts a target may never name.

The prober runs where credentials live: on Lambda the runtime API and the credentials of the function are one
loopback or link-local request away, and on EC2 the instance metadata service is at 169.254.169.254 and
fd00:ec2::254. A configured URL is the operator's choice and may point anywhere (the lab probes loopback on
purpose); a redirect is the probed server's choice, so it may only lead to a public address unless the target
opts in with ``allow_private_redirects``. Cloud metadata addresses are refused even then.
Stdlib only.
"""

from __future__ import annotations

import functools
import ipaddress
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Instance metadata / credentials endpoints: EC2 (IPv4, IPv6), ECS task credentials, Lambda-style link-local.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "169.254.170.2", "169.254.169.123")
)
METADATA_NAMES = frozenset({
    "metadata", "metadata.google.internal", "instance-data", "instance-data.ec2.internal", "metadata.azure.internal",
})  # fmt: skip
EC2_IPV6_METADATA_NET = ipaddress.ip_network("fd00:ec2::/64")


@functools.lru_cache(maxsize=4096)  # a fleet names few addresses; parsing one costs ~20 us a probe
def parse_ip(host: str) -> IPAddress | None:
    """The address a host string names literally, including the legacy IPv4 forms getaddrinfo accepts
    (``2852039166``, ``0xa9.0xfe.0xa9.0xfe``, ``169.254.43518``); None for a name."""
    text = host.strip("[]")
    try:
        addr = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        try:
            addr = ipaddress.ip_address(socket.inet_aton(text))
        except OSError:
            return None
    return unmap(addr)


def unmap(addr: IPAddress) -> IPAddress:
    """An IPv4-mapped or -translated IPv6 address is judged as the IPv4 address it carries."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return addr.ipv4_mapped
        if addr in ipaddress.ip_network("64:ff9b::/96"):
            return ipaddress.ip_address(addr.packed[-4:])
    return addr


def is_metadata(addr: IPAddress) -> bool:
    addr = unmap(addr)
    return addr in METADATA_ADDRESSES or (isinstance(addr, ipaddress.IPv6Address) and addr in EC2_IPV6_METADATA_NET)


def metadata_host(host: str) -> bool:
    """True when a URL's host names a cloud metadata endpoint (by address or by its well-known name)."""
    name = host.strip("[]").rstrip(".").lower()
    if name in METADATA_NAMES:
        return True
    addr = parse_ip(name)
    return addr is not None and is_metadata(addr)


def non_public(addr: IPAddress) -> str | None:
    """Why a redirect may not reach this address without the target's opt-in, or None for a public address."""
    addr = unmap(addr)
    if is_metadata(addr):
        return "a cloud metadata address"
    if addr.is_unspecified:
        return "an unspecified address"
    if addr.is_loopback:
        return "a loopback address"
    if addr.is_link_local:
        return "a link-local address"
    if addr.is_multicast:
        return "a multicast address"
    if addr.is_private or addr.is_reserved or not addr.is_global:
        return "a private address"
    return None
