"""``application/graphql-response+json``, as the GraphQL over HTTP specification says.

A client that accepts the newer media type (and prefers it to
``application/json``) gets it as the response's content type, and the HTTP
status then tells a request error from an executed one: a request that fails
before execution (a syntax error, a document that does not validate,
variables that cannot be coerced, a query over the limits) has no ``data``
entry and a 4xx status (400 unless something earlier chose another, as 401
or 429 do). An executed request is 200 whatever its field errors. Clients
that accept only ``application/json`` keep today's answers unchanged.

A request error is recognised by its body: no data (or null data) and no
error with a ``path``, since field errors always carry one.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"


def _quality(accept: str, media_type: str) -> float:
    """The q-value ``accept`` gives ``media_type`` (exact matches only; 0 when absent)."""
    best = 0.0
    for part in accept.split(","):
        kind, *params = [p.strip() for p in part.split(";")]
        if kind.lower() != media_type:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        best = max(best, q)
    return best


def wants_graphql_response(accept: str) -> bool:
    new = _quality(accept, GRAPHQL_RESPONSE)
    return new > 0 and new >= _quality(accept, JSON)


def is_request_error(body: Any) -> bool:
    if not isinstance(body, dict) or not body.get("errors") or body.get("data") is not None:
        return False
    return all(isinstance(e, dict) and not e.get("path") for e in body["errors"])


class GraphQLResponseMedia:
    """Wraps the GraphQL endpoint: answers in ``application/graphql-response+json`` when asked to."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not wants_graphql_response(Headers(scope=scope).get("accept", "")):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            await self._send(start, b"".join(chunks), send)

        await self.app(scope, receive, capture)

    @staticmethod
    async def _send(start: Message, body: bytes, send: Send) -> None:
        headers = MutableHeaders(raw=list(start["headers"]))
        status = start["status"]
        if headers.get("content-type", "").split(";")[0].strip().lower() == JSON:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
            if is_request_error(parsed):
                parsed.pop("data", None)
                body = json.dumps(parsed, separators=(",", ":")).encode()
                if status == 200:
                    status = 400
            headers["content-type"] = f"{GRAPHQL_RESPONSE}; charset=utf-8"
            headers["content-length"] = str(len(body))
        await send({"type": "http.response.start", "status": status, "headers": headers.raw})
        await send({"type": "http.response.body", "body": body, "more_body": False})
