"""An httpx transport that connects only to addresses it has just checked.

Checking a URL's host and then letting the HTTP client resolve it again
leaves a gap: DNS may answer differently the second time (rebinding). Here
the connection pool's network backend resolves the host once per new
connection, checks every address with ``destinations.resolve_checked`` and
connects to a checked address itself. The URL keeps its host name, so the
``Host`` header, TLS SNI and certificate verification are for the name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import httpcore
import httpx

from rebill.webhooks.destinations import NotResolved, Resolver, resolve_checked, system_resolver


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Resolves and checks the host of each new connection, then connects to the checked address."""

    def __init__(
        self,
        resolver: Resolver | None = None,
        *,
        allow_private: bool = False,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.resolver = resolver or system_resolver
        self.allow_private = allow_private
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109  (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await resolve_checked(host, port, self.resolver, allow_private=self.allow_private)
        except NotResolved as exc:
            raise httpcore.ConnectError(str(exc)) from None

        async def connect(address: str) -> httpcore.AsyncNetworkStream:
            return await self.inner.connect_tcp(
                address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
            )

        # Each checked address in turn, in the resolver's order; the last failure is the one reported.
        *others, last = addresses
        for address in others:
            with contextlib.suppress(httpcore.ConnectError, httpcore.ConnectTimeout):
                return await connect(str(address))
        return await connect(str(last))

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109  (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks are not sent to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (HTTP/1.1, TLS verified for the URL's host) over a ``PinnedBackend``."""

    def __init__(self, backend: PinnedBackend, limits: httpx.Limits) -> None:
        super().__init__(limits=limits, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


def pinned_client(
    timeout: float,
    limits: httpx.Limits,
    *,
    allow_private: bool = False,
    resolver: Resolver | None = None,
) -> httpx.AsyncClient:
    """A client that sends only to checked addresses, never through an environment proxy, never following redirects."""
    transport = PinnedTransport(PinnedBackend(resolver, allow_private=allow_private), limits)
    return httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False, trust_env=False)
