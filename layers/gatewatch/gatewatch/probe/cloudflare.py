"""What the Cloudflare edge tells us: whether a response came from it, its ray and colo, and its 52x codes.

Cloudflare rewrites ``server`` to ``cloudflare`` on every proxied response, so a plain 502 seen with
``server: cloudflare`` was usually produced by the origin's proxy (nginx) and merely relayed; only the codes in
``CLOUDFLARE_CODES`` are the edge speaking about the origin.
"""

from __future__ import annotations

from collections.abc import Mapping

from gatewatch.probe.result import CloudflareInfo

# code -> (short title, which hop failed and what it usually means)
CLOUDFLARE_CODES: dict[int, tuple[str, str]] = {
    520: ("Web server returned an unknown error", "the origin answered with an empty, invalid or reset response"),
    521: ("Web server is down", "the origin refused the edge's connection (nothing listening, or a firewall reject)"),
    522: ("Connection timed out", "the edge's TCP connection to the origin timed out (origin down or packets dropped)"),
    523: ("Origin is unreachable", "the edge found no route to the origin address (bad DNS record or routing)"),
    524: ("A timeout occurred", "the origin accepted the connection but sent no HTTP response in time (about 100 s)"),
    525: ("SSL handshake failed", "the TLS handshake between the edge and the origin failed"),
    526: ("Invalid SSL certificate", "the origin's certificate is invalid under Full (strict) SSL mode"),
    530: ("Origin DNS error", "the edge could not resolve or reach the origin; a 1xxx error code is in the body"),
}


def meaning(code: int) -> str | None:
    entry = CLOUDFLARE_CODES.get(code)
    return f"{entry[0]}: {entry[1]}" if entry else None


def edge_info(status: int | None, headers: Mapping[str, str]) -> CloudflareInfo:
    """Reads the lower-cased response headers; ``code`` is set only for the edge's own origin-failure codes."""
    ray = headers.get("cf-ray") or None
    edge = headers.get("server", "").strip().lower() == "cloudflare" or ray is not None
    colo = ray.rsplit("-", 1)[1] if ray and "-" in ray else None
    code = status if edge and status in CLOUDFLARE_CODES else None
    return CloudflareInfo(edge=edge, ray=ray, colo=colo, code=code, meaning=meaning(code) if code else None)
