"""Routes for the web pages and their static files."""

from __future__ import annotations

from functools import cache
from importlib import metadata
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from rebill.config import Settings

STATIC_DIR = Path(__file__).parent / "static"

# Pages never need a third party; say so to the browser as well.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
)


@cache
def _environment() -> Environment:
    return Environment(loader=PackageLoader("rebill.web", "templates"), autoescape=select_autoescape())


@cache
def rebill_version() -> str:
    try:
        return metadata.version("rebill")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def render(name: str, status_code: int = 200, **context: object) -> HTMLResponse:
    html = _environment().get_template(name).render(version=rebill_version(), **context)
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff"},
    )


def graphiql_or(app: ASGIApp, *, enabled: bool) -> ASGIApp:
    """``GET /graphql`` from a browser gets rebill's own GraphiQL page; everything else goes to ``app``."""

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        if enabled and scope["type"] == "http":
            request = Request(scope)
            if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
                await render("graphiql.html", graphiql=True)(scope, receive, send)
                return
        await app(scope, receive, send)

    return route


def web_routes(settings: Settings) -> list[BaseRoute]:
    """``/``, ``/admin``, ``/docs``, ``/schema.graphql`` and ``/static``."""

    async def landing(request: Request) -> Response:
        return render("landing.html", graphiql=settings.graphiql, introspection=settings.introspection)

    async def admin(request: Request) -> Response:
        return render("admin.html", graphiql=settings.graphiql)

    async def docs(request: Request) -> Response:
        from rebill.web.docs import readme_html

        return render("docs.html", content=Markup(readme_html()), graphiql=settings.graphiql)

    async def sdl(request: Request) -> Response:
        if not settings.introspection:
            return PlainTextResponse("the schema is not published here (REBILL_INTROSPECTION=false)", 404)
        return PlainTextResponse(_schema_sdl(settings), media_type="text/plain; charset=utf-8")

    return [
        Route("/", landing, methods=["GET"]),
        Route("/admin", admin, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Route("/schema.graphql", sdl, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]


def _schema_sdl(settings: Settings) -> str:
    """The same text as ``rebill schema`` (and schema.graphql); built once per process."""
    if "sdl" not in _sdl_cache:
        from rebill.schema import build_full_schema

        _sdl_cache["sdl"] = build_full_schema(settings).as_str()
    return _sdl_cache["sdl"]


_sdl_cache: dict[str, str] = {}
