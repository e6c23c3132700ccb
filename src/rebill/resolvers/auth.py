"""Scopes: read queries need ``read``, mutations ``write``, refunds ``refund``, bulk ``bulk``; ``admin`` has all."""

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
