"""Help text: every option of every command says what it does, and every command's --help ends with examples."""

import argparse

import pytest

from gatewatch.cli import build_parser


def _parsers():
    """(command path, parser) for the top level and every (nested) sub-command."""
    out = []

    def walk(path, parser):
        out.append((path, parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(f"{path} {name}", sub)

    walk("gatewatch", build_parser())
    return out


PARSERS = _parsers()


@pytest.mark.parametrize("path, parser", PARSERS, ids=[p for p, _ in PARSERS])
def test_every_option_has_help(path, parser):
    missing = [a.option_strings or [a.dest] for a in parser._actions
               if not isinstance(a, argparse._SubParsersAction) and not a.help]
    assert not missing, f"{path}: give these a help= text: {missing}"


@pytest.mark.parametrize("path, parser", PARSERS, ids=[p for p, _ in PARSERS])
def test_every_help_ends_with_examples(path, parser):
    text = parser.format_help().rstrip()
    tail = text[text.rfind("examples:"):] if "examples:" in text else ""
    assert tail, f"{path} --help: end it with examples (gatewatch.cli.output.examples(...) as epilog=)"
    lines = [line for line in tail.splitlines()[1:] if line.strip()]
    assert 1 <= len([line for line in lines if line.strip().startswith(("gatewatch", "sudo"))]) <= 3, tail
