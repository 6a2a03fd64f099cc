"""A wheelhouse for gatewatch's runtime dependencies, repacked from the environment running the tests.

The quick-start test installs the built wheel into a fresh venv with ``pip install --no-index --find-links``: no
registry, no network, a few seconds. The dependency wheels are rebuilt from the installed distributions (each
``.dist-info`` keeps its RECORD, i.e. the file list, and its WHEEL tags), so pip installs exactly the versions
the tests already run against.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement


def _closure(requires: list[str]) -> list[metadata.Distribution]:
    """Every distribution the requirements need (no extras), as installed here."""
    seen: dict[str, metadata.Distribution] = {}
    todo = [Requirement(r).name for r in requires if _applies(Requirement(r))]
    while todo:
        key = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if key in seen:
            continue
        dist = metadata.distribution(key)
        seen[key] = dist
        todo += [req.name for req in map(Requirement, dist.requires or []) if _applies(req)]
    return list(seen.values())


def _applies(req: Requirement) -> bool:
    return req.marker is None or req.marker.evaluate({"extra": ""})


def _tag(dist: metadata.Distribution) -> str:
    wheel = dist.read_text("WHEEL") or ""
    tags = [line.split(":", 1)[1].strip() for line in wheel.splitlines() if line.startswith("Tag:")]
    if not tags:
        raise RuntimeError(f"{dist.metadata['Name']}: no Tag in WHEEL (not installed from a wheel?)")
    return ".".join(sorted({t.split("-")[0] for t in tags})) + "-" + ".".join(
        sorted({t.split("-")[1] for t in tags})) + "-" + ".".join(sorted({t.split("-")[2] for t in tags}))


def repack(dist: metadata.Distribution, out: Path) -> Path:
    """One installed distribution back into a wheel file (site-packages files only; RECORD rewritten)."""
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    path = out / f"{name}-{dist.version}-{_tag(dist)}.whl"
    root = Path(dist.locate_file(""))
    info_dir = next(p for p in (dist.files or []) if p.parts[0].endswith(".dist-info")).parts[0]
    rows = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for f in dist.files or []:
            rel = f.as_posix()
            if rel.startswith("..") or "__pycache__" in rel or rel == f"{info_dir}/RECORD":
                continue
            src = root / rel
            if not src.is_file() or rel.endswith(("INSTALLER", "REQUESTED", "direct_url.json")):
                continue
            data = src.read_bytes()
            zf.writestr(rel, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            rows.append((rel, f"sha256={digest}", str(len(data))))
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([*rows, (f"{info_dir}/RECORD", "", "")])
        zf.writestr(f"{info_dir}/RECORD", buf.getvalue())
    return path


def requires_of(wheel: Path) -> list[str]:
    """The Requires-Dist lines of a built wheel's METADATA."""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(name).decode()
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]


def build_wheelhouse(out: Path, wheel: Path) -> list[Path]:
    """Wheels for the runtime dependencies of ``wheel`` (without extras), repacked from this environment."""
    out.mkdir(parents=True, exist_ok=True)
    return [repack(d, out) for d in _closure(requires_of(wheel))]
