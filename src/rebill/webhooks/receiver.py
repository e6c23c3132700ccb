"""A loopback webhook receiver: a few lines of HTTP/1.1 that verify every request.

For tests and benchmarks (and as a reference for partners): each request's
Standard Webhooks signature is checked with ``standardwebhooks.Webhook``
against every secret the receiver knows, and the request is recorded with
the secrets that verified it. What it answers is up to ``respond``: a
status, or a ``Reply`` with headers and a body.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from standardwebhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    """One request as the receiver saw it."""

    headers: dict[str, str]
    body: bytes
    verified_by: list[int] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.headers.get("webhook-id", "")

    @property
    def event(self) -> dict[str, Any]:
        loaded: dict[str, Any] = orjson.loads(self.body)
        return loaded

    @property
    def verified(self) -> bool:
        return bool(self.verified_by)


@dataclass(frozen=True)
class Reply:
    """An answer with more than a status: a redirect's ``location``, a body."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


Respond = Callable[[Received], "int | Reply | Awaitable[int | Reply]"]


class Receiver:
    """``async with Receiver(secrets) as url:`` serves on 127.0.0.1 until the block ends."""

    def __init__(self, secrets: Sequence[str] = (), respond: Respond | None = None) -> None:
        self.secrets = list(secrets)
        self.respond = respond
        self.received: list[Received] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.url = ""

    def verify(self, message: Received) -> list[int]:
        """The positions of the secrets whose signature the message carries."""
        found = []
        for i, secret in enumerate(self.secrets):
            try:
                Webhook(secret).verify(message.body, message.headers)
            except WebhookVerificationError:
                continue
            found.append(i)
        return found

    async def _answer(self, message: Received) -> Reply:
        if self.respond is None:
            return Reply(204)
        answer = self.respond(message)
        if inspect.isawaitable(answer):
            answer = await answer
        return answer if isinstance(answer, Reply) else Reply(int(answer))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                message = Received(headers, body)
                message.verified_by = self.verify(message)
                self.received.append(message)
                reply = await self._answer(message)
                head_lines = [f"HTTP/1.1 {reply.status} X", f"content-length: {len(reply.body)}"]
                head_lines += [f"{name}: {value}" for name, value in reply.headers.items()]
                writer.write(("\r\n".join(head_lines) + "\r\n\r\n").encode() + reply.body)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            if task is not None:
                self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/hooks"
        return self.url

    async def stop(self) -> None:
        """Close every connection; a request still being answered gets a few seconds to finish."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        tasks = list(self._tasks)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=5)
            for task in late:
                task.cancel()
        with contextlib.suppress(Exception):
            await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> str:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
