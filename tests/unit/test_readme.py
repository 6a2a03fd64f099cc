"""The README's first screen shows a real verdict: it must still be what `gatewatch diagnose` prints."""

import re
from pathlib import Path

from gatewatch.cli import main

ROOT = Path(__file__).parents[2]


def test_the_readme_verdict_is_what_diagnose_prints(capsys):
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```\n(verdict: .*?)```", readme, re.S).group(1)
    facts = re.search(r"`gatewatch diagnose --facts\s+(\S+)`", readme).group(1)
    assert main(["diagnose", "--facts", str(ROOT / facts)]) == 1
    printed = capsys.readouterr().out.splitlines()
    for line in block.splitlines():
        # "..." stands for text left out; the pieces around it must appear in order on the printed line
        pattern = ".*?".join(re.escape(piece) for piece in line.split("...")) + ".*"
        assert any(re.fullmatch(pattern, out) for out in printed), f"README verdict line is stale: {line}"
