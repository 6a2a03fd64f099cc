"""Channel secrets on AWS: a ``${GATEWATCH_SLACK_URL}`` reference is read from Parameter Store (a SecureString
named ``<prefix><VAR>``, default prefix ``/gatewatch/secrets/``) or, when there is no such parameter, from
Secrets Manager (a secret named ``gatewatch/<VAR>``).

``SecretEnvironment`` is a read-only mapping, so the one shared expansion function (gatewatch.config.envrefs,
which also refuses names outside the allowed prefix) reads it exactly as it reads ``os.environ`` locally. Values
are cached for the life of the container, up to ``max_age_s``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

DEFAULT_PARAMETER_PREFIX = "/gatewatch/secrets/"
DEFAULT_SECRET_PREFIX = "gatewatch/"  # noqa: S105  # nosec B105 - a Secrets Manager name prefix, not a secret


class SecretEnvironment(Mapping[str, str]):
    def __init__(self, ssm: Any = None, secrets: Any = None, *, parameter_prefix: str = DEFAULT_PARAMETER_PREFIX,
                 secret_prefix: str = DEFAULT_SECRET_PREFIX, max_age_s: float = 300.0):
        self._ssm, self._secrets = ssm, secrets
        self.parameter_prefix, self.secret_prefix, self.max_age_s = parameter_prefix, secret_prefix, max_age_s
        self._cache: dict[str, tuple[float, str | None]] = {}

    def _client(self, name: str) -> Any:
        import boto3
        from botocore.config import Config

        attr = "_ssm" if name == "ssm" else "_secrets"
        if getattr(self, attr) is None:
            setattr(self, attr, boto3.client(name, config=Config(connect_timeout=3, read_timeout=5,
                                                                 retries={"max_attempts": 3, "mode": "standard"})))
        return getattr(self, attr)

    def _lookup(self, name: str) -> str | None:
        cached = self._cache.get(name)
        if cached and time.monotonic() - cached[0] < self.max_age_s:
            return cached[1]
        value = self._parameter(name)
        if value is None:
            value = self._secret(name)
        self._cache[name] = (time.monotonic(), value)
        return value

    def _parameter(self, name: str) -> str | None:
        ssm = self._client("ssm")
        try:
            out = ssm.get_parameter(Name=f"{self.parameter_prefix}{name}", WithDecryption=True)
        except ssm.exceptions.ParameterNotFound:
            return None
        return out["Parameter"]["Value"]

    def _secret(self, name: str) -> str | None:
        sm = self._client("secretsmanager")
        try:
            out = sm.get_secret_value(SecretId=f"{self.secret_prefix}{name}")
        except sm.exceptions.ResourceNotFoundException:
            return None
        return out.get("SecretString")

    def __getitem__(self, name: str) -> str:
        value = self._lookup(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._lookup(name) is not None

    def __iter__(self) -> Iterator[str]:  # nothing is listed: secrets are fetched by name only
        return iter(())

    def __len__(self) -> int:
        return 0
