"""Real labs for the session: each in its own directory, network namespace and edge port, so it never collides with
a lab someone is running (``gatewatch lab up``) or with another test session on the same machine.

One lab is up at a time (they share the namespace name and edge port): ``labs.get(TOPOLOGY)`` brings that topology
up, taking the previous one down first. Tests are ordered so each topology comes up once; ``lab`` is the classic
topology that most tests use.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from lab.manager import Lab, LabPrerequisiteError
from lab.topology import DEFAULT


def _free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Labs:
    def __init__(self) -> None:
        self.netns = f"gwt{os.getpid() % 100000}"
        self.edge_port = _free_loopback_port()
        self.current: Lab | None = None
        self.roots: list[Path] = []

    def get(self, topology: str = DEFAULT) -> Lab:
        if self.current is not None and self.current.topology.name == topology:
            return self.current
        self.close_current()
        root = Path(tempfile.mkdtemp(prefix=f"gatewatch-lab-test-{topology}-", dir="/tmp"))  # noqa: S108
        root.chmod(0o755)  # traversed by the database and nginx's nobody workers (pytest's tmp dirs are 0700)
        self.roots.append(root)
        the_lab = Lab(dir=root, netns=self.netns, edge_port=self.edge_port, cloudflare=True, topology=topology)
        try:
            the_lab.check_prerequisites()
        except LabPrerequisiteError as exc:
            pytest.skip(f"the real lab cannot run here: {exc}")
        self.current = the_lab
        the_lab.up(wait_s=120)
        return the_lab

    def close_current(self) -> None:
        if self.current is not None:
            self.current.down()
            self.current = None

    def close(self) -> None:
        self.close_current()
        for root in self.roots:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def labs():
    holder = Labs()
    try:
        yield holder
    finally:
        holder.close()


@pytest.fixture()
def lab(labs):
    """The classic topology's lab (brought up again if a test before used another topology)."""
    return labs.get(DEFAULT)


@pytest.fixture()
def baseline(lab):
    """Every test starts from the healthy baseline, with fresh logs."""
    lab.heal()
    return lab
