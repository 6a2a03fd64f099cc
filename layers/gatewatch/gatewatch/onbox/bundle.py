"""Build the on-box checks package (``gatewatch/onbox/checks/``) into one zipapp, ``gatewatch-onbox.pyz``.

Members are stored, not deflated: the SSM document gzips the whole file, which compresses across modules. The
zip is deterministic (sorted members, fixed timestamps and modes), so the SSM document that embeds it is
reproducible and its staleness test meaningful. Inside, the package is ``gatewatch_onbox`` (its modules import
each other relatively) and ``__main__.py`` runs it: ``python3 gatewatch-onbox.pyz ARG``.

``python -m gatewatch.onbox.bundle OUT.pyz`` writes it to a file (to copy to a host by hand).
"""

from __future__ import annotations

import atexit
import io
import os
import shutil
import sys
import tempfile
import threading
import tokenize
import zipfile
from pathlib import Path

PACKAGE_DIR = Path(__file__).with_name("checks")
# Library files the package uses that the zipapp must carry (stdlib-only, Python 3.8): vendored beside its modules.
VENDORED = {"hostpaths.py": Path(__file__).resolve().parents[1] / "hostpaths.py"}
ZIP_PACKAGE = "gatewatch_onbox"
ZIPAPP_NAME = "gatewatch-onbox.pyz"
MAIN = (
    '"""gatewatch on-box checks (zipapp): python3 gatewatch-onbox.pyz ARG"""\n'
    "from gatewatch_onbox.main import entry\n"
    "\n"
    "entry()\n"
)
_EPOCH = (1980, 1, 1, 0, 0, 0)
_lock = threading.Lock()
_built: dict[str, Path] = {}


def strip_source(text: str) -> str:
    """The module without comments, docstrings and blank lines: the same code, a fifth smaller once compressed.

    Works on tokenize's positions only (it never re-renders code), so the result is the same on every Python;
    lines inside strings that span lines are left exactly as they are. A docstring becomes ``''`` (a body may
    consist of nothing else).
    """
    tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    significant = [t for t in tokens if t.type not in (tokenize.NL, tokenize.COMMENT)]
    following = {id(t): significant[i + 1] if i + 1 < len(significant) else None for i, t in enumerate(significant)}
    statement_start = (None, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
    edits, protected, prev = [], set(), None
    for tok in tokens:
        if tok.type == tokenize.COMMENT:
            edits.append((tok.start, tok.end, ""))
            continue
        if tok.type == tokenize.NL:
            continue
        if tok.type == tokenize.STRING:
            after = following[id(tok)]
            if prev in statement_start and after is not None and after.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
                edits.append((tok.start, tok.end, "''"))
            elif tok.start[0] != tok.end[0]:
                protected.update(range(tok.start[0], tok.end[0] + 1))
        prev = tok.type
    lines = text.splitlines(keepends=True)
    for (srow, scol), (erow, ecol), replacement in reversed(edits):
        lines[srow - 1] = lines[srow - 1][:scol] + replacement + lines[erow - 1][ecol:]
        for row in range(srow, erow):
            lines[row] = ""
    out = []
    for number, line in enumerate(lines, 1):
        if number in protected:
            out.append(line)
        elif line.strip():
            out.append(line.rstrip() + "\n")
    return "".join(out)


def package_files(package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """The package's modules, sorted (no __pycache__, no data files: the package is code only)."""
    return sorted(p for p in package_dir.glob("*.py") if p.is_file())


def zipapp_bytes(package_dir: Path = PACKAGE_DIR) -> bytes:
    """The zipapp, byte for byte the same for the same sources."""
    buffer = io.BytesIO()
    sources = [(p.name, p) for p in package_files(package_dir)] + sorted(VENDORED.items())
    members = [(f"{ZIP_PACKAGE}/{name}", strip_source(p.read_text(encoding="utf-8")).encode("utf-8"))
               for name, p in sources]
    members.append(("__main__.py", MAIN.encode("utf-8")))
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in sorted(members):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.create_system = 3  # unix, whatever builds it
            zf.writestr(info, data)  # stored: the SSM document gzips the whole zip, across members (31 KB vs 39 KB)
    return buffer.getvalue()


def zipapp_path() -> Path:
    """The zipapp as a file for a local subprocess, built once per process.

    It lives in a fresh directory from ``mkdtemp`` (a name nobody could have prepared), made readable by all (the
    code is not secret; the checks may run as another user) and writable only by us; removed at exit.
    """
    with _lock:
        data = zipapp_bytes()
        key = str(hash(data))
        path = _built.get(key)
        if path is not None and path.is_file():
            return path
        directory = Path(tempfile.mkdtemp(prefix="gatewatch-onbox-"))
        os.chmod(directory, 0o755)  # noqa: S103  # nosec B103 - others may read and run the checks, never change them
        atexit.register(shutil.rmtree, directory, True)
        path = directory / ZIPAPP_NAME
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        _built[key] = path
        return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m gatewatch.onbox.bundle OUT.pyz", file=sys.stderr)
        return 2
    data = zipapp_bytes()
    Path(args[0]).write_bytes(data)
    print(f"wrote {args[0]} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
