"""Money is Decimal quantised to cents with ROUND_HALF_UP: in the DB, in workflow payloads and in QBO bodies."""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer
from sqlalchemy import Numeric, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

CENT = Decimal("0.01")
LIMIT = Decimal("1e13")  # no amount, quantity or rate in a franchise's books comes near this


def cents(value: Decimal | int | str) -> Decimal:
    """Quantise to cents, half-up. Floats are refused: they cannot carry money exactly."""
    if isinstance(value, float):
        raise TypeError(f"money must not be a float: {value!r}")
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def exact_decimal(value: Any) -> Decimal:
    """A finite decimal of sane size from a string or integer; anything else is a ValueError, which pydantic
    reports as a validation error naming the field."""
    if isinstance(value, float | bool) or not isinstance(value, str | int | Decimal):
        raise ValueError("must be a decimal number given as a string or integer")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation as error:
        raise ValueError(f"not a decimal number: {str(value)[:40]!r}") from error
    if not number.is_finite() or abs(number) >= LIMIT:
        raise ValueError(f"must be a finite number below {LIMIT}")
    return number


# A cents amount in pydantic models; serialised as a string so JSON never turns it into a float.
Money = Annotated[Decimal, BeforeValidator(lambda v: cents(exact_decimal(v))), PlainSerializer(str, when_used="json")]


def _at_most_cents(value: Any) -> Decimal:
    number = exact_decimal(value)
    if number != number.quantize(CENT):
        raise ValueError(f"an amount has at most 2 decimal places, not {str(value)[:40]!r}")
    return cents(number)


# An amount as people send it (the API): more than 2 decimal places is refused rather than rounded.
Cents = Annotated[Decimal, BeforeValidator(_at_most_cents), PlainSerializer(str, when_used="json")]
# An exact decimal that is not an amount (a rate, a quantity), serialised as a string likewise.
Exact = Annotated[Decimal, BeforeValidator(exact_decimal), PlainSerializer(str, when_used="json")]


class DecimalColumn(TypeDecorator[Decimal]):
    """Exact decimals in any database: NUMERIC on PostgreSQL, text on SQLite (whose NUMERIC is a float)."""

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int = 18, scale: int = 6) -> None:
        super().__init__()
        self.precision = precision
        self.scale = scale

    def __repr__(self) -> str:  # how migrations write the column down
        return f"DecimalColumn({self.precision}, {self.scale})"

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(40))
        return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return str(value) if dialect.name == "sqlite" else Decimal(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(str(value))
