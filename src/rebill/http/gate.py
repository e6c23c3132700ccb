"""Every GraphQL request needs a valid API key; the GraphiQL page itself does not."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from rebill.db.engine import is_database_outage
from rebill.http.responses import DATABASE_UNAVAILABLE, error_response
from rebill.portal.tokens import API_PREFIX as PORTAL_TOKEN_PREFIX
from rebill.portal.tokens import bearer_actor
from rebill.services.apikeys import authenticate
from rebill.services.runtime import Services

logger = logging.getLogger(__name__)

MISSING = "missing API key"
UNKNOWN = "unknown or revoked API key"


class AuthGate:
    """Authenticates the bearer key and puts the actor in ``scope["state"]``.

    A browser's ``GET`` without a key gets the GraphiQL page and nothing else:
    its query string is dropped, so no operation in the URL ever runs unless a
    key comes with it.
    """

    def __init__(self, app: ASGIApp, services: Services, *, graphiql: bool) -> None:
        self.app = app
        self.services = services
        self.graphiql = graphiql

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        header = request.headers.get("authorization", "")
        scheme, _, secret = header.strip().partition(" ")
        secret = secret.strip()
        wants_page = request.method == "GET" and "text/html" in request.headers.get("accept", "")
        if wants_page and self.graphiql and not secret:
            await self.app({**scope, "query_string": b""}, receive, send)
            return
        if scheme.lower() != "bearer" or not secret:
            await self._refuse(scope, receive, send, MISSING)
            return
        try:
            actor = await authenticate(self.services.engine, secret)
            if actor is None and secret.startswith(PORTAL_TOKEN_PREFIX):  # a customer portal token (rbp_…)
                actor = await bearer_actor(self.services, secret)
        except Exception as exc:
            if not is_database_outage(exc):
                raise
            logger.warning("database unavailable while authenticating: %s", type(exc).__name__)
            await error_response(503, DATABASE_UNAVAILABLE, "DATABASE_UNAVAILABLE", {"Retry-After": "5"})(
                scope, receive, send
            )
            return
        if actor is None:
            await self._refuse(scope, receive, send, UNKNOWN)
            return
        scope.setdefault("state", {})["actor"] = actor
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, message: str) -> None:
        response = error_response(401, message, "UNAUTHENTICATED", {"WWW-Authenticate": 'Bearer realm="rebill"'})
        await response(scope, receive, send)
