"""The ASGI application: ``POST /graphql`` (GraphiQL on ``GET``), ``GET /healthz``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import orjson
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from rebill.documents.routes import document_routes
from rebill.http.body import RequestBody
from rebill.http.gate import AuthGate
from rebill.http.graphql_response import GraphQLResponseMedia
from rebill.http.refusals import RefusalThrottle
from rebill.portal import upkeep as portal_upkeep
from rebill.portal.routes import portal_routes
from rebill.process import settle_heap
from rebill.resolvers.context import Context
from rebill.schema import build_full_schema
from rebill.services.runtime import Services
from rebill.web import graphiql_or, web_routes

logger = logging.getLogger(__name__)


class RebillGraphQL(GraphQL[Context, None]):
    def __init__(self, services: Services, **kwargs: Any) -> None:
        super().__init__(build_full_schema(services.settings), **kwargs)
        self.services = services

    async def get_context(self, request: Any, response: Any) -> Context:
        actor = request.scope.get("state", {}).get("actor")
        return Context.build(self.services, actor, request, response)

    async def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_operation(*args, **kwargs)
        finally:
            context = kwargs.get("context")
            if isinstance(context, Context):
                await context.reads.close()  # the request's read connection back to the pool

    def encode_json(self, data: object) -> str | bytes:
        # orjson writes the same compact JSON as json.dumps in a tenth of the time; what it refuses
        # (an integer past 64 bits or a key that is no string, in a JSON value) is written as before.
        try:
            return orjson.dumps(data)
        except TypeError:
            return super().encode_json(data)

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        # A request error (no data, and no error with a path) is a refusal the throttle counts.
        if result.data is None and result.errors and all(error.path is None for error in result.errors):
            request.scope.setdefault("state", {})["refused"] = True
        return await super().process_result(request, result)


BackgroundTask = Callable[[Services], Coroutine[Any, Any, None]]


def create_app(services: Services, *, background: list[BackgroundTask] | None = None) -> Starlette:
    settings = services.settings
    # GraphiQL is rebill's own page (rebill.web), with its assets served locally.
    graphql_app = graphiql_or(RebillGraphQL(services, graphql_ide=None), enabled=settings.graphiql)

    async def healthz(request: Request) -> Response:
        try:
            async with services.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:  # the database is down: say so, never crash
            logger.warning("health check failed: %s", exc)
            return JSONResponse({"status": "unavailable", "database": "down"}, status_code=503)
        return JSONResponse({"status": "ok", "database": "up"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:  # the outbox trigger builds the links in customer e-mails from the settings stored here
            await portal_upkeep.start(services)
        except Exception as exc:  # the database may be down at start; links then use the defaults
            logger.warning("could not store the portal settings: %s", exc)
        tasks: list[asyncio.Task[None]] = [asyncio.create_task(task(services)) for task in background or []]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route(
                "/graphql",
                RefusalThrottle(
                    GraphQLResponseMedia(
                        AuthGate(
                            RequestBody(graphql_app, max_bytes=settings.max_body_bytes),
                            services,
                            graphiql=settings.graphiql,
                        )
                    ),
                    size=settings.refusal_bucket,
                    restore=settings.refusal_restore,
                ),
                methods=["GET", "POST"],
            ),
            *web_routes(settings),
            *portal_routes(services),
            *document_routes(services),
        ],
        lifespan=lifespan,
    )


def from_env() -> Starlette:
    """The application of one ``rebill serve --workers N`` process: settings from the environment, which
    names the database (the parent migrated it), and the bulk runner beside it unless turned off (runs are
    claimed under an advisory lock, so the processes never work one twice)."""
    from rebill.config import Settings
    from rebill.db.engine import configured_url, make_engine

    settings = Settings.from_env()
    if not settings.database_url:
        raise RuntimeError("rebill serve --workers sets DATABASE_URL for its processes; start them with it")
    services = Services(make_engine(configured_url(settings.database_url)), settings)
    background: list[BackgroundTask] = [_close_on_exit]
    if settings.bulk_worker_in_server:
        from rebill.bulk.runner import background_runner

        background.append(background_runner)
    application = create_app(services, background=background)
    settle_heap()
    return application


async def _close_on_exit(services: Services) -> None:
    """Waits for the process's shutdown, then closes its connection pool."""
    try:
        await asyncio.Event().wait()
    finally:
        await services.close()
        await services.engine.dispose()
