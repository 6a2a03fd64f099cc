"""``${VAR}`` references in targets: which names may be expanded, and what an expanded value may hold.

A targets file is data someone else may write, and the prober's environment holds its credentials (on Lambda,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and ``AWS_SESSION_TOKEN``). So a reference expands only a name
that starts with the configured prefix (``settings.env_prefix``, default ``GATEWATCH_``) or is listed in
``settings.env_allow``, and never a name of the AWS SDK or of the Lambda runtime, whatever the settings say.
The expanded value is checked again where it lands: no CR, LF or NUL anywhere (a line break in a header value
is a second request on the wire), Latin-1 for header values, a valid URL for URLs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

ENV_REF_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
DEFAULT_PREFIX = "GATEWATCH_"
# The AWS SDK's and the Lambda runtime's variables (and the process basics): never expanded, even when allowed.
FORBIDDEN_PREFIXES = ("AWS_", "_", "LAMBDA_", "AMAZON_", "ECS_CONTAINER_", "LD_", "PYTHON")
FORBIDDEN_NAMES = frozenset({
    "TZ", "LANG", "PATH", "HOME", "USER", "SHELL", "PWD", "TMPDIR", "HOSTNAME", "CONTAINER_CREDENTIALS_FULL_URI",
})  # fmt: skip
CONTROL = ("\r", "\n", "\0")


class EnvRefError(ValueError):
    """A reference that may not be expanded, or a value that may not land where it would."""


def forbidden(name: str) -> bool:
    upper = name.upper()
    return upper in FORBIDDEN_NAMES or upper.startswith(FORBIDDEN_PREFIXES)


def check_prefix(prefix: str) -> str:
    if not re.fullmatch(r"[A-Z][A-Z0-9_]{1,31}_", prefix):
        raise ValueError(f"must be 2-32 capital letters, digits and _ ending in '_', e.g. GATEWATCH_ (got {prefix!r})")
    if forbidden(prefix):
        raise ValueError(f"{prefix!r} would expose the AWS SDK's or the Lambda runtime's variables")
    return prefix


def check_allow(names: list[str]) -> list[str]:
    for name in names:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", name):
            raise ValueError(f"{name!r} is not an environment variable name")
        if forbidden(name):
            raise ValueError(f"{name} is an AWS SDK or Lambda runtime variable and is never expanded")
    return names


def refusal(name: str, prefix: str, allow: frozenset[str] | set[str] | list[str]) -> str | None:
    """Why ``${name}`` may not be expanded, or None when it may."""
    if forbidden(name):
        return (
            f"${{{name}}} is an AWS SDK or Lambda runtime variable and is never expanded "
            "(it would send the prober's own credentials or settings to the probed server)"
        )
    if name.startswith(prefix) or name in allow:
        return None
    return f"${{{name}}} may not be expanded: name it with the prefix {prefix} or list it in settings.env_allow"


def names(text: str) -> list[str]:
    return ENV_REF_RE.findall(text)


def check_value(name: str, value: str, header: bool) -> None:
    if any(c in value for c in CONTROL):
        raise EnvRefError(f"the value of ${{{name}}} contains a line break or NUL, which is refused")
    if header:
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise EnvRefError(f"the value of ${{{name}}} is not Latin-1 and cannot be sent in an HTTP header") from None


def expand(text: str, environ: Mapping[str, str] | None, prefix: str, allow: frozenset[str] | set[str],
           *, header: bool = False) -> str:
    """Substitutes every reference in ``text``; raises EnvRefError naming the variable (the caller names the field).

    ``environ`` None checks the names only and returns ``text`` unchanged.
    """

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        why = refusal(name, prefix, allow)
        if why:
            raise EnvRefError(why)
        if environ is None:
            return match.group(0)
        if name not in environ:
            raise EnvRefError(f"environment variable {name} is not set; export it before running gatewatch")
        value = environ[name]
        check_value(name, value, header)
        return value

    return ENV_REF_RE.sub(one, text)


def walk_strings(value: Any, fn: Callable[[str, str], str], where: str) -> Any:
    """Applies ``fn(where, text)`` to every string inside a JSON-like value (JSON assertions)."""
    if isinstance(value, str):
        return fn(where, value)
    if isinstance(value, dict):
        return {k: walk_strings(v, fn, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [walk_strings(v, fn, f"{where}[{i}]") for i, v in enumerate(value)]
    return value
