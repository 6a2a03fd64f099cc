"""The Python walker: follow the tree over the signals. Operators are a table, mirrored by the ASL export.

Errors fail closed: an operator that cannot be applied ends the walk at ``unknown`` with the reason.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gatewatch.tree.model import Tree

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "in": lambda actual, allowed: actual in allowed,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}
UNKNOWN_LEAF = "__error__"


@dataclass
class Walk:
    leaf: str  # a leaf id, or UNKNOWN_LEAF when the walk failed
    trail: list[str] = field(default_factory=list)  # node ids visited, in order
    answers: list[bool] = field(default_factory=list)
    error: str | None = None


def walk(tree: Tree, signals: dict[str, Any], max_steps: int = 500) -> Walk:
    result = Walk(leaf=UNKNOWN_LEAF)
    ref = tree.start
    for _ in range(max_steps):
        if tree.is_leaf(ref):
            result.leaf = ref
            return result
        node = tree.nodes[ref]
        result.trail.append(node.id)
        try:
            answer = bool(OPERATORS[node.op](signals[node.signal], node.value))
        except Exception as exc:  # noqa: BLE001 - fail closed to unknown, with the reason
            result.error = f"node {node.id}: cannot evaluate {node.signal} {node.op} {node.value!r}: {exc}"
            return result
        result.answers.append(answer)
        ref = node.yes if answer else node.no
    result.error = f"walk exceeded {max_steps} steps"
    return result


def answers_from_trail(tree: Tree, trail: list[str], leaf: str) -> list[bool]:
    """Recover each node's answer from the nodes visited (how the state machine's trail is read back)."""
    answers = []
    for i, node_id in enumerate(trail):
        nxt = trail[i + 1] if i + 1 < len(trail) else leaf
        node = tree.nodes[node_id]
        if nxt not in (node.yes, node.no):
            raise ValueError(f"trail is not a walk of this tree: {node_id} does not lead to {nxt}")
        answers.append(nxt == node.yes)
    return answers
