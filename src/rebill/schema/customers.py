"""Customer lookups: the filter of customers(filter:) and its connection."""

from __future__ import annotations

import strawberry

from rebill.schema.catalog import Customer
from rebill.schema.common import PageInfo


@strawberry.input(description="Which customers customers(filter:) lists; every field given must match.")
class CustomerFilter:
    email: str | None = strawberry.field(default=None, description="This e-mail address exactly, in any letter case")
    email_contains: str | None = strawberry.field(
        default=None, description="E-mail addresses containing this text, in any letter case"
    )
    search: str | None = strawberry.field(
        default=None,
        description="Words that must each appear in the customer's name or e-mail address, in any letter case",
    )


@strawberry.type(description="A customer in a page of customers, with its cursor.")
class CustomerEdge:
    cursor: str = strawberry.field(description="Where this customer sits in the list: pass it as after or before")
    node: Customer = strawberry.field(description="The customer")


@strawberry.type(description="A page of customers (Relay connection), oldest first.")
class CustomerConnection:
    edges: list[CustomerEdge] = strawberry.field(description="The customers of this page, in order")
    page_info: PageInfo = strawberry.field(description="Whether more customers lie before or after this page")
    total_count: int = strawberry.field(description="How many customers match the filter, over all pages")
