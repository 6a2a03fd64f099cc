"""``gatewatch probe``: placeholder until the probe engine lands (replaced by the probe engine work)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("probe", help="probe a URL or the targets of a config file")
    p.set_defaults(func=lambda args: 2)
