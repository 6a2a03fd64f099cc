"""yaml12 parses with libyaml when it can (a 10,000-target file: 2.3 s of CPU instead of 7.2 s, which a sharded
round's cold workers each pay) and must mean exactly what the pure-Python loader means: same data, same positions,
same YAML 1.2 types, same messages. And no depth of nesting is a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gatewatch.config import yaml12
from gatewatch.config.loader import ConfigError, load_config_text

REPO = Path(__file__).resolve().parents[2]
TEXTS = {
    "example": (REPO / "examples" / "targets.yaml").read_text(),
    "yaml 1.2 scalars": "a: off\nb: yes\nc: 0o17\nd: 0x1F\ne: 012\nf: .inf\ng: ~\nh: 1_000\ni: 2026-11-28\nj: '08'\n",
    "anchors and merge": "base: &b {x: 1, y: [1, 2]}\nuse:\n  <<: *b\n  y: 3\nlist: [*b, *b]\n",
    "unicode and block scalars": "name: caf\u00e9\ntext: |\n  two\n  lines\nfolded: >\n  one\n  line\n",
}


@pytest.mark.skipif(yaml12._CLoader12 is None, reason="pyyaml without libyaml")
@pytest.mark.parametrize("name", TEXTS)
def test_libyaml_and_pure_python_read_the_same(name):
    text = TEXTS[name]
    fast = yaml12._parse_with(yaml12._CLoader12, text)
    slow = yaml12._parse_with(yaml12.Loader12, text)
    assert fast[0] == slow[0]
    assert fast[1].values == slow[1].values and fast[1].keys == slow[1].keys


def test_yaml_1_2_types_hold_on_the_fast_path():
    data, _ = yaml12.parse(TEXTS["yaml 1.2 scalars"])
    assert data == {"a": "off", "b": "yes", "c": 15, "d": 31, "e": 12, "f": float("inf"), "g": None,
                    "h": "1_000", "i": "2026-11-28", "j": "08"}


@pytest.mark.parametrize("text,line", [
    ("a: 1\na: 2\n", 2),                      # duplicate key: found by the walk, on either loader
    ("a: [1, 2\nb: 3\n", None),               # unclosed flow sequence: libyaml refuses, Python words it
    ("a:\n  - b\n c: 1\n", 3),                # bad indentation
])
def test_errors_are_worded_by_the_pure_python_loader(text, line):
    with pytest.raises(yaml12.YAMLProblem) as fast:
        yaml12.parse(text)
    with pytest.raises(yaml12.YAMLProblem) as slow:
        yaml12._parse_with(yaml12.Loader12, text)
    assert (fast.value.message, fast.value.line, fast.value.column) == \
        (slow.value.message, slow.value.line, slow.value.column)
    if line is not None:
        assert fast.value.line == line


@pytest.mark.parametrize("text", [
    "targets: " + "[" * 5000 + "]" * 5000 + "\n",           # flow: the composer's recursion
    "targets: " + "[" * 100 + "]" * 100 + "\n",             # under the recursion limit, over MAX_DEPTH
    "targets:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(300)) + "  " * 301 + "v: 1\n",  # block
])
def test_deep_nesting_is_a_config_error_not_a_traceback(text):
    with pytest.raises(ConfigError) as err:
        load_config_text(text, source="deep.yaml", environ={})
    assert "nested more than 64 levels deep" in str(err.value)


def test_a_large_fleet_parses_with_libyaml():
    targets = [{"name": f"t{i:04d}", "url": f"https://a.test/{i}"} for i in range(2000)]
    text = yaml.safe_dump({"targets": targets})
    config = load_config_text(text, source="big.yaml", environ={})
    assert len(config.targets) == 2000 and config.targets[-1].name == "t1999"
