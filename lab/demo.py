"""``gatewatch lab demo``: the whole loop on the real lab, fault by fault.

For each fault: heal to the baseline, inject it, run the local pipeline once (probe -> confirm -> on-box checks ->
tree -> record -> notify -> remediate -> verify), compare the verdict with the fault's expected category, time
it, and heal. Each fault gets a fresh results store so one fault's cooldown does not leak into the next; one
extra scenario repeats ``backend_stopped`` on the first store to show a spent cooldown refusing the restart.
Exits non-zero when any verdict or expected remediation is wrong.
"""

from __future__ import annotations

import io
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from gatewatch.config import Config
from gatewatch.notify import ConsoleNotifier
from gatewatch.pipeline import Pipeline, Remediator
from gatewatch.store import SQLiteStore
from lab.faults import FAULTS, faults_for
from lab.manager import Lab
from lab.topology import TOPOLOGIES

# The remediation each fault must end with (the guardrails are part of what the demo proves).
EXPECTED_FIX = {
    "backend_stopped": "verified",
    "backend_hung": "verified",
    "nginx_stopped": "verified",
    "stale_config": "verified",  # reloaded, proven through nginx: host.backend_port still names the old port
    "crash_loop": "refused",
    "nginx_config_broken": "refused",
    "cooldown_spent": "refused",
}
SETTLE_S = 2.0
ROUNDS = 4


@dataclass
class Row:
    fault: str
    expect: str
    topology: str = "classic"
    got: str = "-"
    seconds: float = 0.0
    action: str = "-"
    fix: str = "-"
    fix_expected: str | None = None
    recovery_s: float | None = None
    reason: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.got == self.expect and (self.fix_expected is None or self.fix == self.fix_expected)


def demo_target(lab: Lab):
    """The lab's target with gatewatch's default guardrails (the lab file turns the cooldown off for tinkering)."""
    target = lab.target()
    policy = target.remediation.model_copy(update={"cooldown_minutes": 15, "max_per_day": 3})
    return target.model_copy(update={"remediation": policy})


def _one(lab: Lab, fault: str, store: SQLiteStore, out: TextIO, inject: bool = True) -> Row:
    expect = FAULTS[fault].expect if fault in FAULTS else FAULTS["backend_stopped"].expect
    # without a service manager nothing is configured to restart or start things: no fix is expected
    fix_expected = EXPECTED_FIX.get(fault) if lab.topology.supervised else None
    if fault == "backend_hung" and lab.topology.app_server == "gunicorn":
        fix_expected = "escalate"  # the code blocks every worker's event loop: a restart cannot help, a human can
    row = Row(fault, expect, lab.topology.name, fix_expected=fix_expected)
    real = fault if fault in FAULTS else "backend_stopped"
    messages = io.StringIO()
    baseline = Pipeline(Config(targets=[demo_target(lab)]), store, ConsoleNotifier(stream=messages))
    baseline.run_once()  # the healthy round before the fault: the target is UP in this store
    started = time.monotonic()
    if inject:
        lab.inject(real)
    config = Config(targets=[demo_target(lab)])
    pipeline = Pipeline(config, store, ConsoleNotifier(stream=messages))
    pipeline.remediator = Remediator(store, pipeline.clock, ceiling="auto", runner_for=pipeline.runner_for,
                                     settle_s=SETTLE_S)
    for _ in range(ROUNDS):  # an intermittent fault may need a few rounds to show, as it would to a monitor
        [report] = pipeline.run_once()
        if report.verdict:
            break
    row.seconds = time.monotonic() - started
    if report.verdict:
        row.got = report.verdict["category"]
    elif report.status != "down":
        row.got = "not down"
    fix = report.remediation or {}
    row.action = fix.get("action") or "-"
    row.fix = fix.get("result") or "-"
    row.reason = str(fix.get("summary") or fix.get("reason") or "")
    if row.fix == "verified":
        row.recovery_s = time.monotonic() - started
    return row


def _table(rows: list[Row]) -> str:
    head = f"{'topology':<24} {'fault':<26} {'expected':<24} {'verdict':<24} {'ok':<3} {'verdict s':>9}  " \
           f"{'action':<16} {'result':<10} {'recovered s':>11}"
    lines = [head, "-" * len(head)]
    for r in rows:
        rec = f"{r.recovery_s:.1f}" if r.recovery_s is not None else "-"
        lines.append(f"{r.topology:<24} {r.fault:<26} {r.expect:<24} {r.got:<24} {'ok' if r.ok else 'NO':<3} "
                     f"{r.seconds:>9.1f}  {r.action:<16} {r.fix:<10} {rec:>11}")
    return "\n".join(lines)


def run_demo(faults: list[str] | None = None, out: TextIO = sys.stdout, lab: Lab | None = None,
             keep: bool = False, rows_out: list[Row] | None = None) -> int:
    lab = lab or Lab()
    applicable = faults_for(lab.topology)
    names = [f for f in faults if f in applicable] if faults else applicable
    out.write(f"gatewatch lab demo: bringing the lab up in {lab.paths.root} (topology {lab.topology.name}) ...\n")
    out.flush()
    lab.up()
    rows: list[Row] = []
    stores: dict[str, SQLiteStore] = {}
    db_dir = Path(lab.paths.root) / "demo"
    db_dir.mkdir(parents=True, exist_ok=True)
    try:
        plan = [*names, "cooldown_spent"] if "backend_stopped" in names else names
        for i, name in enumerate(plan, 1):
            out.write(f"[{i}/{len(plan)}] {name}: ")
            out.flush()
            lab.heal()
            if name == "cooldown_spent":
                store = stores["backend_stopped"]
            else:
                db = db_dir / f"{name}.db"
                db.unlink(missing_ok=True)
                store = stores[name] = SQLiteStore(db)
            row = _one(lab, name, store, out)
            rows.append(row)
            fix = f", {row.action} {row.fix}" if row.action != "-" or row.fix not in ("-", "none") else ""
            out.write(f"{row.got} in {row.seconds:.1f}s{fix} {'ok' if row.ok else 'WRONG (expected ' + row.expect}"
                      f"{'' if row.ok else ')'}\n")
            if not row.ok and row.reason:
                out.write(f"    {row.reason}\n")
            out.flush()
        lab.heal()
    finally:
        for s in stores.values():
            s.close()
        if not keep:
            lab.down()
    out.write("\n" + _table(rows) + "\n")
    if rows_out is not None:
        rows_out.extend(rows)
    wrong = [r.fault for r in rows if not r.ok]
    out.write(f"\n{len(rows) - len(wrong)}/{len(rows)} right on {lab.topology.name}"
              + (f"; wrong: {', '.join(wrong)}" if wrong else "") + "\n")
    return 1 if wrong else 0


def run_demo_all(faults: list[str] | None = None, out: TextIO = sys.stdout, dir: str | None = None,
                 keep: bool = False) -> int:
    """The demo on every topology in turn (the lab goes down between them: one namespace, one port)."""
    worst = 0
    rows: list[Row] = []
    for i, name in enumerate(TOPOLOGIES, 1):
        running = Lab(dir=dir)
        if running.sup.alive() and running.topology.name != name:
            running.down()  # with the topology it was brought up with
        lab = Lab(dir=dir, topology=name)
        out.write(f"\n=== topology {i}/{len(TOPOLOGIES)}: {name} ===\n")
        worst = max(worst, run_demo(faults, out, lab, keep=keep and i == len(TOPOLOGIES), rows_out=rows))
    wrong = [f"{r.topology}:{r.fault}" for r in rows if not r.ok]
    out.write(f"\n=== every topology ===\n{_table(rows)}\n\n{len(rows) - len(wrong)}/{len(rows)} right"
              + (f"; wrong: {', '.join(wrong)}" if wrong else "") + "\n")
    return worst
