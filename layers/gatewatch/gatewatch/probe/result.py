"""The probe's result documents (docs/data-model.md: ProbeResult, TargetResult) as dataclasses.

A probe never raises on a bad server: whatever happened is recorded here, with the phase it happened in.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

# The fixed failure vocabulary: the diagnosis tree and the stores match on these strings.
REASONS = (
    "dns_error",
    "connect_refused",
    "connect_timeout",
    "tls_error",
    "timeout",
    "http_5xx_edge",
    "http_5xx_origin",
    "http_status",
    "assertion_failed",
    "body_too_large",
    "protocol_error",
)
PHASES = ("dns", "connect", "tls", "request", "ttfb", "transfer", "assert")
STATUSES = ("up", "degraded", "down")


@dataclass
class Timings:
    """Milliseconds per phase of the final hop; ``total`` spans every hop including redirects.

    ``request`` (sending the request) and ``starttransfer`` (start to first byte, like curl's
    time_starttransfer) are additions to the data model.
    """

    dns: float | None = None
    connect: float | None = None
    tls: float | None = None
    ttfb: float | None = None
    transfer: float | None = None
    total: float = 0.0
    request: float | None = None
    starttransfer: float | None = None


@dataclass
class Remote:
    ip: str | None = None
    family: str | None = None
    port: int | None = None


@dataclass
class TlsInfo:
    version: str | None
    cipher: str | None
    subject: str
    issuer: str
    sans: list[str]
    not_before: str
    not_after: str
    days_to_expiry: float
    self_signed: bool
    verified: bool
    verify_error: str | None
    hostname_match: bool
    checked: bool = True  # False when verification was switched off (verify_tls: false)


@dataclass
class HttpInfo:
    status: int
    reason: str
    version: str
    headers: dict[str, str]
    body_excerpt: str
    body_bytes: int
    body_truncated: bool
    json: Any = None


@dataclass
class CloudflareInfo:
    edge: bool = False
    ray: str | None = None
    colo: str | None = None
    code: int | None = None
    meaning: str | None = None


@dataclass
class Redirect:
    status: int
    url: str


@dataclass
class Assertion:
    name: str
    expected: Any
    actual: Any
    ok: bool


@dataclass
class ProbeResult:
    url: str
    method: str
    started_at: str
    status: str = "down"
    ok: bool = False
    degraded: bool = False
    reason: str | None = None
    phase: str | None = None
    error: str | None = None
    timings_ms: Timings = field(default_factory=Timings)
    remote: Remote = field(default_factory=Remote)
    tls: TlsInfo | None = None
    http: HttpInfo | None = None
    cloudflare: CloudflareInfo = field(default_factory=CloudflareInfo)
    redirects: list[Redirect] = field(default_factory=list)
    assertions: list[Assertion] = field(default_factory=list)

    def fail(self, reason: str, phase: str, error: str) -> ProbeResult:
        if reason not in REASONS or phase not in PHASES:
            raise ValueError(f"unknown reason/phase {reason!r}/{phase!r}")
        self.status, self.ok, self.degraded = "down", False, False
        self.reason, self.phase, self.error = reason, phase, error
        return self

    def to_dict(self) -> dict[str, Any]:
        return plain(self)


@dataclass
class TargetResult:
    """One probing round of one target after confirmation. ``health`` never decides ``status`` by itself."""

    target: str
    at: str
    status: str
    confirmed: bool
    transient: bool
    attempts: list[ProbeResult]
    probe: ProbeResult
    health: ProbeResult | None = None

    @property
    def ok(self) -> bool:
        return self.status != "down"

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "at": self.at,
            "status": self.status,
            "confirmed": self.confirmed,
            "transient": self.transient,
            "attempts": [a.to_dict() for a in self.attempts],
            "probe": self.probe.to_dict(),
            "health": self.health.to_dict() if self.health else None,
        }


_NOT_A_DATACLASS: tuple[str, ...] = ("<not a dataclass>",)  # compared by identity
_FIELDS: dict[type, tuple[str, ...]] = {}


def plain(value: Any) -> Any:
    """``dataclasses.asdict`` without its deep copy of every leaf: the same dicts, lists and tuples, built anew.

    ``asdict`` cost 56 us a result (this, 12 us), twice a target and round (the attempts and the final probe).
    ``tests/unit/test_probe_scale.py`` checks that both give equal documents.
    """
    cls = type(value)
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in fields(cls)) if is_dataclass(cls) else _NOT_A_DATACLASS
    if names is not _NOT_A_DATACLASS:
        return {name: plain(getattr(value, name)) for name in names}
    if cls is list:
        return [plain(v) for v in value]
    if cls is dict:
        return {k: plain(v) for k, v in value.items()}
    if cls is tuple:
        return tuple(plain(v) for v in value)
    return value
