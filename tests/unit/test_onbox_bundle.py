"""The on-box package: stdlib-only modules, one registry in report order, one deterministic zipapp that runs."""

from __future__ import annotations

import ast
import io
import json
import subprocess
import sys
import zipfile

from gatewatch.onbox import CHECK_NAMES, PACKAGE_DIR, script_path
from gatewatch.onbox.bundle import VENDORED, ZIP_PACKAGE, package_files, zipapp_bytes
from gatewatch.onbox.checks import registry


def test_every_module_imports_only_the_standard_library_or_its_siblings():
    for path in package_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = [(node.module or "").split(".")[0]]
            else:
                continue
            if isinstance(node, ast.ImportFrom) and node.module == "gatewatch.hostpaths":
                continue  # allowlist.py's fallback in the library: the zipapp carries that very file (VENDORED)
            foreign = [r for r in roots if r not in sys.stdlib_module_names and r != "__future__"]
            assert not foreign, f"{path.name} imports {foreign}: the host has only the standard library"


def test_the_registry_holds_every_check_once_in_report_order():
    assert [name for name, _ in registry.load_all()] == list(CHECK_NAMES)


def test_the_zipapp_is_deterministic_and_holds_the_package_and_a_main():
    first, second = zipapp_bytes(), zipapp_bytes()
    assert first == second
    names = zipfile.ZipFile(io.BytesIO(first)).namelist()
    assert "__main__.py" in names
    assert sorted(n for n in names if n != "__main__.py") == sorted(
        [f"{ZIP_PACKAGE}/{p.name}" for p in PACKAGE_DIR.glob("*.py")] + [f"{ZIP_PACKAGE}/{n}" for n in VENDORED])


def test_the_zipapp_runs_as_a_program_and_prints_one_report(tmp_path):
    proc = subprocess.run([sys.executable, str(script_path()), "b64:e30="], capture_output=True, text=True,
                          timeout=30, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [k for k in report if k not in ("schema", "meta")] == list(CHECK_NAMES)
    assert oct(script_path().stat().st_mode & 0o777) == "0o644"


def test_stripping_removes_comments_and_docstrings_and_keeps_every_string_that_is_data():
    from gatewatch.onbox.bundle import strip_source

    source = (
        '"""Module doc."""\n# a comment\nfrom __future__ import annotations\n\n\n'
        'def f():\n    """Only a docstring."""\n\n\n'
        'def g():\n    text = """line one  \n\n  # not a comment\n"""  # a comment\n    return text\n'
    )
    stripped = strip_source(source)
    assert "Module doc" not in stripped and "a comment\n" not in stripped.replace("# not a comment", "")
    namespace: dict = {}
    exec(compile(stripped, "x", "exec"), namespace)
    assert namespace["f"]() is None
    assert namespace["g"]() == "line one  \n\n  # not a comment\n"
    for path in package_files():
        compile(strip_source(path.read_text()), path.name, "exec")
