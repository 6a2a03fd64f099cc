"""Views over the results store: the web view (``gatewatch serve``), the public status page, the report and the
Prometheus metrics' store gauges. Everything here reads the store through the port (``gatewatch.store.base``), so
it works the same on SQLite and on DynamoDB, and computes plain dicts that templates and formatters render."""

from gatewatch.views.fleet import overview, target_detail
from gatewatch.views.incident import incident_detail
from gatewatch.views.report import build_report, render_report
from gatewatch.views.status import status_data, write_status_site
from gatewatch.views.windows import parse_window

__all__ = [
    "build_report",
    "incident_detail",
    "overview",
    "parse_window",
    "render_report",
    "status_data",
    "target_detail",
    "write_status_site",
]
