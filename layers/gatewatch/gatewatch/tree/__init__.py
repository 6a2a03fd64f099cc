"""The root-cause decision tree: data (tree.yaml), signals, a small walker, the verdict renderer, exports."""

from __future__ import annotations

from typing import Any

from gatewatch.tree.engine import UNKNOWN_LEAF, Walk, answers_from_trail, walk
from gatewatch.tree.model import CATEGORIES, Tree, TreeError, load_tree
from gatewatch.tree.signals import SIGNALS, derive
from gatewatch.tree.verdict import render


def diagnose(facts: dict[str, Any], tree: Tree | None = None) -> dict[str, Any]:
    """Walk the tree over a facts document and return the verdict (never raises on bad facts)."""
    tree = tree or load_tree()
    signals, errors = derive(facts)
    run = walk(tree, signals)
    verdict = render(tree, run, facts, signals)
    if errors:
        verdict["signal_errors"] = errors
    return verdict


def verdict_from_trail(facts: dict[str, Any], leaf: str, trail: list[str], tree: Tree | None = None,
                       error: str | None = None) -> dict[str, Any]:
    """The verdict for a walk made elsewhere (the state machine): same renderer, same texts."""
    tree = tree or load_tree()
    signals, errors = derive(facts)
    if leaf == UNKNOWN_LEAF:
        run = Walk(leaf=UNKNOWN_LEAF, trail=[], answers=[], error=error)
    else:
        run = Walk(leaf=leaf, trail=trail, answers=answers_from_trail(tree, trail, leaf))
    verdict = render(tree, run, facts, signals)
    if errors:
        verdict["signal_errors"] = errors
    return verdict


__all__ = ["CATEGORIES", "SIGNALS", "Tree", "TreeError", "derive", "diagnose", "load_tree", "verdict_from_trail",
           "walk"]
