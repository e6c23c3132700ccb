"""Scopes: read queries need ``read``, mutations ``write``, refunds ``refund``, bulk ``bulk``; ``admin`` has all.

A customer token reads what ``read`` reads (the customer's e-mail, addresses,
payment methods and subscriptions), so minting one needs ``read`` as well as
``write``: ``permission_classes=[CanWrite, CanRead]``, each refusal naming the
scope that is missing.
"""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission
from strawberry.types import Info


class _Scope(BasePermission):
    scope = "admin"
    error_extensions = {"code": "FORBIDDEN"}

    @property
    def message(self) -> str:  # type: ignore[override]
        return f"this API key lacks the '{self.scope}' scope"

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        actor = info.context.actor
        return actor is not None and actor.has(self.scope)


class CanRead(_Scope):
    scope = "read"


class CanWrite(_Scope):
    scope = "write"


class CanRefund(_Scope):
    scope = "refund"


class CanBulk(_Scope):
    scope = "bulk"


class CanWriteOrCustomer(_Scope):
    """The mutations a customer token may call (on its own things only, checked by the resolver)."""

    scope = "write"

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        actor = info.context.actor
        return actor is not None and (actor.has("write") or "customer" in actor.scopes)


class AnyActor(_Scope):
    """Every authenticated caller: ``viewer`` answers for whoever asks."""

    scope = "read"

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return info.context.actor is not None
