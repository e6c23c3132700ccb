"""Per-request context: who is asking, the services, and the request's DataLoaders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from strawberry.dataloader import DataLoader

from rebill.db import tables as t
from rebill.db.repositories import Catalog, SubscriptionRepository, shipping_profile_from_row
from rebill.domain.subscription import ProfileTerms, SubscriptionState
from rebill.resolvers.pages import GroupKey, Page, fetch_grouped_pages
from rebill.services.runtime import Actor, Services

PageKey = GroupKey  # (parent id, window, order)


def _ordered(keys: Sequence[int], rows: dict[int, Any]) -> list[Any]:
    return [rows.get(k) for k in keys]


@dataclass
class Loaders:
    """``<Thing>By<Key>Loader``: one ``IN (…)`` query per batch, results in key order."""

    services: Services
    customer_by_id: DataLoader[int, Any] = field(init=False)
    payment_method_by_id: DataLoader[int, Any] = field(init=False)
    subscription_by_id: DataLoader[int, SubscriptionState | None] = field(init=False)
    profile_by_id: DataLoader[int, ProfileTerms | None] = field(init=False)
    phases_by_subscription: DataLoader[int, list[Any]] = field(init=False)
    payment_methods_by_customer: DataLoader[int, list[Any]] = field(init=False)
    renewal_page_by_subscription: DataLoader[PageKey, Page] = field(init=False)
    history_page_by_subscription: DataLoader[PageKey, Page] = field(init=False)
    subscription_page_by_customer: DataLoader[PageKey, tuple[Page, list[SubscriptionState]]] = field(init=False)
    invoice_by_renewal: DataLoader[int, Any] = field(init=False)
    invoice_lines_by_invoice: DataLoader[int, list[Any]] = field(init=False)
    invoice_page_by_subscription: DataLoader[PageKey, Page] = field(init=False)
    invoice_page_by_customer: DataLoader[PageKey, Page] = field(init=False)
    credit_notes_by_invoice: DataLoader[int, list[Any]] = field(init=False)
    credit_note_lines_by_note: DataLoader[int, list[Any]] = field(init=False)
    tax_rate_by_id: DataLoader[int, Any] = field(init=False)
    shipping_profile_by_id: DataLoader[int, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.customer_by_id = DataLoader(load_fn=self._customers)
        self.payment_method_by_id = DataLoader(load_fn=self._payment_methods)
        self.subscription_by_id = DataLoader(load_fn=self._subscriptions)
        self.profile_by_id = DataLoader(load_fn=self._profiles)
        self.phases_by_subscription = DataLoader(load_fn=self._phases)
        self.payment_methods_by_customer = DataLoader(load_fn=self._customer_payment_methods)
        self.renewal_page_by_subscription = DataLoader(load_fn=self._renewal_pages)
        self.history_page_by_subscription = DataLoader(load_fn=self._history_pages)
        self.subscription_page_by_customer = DataLoader(load_fn=self._customer_subscription_pages)
        self.invoice_by_renewal = DataLoader(load_fn=self._renewal_invoices)
        self.invoice_lines_by_invoice = DataLoader(load_fn=self._invoice_lines)
        self.invoice_page_by_subscription = DataLoader(load_fn=self._invoice_pages)
        self.invoice_page_by_customer = DataLoader(load_fn=self._customer_invoice_pages)
        self.credit_notes_by_invoice = DataLoader(load_fn=self._invoice_credit_notes)
        self.credit_note_lines_by_note = DataLoader(load_fn=self._credit_note_lines)
        self.tax_rate_by_id = DataLoader(load_fn=self._tax_rates)
        self.shipping_profile_by_id = DataLoader(load_fn=self._shipping_profiles)

    async def _rows(self, table: Any, keys: Sequence[int]) -> list[Any]:
        async with self.services.sessions() as session:
            rows = {r.id: r for r in await session.execute(select(table).where(table.c.id.in_(list(keys))))}
        return _ordered(keys, rows)

    async def _customers(self, keys: list[int]) -> list[Any]:
        return await self._rows(t.table_of(t.Customer), keys)

    async def _tax_rates(self, keys: list[int]) -> list[Any]:
        return await self._rows(t.table_of(t.TaxRate), keys)

    async def _shipping_profiles(self, keys: list[int]) -> list[Any]:
        rows = await self._rows(t.table_of(t.ShippingProfile), keys)
        return [shipping_profile_from_row(r) if r is not None else None for r in rows]

    async def _payment_methods(self, keys: list[int]) -> list[Any]:
        return await self._rows(t.table_of(t.PaymentMethod), keys)

    async def _profiles(self, keys: list[int]) -> list[ProfileTerms | None]:
        async with self.services.sessions() as session:
            profiles = await Catalog(session).load_profiles(keys)
        return _ordered(keys, profiles)

    async def _subscriptions(self, keys: list[int]) -> list[SubscriptionState | None]:
        async with self.services.sessions() as session:
            states = await SubscriptionRepository(session).get_many(keys)
        return _ordered(keys, states)

    async def _phases(self, keys: list[int]) -> list[list[Any]]:
        table = t.table_of(t.Phase)
        async with self.services.sessions() as session:
            rows = await session.execute(
                select(table).where(table.c.subscription_id.in_(keys)).order_by(table.c.effective_date, table.c.id)
            )
            grouped: dict[int, list[Any]] = {}
            for r in rows:
                grouped.setdefault(r.subscription_id, []).append(r)
        return [grouped.get(k, []) for k in keys]

    async def _customer_payment_methods(self, keys: list[int]) -> list[list[Any]]:
        table = t.table_of(t.PaymentMethod)
        async with self.services.sessions() as session:
            rows = await session.execute(select(table).where(table.c.customer_id.in_(keys)).order_by(table.c.id))
            grouped: dict[int, list[Any]] = {}
            for r in rows:
                grouped.setdefault(r.customer_id, []).append(r)
        return [grouped.get(k, []) for k in keys]

    async def _renewal_pages(self, keys: list[PageKey]) -> list[Page]:
        return await self._pages(t.table_of(t.Renewal), keys)

    async def _history_pages(self, keys: list[PageKey]) -> list[Page]:
        return await self._pages(t.table_of(t.HistoryEntry), keys)

    async def _customer_subscription_pages(self, keys: list[PageKey]) -> list[tuple[Page, list[SubscriptionState]]]:
        """Pages of each customer's subscriptions, their states assembled in one pass for all customers."""
        table = t.table_of(t.Subscription)
        async with self.services.sessions() as session:
            pages = await fetch_grouped_pages(session, table, table.c.customer_id, keys)
            states = await SubscriptionRepository(session).states_from_rows([r for p in pages for r in p.rows])
        by_id = {s.id: s for s in states}
        return [(p, [by_id[r.id] for r in p.rows]) for p in pages]

    async def _renewal_invoices(self, keys: list[int]) -> list[Any]:
        """Each renewal's final invoice (its pro forma only while there is no invoice yet)."""
        table = t.table_of(t.Invoice)
        async with self.services.sessions() as session:
            rows = await session.execute(
                select(table).where(table.c.renewal_id.in_(keys)).order_by(table.c.renewal_id, table.c.id)
            )
            found: dict[int, Any] = {}
            for r in rows:
                if r.renewal_id not in found or r.document_type == "INVOICE":
                    found[r.renewal_id] = r
        return [found.get(k) for k in keys]

    async def _children(self, table: Any, parent: Any, keys: list[int], *order: Any) -> list[list[Any]]:
        """Each key's rows of ``table`` (``parent`` the column naming the key), in ``order``."""
        async with self.services.sessions() as session:
            rows = await session.execute(select(table).where(parent.in_(keys)).order_by(parent, *order))
            grouped: dict[int, list[Any]] = {}
            for r in rows:
                grouped.setdefault(r._mapping[parent.name], []).append(r)
        return [grouped.get(k, []) for k in keys]

    async def _invoice_lines(self, keys: list[int]) -> list[list[Any]]:
        table = t.table_of(t.InvoiceLine)
        return await self._children(table, table.c.invoice_id, keys, table.c.position)

    async def _invoice_credit_notes(self, keys: list[int]) -> list[list[Any]]:
        table = t.table_of(t.CreditNote)
        return await self._children(table, table.c.invoice_id, keys, table.c.id)

    async def _credit_note_lines(self, keys: list[int]) -> list[list[Any]]:
        table = t.table_of(t.CreditNoteLine)
        return await self._children(table, table.c.credit_note_id, keys, table.c.position)

    async def _invoice_pages(self, keys: list[PageKey]) -> list[Page]:
        return await self._pages(t.table_of(t.Invoice), keys)

    async def _customer_invoice_pages(self, keys: list[PageKey]) -> list[Page]:
        table = t.table_of(t.Invoice)
        async with self.services.sessions() as session:
            return await fetch_grouped_pages(session, table, table.c.customer_id, keys)

    async def _pages(self, table: Any, keys: list[PageKey]) -> list[Page]:
        """Pages of a subscription's rows for many subscriptions at once (see ``fetch_grouped_pages``)."""
        async with self.services.sessions() as session:
            return await fetch_grouped_pages(session, table, table.c.subscription_id, keys)


@dataclass
class Context:
    services: Services
    actor: Actor | None
    loaders: Loaders
    request: Any = None
    response: Any = None

    @classmethod
    def build(cls, services: Services, actor: Actor | None, request: Any = None, response: Any = None) -> Context:
        return cls(services, actor, Loaders(services), request, response)
