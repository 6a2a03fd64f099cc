"""What Lambda gets, rebuilt offline: the layer's pinned requirements, the library and each function's code.

Two checks share this module:

* ``build_import_tree`` + ``import_handler``: the layer's requirements installed for THIS host (same pinned
  versions that ``sam build`` resolves for arm64) into an empty folder, the library copied beside them, and each
  handler imported in a fresh ``python3.12 -I -S`` process whose ``sys.path`` is the standard library, the function's
  code, that folder and a folder holding only the runtime's boto3 (``layers/lock/runtime-boto3.txt``).
* ``python -m tests.artefact check-build DIR``: the ``sam build`` output is under Lambda's 250 MB unzipped limit and
  every compiled module (ELF) in it is aarch64 (ELF header ``e_machine`` 183), since the functions run on arm64.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
LAYER_DIR = REPO_ROOT / "layers" / "gatewatch"
LAYER_REQUIREMENTS = LAYER_DIR / "requirements.txt"
RUNTIME_BOTO3 = REPO_ROOT / "layers" / "lock" / "runtime-boto3.txt"
FUNCTIONS_DIR = REPO_ROOT / "functions"
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
EM_AARCH64, EM_X86_64 = 183, 62
ELF_MAGIC = b"\x7fELF"


def find_python312() -> str | None:
    """python3.12 from PY312 / pyenv / PATH; None when this machine has none."""
    explicit = os.environ.get("PY312")
    if explicit and Path(explicit).exists():
        return explicit
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")))
    if candidates:
        return candidates[-1]
    found = shutil.which("python3.12")  # may be a pyenv shim that answers "command not found": try it
    if found and subprocess.run([found, "-c", "pass"], capture_output=True, check=False).returncode == 0:
        return found
    return None


def _pip_install(python: str, requirements: Path, target: Path) -> None:
    """Exact pins, no dependency resolution: a transitive dependency missing from the lock fails the import."""
    cmd = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
           "--only-binary=:all:", "--target", str(target), "-r", str(requirements)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"pip install -r {requirements.name} failed:\n{proc.stdout}\n{proc.stderr}")


def build_import_tree(python: str, root: Path) -> dict[str, Path]:
    """Build a layer folder (requirements + library, as /opt/python) and a boto3 folder (the runtime's SDK).

    Reused when the requirement files did not change (the key is their hash), so a second run costs nothing.
    """
    key = hashlib.sha256(LAYER_REQUIREMENTS.read_bytes() + RUNTIME_BOTO3.read_bytes()
                         + python.encode()).hexdigest()[:16]
    deps, boto = root / f"deps-{key}", root / f"boto3-{key}"
    root.mkdir(parents=True, exist_ok=True)
    for folder, req in ((deps, LAYER_REQUIREMENTS), (boto, RUNTIME_BOTO3)):
        if not folder.exists():
            # built aside, then renamed into place: several test runs on one machine may race for the cache
            scratch = Path(tempfile.mkdtemp(prefix=f"{folder.name}.", dir=root))
            _pip_install(python, req, scratch)
            try:
                scratch.rename(folder)
            except OSError:
                shutil.rmtree(scratch, ignore_errors=True)  # another run finished first: same pins, same content
    layer = Path(tempfile.mkdtemp(prefix="layer.", dir=root))
    shutil.copytree(deps, layer, dirs_exist_ok=True)
    shutil.copytree(LAYER_DIR / "gatewatch", layer / "gatewatch",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return {"layer": layer, "boto3": boto}


# Run inside the fresh interpreter: only the standard library (no site-packages), the function, the layer, boto3.
_CHILD = r"""
import importlib, json, sys, traceback
paths = json.loads(sys.argv[1])
stdlib = [p for p in sys.path if p and "site-packages" not in p and "dist-packages" not in p]
sys.path[:] = paths + stdlib
out = {"sys_path": sys.path, "errors": {}}
for name in json.loads(sys.argv[2]):
    try:
        module = importlib.import_module(name)
        if name == "app" and not callable(getattr(module, "handler", None)):
            raise AttributeError("app.handler is missing or not callable")
    except BaseException as exc:  # noqa: BLE001 - every import failure is reported, none stops the others
        out["errors"][name] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
print(json.dumps(out))
"""


def import_in_fresh_process(python: str, paths: list[Path], modules: list[str], env: dict[str, str],
                            cwd: Path) -> dict[str, Any]:
    proc = subprocess.run([python, "-I", "-S", "-c", _CHILD, json.dumps([str(p) for p in paths]),
                           json.dumps(modules)], capture_output=True, text=True, env=env, cwd=str(cwd),
                          timeout=120, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"the import process failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def lambda_environment(function_env: dict[str, str], function_name: str, tmp: Path) -> dict[str, str]:
    """What the Lambda runtime sets, plus the template's variables (no inherited environment at all)."""
    env = {
        "PATH": "/usr/bin:/bin", "LANG": "en_US.UTF-8", "TZ": ":UTC", "HOME": str(tmp),
        "AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "ASIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "example", "AWS_SESSION_TOKEN": "example",
        "AWS_LAMBDA_FUNCTION_NAME": function_name, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR", "_HANDLER": "app.handler", "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.update(function_env)
    return env


# -- the sam build output -------------------------------------------------------------------------------------------

def elf_machine(path: Path) -> int | None:
    """``e_machine`` of an ELF file (None when the file is not ELF)."""
    with open(path, "rb") as fh:
        head = fh.read(20)
    if len(head) < 20 or head[:4] != ELF_MAGIC:
        return None
    endian = "<" if head[5] == 1 else ">"
    return struct.unpack(endian + "H", head[18:20])[0]


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in LAYER_REQUIREMENTS.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[_norm(name.split("[")[0])] = version
    return pins


def lock_mismatches(build_dir: Path) -> list[str]:
    """What sam build installed (``*.dist-info`` in the layer) must be exactly the lock: same names, same versions."""
    built = {}
    for info in build_dir.glob("*/python/*.dist-info"):
        name, _, version = info.name[: -len(".dist-info")].rpartition("-")
        built[_norm(name)] = version
    pins = lock_pins()
    if not built:
        return ["no *.dist-info under */python/: the layer was not built"]
    return [f"{name}: built {built.get(name)}, locked {pins.get(name)}"
            for name in sorted(set(built) | set(pins)) if built.get(name) != pins.get(name)]


PYC_UNCHECKED_HASH = 0b01  # PEP 552 flags: hash-based, not checked against the source


def bytecode_problems(build_dir: Path) -> list[str]:
    """Every module of the layer ships its python3.12 bytecode, hash-based and unchecked: /opt is read-only, so a
    missing or stale .pyc is compiled again at every cold start (layers/gatewatch/Makefile says why)."""
    problems = []
    sources = [p for p in build_dir.glob("*/python/**/*.py") if "__pycache__" not in p.parts]
    if not sources:
        return ["no .py under */python/: the layer was not built"]
    for source in sources:
        pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-312.pyc"
        if not pyc.is_file():
            problems.append(f"{source.relative_to(build_dir)} has no python3.12 bytecode")
            continue
        with open(pyc, "rb") as fh:
            flags = struct.unpack("<I", fh.read(8)[4:8])[0]
        if flags != PYC_UNCHECKED_HASH:
            problems.append(f"{pyc.relative_to(build_dir)} is not an unchecked-hash pyc (flags {flags})")
    print(f"check-build: {len(sources)} modules, each with unchecked-hash python3.12 bytecode: {not problems}")
    return problems[:20]


def check_build(build_dir: Path) -> list[str]:
    """Problems with a ``sam build`` output folder (empty list: fine). Prints the figures it measured."""
    if not build_dir.is_dir():
        return [f"{build_dir} does not exist: run sam build first"]
    problems: list[str] = []
    total, elf_files = 0, 0
    for path in build_dir.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        total += path.stat().st_size
        machine = elf_machine(path)
        if machine is None:
            continue
        elf_files += 1
        if machine != EM_AARCH64:
            problems.append(f"{path.relative_to(build_dir)} is not aarch64 (ELF e_machine {machine})")
    problems += lock_mismatches(build_dir)
    problems += bytecode_problems(build_dir)
    print(f"check-build: {build_dir}: {total / 1024 / 1024:.1f} MB unzipped (limit 250 MB), "
          f"{elf_files} compiled modules, all aarch64: {not problems}")
    if total >= LAMBDA_UNZIPPED_LIMIT:
        problems.append(f"the build is {total} bytes unzipped, over Lambda's {LAMBDA_UNZIPPED_LIMIT}")
    if elf_files == 0:
        problems.append("no compiled module found: the layer's requirements (cryptography, pydantic-core) are missing")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.artefact")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check-build", help="size and architecture of a sam build output")
    check.add_argument("build_dir", nargs="?", default=str(REPO_ROOT / ".aws-sam" / "build"))
    args = parser.parse_args(argv)
    problems = check_build(Path(args.build_dir))
    for problem in problems:
        print(f"check-build: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["build_import_tree", "bytecode_problems", "check_build", "elf_machine", "find_python312",
           "import_in_fresh_process", "lambda_environment"]
