"""Targets configuration: the YAML schema, its loader and its human-readable errors."""

from gatewatch.config.errors import ConfigError, Problem
from gatewatch.config.loader import load_config, load_config_text
from gatewatch.config.models import (
    Alerting,
    Config,
    Confirm,
    Database,
    Expect,
    Health,
    Host,
    Remediation,
    Settings,
    Target,
)

__all__ = [
    "Alerting",
    "Config",
    "ConfigError",
    "Confirm",
    "Database",
    "Expect",
    "Health",
    "Host",
    "Problem",
    "Remediation",
    "Settings",
    "Target",
    "load_config",
    "load_config_text",
]
