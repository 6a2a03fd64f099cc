"""The outside-in probe engine: one attempt against a URL, a confirmed round per target, many targets at once.

Results are data (``docs/data-model.md``: ProbeResult, TargetResult); nothing here raises on a bad server.
"""

from gatewatch.probe.cloudflare import CLOUDFLARE_CODES
from gatewatch.probe.engine import Expectations, probe_url
from gatewatch.probe.resolve import StaticResolver
from gatewatch.probe.result import PHASES, REASONS, ProbeResult, TargetResult
from gatewatch.probe.round import iter_probe_targets, probe_target, probe_targets

__all__ = [
    "CLOUDFLARE_CODES",
    "PHASES",
    "REASONS",
    "Expectations",
    "ProbeResult",
    "StaticResolver",
    "TargetResult",
    "iter_probe_targets",
    "probe_target",
    "probe_targets",
    "probe_url",
]
