"""The README's Quick start, run verbatim from the README against a wheel built from this checkout.

`python -m build` makes the wheel (the library and the CLI: no lab, no tests); a fresh venv gets nothing but that
wheel and its dependencies (`pip install --no-index`, from wheels repacked out of this environment: no registry,
no network). Then the Quick start block of README.md runs line for line in bash, as a newcomer would paste it,
with one change: its example sites (https://example.com/, https://api.example.com/...) point at a loopback server,
because tests reach only loopback. The last line (`gatewatch run ... --every 60`) runs until its first round is
printed, then gets Ctrl-C.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.package.wheelhouse import build_wheelhouse

ROOT = Path(__file__).parents[2]
BEGIN, END = "<!-- BEGIN QUICKSTART (tests/package/test_quickstart.py runs it) -->", "<!-- END QUICKSTART -->"
EXAMPLE_SITE = re.compile(r"https://([a-z0-9-]+\.)?example\.com")


def quickstart_lines(readme: str) -> list[str]:
    """The shell lines of the Quick start block (blank lines and whole-line comments dropped)."""
    block = readme[readme.index(BEGIN) + len(BEGIN):readme.index(END)]
    fence = re.search(r"```sh\n(.*?)```", block, re.S)
    assert fence, "the Quick start block must hold one ```sh fence"
    return [line for line in fence.group(1).splitlines() if line.strip() and not line.lstrip().startswith("#")]


class _Site(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 - http.server's naming
        body = json.dumps({"status": "ok"}).encode() if self.path.endswith("/health") else b"<h1>hello</h1>"
        self.send_response(200)
        self.send_header("Content-Type", "application/json" if self.path.endswith("/health") else "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The wheel (built from a clean copy of the sources, so the checkout gets no build/ or egg-info) and a
    wheelhouse of its dependencies."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "layers" / "gatewatch" / "gatewatch", src / "layers" / "gatewatch" / "gatewatch",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    dist = work / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(src)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = dist.glob("gatewatch-*.whl")
    wheelhouse = work / "wheelhouse"
    build_wheelhouse(wheelhouse, wheel)
    return wheel, wheelhouse


def test_the_wheel_holds_the_library_and_the_cli_only(built):
    wheel, _ = built
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"gatewatch", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}
    assert "gatewatch/cli/__init__.py" in names and "gatewatch/tree/tree.yaml" in names
    assert "gatewatch/probe/demo.py" in names and "gatewatch/onbox/checks/main.py" in names
    assert not [n for n in names if n.startswith(("lab/", "tests/"))]
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "gatewatch = gatewatch.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_readme_quick_start_runs_verbatim_in_a_fresh_venv(built, site, tmp_path):
    wheel, wheelhouse = built
    home, cwd = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    (cwd / "dist").mkdir(parents=True)
    shutil.copy2(wheel, cwd / "dist" / wheel.name)  # where `python -m build` leaves it in a checkout

    lines = quickstart_lines((ROOT / "README.md").read_text())
    assert lines[-1].startswith("gatewatch run ") and "--every 60" in lines[-1]
    assert any(line.startswith("gatewatch probe --demo") for line in lines)
    assert any(line.startswith("gatewatch config init ") for line in lines)
    script = "set -euo pipefail\n" + "\n".join(EXAMPLE_SITE.sub(site, line) for line in lines[:-1])
    script += "\nexec " + EXAMPLE_SITE.sub(site, lines[-1]) + "\n"

    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON", "PIP_", "GATEWATCH_"))}
    env.update(HOME=str(home), PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheelhouse), PIP_DISABLE_PIP_VERSION_CHECK="1",
               PATH=os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if ".venv" not in p))
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(["bash", "-c", script], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    out: list[str] = []
    deadline = time.monotonic() + 240
    try:
        # The run loop's first round prints one timestamped line per target of the config init file.
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            out.append(line)
            if sum(bool(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \S+ +up", x)) for x in out) == 2:
                break
        assert proc.poll() is None, "".join(out)
        os.killpg(proc.pid, signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
        out.append(rest)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = "".join(out)
    assert proc.returncode == 130, text  # Ctrl-C: "interrupted"
    assert "demo: the healthy route is up and the failing route is down, as expected" in text
    assert "wrote targets.yaml (2 target(s))" in text and "targets.yaml: ok (2 target(s)" in text
    assert "Traceback" not in text
    venv_bin = home / ".venvs" / "gatewatch" / "bin"
    assert (venv_bin / "gatewatch").exists()
    # nothing of the lab came with the wheel, and the command says where to get it instead of failing
    lab = subprocess.run([str(venv_bin / "gatewatch"), "lab", "status"], capture_output=True, text=True, env=env,
                         cwd=cwd, timeout=60)
    assert lab.returncode == 2 and "needs a checkout of the gatewatch repository" in lab.stderr, lab.stderr
    assert (home / ".local" / "state" / "gatewatch" / "gatewatch.db").exists()
