"""The GraphQL schema."""

from __future__ import annotations

import strawberry

from rebill.config import Settings


def build_full_schema(settings: Settings | None = None) -> strawberry.Schema:
    from rebill.schema.root import build_schema

    return build_schema(settings)
