"""Request bodies of ``POST /graphql``: bounded in size, and a JSON object before GraphQL sees them.

The size is checked while the body arrives: a ``Content-Length`` over the
limit is refused before a byte is read, and a chunked body is refused as soon
as it passes the limit, so an oversized upload is never buffered whole.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rebill.http.responses import error_response

#: Objects and arrays open at once in a request body.
MAX_JSON_NESTING = 64

_STRING_OR_NULL = ("query", "operationName")
_OBJECT_OR_NULL = ("variables", "extensions")


def json_nesting(value: Any, limit: int) -> int:
    """How deep objects and arrays nest in ``value``, counted without recursion up to ``limit + 1``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def body_problem(body: bytes) -> str | None:
    """Why a JSON request body cannot be a GraphQL request, or ``None``."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"the request body is not UTF-8 (invalid byte at offset {exc.start})"
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "recursion" in str(exc).lower() or "depth" in str(exc).lower():
            return f"the request body nests JSON more than {MAX_JSON_NESTING} deep"
        return f"the request body is not valid JSON ({str(exc).splitlines()[0][:120]})"
    if not isinstance(payload, dict):
        return 'the request body must be a JSON object such as {"query": "…", "variables": {…}}'
    if json_nesting(payload, MAX_JSON_NESTING) > MAX_JSON_NESTING:
        return f"the request body nests JSON more than {MAX_JSON_NESTING} deep"
    for key in _STRING_OR_NULL:
        if payload.get(key) is not None and not isinstance(payload[key], str):
            return f"'{key}' must be a string"
    for key in _OBJECT_OR_NULL:
        if payload.get(key) is not None and not isinstance(payload[key], dict):
            return f"'{key}' must be a JSON object"
    return None


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media in ("", "application/json") or media.endswith("+json")


def json_errors(send: Send) -> Send:
    """Plain-text refusals from the GraphQL view ("Unsupported content type") become JSON error bodies."""
    held: Message | None = None
    chunks: list[bytes] = []

    async def sending(message: Message) -> None:
        nonlocal held
        if message["type"] == "http.response.start" and held is None:
            content_type = Headers(raw=message.get("headers", [])).get("content-type", "")
            if message["status"] >= 400 and content_type.startswith("text/plain"):
                held = message
                return
        if held is not None and message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            text = b"".join(chunks).decode("utf-8", "replace").strip()
            body = orjson.dumps({"data": None, "errors": [{"message": text, "extensions": {"code": "BAD_USER_INPUT"}}]})
            replaced = (b"content-type", b"content-length")
            kept = [(k, v) for k, v in held.get("headers", []) if k.lower() not in replaced]
            kept += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({**held, "headers": kept})
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        await send(message)

    return sending


class RequestBody:
    """413 for bodies over ``max_bytes``; 400 for JSON bodies that are not a GraphQL request object."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = json_errors(send)
        if scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await error_response(400, "Content-Length is not a number", "BAD_USER_INPUT")(scope, receive, send)
                return
            if int(declared) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if _is_json(headers.get("content-type", "")):
            problem = body_problem(body)
            if problem is not None:
                await error_response(400, problem, "BAD_USER_INPUT")(scope, receive, send)
                return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            f"the request body is larger than {self.max_bytes} bytes (REBILL_MAX_BODY_BYTES)",
            "REQUEST_TOO_LARGE",
            {"Connection": "close"},
        )
        await response(scope, receive, send)
