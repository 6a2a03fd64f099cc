"""The targets schema.

Every value that may later reach a command line or a file path (service names, log paths, instance ids) is
constrained here to a safe alphabet, so adapters never have to trust configuration. The messages raised by
validators are part of the interface: tests pin them (``tests/fixtures/config/invalid-*.yaml``).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from gatewatch import hostpaths
from gatewatch.addresses import metadata_host
from gatewatch.config import envrefs

NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# systemd unit / supervisor program names: letters, digits and . _ @ : - ; never a leading dash (option).
SERVICE_RE = re.compile(r"^[A-Za-z0-9_.@:][A-Za-z0-9_.@:-]{0,127}$")
# Absolute path, safe characters only, no "..": these paths are read on the host by the on-box checks.
PATH_RE = re.compile(r"^/[A-Za-z0-9._/+-]{0,4095}$")
# A file read on the prober's own machine (CA bundle, results store): may be relative to the config file.
LOCAL_PATH_RE = re.compile(r"^~?[A-Za-z0-9._/+-]{1,4095}$")
INSTANCE_ID_RE = re.compile(r"^(i|mi)-[0-9a-f]{8,17}$")
TAG_RE = re.compile(r"^[A-Za-z0-9 _.:/=+@-]{1,128}$")
HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
ENV_REF_RE = envrefs.ENV_REF_RE
MAX_ONBOX_PATH = 2048  # the on-box checks request paths (and queries) up to this long (onbox/checks/validate.py)
URL_PATH_RE = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$")
# Headers whose values are secrets: they must come from the environment, never sit in the file.
SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token"}
# Remediation (gatewatch.remediation): the catalogued action names, and what a host.commands argv template may hold.
REMEDIATION_ACTIONS = ("restart_backend", "start_proxy", "reload_proxy")
RemediationAction = Literal["restart_backend", "start_proxy", "reload_proxy"]
COMMAND_PLACEHOLDERS = ("service", "proxy_service", "supervisor_config", "backend_port", "nginx_port")
COMMAND_ARG_RE = re.compile(r"^[A-Za-z0-9_./:=@%+,-]{1,256}$")
PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")

Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _header_name(value: str) -> str:
    if not HEADER_NAME_RE.fullmatch(value):
        raise ValueError(f"header name {value!r} is not a valid HTTP token")
    return value


def _header_value(value: str) -> str:
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError("header values must not contain line breaks or NUL")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(
            f"header value {value[:60]!r} has characters outside Latin-1, which HTTP/1.1 cannot send"
        ) from None
    return value


HeaderName = Annotated[str, AfterValidator(_header_name)]
HeaderValue = Annotated[str, AfterValidator(_header_value)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"must be an http:// or https:// URL (got {value!r})")
    if not parts.hostname:
        raise ValueError(f"must name a host, e.g. https://api.example.com/health (got {value!r})")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials; use a header with an ${ENV_VAR} reference")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError(f"has an invalid port (got {value!r})") from None
    if any(c.isspace() for c in value) or "\0" in value:
        raise ValueError("must not contain whitespace")
    if metadata_host(parts.hostname):
        raise ValueError(
            f"names a cloud metadata endpoint ({parts.hostname}), which holds credentials; it is never probed"
        )
    return value


class Expect(_Strict):
    status: list[int] | None = Field(default=None, description="accepted status codes; default any 2xx/3xx")
    max_latency_ms: int | None = Field(default=None, gt=0, le=600_000)
    body_contains: str | None = None
    json_: dict[str, Any] | None = Field(default=None, alias="json")

    @field_validator("status")
    @classmethod
    def _status_codes(cls, value: list[int] | None) -> list[int] | None:
        if value is not None:
            if not value:
                raise ValueError("must list at least one status code, or be left out for any 2xx/3xx")
            bad = [v for v in value if not 100 <= v <= 599]
            if bad:
                raise ValueError(f"status codes must be from 100 to 599 (got {bad})")
        return value

    def accepts(self, status: int) -> bool:
        return status in self.status if self.status else 200 <= status < 400


class Health(_Strict):
    url: str
    method: Method = "GET"
    timeout_s: float | None = Field(default=None, gt=0, le=60)
    expect_status: list[int] = Field(default_factory=lambda: [200])
    expect_json: dict[str, Any] = Field(default_factory=dict)

    _url = field_validator("url")(classmethod(lambda cls, v: _check_url(v)))


class Database(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=5432, ge=1, le=65535)
    kind: Literal["postgresql", "mysql"] | None = Field(
        default=None, description="postgresql or mysql (MariaDB too); default from the port: 3306 is mysql"
    )
    name: str | None = Field(default=None, description="the database the app uses (the handshake asks for it)")
    user: str | None = Field(default=None, description="the user the app connects as (no password is ever sent)")

    @field_validator("name", "user")
    @classmethod
    def _db_word(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_.$-]{1,63}", value):
            raise ValueError(f"must be 1 to 63 letters, digits and _ . $ - (got {value!r})")
        return value

    @model_validator(mode="before")
    @classmethod
    def _kind_from_port(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("kind") is None:
            port = data.get("port", 5432)
            return {**data, "kind": "mysql" if port in (3306, 33060) else "postgresql"}
        return data

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9.:-]{1,253}", value):
            raise ValueError(f"must be a host name or IP address (got {value!r})")
        return value


class Host(_Strict):
    local: bool = False
    netns: str | None = Field(default=None, description="local only: run the checks inside this network namespace")
    instance_id: str | None = None
    instance_tags: dict[str, str] | None = None
    service: str | None = None
    service_manager: Literal["systemd", "supervisor", "command"] = "systemd"
    supervisor_config: str | None = None
    process_match: str | None = Field(default=None, description="substring of the backend's command line")
    backend_host: str = "127.0.0.1"
    backend_port: int = Field(default=8000, ge=1, le=65535)
    backend_socket: str | None = Field(
        default=None, description="the backend's unix socket path, instead of backend_host/backend_port"
    )
    health_path: str = "/health"
    nginx_port: int = Field(default=80, ge=1, le=65535)
    nginx_bin: str = "nginx"
    nginx_conf: str | None = None
    nginx_prefix: str | None = None
    nginx_error_log: str = "/var/log/nginx/error.log"
    app_log: str | None = None
    log_roots: list[str] = Field(default_factory=list, max_length=8,
                                 description="directories besides /var/log that hold logs (at most 8)")
    log_window_minutes: int = Field(default=15, ge=1, le=1440)
    extra_paths: list[str] = Field(default_factory=list, max_length=20,
                                   description="directories whose disk use matters (at most 20)")
    database: Database | None = None
    proxy_service: str = Field(default="nginx", description="the proxy's systemd unit / supervisor program name")
    allowed_programs: list[str] = Field(
        default_factory=list, description="programs host.commands may start besides the service managers"
    )
    commands: dict[RemediationAction, list[str]] | None = Field(
        default=None, description="service_manager: command only: an argv template per remediation action"
    )

    @field_validator("instance_id")
    @classmethod
    def _instance(cls, value: str | None) -> str | None:
        if value is not None and not INSTANCE_ID_RE.fullmatch(value):
            raise ValueError(
                f"must be an EC2 or managed instance id like i-0123456789abcdef0 or mi-0123456789abcdef0 "
                f"(got {value!r})"
            )
        return value

    @field_validator("netns")
    @classmethod
    def _netns(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,30}", value):
            raise ValueError(f"must be a network namespace name of a-z, 0-9, _ and - (got {value!r})")
        return value

    @field_validator("instance_tags")
    @classmethod
    def _tags(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None:
            if not value:
                raise ValueError("must name at least one tag, e.g. {gatewatch: api}")
            for k, v in value.items():
                if not TAG_RE.fullmatch(k) or not TAG_RE.fullmatch(str(v)):
                    raise ValueError(
                        f"tag {k!r}={v!r} has characters outside letters, digits, space and _ . : / = + @ -"
                    )
        return value

    @field_validator("service")
    @classmethod
    def _service(cls, value: str | None) -> str | None:
        if value is not None and not SERVICE_RE.fullmatch(value):
            raise ValueError(
                f"must be a service name of letters, digits and . _ @ : - not starting with '-' (got {value!r})"
            )
        return value

    @field_validator("proxy_service")
    @classmethod
    def _proxy_service(cls, value: str) -> str:
        if not SERVICE_RE.fullmatch(value):
            raise ValueError(
                f"must be a service name of letters, digits and . _ @ : - not starting with '-' (got {value!r})"
            )
        return value

    @field_validator("allowed_programs")
    @classmethod
    def _allowed_programs(cls, value: list[str]) -> list[str]:
        for program in value:
            if not (re.fullmatch(r"[A-Za-z0-9._-]{1,64}", program) or PATH_RE.fullmatch(program)):
                raise ValueError(f"{program!r} must be a bare program name or an absolute path")
            if hostpaths.denied_program(program):
                raise ValueError(f"{program!r} is an interpreter, shell or wrapper that would run anything")
        return value

    @field_validator("log_roots")
    @classmethod
    def _log_roots(cls, value: list[str]) -> list[str]:
        for root in value:
            _check_path(root)
            problem = hostpaths.log_root_problem(root)
            if problem:
                raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _commands_need_manager(self) -> Host:
        if self.commands is not None and self.service_manager != "command":
            raise ValueError("commands applies to service_manager: command only")
        return self

    @field_validator("commands")
    @classmethod
    def _commands(cls, value: dict[str, list[str]] | None, info) -> dict[str, list[str]] | None:
        if value is not None:
            for action, argv in value.items():
                _check_argv_template(action, argv, info.data.get("allowed_programs") or ())
        return value

    @model_validator(mode="after")
    def _log_paths(self) -> Host:
        for name in ("nginx_error_log", "app_log"):
            value = getattr(self, name)
            problem = value and hostpaths.log_path_problem(value, self.log_roots)
            if problem:
                raise ValueError(f"{name}: {problem}")
        return self

    @field_validator("process_match")
    @classmethod
    def _process_match(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9 _./:=@-]{1,200}", value):
            raise ValueError(
                f"must be plain text of letters, digits, space and _ . / : = @ - (got {value!r})"
            )
        return value

    @field_validator("backend_host")
    @classmethod
    def _backend_host(cls, value: str) -> str:
        if value == "localhost":
            return value
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"must be an IP address such as 127.0.0.1, or localhost (got {value!r})") from None
        return value

    @field_validator("health_path")
    @classmethod
    def _health_path(cls, value: str) -> str:
        if not URL_PATH_RE.fullmatch(value):
            raise ValueError(f"must be a URL path starting with '/', e.g. /health (got {value!r})")
        if len(value) > MAX_ONBOX_PATH:
            raise ValueError(f"has at most {MAX_ONBOX_PATH} characters (got {len(value)})")
        return value

    @field_validator("nginx_bin", "nginx_conf", "nginx_prefix", "nginx_error_log", "app_log", "supervisor_config",
                     "backend_socket")
    @classmethod
    def _paths(cls, value: str | None, info) -> str | None:
        if value is None:
            return value
        if info.field_name == "nginx_bin":
            if not hostpaths.nginx_bin_allowed(value):
                raise ValueError(
                    f"must be nginx (found on root's PATH) or one of {', '.join(hostpaths.NGINX_BINARIES[1:])} "
                    f"(got {value!r}): it runs as root on the host"
                )
            return value
        return _check_path(value)

    @field_validator("extra_paths")
    @classmethod
    def _extra_paths(cls, value: list[str]) -> list[str]:
        return [_check_path(v) for v in value]

    @field_validator("backend_socket")
    @classmethod
    def _backend_socket(cls, value: str | None) -> str | None:
        if value is not None and len(_check_path(value)) > 107:
            raise ValueError(f"a unix socket path has at most 107 characters (got {len(value)})")
        return value

    @model_validator(mode="after")
    def _where(self) -> Host:
        if self.instance_id and self.instance_tags:
            raise ValueError("give instance_id or instance_tags, not both")
        if self.local and (self.instance_id or self.instance_tags):
            raise ValueError("local: true runs the checks on this machine; remove instance_id/instance_tags")
        if self.netns and not self.local:
            raise ValueError("netns applies to local: true hosts only")
        if self.service_manager == "supervisor" and not self.service:
            raise ValueError("service_manager: supervisor needs service: the supervisor program name")
        if self.backend_socket and ("backend_host" in self.model_fields_set or "backend_port" in self.model_fields_set):
            raise ValueError("give backend_socket (a unix socket) or backend_host/backend_port, not both")
        return self


def _check_argv_template(action: str, argv: list[str], allowed: list[str] | tuple[str, ...] = ()) -> None:
    """An argv template runs without a shell: a program, then plain arguments and whole {placeholder}s."""
    if not argv or len(argv) > 32:
        raise ValueError(f"{action}: must be a list of 1 to 32 argv elements, program first")
    program = argv[0]
    if program.startswith("-") or "{" in program or not (
        re.fullmatch(r"[A-Za-z0-9._-]{1,64}", program) or PATH_RE.fullmatch(program)
    ):
        raise ValueError(
            f"{action}: the program must be a bare name or an absolute path of letters, digits and . _ / + - "
            f"(got {program!r})"
        )
    if hostpaths.denied_program(program):
        raise ValueError(f"{action}: {program!r} would bring a shell back; name the program to run directly")
    problem = hostpaths.command_program_problem(program, allowed)
    if problem:
        raise ValueError(f"{action}: {problem}")
    for arg in argv[1:]:
        if hostpaths.denied_program(arg):
            raise ValueError(f"{action}: {arg!r} is an interpreter, shell or wrapper; it may not appear in argv")
        for name in PLACEHOLDER_RE.findall(arg):
            if name not in COMMAND_PLACEHOLDERS:
                raise ValueError(
                    f"{action}: unknown placeholder {{{name}}} in {arg!r}; allowed: "
                    + ", ".join("{" + p + "}" for p in COMMAND_PLACEHOLDERS)
                )
        literal = PLACEHOLDER_RE.sub("x", arg)
        if not COMMAND_ARG_RE.fullmatch(literal):
            raise ValueError(
                f"{action}: argument {arg!r} has characters outside letters, digits and _ . / : = @ % + , - "
                "(no spaces, quotes or shell syntax: each argv element is passed as is, without a shell)"
            )


def _check_local_path(value: str | None) -> str | None:
    """A file on the prober's own machine (CA bundle, results store): absolute, or relative to the config file."""
    if value is not None and not LOCAL_PATH_RE.fullmatch(value):
        raise ValueError(
            f"must be a file path of letters, digits and . _ / + - ~, absolute or relative to this file (got {value!r})"
        )
    return value


def _check_path(value: str) -> str:
    if not PATH_RE.fullmatch(value) or "/../" in value + "/" or value.endswith("/.."):
        raise ValueError(
            f"must be an absolute path of letters, digits and . _ / + - with no '..' (got {value!r})"
        )
    return value


class Remediation(_Strict):
    mode: Literal["off", "suggest", "auto"] = "suggest"
    cooldown_minutes: int = Field(default=15, ge=0, le=10080, description="per target and action")
    max_per_day: int = Field(default=3, ge=1, le=100, description="per target, rolling 24 hours; then humans only")


class MaintenanceWindow(_Strict):
    """Silences notifications and remediation (never probing): an absolute window, or a daily one in UTC."""

    start: str | None = Field(default=None, description="ISO-8601 with a zone, e.g. 2026-11-25T01:00:00Z")
    end: str | None = None
    daily: str | None = Field(default=None, description="HH:MM-HH:MM UTC; may wrap past midnight")
    reason: str | None = Field(default=None, max_length=200)

    @field_validator("start", "end")
    @classmethod
    def _instant(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from datetime import datetime

        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"must be an ISO-8601 time like 2026-11-25T01:00:00Z (got {value!r})") from None
        if moment.tzinfo is None:
            raise ValueError(f"must carry a zone, e.g. a trailing Z for UTC (got {value!r})")
        return value

    @field_validator("daily")
    @classmethod
    def _daily(cls, value: str | None) -> str | None:
        if value is not None:
            m = re.fullmatch(r"([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])", value)
            if not m or value[:5] == value[6:]:
                raise ValueError(f"must be HH:MM-HH:MM in UTC with different ends, e.g. 01:00-02:30 (got {value!r})")
        return value

    @model_validator(mode="after")
    def _one_form(self) -> MaintenanceWindow:
        absolute = self.start is not None or self.end is not None
        if absolute and self.daily:
            raise ValueError("give start and end, or daily, not both")
        if not absolute and not self.daily:
            raise ValueError("give start and end (ISO-8601), or daily (HH:MM-HH:MM UTC)")
        if absolute:
            if self.start is None or self.end is None:
                raise ValueError("an absolute window needs both start and end")
            from datetime import datetime

            begin, finish = (datetime.fromisoformat(v.replace("Z", "+00:00")) for v in (self.start, self.end))
            if finish <= begin:
                raise ValueError(f"end {self.end} must be after start {self.start}")
        return self


class Flapping(_Strict):
    """A target flaps when at least ``failures`` of its last ``rounds`` rounds failed (a transient round counts)."""

    failures: int = Field(default=3, ge=1, le=100)
    rounds: int = Field(default=10, ge=2, le=100)
    enabled: bool = True

    @model_validator(mode="after")
    def _fits(self) -> Flapping:
        if self.failures > self.rounds:
            raise ValueError(f"failures ({self.failures}) cannot exceed rounds ({self.rounds})")
        return self


class CertificateAlert(_Strict):
    """Certificate expiry, alerted on its own (the site is up): one notification per threshold crossed."""

    warn_days: float = Field(default=14, gt=0, le=365)
    critical_days: float = Field(default=3, gt=0, le=365)
    enabled: bool = True

    @model_validator(mode="after")
    def _order(self) -> CertificateAlert:
        if self.critical_days >= self.warn_days:
            raise ValueError(f"critical_days ({self.critical_days}) must be below warn_days ({self.warn_days})")
        return self


class Alerting(_Strict):
    failure_threshold: int = Field(default=2, ge=1, le=100)
    success_threshold: int = Field(default=2, ge=1, le=100)
    channels: list[str] | None = Field(default=None, description="notification channels by name (default: "
                                       "notifications.default)")
    reminder_minutes: int = Field(default=60, ge=0, le=10080, description="remind while open; 0 disables")
    flapping: Flapping = Field(default_factory=Flapping)
    certificate: CertificateAlert = Field(default_factory=CertificateAlert)


ChannelType = Literal["webhook", "slack", "pagerduty", "teams", "sns", "console"]
# the fields that carry a secret: they may only be ${VAR} references (expanded when a notification is sent)
CHANNEL_SECRETS = {"webhook": ("secret",), "slack": ("url",), "teams": ("url",), "pagerduty": ("routing_key",)}


class Channel(_Strict):
    """One notification channel (gatewatch.notify): where it goes and which kinds it takes."""

    type: ChannelType
    url: str | None = Field(default=None, description="webhook/slack/teams URL; slack and teams: ${VAR} only")
    secret: str | None = Field(default=None, description="webhook HMAC-SHA256 key, ${VAR} only")
    routing_key: str | None = Field(default=None, description="PagerDuty integration key, ${VAR} only")
    events_url: str = Field(default="https://events.pagerduty.com/v2/enqueue", description="PagerDuty Events v2")
    topic_arn: str | None = None
    kinds: list[str] | None = Field(default=None, description="notification kinds to send (default: all)")
    timeout_s: float = Field(default=10, gt=0, le=60)
    retries: int = Field(default=3, ge=0, le=10, description="immediate retries on 429/5xx/connection errors")

    @model_validator(mode="after")
    def _complete(self) -> Channel:
        needs = {"webhook": ("url",), "slack": ("url",), "teams": ("url",), "pagerduty": ("routing_key",),
                 "sns": ("topic_arn",)}.get(self.type, ())
        for name in needs:
            if not getattr(self, name):
                raise ValueError(f"a {self.type} channel needs {name}")
        for name in CHANNEL_SECRETS.get(self.type, ()):
            value = getattr(self, name)
            if value is not None and not ENV_REF_RE.fullmatch(value):
                raise ValueError(f"{name} of a {self.type} channel is a secret: write it as an environment "
                                 "reference like ${GATEWATCH_" + f"{self.type.upper()}_{name.upper()}" + "}")
        if self.url and not ENV_REF_RE.fullmatch(self.url):
            _check_url(self.url)
        return self


class Notifications(_Strict):
    channels: dict[str, Channel] = Field(default_factory=dict)
    default: list[str] = Field(default_factory=list, description="channels for targets that name none")
    redeliver_rounds: int = Field(default=20, ge=1, le=1000, description="rounds a failed delivery is retried")
    dashboard_url: str | None = Field(default=None, description="link in messages; {incident_id} and {target}")


class Confirm(_Strict):
    """A failed attempt is retried this many times, after this pause, before it counts as down."""

    retries: int = Field(default=1, ge=0, le=5)
    delay_s: float = Field(default=1.0, ge=0, le=60)


class Target(_Strict):
    name: str
    display_name: str | None = Field(default=None, min_length=1, max_length=80,
                                     description="the name shown on the public status page (default: name)")
    url: str
    method: Method = "GET"
    headers: dict[HeaderName, HeaderValue] = Field(default_factory=dict)
    body: str | None = Field(default=None, max_length=65536, description="request body (at most 64 KiB)")
    timeout_s: float = Field(default=10, gt=0, le=120)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    max_redirects: int = Field(default=10, ge=0, le=30)
    allow_private_redirects: bool = Field(
        default=False, description="follow redirects to loopback, link-local and private addresses (never metadata)"
    )
    verify_tls: bool = True
    tls_ca_file: str | None = Field(default=None, description="PEM bundle to trust instead of the system CAs")
    resolve_to: str | None = Field(
        default=None, description="connect to this IP instead of resolving the URL's host (like curl --resolve)"
    )
    expect: Expect = Field(default_factory=Expect)
    health: Health | None = None
    host: Host | None = None
    remediation: Remediation = Field(default_factory=Remediation)
    alerting: Alerting = Field(default_factory=Alerting)
    confirm: Confirm = Field(default_factory=Confirm)
    maintenance: list[MaintenanceWindow] = Field(default_factory=list, description="silences alerts and fixes")

    # Read by the prober on this machine (not on the host): may be relative to the config file (the loader resolves it).
    _ca_file = field_validator("tls_ca_file")(classmethod(lambda cls, v: _check_local_path(v)))

    @field_validator("resolve_to")
    @classmethod
    def _resolve_to(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError(f"must be an IP address such as 203.0.113.10 or 2001:db8::1 (got {value!r})") from None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.fullmatch(value):
            raise ValueError(
                f"must be 1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit "
                f"(got {value!r})"
            )
        return value

    _url = field_validator("url")(classmethod(lambda cls, v: _check_url(v)))

    @model_validator(mode="after")
    def _onbox_can_request(self) -> Target:
        """With a host section the on-box checks request this URL's path through nginx: they take up to
        MAX_ONBOX_PATH characters of it (percent-encoded), and the host in its ASCII form."""
        if self.host is None or ENV_REF_RE.fullmatch(self.url):
            return self
        from gatewatch.onbox.checks.validate import HOSTNAME_RE
        from gatewatch.onbox.params import endpoint_path, public_host

        path = endpoint_path(self.url)
        if len(path) > MAX_ONBOX_PATH:
            raise ValueError(f"url: its path and query are {len(path)} characters once percent-encoded; the on-box "
                             f"checks request at most {MAX_ONBOX_PATH} (shorten it, or leave out the host section)")
        host = public_host(self.url) or ""
        if not HOSTNAME_RE.fullmatch(host):  # the script's own pattern: what it refuses, config check refuses
            raise ValueError(f"url: the host {host!r} cannot be sent as a Host header by the on-box checks")
        return self


class Settings(_Strict):
    concurrency: int = Field(default=16, ge=1, le=512, description="targets probed at once")
    db_path: str | None = Field(
        default=None,
        description="SQLite results store for gatewatch run/incidents/history; relative to this file. "
        "--db and $GATEWATCH_DB override it",
    )
    env_prefix: str = Field(default=envrefs.DEFAULT_PREFIX, description="${VAR} expands only names with this prefix")
    env_allow: list[str] = Field(default_factory=list, description="other ${VAR} names that may be expanded")

    _db_path = field_validator("db_path")(classmethod(lambda cls, v: _check_local_path(v)))

    _prefix = field_validator("env_prefix")(classmethod(lambda cls, v: envrefs.check_prefix(v)))
    _allow = field_validator("env_allow")(classmethod(lambda cls, v: envrefs.check_allow(v)))


class Config(_Strict):
    settings: Settings = Field(default_factory=Settings)
    targets: list[Target]
    notifications: Notifications = Field(default_factory=Notifications)

    @model_validator(mode="after")
    def _channels_known(self) -> Config:
        known = set(self.notifications.channels)
        for where, names in [("notifications.default", self.notifications.default),
                             *((f"{t.name}.alerting.channels", t.alerting.channels or []) for t in self.targets)]:
            missing = [n for n in names if n not in known]
            if missing:
                raise ValueError(f"{where} names unknown channel(s) {', '.join(missing)} (known: "
                                 f"{', '.join(sorted(known)) or 'none'})")
        allow = frozenset(self.settings.env_allow)
        for name, ch in self.notifications.channels.items():
            for text in (ch.url, ch.secret, ch.routing_key):
                for var in envrefs.names(text or ""):
                    why = envrefs.refusal(var, self.settings.env_prefix, allow)
                    if why:
                        raise ValueError(f"notifications.channels.{name}: {why}")
        return self

    @field_validator("targets")
    @classmethod
    def _some(cls, value: list[Target]) -> list[Target]:
        if not value:
            raise ValueError("must list at least one target")
        return value

    def target(self, name: str) -> Target:
        for t in self.targets:
            if t.name == name:
                return t
        raise KeyError(name)
