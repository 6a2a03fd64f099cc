"""The web view: overview, target, incident (with the decision tree), remediation audit. Read-only: GET only, no
forms, no JavaScript. Everything shown came from the store, and much of it from probed servers and hosts (bodies,
headers, log lines), so templates autoescape everything and the SVG builders escape every text they place; a
strict Content-Security-Policy stops any script even if something slipped through."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from jinja2 import Environment, FunctionLoader
from markupsafe import Markup

from gatewatch.store.base import ResultsStore
from gatewatch.tree import load_tree
from gatewatch.views import incident_detail, overview, target_detail
from gatewatch.views.svg import line_chart, tree_svg
from gatewatch.views.windows import human_duration

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _load(name: str) -> str | None:
    try:
        return resources.files("gatewatch.web").joinpath("templates", name).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _ms(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def _pct(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}%"


def _days(value: Any) -> str:
    return "-" if value is None else f"{value:.0f} d"


def _when(value: Any) -> str:
    return "-" if not value else str(value).replace("T", " ").replace("Z", "")[:19]


def environment() -> Environment:
    env = Environment(loader=FunctionLoader(_load), autoescape=True,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(ms=_ms, pct=_pct, days=_days, when=_when, dur=human_duration)
    env.globals.update(
        line_chart=lambda *a, **k: Markup(line_chart(*a, **k)),  # noqa: S704  # nosec B704 - builder escapes text
        tree_svg=lambda *a, **k: Markup(tree_svg(*a, **k)),  # noqa: S704  # nosec B704 - builder escapes text
    )
    return env


def create_app(store: ResultsStore, *, now: Callable[[], datetime] | None = None,
               configured: list[str] | None = None, title: str = "gatewatch") -> FastAPI:
    clock = now or (lambda: datetime.now(UTC))
    env = environment()
    tree = load_tree()
    css = resources.files("gatewatch.web").joinpath("static", "style.css").read_text(encoding="utf-8")
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def headers(request, call_next):
        if request.method not in ("GET", "HEAD"):
            return PlainTextResponse("read-only", status_code=405, headers={"Allow": "GET, HEAD", **SECURITY_HEADERS})
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    def page(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        html = env.get_template(template).render(title=title, now=clock(), **context)
        return HTMLResponse(html, status_code=status_code)

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return page("overview.html", view=overview(store, clock(), configured))

    @app.get("/targets/{name}", response_class=HTMLResponse)
    def target(name: str) -> HTMLResponse:
        view = target_detail(store, name, clock())
        if view is None:
            raise HTTPException(404, f"no target {name}")
        return page("target.html", view=view)

    @app.get("/incidents/{incident_id}", response_class=HTMLResponse)
    def incident(incident_id: str) -> HTMLResponse:
        view = incident_detail(store, incident_id, clock())
        if view is None:
            raise HTTPException(404, f"no incident {incident_id}")
        return page("incident.html", view=view, tree=tree, full=False)

    @app.get("/incidents/{incident_id}/tree", response_class=HTMLResponse)
    def incident_tree(incident_id: str) -> HTMLResponse:
        view = incident_detail(store, incident_id, clock())
        if view is None:
            raise HTTPException(404, f"no incident {incident_id}")
        return page("tree.html", view=view, tree=tree)

    @app.get("/incidents", response_class=HTMLResponse)
    def incidents() -> HTMLResponse:
        items = store.list_incidents(limit=200)
        return page("incidents.html", incidents=[i.to_dict() for i in items])

    @app.get("/audit", response_class=HTMLResponse)
    def audit() -> HTMLResponse:
        actions = [a.to_dict() for a in store.list_actions()][-500:]
        actions.reverse()
        return page("audit.html", actions=actions)

    @app.get("/static/style.css")
    def style() -> Response:
        return Response(css, media_type="text/css")

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    @app.exception_handler(HTTPException)
    async def not_found(request, exc: HTTPException) -> HTMLResponse:
        return page("error.html", status_code=exc.status_code, message=str(exc.detail))

    return app
