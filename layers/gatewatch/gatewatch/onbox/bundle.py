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
import zipfile
from pathlib import Path

PACKAGE_DIR = Path(__file__).with_name("checks")
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


def package_files(package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """The package's modules, sorted (no __pycache__, no data files: the package is code only)."""
    return sorted(p for p in package_dir.glob("*.py") if p.is_file())


def zipapp_bytes(package_dir: Path = PACKAGE_DIR) -> bytes:
    """The zipapp, byte for byte the same for the same sources."""
    buffer = io.BytesIO()
    members = [(f"{ZIP_PACKAGE}/{p.name}", p.read_bytes()) for p in package_files(package_dir)]
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
        os.chmod(directory, 0o755)  # noqa: S103 - read and traverse only: others may run the checks, never change them
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
