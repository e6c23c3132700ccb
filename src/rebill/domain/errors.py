"""The exception family of rebill's rules.

Every refusal carries a stable UPPER_SNAKE ``code`` that clients branch on, a
human message, and optionally the path of the input field it concerns. The
GraphQL boundary turns these into ``userErrors``; anything that is not a
``RebillError`` is a bug and is masked.
"""

from __future__ import annotations

from collections.abc import Sequence


class RebillError(Exception):
    """Base of every rule refusal. ``code`` is part of the public contract."""

    code: str = "ERROR"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: Sequence[str] | None = None,
        details: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = list(field) if field is not None else None
        self.details = details or {}

    def with_field(self, *path: str) -> RebillError:
        """Prefix the field path (an input object nests the field it refuses)."""
        self.field = [*path, *(self.field or [])]
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class ValidationError(RebillError):
    """Input that can never be valid, whatever the state: a malformed value."""

    code = "INVALID_INPUT"


class MoneyError(ValidationError):
    """Malformed amounts, unknown currencies, arithmetic across currencies."""

    code = "INVALID_AMOUNT"


class UrlNotAllowed(ValidationError):
    """A URL rebill will not send to: credentials in it, another scheme, an address that is not public."""

    code = "URL_NOT_ALLOWED"


class NotFound(RebillError):
    code = "NOT_FOUND"


class SubscriptionError(RebillError):
    """A business rule refuses an operation on a subscription."""

    code = "SUBSCRIPTION_RULE"


class InvalidStatus(SubscriptionError):
    code = "INVALID_STATUS"


class VersionConflict(SubscriptionError):
    code = "VERSION_CONFLICT"


class ConsentRequired(SubscriptionError):
    code = "CONSENT_REQUIRED"


class PaymentDeclined(SubscriptionError):
    code = "PAYMENT_DECLINED"


class InvoiceError(RebillError):
    """An invoice rule refuses an action: a finalized invoice edited, one not open voided, a credit too large."""

    code = "INVOICE_RULE"


class Collected(RebillError):
    """Several refusals reported at once (bulk plan validation)."""

    code = "INVALID_INPUT"

    def __init__(self, errors: Sequence[RebillError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(e.message for e in self.errors) or "invalid input")
