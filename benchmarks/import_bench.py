"""Cold import of every Lambda handler against the built layer, as Lambda's Python 3.12 runtime does it.

The layer is what ``sam build`` ships: the layer's requirements (plus boto3, which the runtime provides, and
aws-xray-sdk, which Powertools' Tracer needs) installed into one folder with python3.12 for this machine's
platform, and the library copied beside them with its bytecode compiled (``--no-bytecode`` leaves it out, to
show what bytecode saves). Each handler is imported in ``--runs`` fresh processes
(``python3.12 -X importtime -c 'import app'``, ``sys.path`` = the function's folder and the layer only), with
the template's environment and ``LAMBDA_TASK_ROOT`` set so Powertools' Tracer is live as in Lambda. Prints the
median, min and max cumulative import time per handler and the slowest top-level imports of the median run.

Usage: ``python benchmarks/import_bench.py [--runs 5] [--layer DIR] [--json FILE]``. ``--layer DIR`` reuses an
existing layer folder (its requirements are not reinstalled; the library in it is used as it is).
Goal (issue 13): <= 300 ms per handler on a full core.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "layers" / "gatewatch"
HANDLERS = ("probe", "facts", "record", "guard", "reprobe")
EXTRA = ("boto3", "aws-xray-sdk")  # the runtime's boto3; the Tracer's X-Ray SDK (Powertools' tracer extra)
WORK = Path(os.environ.get("GATEWATCH_BENCH_DIR", "/tmp/gatewatch-bench"))
GOAL_MS = 300.0


def python312() -> str:
    candidates = [shutil.which("python3.12"), *sorted(Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"))]
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "-c", ""], capture_output=True, check=False).returncode == 0:
            return str(candidate)  # (a pyenv shim without a 3.12 selected fails here)
    raise SystemExit("python3.12 not found (Lambda's runtime); install it or put it on PATH")


def build_layer(py: str, bytecode: bool) -> Path:
    """The dependencies once per requirements file (cached), the library fresh every run."""
    reqs = (LIBRARY / "requirements.txt").read_text()
    key = hashlib.sha256((reqs + " ".join(EXTRA)).encode()).hexdigest()[:12]
    deps = WORK / f"deps-{key}"
    if not deps.exists():
        tmp = deps.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run([py, "-m", "pip", "install", "-q", "--target", str(tmp), "-r",
                        str(LIBRARY / "requirements.txt"), *EXTRA], check=True)
        subprocess.run([py, "-m", "compileall", "-q", "-j", "0", str(tmp)], check=False)
        tmp.rename(deps)
    layer = WORK / ("layer" if bytecode else "layer-nobytecode")
    shutil.rmtree(layer, ignore_errors=True)
    shutil.copytree(deps, layer, symlinks=True)
    shutil.copytree(LIBRARY / "gatewatch", layer / "gatewatch",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if bytecode:
        subprocess.run([py, "-m", "compileall", "-q", "-j", "0", str(layer / "gatewatch")], check=True)
    else:
        for cache in layer.rglob("__pycache__"):
            shutil.rmtree(cache)
    return layer


def lambda_env(layer: Path, handler: str) -> dict[str, str]:
    """The template's Globals environment (names only matter), and what Lambda itself sets."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env |= {
        "PYTHONPATH": str(layer), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
        "LAMBDA_TASK_ROOT": str(ROOT / "functions" / handler), "AWS_LAMBDA_FUNCTION_NAME": f"gatewatch-{handler}",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "gatewatch", "POWERTOOLS_METRICS_NAMESPACE": "Gatewatch",
        "TABLE_NAME": "gatewatch", "TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:gatewatch",
        "TARGETS_PARAMETER": "/gatewatch/targets", "REMEDIATION_CEILING": "suggest",
        "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:gatewatch",
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",  # never used: nothing is called
    }
    return env


def import_once(py: str, layer: Path, handler: str) -> tuple[float, list[tuple[float, str]]]:
    """One fresh process: (cumulative ms of ``import app``, [(cumulative ms, module) of top-level imports])."""
    folder = ROOT / "functions" / handler
    proc = subprocess.run([py, "-S", "-X", "importtime", "-c", "import app"], cwd=folder, capture_output=True,
                          text=True, env=lambda_env(layer, handler), check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{handler}: import failed\n{proc.stderr[-2000:]}")
    total, top = None, []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line or "cumulative" in line:
            continue
        _self, cumulative, name = (part.strip() for part in line[len("import time:"):].split("|"))
        if name == "app":
            total = int(cumulative) / 1000
        elif not name.startswith(" "):
            top.append((int(cumulative) / 1000, name))
    if total is None:
        raise SystemExit(f"{handler}: no import time for app in\n{proc.stderr[-2000:]}")
    return total, sorted(top, reverse=True)[:6]


def measure(py: str, layer: Path, runs: int) -> dict[str, dict]:
    out = {}
    for handler in HANDLERS:
        samples = [import_once(py, layer, handler) for _ in range(runs)]
        totals = [s[0] for s in samples]
        median = statistics.median(totals)
        top = min(samples, key=lambda s: abs(s[0] - median))[1]
        out[handler] = {"median_ms": round(median, 1), "min_ms": round(min(totals), 1),
                        "max_ms": round(max(totals), 1), "runs_ms": [round(t, 1) for t in totals],
                        "slowest_imports": [[name, round(ms, 1)] for ms, name in top]}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="fresh processes per handler (median reported)")
    ap.add_argument("--layer", type=Path, help="reuse this built layer folder instead of building one")
    ap.add_argument("--no-bytecode", action="store_true", help="also measure the layer without the library's .pyc")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = ap.parse_args()
    py = python312()
    version = subprocess.run([py, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    variants = {"bytecode": args.layer or build_layer(py, bytecode=True)}
    if args.no_bytecode:
        variants["no bytecode"] = build_layer(py, bytecode=False)
    results = {name: measure(py, layer, args.runs) for name, layer in variants.items()}
    print(f"cold import, {version}, median of {args.runs} fresh processes (ms); load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    for name, figures in results.items():
        print(f"  layer with {name}: {variants[name]}")
        for handler, f in figures.items():
            verdict = "ok" if f["median_ms"] <= GOAL_MS else f"over the {GOAL_MS:g} ms goal"
            slow = ", ".join(f"{n} {ms:g}" for n, ms in f["slowest_imports"][:4])
            print(f"    {handler:8} median {f['median_ms']:6.1f}  min {f['min_ms']:6.1f}  max {f['max_ms']:6.1f}  "
                  f"{verdict}   [{slow}]")
    if args.json:
        Path(args.json).write_text(json.dumps({"python": version, "runs": args.runs, "results": results}, indent=2))
    worst = max(f["median_ms"] for f in results["bytecode"].values())
    return 0 if worst <= GOAL_MS else 1


if __name__ == "__main__":
    sys.exit(main())
