"""What every use case needs: the database, the clock, the gateways, and who is acting."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from rebill.billing.gateways import GatewayRegistry
from rebill.clock import Clock
from rebill.config import Settings
from rebill.db.engine import session_factory
from rebill.domain.errors import RebillError
from rebill.domain.renewal import RenewalInfo
from rebill.domain.subscription import SubscriptionState

SCOPES = ("read", "write", "refund", "bulk", "admin")


@dataclass(frozen=True)
class Actor:
    """Who makes a change: an API key, a bulk run or the renewal engine."""

    name: str
    api_key_id: int | None = None
    scopes: frozenset[str] = frozenset()
    bulk_run_id: int | None = None

    def has(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


ENGINE = Actor("renewal-engine", scopes=frozenset({"admin"}))
SYSTEM = Actor("system", scopes=frozenset({"admin"}))


@dataclass(frozen=True)
class Common:
    """The options every subscription mutation takes."""

    expected_version: int | None = None
    reason: str | None = None
    idempotency_key: str | None = None
    dry_run: bool = False


@dataclass
class Result:
    """What a mutation reports: the objects it touched, or why it refused."""

    subscription: SubscriptionState | None = None
    renewal: RenewalInfo | None = None
    replaced: SubscriptionState | None = None
    refund: dict[str, Any] | None = None
    errors: list[RebillError] = field(default_factory=list)
    dry_run: bool = False
    replayed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    # Renewals recorded and not yet settled (their charge is in flight).
    pending: list[int] = field(default_factory=list)
    # What a dry run's charge would be invoiced (a ``domain.invoice.Document``; never stored).
    invoice_preview: Any = None

    @property
    def ok(self) -> bool:
        return not self.errors


#: Billing forecasts a process runs at once (others wait their turn).
FORECASTS_AT_ONCE = 2


class Services:
    """Shared by the server, the worker and the CLI; one per process."""

    def __init__(self, engine: AsyncEngine, settings: Settings, clock: Clock | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock or Clock.from_setting(settings.now)
        self.sessions: async_sessionmaker[AsyncSession] = session_factory(engine)
        self.gateways = GatewayRegistry(settings.gateways, settings.default_gateway, engine)
        # Forecasts running at once: each reads the whole schedule on three connections and keeps both cores busy;
        # more would only share them, and could hold most of the pool.
        self.forecasts = asyncio.Semaphore(FORECASTS_AT_ONCE)

    async def close(self) -> None:
        """Close what these services opened beside the engine (the gateways' connections); the engine is its
        creator's to dispose."""
        await self.gateways.close()
