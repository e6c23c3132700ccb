"""Bulk plans: one model for GraphQL's ``BulkPlanInput`` and the CLI's JSON files.

A plan arrives as JSON (the GraphQL input is turned into the same dict), is
parsed into frozen values, and every problem is collected with its path in
the plan (``segments[1].actions[0].adjustPrice.percent``) so an operator
fixes a plan in one pass instead of one error at a time. References to
stored things (profiles, coupons, products, gateways) are checked by
:func:`load_references`, which needs the database.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rebill.db import tables as t
from rebill.domain.cadence import IntervalUnit
from rebill.domain.errors import Collected, RebillError, ValidationError
from rebill.domain.invoice import InvoicingTerms, change_terms, invoicing_changes
from rebill.domain.money import Money
from rebill.domain.status import SubscriptionStatus
from rebill.domain.subscription import GatewayMode, RenewalType
from rebill.domain.updates import MAX_DATE, MIN_DATE
from rebill.ids import decode_id
from rebill.services.filters import SubscriptionFilter
from rebill.services.search import MAX_SEARCH_LENGTH

MAX_SEGMENTS = 50
MAX_ACTIONS = 20
#: Items in any one list of a plan (``ids`` in filters among them), and characters
#: in any one string: the bounds the GraphQL boundary puts on what a client sends,
#: kept by plan files too.
MAX_LIST_ITEMS = 1000
MAX_STRING_CHARS = 65_536
#: Objects and lists open at once, the bound on a request body (``http/body.py``): no plan
#: needs a tenth of it, and what reads, validates and stores a plan never recurses deeper.
MAX_NESTING = 64


# -- actions -------------------------------------------------------------------


@dataclass(frozen=True)
class ShiftNextRenewal:
    unit: IntervalUnit
    count: int


@dataclass(frozen=True)
class SetNextRenewalDate:
    date: date


@dataclass(frozen=True)
class SetUnitPrice:
    unit_price: Money
    product_id: int | None = None
    consent_reference: str | None = None


@dataclass(frozen=True)
class AdjustPrice:
    """``percent`` (``-10`` is ten percent off) or a signed ``amount`` per unit."""

    percent: Decimal | None = None
    amount: Money | None = None
    product_id: int | None = None
    consent_reference: str | None = None


@dataclass(frozen=True)
class SetQuantity:
    quantity: int
    product_id: int | None = None
    consent_reference: str | None = None


@dataclass(frozen=True)
class ChangeProfile:
    profile_id: int


@dataclass(frozen=True)
class SetShippingProfile:
    """A shipping profile of the subscriptions' own (None: back to their profile's); consent for a higher charge."""

    shipping_profile_id: int | None
    consent_reference: str | None = None


@dataclass(frozen=True)
class SetRenewalType:
    renewal_type: RenewalType


@dataclass(frozen=True)
class SetGateway:
    gateway_id: str
    mode: GatewayMode = GatewayMode.PREFERRED


@dataclass(frozen=True)
class ClearGateway:
    pass


@dataclass(frozen=True)
class ApplyCoupon:
    code: str


@dataclass(frozen=True)
class RemoveCoupon:
    code: str


@dataclass(frozen=True)
class Suspend:
    pass


@dataclass(frozen=True)
class Activate:
    pass


@dataclass(frozen=True)
class Cancel:
    at_period_end: bool = False
    # End a contract's commitment now (DOMAIN.md "Contract terms"); a fee to bill skips the subscription.
    override_contract: bool = False


@dataclass(frozen=True)
class SetMetadata:
    metadata: Mapping[str, Any] = field(default_factory=dict)
    merge: bool = True

    def __hash__(self) -> int:
        return hash(json.dumps(self.metadata, sort_keys=True, default=str))


@dataclass(frozen=True)
class SetInvoicing:
    """The ``updateInvoicing`` fields given (keys as in the API; absent keys keep their value)."""

    changes: Mapping[str, Any] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash(json.dumps(self.changes, sort_keys=True, default=str))


Action = (
    ShiftNextRenewal
    | SetNextRenewalDate
    | SetUnitPrice
    | AdjustPrice
    | SetQuantity
    | ChangeProfile
    | SetRenewalType
    | SetGateway
    | ClearGateway
    | ApplyCoupon
    | RemoveCoupon
    | Suspend
    | Activate
    | Cancel
    | SetMetadata
    | SetInvoicing
    | SetShippingProfile
)


@dataclass(frozen=True)
class Segment:
    name: str
    when: SubscriptionFilter | None
    actions: tuple[Action, ...]


@dataclass(frozen=True)
class Plan:
    filter: SubscriptionFilter
    segments: tuple[Segment, ...]
    limit: int | None = None

    @property
    def hash(self) -> str:
        """Identifies "the same plan" across runs: what it does to whom.

        Neither the limit nor the consent references are part of it: a trial run of "+10 %" with one
        consent reference and the full run with another are one plan, and the second leaves alone what
        the first changed (a subscription is raised once, not twice).
        """
        data = plan_to_json(self)
        for segment in data["segments"]:
            segment["actions"] = [_without_consent(a) for a in segment["actions"]]
        canonical = json.dumps({**data, "limit": None}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _without_consent(action: dict[str, Any]) -> dict[str, Any]:
    return {
        name: {k: v for k, v in params.items() if k != "consentReference"} if isinstance(params, dict) else params
        for name, params in action.items()
    }


# -- paths and error collection ----------------------------------------------


def path_text(path: Sequence[str | int]) -> str:
    """``("segments", 1, "actions", 0, "adjustPrice")`` as ``segments[1].actions[0].adjustPrice``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


class _Errors:
    def __init__(self) -> None:
        self.items: list[RebillError] = []

    def add(self, path: Sequence[str | int], code: str, message: str) -> None:
        where = path_text(path)
        self.items.append(
            ValidationError(f"{where}: {message}" if where else message, code=code, field=[str(p) for p in path])
        )

    def raise_if_any(self) -> None:
        if self.items:
            raise Collected(self.items)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.capitalize() for w in rest)


_FILTER_KEYS = {_camel(f.name): f.name for f in fields(SubscriptionFilter)}


def _unknown_keys(errors: _Errors, path: list[str | int], data: Mapping[str, Any], allowed: Iterable[str]) -> None:
    allowed = list(allowed)
    for key in data:
        if key not in allowed:
            errors.add([*path, key], "UNKNOWN_FIELD", f"unknown field {key!r}; expected one of {', '.join(allowed)}")


def _is_object(errors: _Errors, path: list[str | int], value: Any, what: str) -> bool:
    if not isinstance(value, Mapping):
        errors.add(path, "INVALID_VALUE", f"{what} must be a JSON object, not {_kind(value)}")
        return False
    return True


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def out_of_bounds(data: Any) -> str | None:
    """The first list or string in a plan's JSON over the bounds, as one line naming its path.

    Lists hold at most ``MAX_LIST_ITEMS`` items; strings (keys too) at most
    ``MAX_STRING_CHARS`` characters and no NUL character; objects and lists
    nest at most ``MAX_NESTING`` deep. ``None`` when all is within the bounds.
    Walked without recursion, in document order, before anything else looks
    at the plan.
    """
    stack: list[tuple[Any, list[str | int]]] = [(data, [])]
    while stack:
        item, path = stack.pop()
        where = path_text(path) or "the plan"
        if isinstance(item, Mapping | list) and len(path) >= MAX_NESTING:
            return f"{path_text(path[:3])}…: objects and lists nest more than {MAX_NESTING} deep"
        if isinstance(item, Mapping):
            for key in item:
                if "\x00" in str(key):
                    return f"{where}: a key contains a NUL character"
            stack.extend((child, [*path, str(key)]) for key, child in reversed(list(item.items())))
        elif isinstance(item, list):
            if len(item) > MAX_LIST_ITEMS:
                return f"{where}: at most {MAX_LIST_ITEMS} items per list (got {len(item)})"
            stack.extend((child, [*path, n]) for n, child in reversed(list(enumerate(item))))
        elif isinstance(item, str):
            if "\x00" in item:
                return f"{where}: text may not contain NUL characters"
            if len(item) > MAX_STRING_CHARS:
                return f"{where}: at most {MAX_STRING_CHARS} characters per string (got {len(item)})"
    return None


# -- ids ---------------------------------------------------------------------


def _decode_pk(value: Any, type_name: str) -> int | None:
    """A global id of ``type_name`` (copied from a query) or a plain positive integer (friendlier in plan files)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str):
        if value.isdigit():
            return int(value)
        try:
            return decode_id(value, type_name)
        except RebillError:
            return None
    return None


# -- scalars -----------------------------------------------------------------


def _str(errors: _Errors, path: list[str | int], value: Any, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        errors.add(path, "INVALID_VALUE", f"expected a non-empty string, not {_kind(value)}")
        return None
    return value


def _int(errors: _Errors, path: list[str | int], value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        errors.add(path, "INVALID_VALUE", f"expected an integer, not {_kind(value)}")
        return None
    return value


def _bool(errors: _Errors, path: list[str | int], value: Any) -> bool | None:
    if not isinstance(value, bool):
        errors.add(path, "INVALID_VALUE", f"expected true or false, not {_kind(value)}")
        return None
    return value


def _date(errors: _Errors, path: list[str | int], value: Any) -> date | None:
    if isinstance(value, date):
        return value
    try:
        parsed = date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        errors.add(path, "INVALID_VALUE", f"expected an ISO 8601 date such as 2026-12-01, not {value!r}")
        return None
    if not MIN_DATE <= parsed <= MAX_DATE:
        errors.add(path, "DATE_OUT_OF_RANGE", f"{parsed.isoformat()} is outside 1970-01-01 to 2200-12-31")
        return None
    return parsed


def _enum(errors: _Errors, path: list[str | int], value: Any, enum_type: Any) -> Any:
    try:
        return enum_type(value)
    except (ValueError, TypeError):
        names = ", ".join(m.value for m in enum_type)
        errors.add(path, "INVALID_VALUE", f"{value!r} is not one of {names}")
        return None


def _decimal(errors: _Errors, path: list[str | int], value: Any) -> Decimal | None:
    """A decimal given as a string (or an integer); floats are refused as everywhere money is."""
    from rebill.domain.money import parse_decimal

    if isinstance(value, bool) or not isinstance(value, str | int):
        errors.add(path, "INVALID_VALUE", f'expected a decimal string such as "-10" or "2.5", not {_kind(value)}')
        return None
    try:
        number: Decimal | None = parse_decimal(value)  # bounded digits and exponent: "1e-5000000" is refused
    except RebillError:
        number = None
    if number is None or not number.is_finite():
        errors.add(path, "INVALID_VALUE", f"{value!r} is not a decimal number")
        return None
    return number


def _money(errors: _Errors, path: list[str | int], value: Any) -> Money | None:
    if not _is_object(errors, path, value, "an amount"):
        return None
    _unknown_keys(errors, path, value, ("amount", "currency"))
    try:
        return Money.parse(value.get("amount"), value.get("currency"))
    except RebillError as exc:
        errors.add(path, exc.code, exc.message)
        return None


def _optional_consent(errors: _Errors, path: list[str | int], params: Mapping[str, Any]) -> str | None:
    value = params.get("consentReference")
    if value is None:
        return None
    return _str(errors, [*path, "consentReference"], value)


def _optional_product(errors: _Errors, path: list[str | int], params: Mapping[str, Any]) -> int | None:
    value = params.get("productId")
    if value is None:
        return None
    pk = _decode_pk(value, "Product")
    if pk is None:
        errors.add([*path, "productId"], "INVALID_ID", f"{value!r} is not the id of a Product")
    return pk


# -- filters -----------------------------------------------------------------


def parse_filter(errors: _Errors, path: list[str | int], data: Any) -> SubscriptionFilter | None:
    if data is None:
        return SubscriptionFilter()
    if not _is_object(errors, path, data, "a filter"):
        return None
    _unknown_keys(errors, path, data, _FILTER_KEYS)
    values: dict[str, Any] = {}
    before = len(errors.items)

    def ids(key: str, type_name: str) -> tuple[int, ...] | None:
        raw = data.get(key)
        if raw is None:
            return None
        if not isinstance(raw, list):
            errors.add([*path, key], "INVALID_VALUE", f"expected a list of ids, not {_kind(raw)}")
            return None
        out = []
        for n, value in enumerate(raw):
            pk = _decode_pk(value, type_name)
            if pk is None:
                errors.add([*path, key, n], "INVALID_ID", f"{value!r} is not the id of a {type_name}")
            else:
                out.append(pk)
        return tuple(out)

    def enums(key: str, enum_type: Any) -> tuple[Any, ...] | None:
        raw = data.get(key)
        if raw is None:
            return None
        if not isinstance(raw, list):
            errors.add([*path, key], "INVALID_VALUE", f"expected a list, not {_kind(raw)}")
            return None
        return tuple(_enum(errors, [*path, key, n], v, enum_type) for n, v in enumerate(raw))

    values["ids"] = ids("ids", "Subscription")
    values["profile_ids"] = ids("profileIds", "SubscriptionProfile")
    values["product_ids"] = ids("productIds", "Product")
    values["status"] = enums("status", SubscriptionStatus)
    values["gateway_mode"] = enums("gatewayMode", GatewayMode)
    if data.get("renewalType") is not None:
        values["renewal_type"] = _enum(errors, [*path, "renewalType"], data["renewalType"], RenewalType)
    for key in ("nextRenewalFrom", "nextRenewalTo"):
        if data.get(key) is not None:
            values[_FILTER_KEYS[key]] = _date(errors, [*path, key], data[key])
    for key in ("inTrial", "hasGateway"):
        if data.get(key) is not None:
            values[_FILTER_KEYS[key]] = _bool(errors, [*path, key], data[key])
    for key in ("customerEmail", "customerSearch", "currency"):
        if data.get(key) is not None:
            values[_FILTER_KEYS[key]] = _str(errors, [*path, key], data[key])
    search = values.get("customer_search")
    if search is not None and len(search) > MAX_SEARCH_LENGTH:
        errors.add(
            [*path, "customerSearch"],
            "INVALID_VALUE",
            f"at most {MAX_SEARCH_LENGTH} characters (got {len(search)})",
        )
    if data.get("currency") is not None and values.get("currency"):
        from rebill.domain.money import currency_exponent

        try:
            currency_exponent(values["currency"])
        except RebillError as exc:
            errors.add([*path, "currency"], exc.code, exc.message)
    for key in ("amountMin", "amountMax"):
        raw = data.get(key)
        if raw is not None and _decimal(errors, [*path, key], raw) is not None:
            values[_FILTER_KEYS[key]] = str(raw)
    if data.get("gatewayIds") is not None:
        raw = data["gatewayIds"]
        if isinstance(raw, list) and all(isinstance(g, str) for g in raw):
            values["gateway_ids"] = tuple(raw)
        else:
            errors.add([*path, "gatewayIds"], "INVALID_VALUE", "expected a list of gateway names")
    if len(errors.items) != before:
        return None
    return SubscriptionFilter(**values)


def filter_json(f: SubscriptionFilter) -> dict[str, Any]:
    """A filter as plan JSON, ids as plain integers (the stored, canonical form)."""
    out: dict[str, Any] = {}
    for fld in fields(f):
        value = getattr(f, fld.name)
        if value is None:
            continue
        if isinstance(value, tuple):
            value = [getattr(v, "value", v) for v in value]
        elif isinstance(value, date):
            value = value.isoformat()
        else:
            value = getattr(value, "value", value)
        out[_camel(fld.name)] = value
    return out


# -- actions -----------------------------------------------------------------

ParamParser = Callable[[_Errors, list[str | int], Any], Action | None]


def _params(errors: _Errors, path: list[str | int], params: Any, allowed: Sequence[str]) -> Mapping[str, Any] | None:
    if params is None or (isinstance(params, Mapping) and not params and allowed):
        errors.add(path, "MISSING_PARAMETERS", f"this action needs parameters: {', '.join(allowed)}")
        return None
    if not _is_object(errors, path, params, "the action's parameters"):
        return None
    _unknown_keys(errors, path, params, allowed)
    return params


def _required(errors: _Errors, path: list[str | int], params: Mapping[str, Any], key: str) -> Any:
    if params.get(key) is None:
        errors.add([*path, key], "MISSING_PARAMETERS", f"{key} is required")
    return params.get(key)


def _shift(errors: _Errors, path: list[str | int], raw: Any) -> Action | None:
    params = _params(errors, path, raw, ("unit", "count"))
    if params is None:
        return None
    unit_raw, count_raw = _required(errors, path, params, "unit"), _required(errors, path, params, "count")
    unit = _enum(errors, [*path, "unit"], unit_raw, IntervalUnit) if unit_raw is not None else None
    count = _int(errors, [*path, "count"], count_raw) if count_raw is not None else None
    if count is not None and (count == 0 or abs(count) > 1000):
        errors.add([*path, "count"], "INVALID_SHIFT", "count must be non-zero and at most 1000 either way")
        return None
    if unit is None or count is None:
        return None
    return ShiftNextRenewal(unit, count)


def _set_date(errors: _Errors, path: list[str | int], raw: Any) -> Action | None:
    params = _params(errors, path, raw, ("date",))
    if params is None:
        return None
    value = _required(errors, path, params, "date")
    parsed = _date(errors, [*path, "date"], value) if value is not None else None
    return SetNextRenewalDate(parsed) if parsed is not None else None


def _set_unit_price(errors: _Errors, path: list[str | int], raw: Any) -> Action | None:
    params = _params(errors, path, raw, ("unitPrice", "productId", "consentReference"))
    if params is None:
        return None
    value = _required(errors, path, params, "unitPrice")
    price = _money(errors, [*path, "unitPrice"], value) if value is not None else None
    if price is not None and price.is_negative:
        errors.add([*path, "unitPrice"], "INVALID_AMOUNT", "a unit price may not be negative")
        price = None
    product = _optional_product(errors, path, params)
    consent = _optional_consent(errors, path, params)
    return SetUnitPrice(price, product, consent) if price is not None else None


def _adjust_price(errors: _Errors, path: list[str | int], raw: Any) -> Action | None:
    params = _params(errors, path, raw, ("percent", "amount", "productId", "consentReference"))
    if params is None:
        return None
    product = _optional_product(errors, path, params)
    consent = _optional_consent(errors, path, params)
    has_percent, has_amount = params.get("percent") is not None, params.get("amount") is not None
    if has_percent == has_amount:
        errors.add(
            [*path, "percent"], "MISSING_PARAMETERS" if not has_percent else "INVALID_VALUE", "give percent or amount"
        )
        return None
    if has_percent:
        percent = _decimal(errors, [*path, "percent"], params["percent"])
        if percent is None:
            return None
        if percent == 0 or percent < -100 or percent > 1000:
            errors.add([*path, "percent"], "INVALID_VALUE", "percent must be non-zero, from -100 to 1000")
            return None
        return AdjustPrice(percent=percent, product_id=product, consent_reference=consent)
    amount = _money(errors, [*path, "amount"], params["amount"])
    if amount is None:
        return None
    if amount.is_zero:
        errors.add([*path, "amount"], "INVALID_VALUE", "amount must not be zero")
        return None
    return AdjustPrice(amount=amount, product_id=product, consent_reference=consent)


def _set_quantity(errors: _Errors, path: list[str | int], raw: Any) -> Action | None:
    params = _params(errors, path, raw, ("quantity", "productId", "consentReference"))
    if params is None:
        return None
    value = _required(errors, path, params, "quantity")
    quantity = _int(errors, [*path, "quantity"], value) if value is not None else None
    if quantity is not None and not 0 <= quantity <= 10_000_000:
        errors.add([*path, "quantity"], "INVALID_QUANTITY", "quantity must be from 0 to 10000000")
        quantity = None
    product = _optional_product(errors, path, params)
    consent = _optional_consent(errors, path, params)
    return SetQuantity(quantity, product, consent) if quantity is not None else None


def _change_profile(errors: _Errors, path: list[str | int], raw: Any) -> Action | None:
    params = _params(errors, path, raw, ("profileId",))
    if params is None:
        return None
    value = _required(errors, path, params, "profileId")
    if value is None:
        return None
    pk = _decode_pk(value, "SubscriptionProfile")
    if pk is None:
        errors.add([*path, "profileId"], "INVALID_ID", f"{value!r} is not the id of a SubscriptionProfile")
        return None
    return ChangeProfile(pk)


def _set_renewal_type(errors: _Errors, path: list[str | int], raw: Any) -> Action | None:
    params = _params(errors, path, raw, ("renewalType",))
    if params is None:
        return None
    value = _required(errors, path, params, "renewalType")
    renewal_type = _enum(errors, [*path, "renewalType"], value, RenewalType) if value is not None else None
    return SetRenewalType(renewal_type) if renewal_type is not None else None


def _set_gateway(errors: _Errors, path: list[str | int], raw: Any) -> Action | None:
    params = _params(errors, path, raw, ("gatewayId", "mode"))
    if params is None:
        return None
    value = _required(errors, path, params, "gatewayId")
    gateway = _str(errors, [*path, "gatewayId"], value) if value is not None else None
    mode = GatewayMode.PREFERRED
    if params.get("mode") is not None:
        mode = _enum(errors, [*path, "mode"], params["mode"], GatewayMode)
    if gateway is None or mode is None:
        return None
    return SetGateway(gateway, mode)


def _coupon(kind: type[ApplyCoupon] | type[RemoveCoupon]) -> ParamParser:
    def parse(errors: _Errors, path: list[str | int], raw: Any) -> Action | None:
        params = _params(errors, path, raw, ("code",))
        if params is None:
            return None
        value = _required(errors, path, params, "code")
        code = _str(errors, [*path, "code"], value) if value is not None else None
        return kind(code) if code is not None else None

    return parse


def _flag(kind: type[ClearGateway] | type[Suspend] | type[Activate]) -> ParamParser:
    """Actions without parameters are ``true`` (GraphQL: ``{suspend: true}``) or ``{}``."""

    def parse(errors: _Errors, path: list[str | int], raw: Any) -> Action | None:
        if raw is True or (isinstance(raw, Mapping) and not raw):
            return kind()
        if raw is None:
            errors.add(path, "MISSING_PARAMETERS", "this action takes no parameters: write true")
        elif isinstance(raw, Mapping):
            _unknown_keys(errors, path, raw, ())
        else:
            errors.add(path, "INVALID_VALUE", f"write true to use this action, not {raw!r}")
        return None

    return parse


def _cancel(errors: _Errors, path: list[str | int], raw: Any) -> Action | None:
    if raw is True:
        return Cancel()
    if raw is None:
        errors.add(path, "MISSING_PARAMETERS", 'write true or {"atPeriodEnd": true|false, "overrideContract": …}')
        return None
    if not _is_object(errors, path, raw, "the action's parameters"):
        return None
    _unknown_keys(errors, path, raw, ("atPeriodEnd", "overrideContract"))
    checked = _bool(errors, [*path, "atPeriodEnd"], raw.get("atPeriodEnd", False))
    override = _bool(errors, [*path, "overrideContract"], raw.get("overrideContract", False))
    if checked is None or override is None:
        return None
    return Cancel(at_period_end=checked, override_contract=override)


def _set_metadata(errors: _Errors, path: list[str | int], raw: Any) -> Action | None:
    params = _params(errors, path, raw, ("metadata", "merge"))
    if params is None:
        return None
    metadata = _required(errors, path, params, "metadata")
    if metadata is not None and not isinstance(metadata, Mapping):
        errors.add([*path, "metadata"], "INVALID_METADATA", "metadata must be a JSON object")
        return None
    merge = params.get("merge", True)
    checked = _bool(errors, [*path, "merge"], merge)
    if metadata is None or checked is None:
        return None
    return SetMetadata(dict(metadata), checked)


INVOICING_FIELDS = ("purchaseOrder", "memo", "documentType", "draftInvoices", "draftDays", "paymentTermsDays")


def _set_invoicing(errors: _Errors, path: list[str | int], raw: Any) -> Action | None:
    params = _params(errors, path, raw, INVOICING_FIELDS)
    if params is None:
        return None
    changes = {key: params[key] for key in INVOICING_FIELDS if key in params}
    try:
        change_terms(InvoicingTerms(), **invoicing_changes(changes))
    except RebillError as exc:
        errors.add([*path, *(exc.field or [])], exc.code, exc.message)
        return None
    except (TypeError, ValueError) as exc:
        errors.add(path, "INVALID_INVOICING", str(exc))
        return None
    return SetInvoicing(changes)


def _set_shipping_profile(errors: _Errors, path: list[str | int], raw: Any) -> Action | None:
    params = _params(errors, path, raw, ("shippingProfileId", "consentReference"))
    if params is None:
        return None
    value = params.get("shippingProfileId")
    pk = None
    if value is not None:
        pk = _decode_pk(value, "ShippingProfile")
        if pk is None:
            errors.add([*path, "shippingProfileId"], "INVALID_ID", f"{value!r} is not the id of a ShippingProfile")
            return None
    consent = params.get("consentReference")
    if consent is not None and not isinstance(consent, str):
        errors.add([*path, "consentReference"], "INVALID_INPUT", "consentReference must be a string")
        return None
    return SetShippingProfile(pk, consent)


ACTION_PARSERS: dict[str, ParamParser] = {
    "shiftNextRenewal": _shift,
    "setNextRenewalDate": _set_date,
    "setUnitPrice": _set_unit_price,
    "adjustPrice": _adjust_price,
    "setQuantity": _set_quantity,
    "changeProfile": _change_profile,
    "setRenewalType": _set_renewal_type,
    "setGateway": _set_gateway,
    "clearGateway": _flag(ClearGateway),
    "applyCoupon": _coupon(ApplyCoupon),
    "removeCoupon": _coupon(RemoveCoupon),
    "suspend": _flag(Suspend),
    "activate": _flag(Activate),
    "cancel": _cancel,
    "setMetadata": _set_metadata,
    "setInvoicing": _set_invoicing,
    "setShippingProfile": _set_shipping_profile,
}


def _action(errors: _Errors, path: list[str | int], raw: Any) -> Action | None:
    if not _is_object(errors, path, raw, "an action"):
        return None
    keys = list(raw)
    if len(keys) != 1:
        known = ", ".join(ACTION_PARSERS)
        errors.add(path, "INVALID_ACTION", f"an action has exactly one key, one of {known}; got {len(keys)}")
        return None
    kind = keys[0]
    parser = ACTION_PARSERS.get(kind)
    if parser is None:
        errors.add(
            [*path, kind], "UNKNOWN_ACTION", f"unknown action {kind!r}; expected one of {', '.join(ACTION_PARSERS)}"
        )
        return None
    return parser(errors, [*path, kind], raw[kind])


_ACTION_TYPES: dict[str, type] = {
    "shiftNextRenewal": ShiftNextRenewal,
    "setNextRenewalDate": SetNextRenewalDate,
    "setUnitPrice": SetUnitPrice,
    "adjustPrice": AdjustPrice,
    "setQuantity": SetQuantity,
    "changeProfile": ChangeProfile,
    "setRenewalType": SetRenewalType,
    "setGateway": SetGateway,
    "clearGateway": ClearGateway,
    "applyCoupon": ApplyCoupon,
    "removeCoupon": RemoveCoupon,
    "suspend": Suspend,
    "activate": Activate,
    "cancel": Cancel,
    "setMetadata": SetMetadata,
    "setInvoicing": SetInvoicing,
    "setShippingProfile": SetShippingProfile,
}


_KEY_OF_TYPE: dict[type, str] = {v: k for k, v in _ACTION_TYPES.items()}


def action_key(action: Action) -> str:
    """The plan key of an action (``shiftNextRenewal``)."""
    return _KEY_OF_TYPE[type(action)]


def _money_json(m: Money) -> dict[str, str]:
    return {"amount": m.amount_str, "currency": m.currency}


def action_json(action: Action) -> dict[str, Any]:
    key = action_key(action)
    params: Any
    match action:
        case ShiftNextRenewal():
            params = {"unit": action.unit.value, "count": action.count}
        case SetNextRenewalDate():
            params = {"date": action.date.isoformat()}
        case SetUnitPrice():
            params = {"unitPrice": _money_json(action.unit_price)}
        case AdjustPrice():
            params = {"percent": str(action.percent)} if action.percent is not None else {}
            if action.amount is not None:
                params["amount"] = _money_json(action.amount)
        case SetQuantity():
            params = {"quantity": action.quantity}
        case ChangeProfile():
            params = {"profileId": action.profile_id}
        case SetRenewalType():
            params = {"renewalType": action.renewal_type.value}
        case SetGateway():
            params = {"gatewayId": action.gateway_id, "mode": action.mode.value}
        case ApplyCoupon() | RemoveCoupon():
            params = {"code": action.code}
        case Cancel():
            params = {"atPeriodEnd": action.at_period_end}
            if action.override_contract:
                params["overrideContract"] = True
        case SetMetadata():
            params = {"metadata": dict(action.metadata), "merge": action.merge}
        case SetInvoicing():
            params = dict(action.changes)
        case _:
            params = True
    if isinstance(action, SetUnitPrice | AdjustPrice | SetQuantity):
        if action.product_id is not None:
            params["productId"] = action.product_id
        if action.consent_reference is not None:
            params["consentReference"] = action.consent_reference
    return {key: params}


# -- plans -------------------------------------------------------------------


def parse_plan(data: Any) -> Plan:
    """A plan from its JSON form, or ``Collected`` with every problem found."""
    errors = _Errors()
    if not _is_object(errors, [], data, "a plan"):
        errors.raise_if_any()
    _unknown_keys(errors, [], data, ("filter", "segments", "limit"))
    plan_filter = parse_filter(errors, ["filter"], data.get("filter"))
    limit = data.get("limit")
    if limit is not None:
        limit = _int(errors, ["limit"], limit)
        if limit is not None and limit < 1:
            errors.add(["limit"], "INVALID_LIMIT", f"limit must be at least 1 (omit it for no limit), not {limit}")
    raw_segments = data.get("segments")
    segments: list[Segment] = []
    if not isinstance(raw_segments, list) or not raw_segments:
        errors.add(["segments"], "MISSING_SEGMENTS", "a plan needs at least one segment with actions")
        raw_segments = raw_segments if isinstance(raw_segments, list) else []
    if len(raw_segments) > MAX_SEGMENTS:
        errors.add(["segments"], "TOO_MANY_SEGMENTS", f"at most {MAX_SEGMENTS} segments")
    catch_all: int | None = None
    names: set[str] = set()
    for n, raw in enumerate(raw_segments):
        path: list[str | int] = ["segments", n]
        if not _is_object(errors, path, raw, "a segment"):
            continue
        _unknown_keys(errors, path, raw, ("name", "when", "actions"))
        name = raw.get("name")
        if name is None:
            name = f"segment-{n + 1}"
        elif not isinstance(name, str) or not name.strip():
            errors.add([*path, "name"], "INVALID_VALUE", "a segment name is a non-empty string")
            name = f"segment-{n + 1}"
        if name in names:
            errors.add([*path, "name"], "DUPLICATE_SEGMENT", f"two segments are named {name!r}")
        names.add(name)
        if catch_all is not None:
            errors.add(
                path,
                "UNREACHABLE_SEGMENT",
                f"segment {name!r} comes after segments[{catch_all}], which has no 'when' and takes every "
                "subscription left: it would never match anything",
            )
        when = None
        if raw.get("when") is None:
            catch_all = n if catch_all is None else catch_all
        else:
            when = parse_filter(errors, [*path, "when"], raw["when"])
        raw_actions = raw.get("actions")
        actions: list[Action] = []
        if not isinstance(raw_actions, list) or not raw_actions:
            errors.add([*path, "actions"], "MISSING_ACTIONS", "a segment needs at least one action")
        elif len(raw_actions) > MAX_ACTIONS:
            errors.add([*path, "actions"], "TOO_MANY_ACTIONS", f"at most {MAX_ACTIONS} actions per segment")
        else:
            for k, raw_action in enumerate(raw_actions):
                action = _action(errors, [*path, "actions", k], raw_action)
                if action is not None:
                    actions.append(action)
        segments.append(Segment(name, when, tuple(actions)))
    errors.raise_if_any()
    assert plan_filter is not None
    return Plan(plan_filter, tuple(segments), limit)


def plan_to_json(plan: Plan) -> dict[str, Any]:
    """The canonical JSON of a plan: what a run stores and what its hash is taken of."""
    segments = []
    for s in plan.segments:
        segment: dict[str, Any] = {"name": s.name}
        if s.when is not None:
            segment["when"] = filter_json(s.when)
        segment["actions"] = [action_json(a) for a in s.actions]
        segments.append(segment)
    return {"filter": filter_json(plan.filter), "segments": segments, "limit": plan.limit}


# -- references --------------------------------------------------------------


@dataclass
class References:
    """What a plan's actions name, loaded once: profiles, coupons (with their active flag), gateways."""

    profiles: dict[int, Any] = field(default_factory=dict)
    coupons: dict[str, tuple[Any, bool]] = field(default_factory=dict)
    gateways: tuple[str, ...] = ()
    shipping_profiles: dict[int, Any] = field(default_factory=dict)


def _walk_actions(plan: Plan) -> Iterable[tuple[list[str | int], Action]]:
    for n, segment in enumerate(plan.segments):
        for k, action in enumerate(segment.actions):
            yield ["segments", n, "actions", k, action_key(action)], action


async def load_references(session: AsyncSession, plan: Plan, gateways: Iterable[str]) -> References:
    """Load what the plan names; raise ``Collected`` for every unknown profile, coupon, product or gateway."""
    from rebill.db.repositories import Catalog, coupon_from_row

    errors = _Errors()
    catalog = Catalog(session)
    known_gateways = tuple(gateways)
    profile_ids: set[int] = set()
    product_ids: set[int] = set()
    codes: set[str] = set()
    shipping_ids: set[int] = set()
    for _, action in _walk_actions(plan):
        if isinstance(action, SetShippingProfile) and action.shipping_profile_id is not None:
            shipping_ids.add(action.shipping_profile_id)
        if isinstance(action, ChangeProfile):
            profile_ids.add(action.profile_id)
        elif isinstance(action, ApplyCoupon | RemoveCoupon):
            codes.add(action.code)
        elif isinstance(action, SetUnitPrice | AdjustPrice | SetQuantity) and action.product_id is not None:
            product_ids.add(action.product_id)
    filters: list[tuple[list[str | int], SubscriptionFilter]] = [(["filter"], plan.filter)]
    filters += [(["segments", n, "when"], s.when) for n, s in enumerate(plan.segments) if s.when is not None]
    for _, f in filters:
        profile_ids.update(f.profile_ids or ())
        product_ids.update(f.product_ids or ())
    profiles = await catalog.load_profiles(profile_ids)
    products = await catalog.load_products(product_ids)
    shipping = await catalog.load_shipping_profiles(shipping_ids)
    C = t.table_of(t.Coupon)
    coupons: dict[str, tuple[Any, bool]] = {}
    if codes:
        for row in await session.execute(select(C).where(C.c.code.in_(codes))):
            coupons[row.code] = (coupon_from_row(row), row.active)

    for path, action in _walk_actions(plan):
        if isinstance(action, ChangeProfile) and action.profile_id not in profiles:
            errors.add([*path, "profileId"], "UNKNOWN_PROFILE", f"profile {action.profile_id} does not exist")
        elif (
            isinstance(action, SetShippingProfile)
            and action.shipping_profile_id is not None
            and action.shipping_profile_id not in shipping
        ):
            errors.add(
                [*path, "shippingProfileId"],
                "NOT_FOUND",
                f"shipping profile {action.shipping_profile_id} does not exist",
            )
        elif isinstance(action, ApplyCoupon | RemoveCoupon) and action.code not in coupons:
            errors.add([*path, "code"], "UNKNOWN_COUPON", f"coupon {action.code!r} does not exist")
        elif isinstance(action, SetGateway) and action.gateway_id not in known_gateways:
            errors.add(
                [*path, "gatewayId"],
                "UNKNOWN_GATEWAY",
                f"unknown gateway {action.gateway_id!r}; configured: {', '.join(sorted(known_gateways))}",
            )
        elif (
            isinstance(action, SetUnitPrice | AdjustPrice | SetQuantity)
            and action.product_id is not None
            and action.product_id not in products
        ):
            errors.add([*path, "productId"], "UNKNOWN_PRODUCT", f"product {action.product_id} does not exist")
    for path, f in filters:
        for n, pid in enumerate(f.profile_ids or ()):
            if pid not in profiles:
                errors.add([*path, "profileIds", n], "UNKNOWN_PROFILE", f"profile {pid} does not exist")
        for n, pid in enumerate(f.product_ids or ()):
            if pid not in products:
                errors.add([*path, "productIds", n], "UNKNOWN_PRODUCT", f"product {pid} does not exist")
    errors.raise_if_any()
    return References(
        profiles={k: v for k, v in profiles.items() if k in profile_ids},
        coupons=coupons,
        gateways=known_gateways,
        shipping_profiles={k: v for k, v in shipping.items() if k in shipping_ids},
    )


def validation_errors(exc: RebillError) -> list[RebillError]:
    """The individual problems of a plan error (one, or all of a ``Collected``)."""
    return list(exc.errors) if isinstance(exc, Collected) else [exc]
