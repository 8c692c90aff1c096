"""ConnectBooster-style autopay decisions: which configuration pays which open invoice. Pure and clock-free
("today" is a parameter), so a workflow can decide deterministically from invoices an activity loaded."""

from collections.abc import Callable, Sequence
from datetime import date
from decimal import Decimal
from enum import StrEnum
from operator import eq, ge, gt, le, lt, ne
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from models.money import Money, exact_decimal


class Operator(StrEnum):
    """eq..ge compare numbers; is..not_contains compare text, case-insensitively and whitespace-trimmed."""

    EQ = "eq"
    NE = "ne"
    LT = "lt"
    LE = "le"
    GT = "gt"
    GE = "ge"
    IS = "is"
    IS_NOT = "is_not"
    CONTAINS = "contains"
    NOT_CONTAINS = "not_contains"


class CriterionField(StrEnum):
    """What a criterion looks at on an invoice; contract and line_item are text, the rest numbers."""

    CONTRACT = "contract"  # the CRM proposal number the invoice came from
    AMOUNT = "amount"  # the amount due
    LINE_ITEM = "line_item"  # any line item's name
    DAYS_SINCE_INVOICE = "days_since_invoice"  # today - issued_on
    DAYS_PAST_DUE = "days_past_due"  # today - due_on: negative before the due date


NUMBER_OPERATORS = frozenset({Operator.EQ, Operator.NE, Operator.LT, Operator.LE, Operator.GT, Operator.GE})
TEXT_OPERATORS = frozenset({Operator.IS, Operator.IS_NOT, Operator.CONTAINS, Operator.NOT_CONTAINS})
NUMBER_FIELDS = frozenset({CriterionField.AMOUNT, CriterionField.DAYS_SINCE_INVOICE, CriterionField.DAYS_PAST_DUE})
TEXT_FIELDS = frozenset({CriterionField.CONTRACT, CriterionField.LINE_ITEM})

_COMPARE: dict[Operator, Callable[[Decimal, Decimal], bool]] = {
    Operator.EQ: eq, Operator.NE: ne, Operator.LT: lt, Operator.LE: le, Operator.GT: gt, Operator.GE: ge,
}
# The negative text operators hold when their positive form does not (for line items: when no name matches).
_POSITIVE = {Operator.IS: Operator.IS, Operator.IS_NOT: Operator.IS,
             Operator.CONTAINS: Operator.CONTAINS, Operator.NOT_CONTAINS: Operator.CONTAINS}

_FROZEN = ConfigDict(frozen=True, extra="forbid")


def _number(value: Any, field: str) -> Decimal:
    """A finite decimal from a string or integer, parsed as money is (floats refused)."""
    try:
        return exact_decimal(value)
    except ValueError as error:
        raise ValueError(f"value for {field} {error}") from error


def _text(value: str) -> str:
    return value.strip().casefold()


def _text_holds(operator: Operator, text: str, expected: str) -> bool:
    """The positive form only (is, contains); callers negate for is_not and not_contains."""
    return _text(text) == expected if operator is Operator.IS else expected in _text(text)


class OpenInvoice(BaseModel):
    """An unpaid invoice as autopay sees it; excluded ones are never paid automatically."""

    model_config = _FROZEN

    proposal_id: str
    invoice_id: str
    number: str  # the contract: the CRM proposal number
    customer_id: str
    issued_on: date
    due_on: date
    amount_due: Money
    line_items: list[str]
    excluded: bool = False


class Criterion(BaseModel):
    """One row of a configuration's criteria; the operator must suit the field and the value must parse, so a
    bad rule is refused when saved rather than silently matching nothing (or everything) at payment time."""

    model_config = _FROZEN

    field: CriterionField
    operator: Operator
    value: str | Decimal

    @model_validator(mode="before")
    @classmethod
    def _parse_number(cls, data: Any) -> Any:
        """Numbers arrive as strings (JSON) or integers; which a value is depends on the field."""
        field = data.get("field") if isinstance(data, dict) else None
        if isinstance(field, str) and field in NUMBER_FIELDS and "value" in data:
            return {**data, "value": _number(data["value"], field)}
        return data

    @model_validator(mode="after")
    def _suits_field(self) -> "Criterion":
        if self.field in NUMBER_FIELDS and self.operator not in NUMBER_OPERATORS:
            raise ValueError(f"operator {self.operator} compares text; {self.field} is a number "
                             f"(use one of {', '.join(sorted(NUMBER_OPERATORS))})")
        if self.field in TEXT_FIELDS:
            if self.operator not in TEXT_OPERATORS:
                raise ValueError(f"operator {self.operator} compares numbers; {self.field} is text "
                                 f"(use one of {', '.join(sorted(TEXT_OPERATORS))})")
            if not isinstance(self.value, str):
                raise ValueError(f"value for {self.field} must be text, not {self.value!r}")
            if not self.value.strip():  # "contains ''" would match every invoice
                raise ValueError(f"value for {self.field} must not be blank")
        return self

    def holds(self, invoice: OpenInvoice, today: date) -> bool:
        """Whether this row is satisfied by the invoice on the given day."""
        if isinstance(self.value, str):
            expected = _text(self.value)
            positive = _POSITIVE[self.operator]
            texts = [invoice.number] if self.field is CriterionField.CONTRACT else invoice.line_items
            found = any(_text_holds(positive, text, expected) for text in texts)
            return found if positive is self.operator else not found
        match self.field:
            case CriterionField.AMOUNT:
                actual = invoice.amount_due
            case CriterionField.DAYS_SINCE_INVOICE:
                actual = Decimal((today - invoice.issued_on).days)
            case _:
                actual = Decimal((today - invoice.due_on).days)
        return _COMPARE[self.operator](actual, self.value)


class AutopayConfig(BaseModel):
    """One of a customer's ordered autopay rules. Locked only stops the customer editing it; it pays the same."""

    model_config = _FROZEN

    id: str
    position: int
    name: str
    payment_method_id: str
    method: Literal["card", "bank"]
    criteria: list[Criterion] = []  # no criteria: matches every invoice
    disabled: bool = False
    locked: bool = False


class AutopayChoice(BaseModel):
    """An invoice to charge in full through a configuration's payment method."""

    model_config = _FROZEN

    invoice: OpenInvoice
    config: AutopayConfig
    amount: Money


def matches(config: AutopayConfig, invoice: OpenInvoice, today: date) -> bool:
    """A configuration matches when it is enabled and all its criteria hold (multi-row criteria are ANDed)."""
    return not config.disabled and all(criterion.holds(invoice, today) for criterion in config.criteria)


def _ordered(configs: Sequence[AutopayConfig]) -> list[AutopayConfig]:
    return sorted(configs, key=lambda config: (config.position, config.id))


def choose_payments(configs: Sequence[AutopayConfig], invoices: Sequence[OpenInvoice],
                    today: date) -> list[AutopayChoice]:
    """Pay each eligible invoice through the first matching configuration, top to bottom by position (ties by
    id), so a later configuration never pays it too. The caller passes one customer's configurations and
    invoices. An invoice listed more than once is decided on its first listing, so it is charged at most once.
    Excluded invoices and those with nothing due are skipped. Ordered by issued_on, then invoice_id."""
    ordered = _ordered(configs)
    seen: set[str] = set()
    choices: list[AutopayChoice] = []
    for invoice in invoices:
        if invoice.invoice_id in seen:
            continue
        seen.add(invoice.invoice_id)
        if invoice.excluded or invoice.amount_due <= 0:
            continue
        config = next((config for config in ordered if matches(config, invoice, today)), None)
        if config is not None:
            choices.append(AutopayChoice(invoice=invoice, config=config, amount=invoice.amount_due))
    return sorted(choices, key=lambda choice: (choice.invoice.issued_on, choice.invoice.invoice_id))


def validate_configs(configs: Sequence[AutopayConfig]) -> None:
    """Refuse a customer's configurations when two share an id or a position: order must be unambiguous."""
    by_id: set[str] = set()
    by_position: dict[int, str] = {}
    for config in configs:
        if config.id in by_id:
            raise ValueError(f"duplicate autopay configuration id {config.id!r}")
        by_id.add(config.id)
        if config.position in by_position:
            raise ValueError(f"autopay configurations {by_position[config.position]!r} and {config.id!r} "
                             f"share position {config.position}")
        by_position[config.position] = config.id
