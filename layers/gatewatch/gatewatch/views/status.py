"""The public status page: a static site (index.html, status.css, status.json) with only what is safe to publish.

What goes out is built field by field from an allow-list, never by copying a stored document: each target's
display name, its state (up, down, unknown), 90 daily uptime bars, and its incidents with a public title chosen
from the verdict's category and a duration. Never: incident ids (they embed target names), verdict titles and
explanations (they quote hosts, ports, paths and log lines), evidence, URLs, errors, facts.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

from gatewatch.clock import iso
from gatewatch.store.base import ResultsStore
from gatewatch.views.fleet import target_names
from gatewatch.views.report import bucket_of
from gatewatch.views.svg import uptime_bars
from gatewatch.views.windows import human_duration, seconds_between, uptime_pct

DAYS = 90
INCIDENT_DAYS = 30  # incidents listed on the page: those opened in the last 30 days
PUBLIC_TITLES = {
    "backend down": "Service unavailable",
    "proxy misconfiguration": "Gateway errors",
    "firewall": "Network connectivity problem",
    "resources": "Capacity problem",
}
PUBLIC_BY_CATEGORY = {
    "dns_failure": "DNS resolution problem",
    "tls_certificate_invalid": "Certificate problem",
    "tls_certificate_expiring": "Certificate renewal pending",
    "edge_unreachable": "Network connectivity problem",
    "host_unreachable": "Network connectivity problem",
    "transient": "Brief disruption",
    "flapping": "Intermittent errors",
}
STATES = {"UP": "up", "DOWN": "down"}


def public_title(category: str | None) -> str:
    return PUBLIC_BY_CATEGORY.get(category or "") or PUBLIC_TITLES.get(bucket_of(category)) or "Service disruption"


def status_data(store: ResultsStore, now: datetime, display_names: dict[str, str] | None = None,
                configured: list[str] | None = None, days: int = DAYS) -> dict[str, Any]:
    """The published document (status.json); the HTML is rendered from it and nothing else."""
    names = display_names or {}
    today = now.date()
    first_day = today - timedelta(days=days - 1)
    since = iso(datetime.combine(first_day, datetime.min.time(), tzinfo=now.tzinfo))
    incidents_since = iso(now - timedelta(days=INCIDENT_DAYS))
    targets, incidents = [], []
    for name in target_names(store, configured or list(names)):
        shown = names.get(name) or name
        state = store.get_state(name)
        per_day: dict[str, list[str]] = defaultdict(list)
        statuses = []
        for p in store.probes_between(name, since):
            per_day[p.at[:10]].append(p.status)
            statuses.append(p.status)
        bars = []
        for i in range(days):
            date = (first_day + timedelta(days=i)).isoformat()
            pct = uptime_pct(per_day.get(date, []))
            bars.append({"date": date, "uptime": round(pct, 3) if pct is not None else None})
        overall = uptime_pct(statuses)
        targets.append({
            "name": shown,
            "state": STATES.get(state.status, "unknown") if state else "unknown",
            "uptime_pct": round(overall, 3) if overall is not None else None,
            "days": bars,
        })
        for incident in store.list_incidents(target=name, limit=200):
            if incident.opened_at < incidents_since:
                continue
            end = incident.resolved_at or iso(now)
            duration = incident.duration_s if incident.duration_s is not None else seconds_between(
                incident.opened_at, end)
            incidents.append({
                "target": shown,
                "title": f"{shown}: {public_title(incident.category)}",
                "status": "resolved" if incident.status == "resolved" else "ongoing",
                "started_at": incident.opened_at,
                "resolved_at": incident.resolved_at,
                "duration_s": round(duration, 1) if duration is not None else None,
            })
    incidents.sort(key=lambda i: i["started_at"], reverse=True)
    down = sum(1 for t in targets if t["state"] == "down")
    overall_state = "operational" if down == 0 else "major outage" if down == len(targets) else "partial outage"
    return {"generated_at": iso(now), "state": overall_state, "days": days, "targets": targets,
            "incidents": incidents}


CSS = """:root{--ok:#1a7f37;--warn:#9a6700;--bad:#b3261e;--none:#8c959f;--fg:#1f2328;--bg:#fff;--mute:#57606a}
*{box-sizing:border-box}body{font:16px/1.5 system-ui,sans-serif;color:var(--fg);background:var(--bg);margin:0}
main{max-width:720px;margin:0 auto;padding:1.5rem}h1{font-size:1.6rem;margin:0 0 .5rem}
.banner{padding:.75rem 1rem;border-radius:6px;color:#fff;font-weight:600;margin:1rem 0}
.banner.operational{background:var(--ok)}.banner.partial{background:var(--warn)}.banner.major{background:var(--bad)}
.target{border:1px solid #d0d7de;border-radius:6px;padding:.75rem 1rem;margin:.75rem 0}
.target h2{font-size:1.1rem;margin:0;display:flex;justify-content:space-between}
.state{font-weight:600}.state.up{color:var(--ok)}.state.down{color:var(--bad)}.state.unknown{color:var(--mute)}
.bars{display:block;width:100%;height:auto;margin:.5rem 0 .25rem}
.day.ok{fill:var(--ok)}.day.warn{fill:#bf8700}.day.bad{fill:var(--bad)}.day.nodata{fill:#d0d7de}
.legend{display:flex;justify-content:space-between;color:var(--mute);font-size:.85rem}
ul.incidents{list-style:none;padding:0}
ul.incidents li{border-left:4px solid var(--bad);padding:.25rem .75rem;margin:.5rem 0}
ul.incidents li.resolved{border-color:var(--ok)}.mute{color:var(--mute)}
footer{color:var(--mute);font-size:.85rem;margin-top:2rem}
"""


def render_status_html(data: dict[str, Any]) -> str:
    e = escape
    banner = {"operational": ("operational", "All systems operational"),
              "partial outage": ("partial", "Partial outage"),
              "major outage": ("major", "Major outage")}[data["state"]]
    parts = ['<!doctype html><html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             "<title>Status</title>", '<link rel="stylesheet" href="status.css"></head><body><main>',
             "<h1>Status</h1>", f'<p class="banner {banner[0]}" role="status">{e(banner[1])}</p>',
             '<section aria-labelledby="svc"><h2 id="svc" class="mute">Services</h2>']
    for t in data["targets"]:
        up = "no data" if t["uptime_pct"] is None else f"{t['uptime_pct']:.2f}% uptime"
        parts.append(
            f'<article class="target"><h2><span>{e(t["name"])}</span>'
            f'<span class="state {e(t["state"])}">{e(t["state"])}</span></h2>'
            + uptime_bars(t["days"], title=f"{t['name']}: daily uptime, last {data['days']} days")
            + f'<p class="legend"><span>{data["days"]} days ago</span><span>{e(up)}</span><span>today</span></p>'
            "</article>")
    parts.append('</section><section aria-labelledby="inc"><h2 id="inc">Recent incidents</h2>')
    if not data["incidents"]:
        parts.append(f"<p>No incidents in the last {INCIDENT_DAYS} days.</p>")
    else:
        parts.append('<ul class="incidents">')
        for i in data["incidents"]:
            took = human_duration(i["duration_s"])
            when = f"{i['started_at'][:16].replace('T', ' ')} UTC"
            state = f"resolved after {took}" if i["status"] == "resolved" else f"ongoing for {took}"
            parts.append(f'<li class="{e(i["status"])}"><strong>{e(i["title"])}</strong><br>'
                         f'<span class="mute">{e(when)}, {e(state)}</span></li>')
        parts.append("</ul>")
    parts.append(f'</section><footer>Updated {e(data["generated_at"])}. '
                 '<a href="status.json">status.json</a></footer></main></body></html>\n')
    return "".join(parts)


def site_files(data: dict[str, Any]) -> dict[str, str]:
    """File name -> content: the same three files for a directory or an S3 bucket."""
    return {"index.html": render_status_html(data), "status.css": CSS,
            "status.json": json.dumps(data, indent=2) + "\n"}


def write_status_site(data: dict[str, Any], out_dir: str | Path) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in site_files(data).items():
        path = out / name
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".json": "application/json"}


def publish_status_page(store: ResultsStore, bucket: str, display_names: dict[str, str] | None = None, *,
                        prefix: str = "", client: Any = None, now: datetime | None = None) -> dict[str, Any]:
    """Render the site from the store and put its three files into ``bucket`` (StatusPageFunction)."""
    from datetime import UTC

    if client is None:
        import boto3

        client = boto3.client("s3")
    data = status_data(store, now or datetime.now(UTC), display_names, configured=list(display_names or {}))
    keys = []
    for name, content in site_files(data).items():
        key = f"{prefix}{name}"
        client.put_object(Bucket=bucket, Key=key, Body=content.encode("utf-8"),
                          ContentType=CONTENT_TYPES[Path(name).suffix], CacheControl="max-age=60")
        keys.append(key)
    return {"state": data["state"], "targets": len(data["targets"]), "incidents": len(data["incidents"]),
            "keys": keys}
