from enum import Enum


class GatewayMode(str, Enum):
    FORCED = "FORCED"
    PREFERRED = "PREFERRED"


class IntervalUnit(str, Enum):
    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"
    YEAR = "YEAR"


class OrderDirection(str, Enum):
    ASC = "ASC"
    DESC = "DESC"


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
