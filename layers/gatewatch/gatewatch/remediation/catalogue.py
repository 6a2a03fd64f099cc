"""The remediation catalogue as validated data: which action fixes which verdict category, and with what argv.

The rules live in ``catalogue.yaml`` next to this file; this module only loads and checks them, at import, so a
typo (an unknown category, precondition or placeholder) fails loudly instead of silently allowing something.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gatewatch.config.models import COMMAND_PLACEHOLDERS, PLACEHOLDER_RE, REMEDIATION_ACTIONS
from gatewatch.remediation.checks_first import CHECKS_FIRST
from gatewatch.remediation.preconditions import PRECONDITIONS
from gatewatch.tree.model import CATEGORIES

CATALOGUE_PATH = Path(__file__).with_name("catalogue.yaml")

# The verdict categories are the tree's (one list, gatewatch.tree.model.CATEGORIES).
MANAGERS = ("systemd", "supervisor")  # "command" takes its argv from the host's own config
HOST_FIELDS = ("service", "proxy_service", "supervisor_config")


class CatalogueError(Exception):
    """catalogue.yaml is invalid; the message names the entry."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ArgvTemplate = list[str | list[str]]


class Action(_Strict):
    name: str
    title: str
    needs: list[str] = Field(default_factory=list, description="host fields that must be set")
    allow: list[str]
    refuse: dict[str, str] = Field(default_factory=dict)
    preconditions: list[str] = Field(default_factory=list)
    check_first: list[str] = Field(default_factory=list, description="run on the host just before; must pass")
    commands: dict[str, ArgvTemplate]
    verify: list[Literal["outside", "local_health", "via_proxy"]] = Field(
        default_factory=lambda: ["outside", "local_health"],
        description="what must pass after the settle time for the fix to count as proven")

    @field_validator("allow")
    @classmethod
    def _allow(cls, value: list[str]) -> list[str]:
        unknown = [c for c in value if c not in CATEGORIES]
        if unknown:
            raise ValueError(f"unknown categories {unknown}")
        return value

    @field_validator("refuse")
    @classmethod
    def _refuse(cls, value: dict[str, str]) -> dict[str, str]:
        for pattern in value:
            if not fnmatch.filter(CATEGORIES, pattern):
                raise ValueError(f"refuse pattern {pattern!r} matches no known category")
        return value

    @field_validator("needs")
    @classmethod
    def _needs(cls, value: list[str]) -> list[str]:
        bad = [n for n in value if n not in HOST_FIELDS]
        if bad:
            raise ValueError(f"needs names unknown host fields {bad}; allowed: {list(HOST_FIELDS)}")
        return value

    @field_validator("preconditions")
    @classmethod
    def _preconditions(cls, value: list[str]) -> list[str]:
        bad = [p for p in value if p not in PRECONDITIONS]
        if bad:
            raise ValueError(f"unknown preconditions {bad}; known: {sorted(PRECONDITIONS)}")
        return value

    @field_validator("check_first")
    @classmethod
    def _check_first(cls, value: list[str]) -> list[str]:
        bad = [c for c in value if c not in CHECKS_FIRST]
        if bad:
            raise ValueError(f"unknown check_first {bad}; known: {sorted(CHECKS_FIRST)}")
        return value

    @field_validator("commands")
    @classmethod
    def _commands(cls, value: dict[str, ArgvTemplate]) -> dict[str, ArgvTemplate]:
        if sorted(value) != sorted(MANAGERS):
            raise ValueError(f"commands must give exactly {list(MANAGERS)} (got {sorted(value)})")
        for manager, argv in value.items():
            if not argv or not isinstance(argv[0], str) or "{" in argv[0]:
                raise ValueError(f"{manager}: the first element must be a fixed program name")
            for part in argv:
                for element in part if isinstance(part, list) else [part]:
                    for name in PLACEHOLDER_RE.findall(element):
                        if name not in COMMAND_PLACEHOLDERS:
                            raise ValueError(f"{manager}: unknown placeholder {{{name}}}")
        return value

    @model_validator(mode="after")
    def _disjoint(self) -> Action:
        both = [c for c in self.allow if any(fnmatch.fnmatchcase(c, p) for p in self.refuse)]
        if both:
            raise ValueError(f"categories both allowed and refused: {both}")
        return self

    def refusal(self, category: str) -> str | None:
        """Why this action is not for ``category``; None when the category is allowed."""
        if category in self.allow:
            return None
        for pattern, reason in self.refuse.items():
            if fnmatch.fnmatchcase(category, pattern):
                return reason
        return f"{self.name} is catalogued for {', '.join(self.allow)} only, not for {category}"


class Catalogue(_Strict):
    version: int
    actions: dict[str, Action]
    never_automate: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _named(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("actions"), dict):
            data = {**data, "actions": {k: {"name": k, **(v or {})} for k, v in data["actions"].items()}}
        return data

    @field_validator("actions")
    @classmethod
    def _known_actions(cls, value: dict[str, Action]) -> dict[str, Action]:
        if sorted(value) != sorted(REMEDIATION_ACTIONS):
            raise ValueError(f"must define exactly {list(REMEDIATION_ACTIONS)} (got {sorted(value)})")
        return value

    @field_validator("never_automate")
    @classmethod
    def _never_keys(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = [c for c in value if c not in CATEGORIES]
        if unknown:
            raise ValueError(f"unknown categories {unknown}")
        return value

    def action(self, name: str) -> Action | None:
        return self.actions.get(name)

    def warning(self, category: str) -> str | None:
        """What the runbook would do for ``category`` that gatewatch never automates, for the human."""
        return self.never_automate.get(category)


def load_catalogue(path: Path = CATALOGUE_PATH) -> Catalogue:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Catalogue.model_validate(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogueError(f"{path}: cannot load: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise CatalogueError(f"{path}: {problems}") from None


CATALOGUE = load_catalogue()
