"""``gatewatch serve``: a read-only web view of the results store (FastAPI, Jinja2, server-rendered SVG)."""

from gatewatch.web.app import create_app

__all__ = ["create_app"]
