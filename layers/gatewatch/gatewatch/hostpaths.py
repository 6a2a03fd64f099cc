"""Host-side allow-lists: which nginx binary, which log files and which programs gatewatch may use as root.

One source of truth for the config models, the remediation path, the generated SSM remediation document and the
on-box checks (which may vendor this file: it is stdlib-only and Python 3.8 compatible). Whoever can write the
targets store chooses these values, and the host runs them as root, so each is limited to a fixed set here and
checked again on the host.
"""

import posixpath
import re

# nginx_bin: the bare name (looked up on root's PATH) or one of these absolute paths; nothing else is executed.
NGINX_BINARIES = (
    "nginx",
    "/usr/sbin/nginx",
    "/usr/bin/nginx",
    "/usr/local/sbin/nginx",
    "/usr/local/bin/nginx",
    "/usr/local/nginx/sbin/nginx",
    "/opt/nginx/sbin/nginx",
    "/usr/local/openresty/nginx/sbin/nginx",
)

# Log files are read from /var/log, or from a root the target lists in host.log_roots; a root may not be (or sit
# inside) one of the system directories below, and may not be a parent of them either ("/" or "/var").
DEFAULT_LOG_ROOTS = ("/var/log",)
FORBIDDEN_LOG_ROOTS = (
    "/etc", "/root", "/proc", "/sys", "/dev", "/boot", "/run", "/var/run", "/var/lib", "/var/spool",
    "/var/backups", "/var/cache", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/snap",
)  # fmt: skip

# host.commands (service_manager: command): the program must be one of these service managers (a bare name, or
# the name under a system bin directory), or an exact entry of host.allowed_programs.
COMMAND_PROGRAMS = (
    "systemctl", "supervisorctl", "service", "rc-service", "sv", "s6-svc", "initctl", "nginx", "openresty",
    "apachectl",
)  # fmt: skip
SYSTEM_BIN_DIRS = ("/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin", "/usr/local/sbin")
# Interpreters, shells and wrappers that run another program: never anywhere in a host.commands argv.
DENIED_PROGRAMS = frozenset((
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish", "ash", "busybox", "toybox", "env", "xargs",
    "eval", "exec", "command", "builtin", "timeout", "nohup", "nice", "ionice", "setsid", "stdbuf", "chroot",
    "sudo", "su", "doas", "runuser", "pkexec", "sg", "newgrp", "setpriv", "capsh", "unshare", "nsenter", "ip",
    "taskset", "chrt", "prlimit", "time", "flock", "watch", "script", "expect", "strace", "ltrace", "gdb",
    "systemd-run", "start-stop-daemon", "runcon", "cgexec", "firejail", "bwrap", "at", "batch", "crontab",
    "awk", "gawk", "mawk", "nawk", "sed", "find", "perl", "python", "ruby", "php", "node", "nodejs", "lua",
    "tclsh", "wish", "pwsh", "osascript", "ssh", "socat", "nc", "ncat", "netcat", "docker", "podman", "kubectl",
    "make", "vi", "vim", "less", "more", "man", "git", "tar", "zip", "rsync", "scp", "curl", "wget", "dd",
))  # fmt: skip
_VERSIONED_INTERPRETER = re.compile(r"(?:python|pypy|perl|ruby|php|node|lua|tclsh|wish|pwsh)[0-9.]*[a-z]?")


def nginx_bin_allowed(value: str) -> bool:
    return value in NGINX_BINARIES


def nginx_bin_pattern() -> str:
    """The SSM document's allowedPattern for NginxBin: exactly one of NGINX_BINARIES."""
    return "^(" + "|".join(re.escape(b).replace("\\/", "/") for b in NGINX_BINARIES) + ")$"


def _normal(path: str) -> str:
    return posixpath.normpath(path) if path.startswith("/") else path


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def log_root_problem(root: str) -> "str | None":
    """Why ``root`` may not hold logs gatewatch reads as root, or None."""
    if not root.startswith("/") or _normal(root) != (root.rstrip("/") or "/") or ".." in root.split("/"):
        return f"log root {root!r} must be a normalised absolute path"
    for system in FORBIDDEN_LOG_ROOTS:
        if _under(root, system) or _under(system, root):
            return f"log root {root!r} would expose {system}, which holds no application logs"
    return None


def log_path_problem(path: str, roots: "tuple[str, ...] | list[str]" = ()) -> "str | None":
    """Why ``path`` may not be read as a log, or None: it must sit under /var/log or one of ``roots``."""
    if not path.startswith("/") or _normal(path) != path or ".." in path.split("/"):
        return f"{path!r} must be a normalised absolute path"
    allowed = list(DEFAULT_LOG_ROOTS) + [r for r in roots if log_root_problem(r) is None]
    if any(_under(path, r) and path != r.rstrip("/") for r in allowed):
        return None
    return f"{path!r} is not under {' or '.join(allowed)}; logs are read only from there (add a root to host.log_roots)"


def denied_program(arg: str) -> bool:
    """True when an argv element names an interpreter, shell or wrapper (by itself or as a path's last part)."""
    name = arg.rsplit("/", 1)[-1]
    return name in DENIED_PROGRAMS or bool(_VERSIONED_INTERPRETER.fullmatch(name))


def command_program_problem(program: str, extra: "tuple[str, ...] | list[str]" = ()) -> "str | None":
    """Why ``program`` may not start a host.commands argv, or None."""
    if denied_program(program):
        return f"{program!r} is an interpreter, shell or wrapper that would run anything"
    if program in extra:
        return None
    name = program.rsplit("/", 1)[-1]
    where = program.rsplit("/", 1)[0] if "/" in program else None
    if name in COMMAND_PROGRAMS and (where is None or where in SYSTEM_BIN_DIRS):
        return None
    return (
        f"{program!r} is not an allowed program: use one of {', '.join(COMMAND_PROGRAMS)} "
        "or list it in host.allowed_programs"
    )
