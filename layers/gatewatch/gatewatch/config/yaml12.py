"""YAML that cannot surprise: the YAML 1.2 core schema on top of PyYAML, duplicate keys rejected, positions kept.

PyYAML implements YAML 1.1, where ``off``, ``no``, ``on``, ``yes`` are booleans, ``0755`` is octal, ``1:30`` is
ninety and an unquoted date becomes a ``datetime``. Here only ``true``/``false`` are booleans, integers are decimal
(or ``0o``/``0x``), ``null``/``~``/empty are null, and everything else is a string, as YAML 1.2 (and every editor
using the JSON Schema) reads it. ``<<`` merge keys keep working.

``parse`` returns the data and a ``Positions`` map from a field path (``("targets", 0, "host", "backend_port")``)
to the line and column where it is written, so every config problem can point at its place in the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_DEPTH = 64  # a targets file is at most ~8 levels deep; far deeper is an attack on the parser's recursion
MAX_NODES = 200_000  # aliases may expand a small file into a huge document: refuse past this many values

Path = tuple[str | int, ...]


class YAMLProblem(Exception):
    def __init__(self, message: str, line: int | None = None, column: int | None = None, path: Path = ()):
        super().__init__(message)
        self.message, self.line, self.column, self.path = message, line, column, path


class Loader12(yaml.SafeLoader):
    """SafeLoader with the YAML 1.2 core schema's implicit types instead of YAML 1.1's."""

    yaml_implicit_resolvers: dict[str | None, list[tuple[str, re.Pattern[str]]]] = {}

    def construct_yaml_int(self, node: ScalarNode) -> int:  # type: ignore[override]
        value = str(self.construct_scalar(node))
        sign = -1 if value.startswith("-") else 1
        body = value.lstrip("+-")
        if body.startswith("0o"):
            return sign * int(body[2:], 8)
        if body.startswith("0x"):
            return sign * int(body[2:], 16)
        return sign * int(body, 10)


Loader12.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                               list("tTfF"))
Loader12.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"),
                               ["~", "n", "N", ""])
Loader12.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
                               list("-+0123456789"))
Loader12.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+.0123456789"),
)
Loader12.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^<<$"), ["<"])
Loader12.add_constructor("tag:yaml.org,2002:int", Loader12.construct_yaml_int)


@dataclass
class Positions:
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def at(self, path: Path, key: bool = False) -> tuple[int, int] | None:
        """Where ``path`` is written (its key when ``key``); for a missing field, where its nearest parent is."""
        if key and path in self.keys:
            return self.keys[path]
        p = tuple(path)
        while p:
            if p in self.values:
                return self.values[p]
            p = p[:-1]
        return self.values.get(())


def _mark(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _walk(node: Node, path: Path, pos: Positions, budget: list[int]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise YAMLProblem(f"the document expands to more than {MAX_NODES} values (aliases?); write it out plainly")
    if len(path) > MAX_DEPTH:
        line, col = _mark(node)
        raise YAMLProblem(f"nested more than {MAX_DEPTH} levels deep; a targets file needs far fewer", line, col,
                          path[:MAX_DEPTH])
    pos.values.setdefault(path, _mark(node))
    if isinstance(node, MappingNode):
        seen: dict[str, tuple[int, int]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = str(key_node.value) if isinstance(key_node, ScalarNode) else None
            if key is None:
                line, col = _mark(key_node)
                raise YAMLProblem("mapping keys must be plain names, not lists or mappings", line, col, path)
            if key in seen:
                line, col = _mark(key_node)
                first = seen[key]
                raise YAMLProblem(
                    f"duplicate key {key!r} (first written on line {first[0]}); keep one of them", line, col,
                    (*path, key),
                )
            seen[key] = _mark(key_node)
            pos.keys.setdefault((*path, key), _mark(key_node))
            _walk(value_node, (*path, key), pos, budget)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), pos, budget)


_CBase = getattr(yaml, "CSafeLoader", None)  # libyaml's parser, when pyyaml was built with it (the layer's is)
if _CBase is not None:
    class _CLoader12(_CBase):  # type: ignore[misc, valid-type]
        """The same YAML 1.2 types over libyaml's parser: a 10,000-target file in 2.7 s of CPU, not 7.2 s."""

        yaml_implicit_resolvers = Loader12.yaml_implicit_resolvers
        yaml_constructors = Loader12.yaml_constructors
else:  # pragma: no cover - pyyaml without libyaml
    _CLoader12 = None


def parse(text: str) -> tuple[Any, Positions]:
    """The data of a one-document YAML text and where each value sits; ``YAMLProblem`` when it is not valid.

    libyaml parses when it is there; a text it refuses is parsed again by the pure-Python loader, whose messages
    (and their line numbers) are the ones users and tests read."""
    if _CLoader12 is not None:
        try:
            return _parse_with(_CLoader12, text)
        except YAMLProblem:
            pass
    return _parse_with(Loader12, text)


def _parse_with(loader_class: type, text: str) -> tuple[Any, Positions]:
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        pos = Positions()
        if node is None:
            return None, pos
        _walk(node, (), pos, [MAX_NODES])
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or str(exc)
        if exc.context and exc.problem and exc.problem.startswith("but "):  # "expected X" + "but found Y"
            problem = f"{exc.context}, {exc.problem}"
        if mark is None:
            raise YAMLProblem(f"not valid YAML: {problem}") from None
        raise YAMLProblem(f"not valid YAML: {problem}", mark.line + 1, mark.column + 1) from None
    except yaml.YAMLError as exc:
        raise YAMLProblem(f"not valid YAML: {exc}") from None
    except RecursionError:  # the composer recurses per level: thousands of [[[[ exhaust the stack first
        raise YAMLProblem(f"nested more than {MAX_DEPTH} levels deep; a targets file needs far fewer") from None
    finally:
        loader.dispose()
    return data, pos
