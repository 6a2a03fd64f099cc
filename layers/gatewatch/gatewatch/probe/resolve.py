"""Name resolution behind an injectable hook, with a bounded wait.

``getaddrinfo`` can block far longer than a probe's budget and cannot be interrupted, so it runs in a daemon
thread and the probe stops waiting when its deadline comes. Tests inject ``StaticResolver`` and never do real DNS.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import threading
from collections.abc import Callable, Mapping

from gatewatch.probe.deadline import Deadline, DeadlineExceeded

# Same call shape as socket.getaddrinfo(host, port, family, type, proto, flags).
Resolver = Callable[..., list]
MAX_ADDRESSES = 4


class DnsError(Exception):
    pass


class StaticResolver:
    """A getaddrinfo stand-in from a name -> IP (or list of IPs) mapping; unknown names fail like NXDOMAIN."""

    def __init__(self, mapping: Mapping[str, str | list[str]]):
        self.mapping = {k.lower(): ([v] if isinstance(v, str) else list(v)) for k, v in mapping.items()}
        self.calls: list[str] = []

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002 - getaddrinfo's names
        self.calls.append(host)
        ips = self.mapping.get(str(host).lower())
        if not ips:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [_addrinfo(ip, port) for ip in ips]


@functools.lru_cache(maxsize=4096)  # a tuple of immutables, asked for once a probe
def _addrinfo(ip: str, port: int) -> tuple:
    addr = ipaddress.ip_address(ip)
    if addr.version == 6:
        return (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, port))


@functools.lru_cache(maxsize=4096)
def literal_ip(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def resolve(host: str, port: int, deadline: Deadline, resolver: Resolver | None = None,
            resolve_to: str | None = None) -> list[tuple]:
    """Returns up to MAX_ADDRESSES addrinfo tuples for a TCP connection, or raises DnsError/DeadlineExceeded."""
    fixed = resolve_to or literal_ip(host)
    if fixed:
        return [_addrinfo(fixed, port)]
    lookup = resolver or socket.getaddrinfo
    box: dict = {}
    done = threading.Event()

    def run():
        try:
            box["value"] = lookup(host, port, 0, socket.SOCK_STREAM)
        except Exception as exc:  # noqa: BLE001 - any resolver failure is reported, never raised past the probe
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name="gatewatch-dns", daemon=True).start()
    if not done.wait(deadline.budget()):
        raise DeadlineExceeded
    if "error" in box:
        exc = box["error"]
        detail = exc.strerror if isinstance(exc, socket.gaierror) and exc.strerror else str(exc)
        raise DnsError(f"cannot resolve {host}: {detail}")
    infos = [i for i in box["value"] if i[0] in (socket.AF_INET, socket.AF_INET6)]
    if not infos:
        raise DnsError(f"cannot resolve {host}: no IPv4 or IPv6 address")
    seen, unique = set(), []
    for info in infos:
        if info[4][0] not in seen:
            seen.add(info[4][0])
            unique.append(info)
    return unique[:MAX_ADDRESSES]
