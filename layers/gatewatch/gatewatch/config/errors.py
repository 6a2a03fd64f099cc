"""Config errors as data: one problem per field, each naming where it is written, the field path and the fix."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    path: str  # e.g. "targets[0].host.backend_port"; "(file)" for the document itself
    message: str
    line: int | None = None  # 1-based, where the value (or, for an unknown key, the key) is written
    column: int | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    def located(self, source: str) -> str:
        """``file:line:column: path: message``, the form editors and terminals turn into a link."""
        where = f"{source}:{self.line}:{self.column}" if self.line else source
        what = "" if self.path == "(file)" else f"{self.path}: "
        return f"{where}: {what}{self.message}"


class ConfigError(Exception):
    """Raised with every problem found, so a user fixes them all in one pass."""

    def __init__(self, source: str, problems: list[Problem]):
        self.source = source
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        lines = [p.located(self.source) for p in self.problems]
        if len(self.problems) > 1:
            lines.append(f"{len(self.problems)} problems in {self.source}")
        return "\n".join(lines)
