"""AWS from the command line: clients with the user's own credentials, and every AWS failure as one line with its fix.

``client(service, region)`` builds a boto3 client (short timeouts, a few retries); ``known_error(exc)`` turns what
botocore, the store or the runner raise into a ``UsageError`` (``main`` prints it and exits 2), so a missing region,
missing credentials or a missing table never shows a traceback.
"""

from __future__ import annotations

import sys
from typing import Any

from gatewatch.cli import UsageError

REGION_FIX = "set AWS_REGION (or AWS_DEFAULT_REGION, or region in your AWS profile), or pass --region"
CREDENTIALS_FIX = "run `aws configure` or `aws sso login`, or set AWS_PROFILE (gatewatch uses your own credentials)"


def add_region_arg(p) -> None:
    p.add_argument("--region", help="AWS region of the deployment (default: AWS_REGION or your profile's region)")


def client(service: str, region: str | None = None) -> Any:
    """A boto3 client for the user's own credentials; a missing region is a UsageError, not a traceback."""
    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import NoRegionError
    except ImportError:
        raise UsageError("boto3 is not installed", "pip install boto3 (it comes with gatewatch)") from None
    config = Config(connect_timeout=5, read_timeout=20, retries={"max_attempts": 3, "mode": "standard"})
    try:
        return boto3.client(service, region_name=region or None, config=config)
    except NoRegionError:
        raise UsageError("no AWS region", REGION_FIX) from None


def check_table(dynamodb: Any, table: str) -> None:
    """Fail early, in one line, when the table cannot be read (missing, other region, no credentials, denied)."""
    try:
        dynamodb.describe_table(TableName=table)
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        if "AccessDenied" in code:
            return  # reading may be allowed where describing is not: let the real call say
        known = known_error(exc, table=table, region=getattr(getattr(dynamodb, "meta", None), "region_name", None))
        if known is None:
            raise
        raise known from None


def known_error(exc: BaseException, table: str | None = None, region: str | None = None) -> UsageError | None:
    """A UsageError for a failure a user can fix (AWS, the results store, the command runner); None otherwise."""
    if isinstance(exc, UsageError):
        return exc
    botocore_exceptions = sys.modules.get("botocore.exceptions")
    if botocore_exceptions is not None:
        found = _botocore(exc, botocore_exceptions, table, region)
        if found is not None:
            return found
    from gatewatch.runner.exceptions import RunnerError
    from gatewatch.store.exceptions import StoreError

    if isinstance(exc, StoreError | RunnerError):
        return UsageError(str(exc))
    return None


def _botocore(exc: BaseException, be: Any, table: str | None, region: str | None) -> UsageError | None:
    if isinstance(exc, be.NoRegionError):
        return UsageError("no AWS region", REGION_FIX)
    if isinstance(exc, be.NoCredentialsError | be.PartialCredentialsError):
        return UsageError("no AWS credentials found", CREDENTIALS_FIX)
    if isinstance(exc, be.ProfileNotFound):
        return UsageError(str(exc), "check AWS_PROFILE against `aws configure list-profiles`")
    if isinstance(exc, be.EndpointConnectionError):
        return UsageError(f"cannot reach AWS: {exc}", "check the region name and your network")
    if isinstance(exc, be.ClientError):
        error = exc.response.get("Error", {})
        code, message = error.get("Code", ""), error.get("Message", "")
        where = f" in {region}" if region else ""
        if code == "ResourceNotFoundException" and table:
            return UsageError(f"table {table} not found{where}",
                              "use the TableName output of your stack (and its region: --region)")
        if code in ("UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException",
                    "InvalidSignatureException"):
            return UsageError(f"AWS rejected your credentials ({code})", CREDENTIALS_FIX)
        if "AccessDenied" in code:
            return UsageError(f"AWS denied it ({code}): {message}",
                              "use credentials allowed to read the deployment (see docs/aws.md)")
        return UsageError(f"AWS error {code}: {message}")
    if isinstance(exc, be.BotoCoreError):
        return UsageError(f"AWS: {exc}")
    return None
