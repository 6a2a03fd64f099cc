"""Which results store a command reads or writes, chosen the same way by every command.

SQLite path: ``--db`` beats ``$GATEWATCH_DB``, which beats ``settings.db_path`` of ``--config`` (relative to that
file), which beats ``~/.local/state/gatewatch/gatewatch.db``. Only that default folder is created; a folder named
by the user must exist (a typo never silently creates a directory tree). ``--table`` reads an AWS deployment's
DynamoDB table with the user's own credentials (``--region``); any AWS problem is one line with its fix.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from gatewatch.cli import UsageError

DB_HELP = ("SQLite results store (beats $GATEWATCH_DB, which beats settings.db_path of --config; "
           "default ~/.local/state/gatewatch/gatewatch.db)")


def add_store_args(p, table: bool = True, config: bool = True, suppress: bool = False) -> None:
    """--db (and --config for settings.db_path, --table/--region for AWS). ``suppress`` for a sub-action's parser
    whose parent has the same options (the value given on either side is kept)."""
    kw: dict[str, Any] = {"default": argparse.SUPPRESS} if suppress else {}
    p.add_argument("--db", metavar="FILE", help=DB_HELP, **kw)
    if config:
        p.add_argument("--config", metavar="FILE", help="targets file whose settings.db_path names the store", **kw)
    if table:
        p.add_argument("--table", metavar="NAME",
                       help="read the DynamoDB table of an AWS deployment instead (its TableName output)", **kw)
        p.add_argument("--region", help="AWS region of --table (default: AWS_REGION or your profile's region)", **kw)


def db_path(flag: str | None, config_db_path: str | None = None) -> tuple[Path, bool]:
    """(path, chosen by the user?) by precedence: flag, $GATEWATCH_DB, the config's settings.db_path, default."""
    from gatewatch.store import DEFAULT_DB_PATH

    for value in (flag, os.environ.get("GATEWATCH_DB"), config_db_path):
        if value:
            return Path(os.path.expanduser(value)), True
    return Path(os.path.expanduser(DEFAULT_DB_PATH)), False


def open_store(args: Any, config: Any = None) -> Any:
    """The store the arguments name; ``config`` (a loaded Config) supplies settings.db_path when given."""
    table = getattr(args, "table", None)
    if table:
        from gatewatch.cli import awserrors
        from gatewatch.store.dynamodb import DynamoDBStore

        client = awserrors.client("dynamodb", getattr(args, "region", None))
        awserrors.check_table(client, table)
        return DynamoDBStore(table, client=client)
    if config is None and getattr(args, "config", None):
        from gatewatch.config import ConfigError, load_config

        try:
            config = load_config(args.config, environ=None)
        except ConfigError as exc:
            raise UsageError(exc.render()) from None
    path, chosen = db_path(getattr(args, "db", None), config.settings.db_path if config is not None else None)
    if chosen and not path.parent.is_dir():
        raise UsageError(f"directory {path.parent} does not exist (for the results store {path})",
                         f"create it first (mkdir -p {path.parent}) or choose another --db")
    from gatewatch.store import SQLiteStore

    return SQLiteStore(path)
