"""Draw the tree: indented text for terminals, Mermaid for the README."""

from __future__ import annotations

from gatewatch.tree.model import Tree


def _cond(node) -> str:
    value = node.value
    if isinstance(value, bool):
        value = str(value).lower()
    return f"{node.signal} {node.op} {value}"


def to_text(tree: Tree) -> str:
    lines: list[str] = []
    seen: set[str] = set()

    def emit(ref: str, depth: int, label: str) -> None:
        pad = "  " * depth
        if tree.is_leaf(ref):
            leaf = tree.leaves[ref]
            action = f" [allows {leaf.remediation}]" if leaf.remediation else ""
            lines.append(f"{pad}{label}=> {leaf.category} ({ref}){action}")
            return
        node = tree.nodes[ref]
        if ref in seen:
            lines.append(f"{pad}{label}-> see {ref}")
            return
        seen.add(ref)
        lines.append(f"{pad}{label}{ref}: {node.question}  [{_cond(node)}]")
        emit(node.yes, depth + 1, "yes ")
        emit(node.no, depth + 1, "no  ")

    emit(tree.start, 0, "")
    return "\n".join(lines) + "\n"


def _esc(text: str) -> str:
    return text.replace('"', "#quot;").replace("`", "'")


def to_mermaid(tree: Tree) -> str:
    lines = ["flowchart TD"]
    for node_id in tree.order:
        node = tree.nodes[node_id]
        lines.append(f'  {node_id}{{"{_esc(node.question)}"}}')
    for leaf_id, leaf in tree.leaves.items():
        extra = f"<br/>allows {leaf.remediation}" if leaf.remediation else ""
        lines.append(f'  L_{leaf_id}(["{leaf.category}{extra}"])')
    for node_id in tree.order:
        node = tree.nodes[node_id]
        for label, ref in (("yes", node.yes), ("no", node.no)):
            target = f"L_{ref}" if tree.is_leaf(ref) else ref
            lines.append(f"  {node_id} -->|{label}| {target}")
    return "\n".join(lines) + "\n"


README_BEGIN = "<!-- BEGIN GENERATED: gatewatch tree --format mermaid -->"
README_END = "<!-- END GENERATED -->"


def readme_block(tree: Tree) -> str:
    return f"{README_BEGIN}\n```mermaid\n{to_mermaid(tree)}```\n{README_END}"


def update_readme(text: str, tree: Tree) -> str:
    """The README with its generated tree picture replaced (the markers must be there)."""
    start, end = text.index(README_BEGIN), text.index(README_END) + len(README_END)
    return text[:start] + readme_block(tree) + text[end:]


def main(argv: list[str] | None = None) -> int:
    """``python -m gatewatch.tree.export --write ROOT``: regenerate the ASL definition and the README picture."""
    import argparse
    from pathlib import Path

    from gatewatch.tree.asl import to_asl
    from gatewatch.tree.model import load_tree

    parser = argparse.ArgumentParser(prog="python -m gatewatch.tree.export")
    parser.add_argument("--write", metavar="ROOT", required=True, help="the repository root")
    root = Path(parser.parse_args(argv).write)
    tree = load_tree()
    (root / "infra" / "statemachine" / "diagnose.asl.json").write_text(to_asl(tree))
    readme = root / "README.md"
    readme.write_text(update_readme(readme.read_text(), tree))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
