"""The fleet's targets file as one S3 object: pushed by a person, read (never written) by the functions.

Why S3 and not AppConfig: moto implements S3 end to end (versioning, SSE-KMS, conditional GET), while its
AppConfig has no deployments and no AppConfigData (the API Powertools' AppConfig provider reads), so an AppConfig
path could not be tested here. An S3 object has no practical size cap (a 1,000-target file is ~200 KB).

* ``push(text, bucket, key, client)`` validates the YAML (``${VARS}`` are resolved later, in the function) and
  uploads it; the bucket's default encryption (the stack's KMS key) encrypts it; versioning keeps every push.
* ``TargetsSource`` (one per container) fetches with ``IfNoneMatch`` at most every ``max_age_s``: an unchanged
  object is not downloaded nor parsed again (the parse is memoised by ETag). A changed object that fails
  validation is REJECTED: the last good config stays in use, an error is logged and ``TargetsConfigRejected``
  is emitted. With no last good config (a cold start on a bad object) the error is raised.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gatewatch.config import Config, ConfigError, load_config_text

log = logging.getLogger("gatewatch.targets")
DEFAULT_KEY = "targets.yaml"
REJECTED_METRIC = "TargetsConfigRejected"


@dataclass(frozen=True)
class Pushed:
    bucket: str
    key: str
    version_id: str | None
    etag: str
    size: int
    targets: int


def validate(text: str, source: str) -> Config:
    """The config the text describes; ConfigError lists every problem (``${VARS}`` need not be set here)."""
    return load_config_text(text, source=source, environ=None)


def push(text: str, bucket: str, key: str, client: Any) -> Pushed:
    config = validate(text, f"s3://{bucket}/{key}")
    body = text.encode("utf-8")
    answer = client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/yaml",
                               ServerSideEncryption="aws:kms")
    return Pushed(bucket, key, answer.get("VersionId"), answer["ETag"].strip('"'), len(body), len(config.targets))


def emit_rejected(reason: str) -> None:
    """One CloudWatch EMF line (works from any function, decorated with log_metrics or not)."""
    print(json.dumps({
        "_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [{
            "Namespace": os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Gatewatch"),
            "Dimensions": [["service"]], "Metrics": [{"Name": REJECTED_METRIC, "Unit": "Count"}]}]},
        "service": os.environ.get("POWERTOOLS_SERVICE_NAME", "gatewatch"),
        REJECTED_METRIC: 1, "reason": reason[:2000],
    }), flush=True)


class TargetsSource:
    """The targets of one S3 object, refreshed at most every ``max_age_s``, parsed once per ETag."""

    def __init__(self, bucket: str, key: str, client: Any, max_age_s: float = 300.0,
                 environ: Mapping[str, str] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.bucket, self.key, self.client = bucket, key, client
        self.max_age_s, self.environ, self.clock = max_age_s, environ, clock
        self.config: Config | None = None
        self.etag: str | None = None        # of the object in use (the last good one)
        self.rejected_etag: str | None = None
        self.checked_at: float | None = None
        self.parses = 0

    @property
    def source(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def get(self) -> Config:
        now = self.clock()
        if self.config is not None and self.checked_at is not None and now - self.checked_at < self.max_age_s:
            return self.config
        self.checked_at = now
        seen = self.rejected_etag or self.etag
        kwargs = {"IfNoneMatch": f'"{seen}"'} if seen and self.config is not None else {}
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.key, **kwargs)
        except Exception as exc:
            code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
            if code in ("304", "NotModified"):
                return self._current()
            if self.config is None:
                raise
            log.error("targets: cannot read %s (%s); keeping version %s", self.source, exc, self.etag)
            return self.config
        etag = answer["ETag"].strip('"')
        text = answer["Body"].read().decode("utf-8")
        try:
            self.parses += 1
            config = load_config_text(text, source=self.source, environ=self.environ)
        except ConfigError as exc:
            self.rejected_etag = etag
            if self.config is None:
                raise
            self._reject(etag, exc.render())
            return self.config
        self.config, self.etag, self.rejected_etag = config, etag, None
        return config

    def _current(self) -> Config:
        if self.config is None:  # callers check first; kept as a real error, not an assert (gone under -O)
            raise RuntimeError(f"{self.source}: no targets config has been loaded yet")
        if self.rejected_etag is not None:
            self._reject(self.rejected_etag, "(unchanged since it was rejected)")
        return self.config

    def _reject(self, etag: str, why: str) -> None:
        reason = f"{self.source} (ETag {etag}) rejected, keeping ETag {self.etag}: {why}"
        log.error("targets: %s", reason)
        emit_rejected(reason)
