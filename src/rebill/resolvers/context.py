"""Per-request context: who is asking, the services, and the request's DataLoaders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BigInteger, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.dataloader import DataLoader

from rebill.db import tables as t
from rebill.db.driver import Prepared, Reads, json_as_text
from rebill.db.repositories import (
    Catalog,
    SubscriptionRepository,
    coupon_from_row,
    shipping_profile_from_row,
)
from rebill.domain.money import Money
from rebill.domain.pricing import PriceTier
from rebill.domain.subscription import AppliedCoupon as DomainAppliedCoupon
from rebill.domain.subscription import ProfileTerms, SubscriptionState
from rebill.resolvers.pages import GroupKey, Page, fetch_grouped_pages
from rebill.schema.catalog import Product, SubscriptionProfile
from rebill.schema.subscriptions import SubscriptionItem
from rebill.services.runtime import Actor, Services

PageKey = GroupKey  # (parent id, window, order)


def read_engine(services: Services) -> AsyncEngine:
    """The engine every resolver reads through: the one behind ``services.sessions``, also for the
    reads that skip a session (``rebill.db.driver``)."""
    engine: AsyncEngine = services.sessions.kw["bind"]
    return engine


def _ids(column: Any) -> Any:
    """``column = ANY(:ids)``: the loaders' statements, compiled once whatever the number of ids."""
    return column == any_(bindparam("ids", type_=ARRAY(BigInteger)))


_BY_IDS: dict[Any, Prepared] = {}


def _by_ids(table: Any) -> Prepared:
    found = _BY_IDS.get(table)
    if found is None:
        columns = json_as_text(table) if table in _JSON_AS_TEXT else [table]
        found = _BY_IDS[table] = Prepared(select(*columns).where(_ids(table.c.id)))
    return found


#: Tables whose rows only nodes read (``Subscription.of_row``, ``Customer.of``), which parse their JSON
#: columns when a field asks (``rebill.db.driver.parsed``).
_JSON_AS_TEXT = {t.table_of(t.Subscription), t.table_of(t.Customer)}


_I = t.table_of(t.SubscriptionItem)
_ITEMS = Prepared(select(_I).where(_ids(_I.c.subscription_id)).order_by(_I.c.subscription_id, _I.c.position, _I.c.id))
_AC, _C = t.table_of(t.AppliedCoupon), t.table_of(t.Coupon)
_COUPONS = Prepared(
    select(_AC.c.id.label("applied_id"), _AC.c.subscription_id, _AC.c.cycles_used, _C)
    .join(_C, _C.c.id == _AC.c.coupon_id)
    .where(_ids(_AC.c.subscription_id))
    .order_by(_AC.c.subscription_id, _AC.c.id)
)
_PT = t.table_of(t.ProductTier)
_TIERS = Prepared(select(_PT).where(_ids(_PT.c.product_id)).order_by(_PT.c.product_id, _PT.c.position))


def _ordered(keys: Sequence[int], rows: dict[int, Any]) -> list[Any]:
    return [rows.get(k) for k in keys]


@dataclass
class Loaders:
    """``<Thing>By<Key>Loader``: one ``IN (…)`` query per batch, results in key order."""

    services: Services
    reads: Reads
    customer_by_id: DataLoader[int, Any] = field(init=False)
    payment_method_by_id: DataLoader[int, Any] = field(init=False)
    subscription_by_id: DataLoader[int, SubscriptionState | None] = field(init=False)
    profile_by_id: DataLoader[int, ProfileTerms | None] = field(init=False)
    phases_by_subscription: DataLoader[int, list[Any]] = field(init=False)
    payment_methods_by_customer: DataLoader[int, list[Any]] = field(init=False)
    renewal_page_by_subscription: DataLoader[PageKey, Page] = field(init=False)
    history_page_by_subscription: DataLoader[PageKey, Page] = field(init=False)
    subscription_page_by_customer: DataLoader[PageKey, Page] = field(init=False)
    invoice_by_renewal: DataLoader[int, Any] = field(init=False)
    invoice_lines_by_invoice: DataLoader[int, list[Any]] = field(init=False)
    invoice_page_by_subscription: DataLoader[PageKey, Page] = field(init=False)
    invoice_page_by_customer: DataLoader[PageKey, Page] = field(init=False)
    credit_notes_by_invoice: DataLoader[int, list[Any]] = field(init=False)
    credit_note_lines_by_note: DataLoader[int, list[Any]] = field(init=False)
    tax_rate_by_id: DataLoader[int, Any] = field(init=False)
    shipping_profile_by_id: DataLoader[int, Any] = field(init=False)
    # What a subscription read from its row refers to, each read only when a field asks for it.
    subscription_row_by_id: DataLoader[int, Any] = field(init=False)
    items_by_subscription: DataLoader[int, list[SubscriptionItem]] = field(init=False)
    coupons_by_subscription: DataLoader[int, list[DomainAppliedCoupon]] = field(init=False)
    product_by_id: DataLoader[int, Product | None] = field(init=False)
    tiers_by_product: DataLoader[int, tuple[PriceTier, ...]] = field(init=False)
    profile_by_pk: DataLoader[int, SubscriptionProfile | None] = field(init=False)

    def __getattr__(self, name: str) -> DataLoader[Any, Any]:
        """Each loader made when first used: a request uses a few of the two dozen."""
        batch = _BATCH_FUNCTIONS.get(name)
        if batch is None:
            raise AttributeError(f"'Loaders' object has no attribute {name!r}")
        loader: DataLoader[Any, Any] = DataLoader(load_fn=getattr(self, batch))
        self.__dict__[name] = loader
        return loader

    async def _read(self, statement: Prepared, keys: Sequence[int]) -> Sequence[Any]:
        """A read on the request's connection (``rebill.db.driver.Reads``), no transaction around it."""
        return await self.reads.fetch(statement, ids=list(keys))

    async def _rows(self, table: Any, keys: Sequence[int]) -> list[Any]:
        rows = {r["id"]: r for r in await self._read(_by_ids(table), keys)}
        return _ordered(keys, rows)

    async def _subscription_rows(self, keys: list[int]) -> list[Any]:
        return await self._rows(t.table_of(t.Subscription), keys)

    async def _items(self, keys: list[int]) -> list[list[SubscriptionItem]]:
        grouped: dict[int, list[SubscriptionItem]] = {}
        for r in await self._read(_ITEMS, keys):
            grouped.setdefault(r["subscription_id"], []).append(SubscriptionItem.of_row(r, self))
        return [grouped.get(k, []) for k in keys]

    async def _coupons(self, keys: list[int]) -> list[list[DomainAppliedCoupon]]:
        grouped: dict[int, list[DomainAppliedCoupon]] = {}
        for r in await self._read(_COUPONS, keys):
            grouped.setdefault(r.subscription_id, []).append(
                DomainAppliedCoupon(r.applied_id, coupon_from_row(r), r.cycles_used)
            )
        return [grouped.get(k, []) for k in keys]

    async def _products(self, keys: list[int]) -> list[Product | None]:
        rows = await self._rows(t.table_of(t.Product), keys)
        return [Product.of_row(r) if r is not None else None for r in rows]

    async def _tiers(self, keys: list[int]) -> list[tuple[PriceTier, ...]]:
        grouped: dict[int, list[PriceTier]] = {}
        for r in await self._read(_TIERS, keys):
            grouped.setdefault(r.product_id, []).append(PriceTier(r.up_to, Money(r.unit_price_minor, r.currency)))
        return [tuple(grouped.get(k, ())) for k in keys]

    async def _profile_nodes(self, keys: list[int]) -> list[SubscriptionProfile | None]:
        rows = await self._rows(t.table_of(t.Profile), keys)
        return [SubscriptionProfile.of_row(r) if r is not None else None for r in rows]

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

    async def _customer_subscription_pages(self, keys: list[PageKey]) -> list[Page]:
        """Pages of each customer's subscriptions (their rows): one windowed query for all customers."""
        table = t.table_of(t.Subscription)
        async with self.services.sessions() as session:
            return await fetch_grouped_pages(session, table, table.c.customer_id, keys)

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


#: Each loader's batch function (a method of ``Loaders``).
_BATCH_FUNCTIONS = {
    "customer_by_id": "_customers",
    "payment_method_by_id": "_payment_methods",
    "subscription_by_id": "_subscriptions",
    "profile_by_id": "_profiles",
    "phases_by_subscription": "_phases",
    "payment_methods_by_customer": "_customer_payment_methods",
    "renewal_page_by_subscription": "_renewal_pages",
    "history_page_by_subscription": "_history_pages",
    "subscription_page_by_customer": "_customer_subscription_pages",
    "invoice_by_renewal": "_renewal_invoices",
    "invoice_lines_by_invoice": "_invoice_lines",
    "invoice_page_by_subscription": "_invoice_pages",
    "invoice_page_by_customer": "_customer_invoice_pages",
    "credit_notes_by_invoice": "_invoice_credit_notes",
    "credit_note_lines_by_note": "_credit_note_lines",
    "tax_rate_by_id": "_tax_rates",
    "shipping_profile_by_id": "_shipping_profiles",
    "subscription_row_by_id": "_subscription_rows",
    "items_by_subscription": "_items",
    "coupons_by_subscription": "_coupons",
    "product_by_id": "_products",
    "tiers_by_product": "_tiers",
    "profile_by_pk": "_profile_nodes",
}


@dataclass
class Context:
    services: Services
    actor: Actor | None
    loaders: Loaders
    request: Any = None
    response: Any = None

    @property
    def reads(self) -> Reads:
        """The request's reads, on one connection: ``close`` when the request is done."""
        return self.loaders.reads

    @classmethod
    def build(cls, services: Services, actor: Actor | None, request: Any = None, response: Any = None) -> Context:
        return cls(services, actor, Loaders(services, Reads(read_engine(services))), request, response)
