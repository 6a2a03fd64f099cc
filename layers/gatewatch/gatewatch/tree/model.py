"""The tree as validated data: loaded once from ``tree.yaml``, checked so that a bad edit fails at import.

Checks: every node asks a registered signal with an operator valid for its type and a value of that type; every
``yes``/``no`` names a node or a leaf; the tree has no cycle and no unreachable part; every leaf has a known
category and a remediation from the catalogue's names (or none).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from gatewatch.tree.signals import SIGNALS

# DESIGN.md's categories (never renamed) plus the ones the evidence called for.
CATEGORIES = (
    "healthy", "transient", "dns_failure", "tls_certificate_invalid", "tls_certificate_expiring",
    "edge_unreachable", "edge_to_origin_blocked", "origin_tls_error", "route_not_found", "assertion_failed",
    "host_unreachable", "proxy_down", "proxy_config_invalid", "proxy_upstream_mismatch", "proxy_header_too_big",
    "proxy_permission_denied", "backend_down", "backend_crash_loop", "backend_not_listening", "port_conflict",
    "backend_hung", "backend_unhealthy", "database_unavailable", "endpoint_error", "firewall_blocked",
    "out_of_memory", "disk_full", "fd_exhausted", "unknown",
    # added: Cloudflare 520 (origin sent garbage) and keep-alive resets are causes of their own
    "origin_bad_response", "proxy_keepalive_reset",
    # DESIGN's vocabulary: a target failing intermittently (gatewatch.moments opens these, not a leaf)
    "flapping",
)
REMEDIATIONS = (None, "restart_backend", "start_proxy", "reload_proxy")
OPS_BY_TYPE = {
    "bool": {"eq", "ne"},
    "string": {"eq", "ne", "in"},
    "number": {"eq", "ne", "in", "lt", "le", "gt", "ge"},
}


class TreeError(ValueError):
    """The tree document is invalid; the message names the node and the fix."""


@dataclass(frozen=True)
class Node:
    id: str
    question: str
    signal: str
    op: str
    value: Any
    yes: str
    no: str
    quote: tuple[str, ...] = ()


@dataclass(frozen=True)
class Leaf:
    id: str
    category: str
    title: str
    explanation: str
    confidence: str = "medium"
    next_steps: tuple[str, ...] = ()
    remediation: str | None = None


@dataclass(frozen=True)
class Tree:
    start: str
    nodes: dict[str, Node]
    leaves: dict[str, Leaf]
    order: tuple[str, ...] = field(default=())  # nodes in document order, for stable output

    def is_leaf(self, ref: str) -> bool:
        return ref in self.leaves


def _type_ok(sig_type: str, value: Any) -> bool:
    if sig_type == "bool":
        return isinstance(value, bool)
    if sig_type == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str)


def build_tree(doc: dict[str, Any]) -> Tree:
    problems: list[str] = []
    nodes: dict[str, Node] = {}
    leaves: dict[str, Leaf] = {}
    for leaf_id, raw in (doc.get("leaves") or {}).items():
        try:
            leaf = Leaf(
                id=leaf_id,
                category=raw["category"],
                title=raw["title"],
                explanation=raw["explanation"],
                confidence=raw.get("confidence", "medium"),
                next_steps=tuple(raw.get("next_steps") or ()),
                remediation=raw.get("remediation"),
            )
        except (KeyError, TypeError) as exc:
            problems.append(f"leaf {leaf_id}: missing {exc}")
            continue
        if leaf.category not in CATEGORIES:
            problems.append(f"leaf {leaf_id}: unknown category {leaf.category!r}; add it to CATEGORIES first")
        if leaf.remediation not in REMEDIATIONS:
            problems.append(f"leaf {leaf_id}: remediation must be one of {REMEDIATIONS[1:]} or absent")
        if leaf.confidence not in ("high", "medium", "low"):
            problems.append(f"leaf {leaf_id}: confidence must be high, medium or low")
        leaves[leaf_id] = leaf
    for node_id, raw in (doc.get("nodes") or {}).items():
        if node_id in leaves:
            problems.append(f"node {node_id}: the id is also a leaf")
        try:
            node = Node(
                id=node_id,
                question=raw["question"],
                signal=raw["signal"],
                op=raw["op"],
                value=raw["value"],
                # YAML 1.1 reads bare yes/no keys as booleans; accept both spellings
                yes=raw["yes"] if "yes" in raw else raw[True],
                no=raw["no"] if "no" in raw else raw[False],
                quote=tuple(raw.get("quote") or ()),
            )
        except (KeyError, TypeError) as exc:
            problems.append(f"node {node_id}: missing {exc}")
            continue
        sig = SIGNALS.get(node.signal)
        if sig is None:
            problems.append(f"node {node_id}: unknown signal {node.signal!r} (see gatewatch/tree/signals.py)")
        else:
            if node.op not in OPS_BY_TYPE[sig.type]:
                problems.append(f"node {node_id}: op {node.op!r} is not valid for a {sig.type} signal")
            values = node.value if node.op == "in" else [node.value]
            if node.op == "in" and not (isinstance(node.value, list) and node.value):
                problems.append(f"node {node_id}: op 'in' needs a non-empty list")
            elif not all(_type_ok(sig.type, v) for v in values):
                problems.append(f"node {node_id}: value {node.value!r} is not a {sig.type}")
        nodes[node_id] = node
    start = doc.get("start")
    if start not in nodes:
        problems.append(f"start {start!r} is not a node")
    for node in nodes.values():
        for ref in (node.yes, node.no):
            if ref not in nodes and ref not in leaves:
                problems.append(f"node {node.id}: {ref!r} is neither a node nor a leaf")
    if not problems:
        problems += _shape_problems(start, nodes, leaves)
    if problems:
        raise TreeError("invalid decision tree:\n  " + "\n  ".join(problems))
    return Tree(start=start, nodes=nodes, leaves=leaves, order=tuple(nodes))


def _shape_problems(start: str, nodes: dict[str, Node], leaves: dict[str, Leaf]) -> list[str]:
    problems: list[str] = []
    seen: set[str] = set()

    def visit(ref: str, stack: tuple[str, ...]) -> None:
        if ref in stack:
            problems.append(f"cycle: {' -> '.join((*stack, ref))}")
            return
        seen.add(ref)
        if ref in nodes:
            for nxt in (nodes[ref].yes, nodes[ref].no):
                visit(nxt, (*stack, ref))

    visit(start, ())
    problems += [f"node {n}: unreachable from start" for n in nodes if n not in seen]
    problems += [f"leaf {leaf}: unreachable from start" for leaf in leaves if leaf not in seen]
    return problems


@lru_cache(maxsize=1)
def load_tree() -> Tree:
    """The packaged tree (validated once per process)."""
    text = resources.files("gatewatch.tree").joinpath("tree.yaml").read_text(encoding="utf-8")
    return build_tree(yaml.safe_load(text))
