"""Every handler imports in what Lambda runs: the layer's pinned requirements, the library, the runtime's boto3.

The dev venv hides missing runtime dependencies (moto pulls in aws-xray-sdk, which Powertools' Tracer needs), so
this test builds the artefact from the pins alone and imports each handler in a fresh python3.12 with nothing else
on ``sys.path``, with the template's environment variables. Where python3.12 is absent the test fails under CI
(``CI`` set) and is skipped with the reason elsewhere.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import pytest

from gatewatch.aws.template_schema import load_template
from tests.artefact import (
    FUNCTIONS_DIR,
    LAYER_REQUIREMENTS,
    build_import_tree,
    find_python312,
    import_in_fresh_process,
    lambda_environment,
)

CACHE = Path(os.environ.get("GATEWATCH_ARTEFACT_CACHE", "/tmp/gatewatch-artefact-cache"))  # noqa: S108
# Imported lazily inside handlers (first invocation, not init): import them too, or a missing module hides there.
LAZY_MODULES = [
    "gatewatch.aws.runtime", "gatewatch.store.dynamodb", "gatewatch.notify.sns", "gatewatch.runner.ssm",
    "gatewatch.steps", "gatewatch.probe.tls_info", "aws_lambda_powertools.utilities.parameters",
    "aws_lambda_powertools.utilities.idempotency", "aws_lambda_powertools.utilities.idempotency.persistence.dynamodb",
]


@pytest.fixture(scope="module")
def python312() -> str:
    python = find_python312()
    if python is None:
        message = "python3.12 (the Lambda runtime) is not installed: the built-artefact import test cannot run"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must provide it)")
        pytest.skip(message)
    return python


@pytest.fixture(scope="module")
def tree(python312) -> dict[str, Path]:
    import shutil

    built = build_import_tree(python312, CACHE)
    yield built
    shutil.rmtree(built["layer"], ignore_errors=True)


def _placeholder(value) -> str:
    """A template value as Lambda would see it: references become plausible names, strings stay."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        (fn, arg), = value.items()
        name = arg if isinstance(arg, str) else str(arg[0] if isinstance(arg, list) else arg)
        return f"gatewatch-{re.sub(r'[^A-Za-z0-9]', '', name)}"
    return str(value)


def _functions() -> list[tuple[str, str, dict[str, str]]]:
    template = load_template()
    glob_vars = template["Globals"]["Function"]["Environment"]["Variables"]
    out = []
    for logical_id, res in template["Resources"].items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        props = res["Properties"]
        folder = Path(props["CodeUri"]).name
        variables = {**glob_vars, **props.get("Environment", {}).get("Variables", {})}
        out.append((logical_id, folder, {k: _placeholder(v) for k, v in variables.items()}))
    return out


FUNCTIONS = _functions()


def test_every_function_in_the_template_has_code():
    assert FUNCTIONS, "the template declares no function"
    for logical_id, folder, _ in FUNCTIONS:
        assert (FUNCTIONS_DIR / folder / "app.py").exists(), f"{logical_id}: functions/{folder}/app.py is missing"


def test_layer_requirements_are_exact_pins():
    """One lock: every line is name==version, so what is tested is what sam build ships."""
    lines = [ln.split("#")[0].strip() for ln in LAYER_REQUIREMENTS.read_text().splitlines()]
    pins = [ln for ln in lines if ln]
    assert pins
    loose = [ln for ln in pins if not re.fullmatch(r"[A-Za-z0-9_.\-]+(\[[a-z0-9,\-]+\])?==[0-9][^\s;]*", ln)]
    assert not loose, f"not exact pins in {LAYER_REQUIREMENTS.name}: {loose}"


@pytest.mark.parametrize(("logical_id", "folder", "variables"), FUNCTIONS, ids=[f[0] for f in FUNCTIONS])
def test_handler_imports_in_the_built_artefact(tree, python312, tmp_path, logical_id, folder, variables):
    code = tmp_path / "task"
    code.mkdir()
    for item in (FUNCTIONS_DIR / folder).iterdir():
        if item.is_file() and item.suffix == ".py":
            (code / item.name).write_bytes(item.read_bytes())
    env = lambda_environment(variables, f"gatewatch-{logical_id}", tmp_path)
    result = import_in_fresh_process(python312, [code, tree["layer"], tree["boto3"]], ["app", *LAZY_MODULES],
                                     env, cwd=tmp_path)
    site = [p for p in result["sys_path"] if "site-packages" in p]
    assert not site, f"the import process saw site-packages: {site}"
    assert not result["errors"], f"{logical_id} fails at init in the built artefact: {result['errors']}"


def _elf(path: Path, machine: int) -> None:
    header = bytearray(64)
    header[:4], header[4], header[5] = b"\x7fELF", 2, 1
    header[18:20] = machine.to_bytes(2, "little")
    path.write_bytes(bytes(header))


def test_check_build_rejects_x86_modules_and_lock_drift(tmp_path):
    from tests.artefact import EM_AARCH64, EM_X86_64, check_build, elf_machine, lock_pins

    layer = tmp_path / "GatewatchLayer" / "python"
    layer.mkdir(parents=True)
    for name, version in lock_pins().items():
        (layer / f"{name.replace('-', '_')}-{version}.dist-info").mkdir()
    _elf(layer / "good.so", EM_AARCH64)
    assert elf_machine(layer / "good.so") == EM_AARCH64
    _module_with_pyc(layer / "mod.py", flags=0b01)
    assert check_build(tmp_path) == []
    _elf(layer / "bad.so", EM_X86_64)
    (layer / "extra_pkg-1.0.dist-info").mkdir()
    problems = check_build(tmp_path)
    assert any("bad.so is not aarch64 (ELF e_machine 62)" in p for p in problems)
    assert any(p.startswith("extra-pkg: built 1.0, locked None") for p in problems)


def _module_with_pyc(source: Path, flags: int | None) -> None:
    source.write_text("x = 1\n")
    if flags is not None:
        cache = source.parent / "__pycache__"
        cache.mkdir(exist_ok=True)
        # PEP 552 header: magic, flags, then 8 bytes (mtime+size or the source hash); only the flags are read
        (cache / f"{source.stem}.cpython-312.pyc").write_bytes(b"\xcb\r\r\n" + struct.pack("<I", flags) + bytes(8))


def test_check_build_rejects_a_layer_without_unchecked_bytecode(tmp_path):
    """BuildMethod python3.12 shipped no .pyc: every cold start compiled the library again on read-only /opt."""
    from tests.artefact import bytecode_problems

    layer = tmp_path / "GatewatchLayer" / "python"
    layer.mkdir(parents=True)
    _module_with_pyc(layer / "good.py", flags=0b01)
    assert bytecode_problems(tmp_path) == []
    _module_with_pyc(layer / "missing.py", flags=None)
    _module_with_pyc(layer / "stale_by_mtime.py", flags=0)  # a timestamp pyc: zip times may not match it
    problems = bytecode_problems(tmp_path)
    assert any("missing.py has no python3.12 bytecode" in p for p in problems)
    assert any("stale_by_mtime.cpython-312.pyc is not an unchecked-hash pyc (flags 0)" in p for p in problems)
