"""One real lab for the whole session: its own directory, network namespace and edge port, so it never collides
with a lab someone is running (``gatewatch lab up``) or with another test session on the same machine."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from lab.manager import Lab, LabPrerequisiteError


def _free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def lab():
    root = Path(tempfile.mkdtemp(prefix="gatewatch-lab-test-", dir="/tmp"))  # noqa: S108 - must be traversable
    root.chmod(0o755)  # by postgres and nginx's nobody workers (pytest's own tmp dirs are 0700)
    the_lab = Lab(dir=root, netns=f"gwt{os.getpid() % 100000}", edge_port=_free_loopback_port(), cloudflare=True)
    try:
        the_lab.check_prerequisites()
    except LabPrerequisiteError as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"the real lab cannot run here: {exc}")
    try:
        the_lab.up(wait_s=90)
        yield the_lab
    finally:
        the_lab.down()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture()
def baseline(lab):
    """Every test starts from the healthy baseline, with fresh logs."""
    lab.heal()
    return lab
