from enum import Enum


class AnchorPolicy(str, Enum):
    ANCHORED = "ANCHORED"
    STICKY = "STICKY"


class BulkItemOutcome(str, Enum):
    APPLIED = "APPLIED"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"
    CONFLICT = "CONFLICT"
    REVERTED = "REVERTED"


class BulkRunStatus(str, Enum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    REVERTED = "REVERTED"


class CouponDuration(str, Enum):
    ONCE = "ONCE"
    FOREVER = "FOREVER"
    REPEATING = "REPEATING"


class Effective(str, Enum):
    IMMEDIATE = "IMMEDIATE"
    NEXT_RENEWAL = "NEXT_RENEWAL"


class FulfillmentStatus(str, Enum):
    NONE = "NONE"
    PENDING = "PENDING"
    SHIPPED = "SHIPPED"
    CANCELLED = "CANCELLED"


class GatewayMode(str, Enum):
    FORCED = "FORCED"
    PREFERRED = "PREFERRED"


class IntervalUnit(str, Enum):
    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"
    YEAR = "YEAR"


class NotificationKind(str, Enum):
    RENEWAL_RECEIPT = "RENEWAL_RECEIPT"
    PAYMENT_DECLINED = "PAYMENT_DECLINED"
    RENEWAL_REMINDER = "RENEWAL_REMINDER"
    SUBSCRIPTION_CANCELLED = "SUBSCRIPTION_CANCELLED"
    SUBSCRIPTION_SUSPENDED = "SUBSCRIPTION_SUSPENDED"
    PAYMENT_DUE = "PAYMENT_DUE"
    SUBSCRIPTION_EXPIRED = "SUBSCRIPTION_EXPIRED"
    AWAITING_REINSTATE = "AWAITING_REINSTATE"
    BULK_RUN_COMPLETED = "BULK_RUN_COMPLETED"
    BULK_RUN_FAILED = "BULK_RUN_FAILED"


class OrderDirection(str, Enum):
    ASC = "ASC"
    DESC = "DESC"


class PaymentMethodKind(str, Enum):
    CARD = "CARD"
    EXTERNAL = "EXTERNAL"
    OFFLINE = "OFFLINE"


class PortalFlow(str, Enum):
    OVERVIEW = "OVERVIEW"
    PAYMENT_METHOD = "PAYMENT_METHOD"
    POSTPONE = "POSTPONE"
    CANCEL = "CANCEL"
    RENEW = "RENEW"


class ProductKind(str, Enum):
    STANDARD = "STANDARD"
    SEAT = "SEAT"
    USAGE = "USAGE"


class Proration(str, Enum):
    PRORATED = "PRORATED"
    FULL = "FULL"
    NONE = "NONE"


class RenewNowMode(str, Enum):
    EXTEND = "EXTEND"
    RESTART = "RESTART"


class RenewalKind(str, Enum):
    INITIAL = "INITIAL"
    SCHEDULED = "SCHEDULED"
    MANUAL = "MANUAL"
    EARLY = "EARLY"
    FORCED = "FORCED"


class RenewalStatus(str, Enum):
    PENDING = "PENDING"
    PAID = "PAID"
    FAILED = "FAILED"
    REFUNDED = "REFUNDED"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    VOID = "VOID"


class RenewalType(str, Enum):
    AUTOMATIC = "AUTOMATIC"
    MANUAL = "MANUAL"


class SubscriptionOrderField(str, Enum):
    ID = "ID"
    CREATED_AT = "CREATED_AT"
    UPDATED_AT = "UPDATED_AT"
    NEXT_RENEWAL_DATE = "NEXT_RENEWAL_DATE"
    AMOUNT = "AMOUNT"


class SubscriptionStatus(str, Enum):
    FUTURE = "FUTURE"
    TRIAL = "TRIAL"
    ACTIVE = "ACTIVE"
    OVERDUE = "OVERDUE"
    SUSPENDED = "SUSPENDED"
    AWAITING_REINSTATE = "AWAITING_REINSTATE"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


class WebhookDeliveryStatus(str, Enum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
