"""Whether a branch step's conditions hold for a contact: pure, so the workflow decides it deterministically
from the context its activity loaded."""

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from models.plan_context import PlanContext, token_value
from models.plans import BranchStep, Condition


def _comparable(value: Any) -> Decimal | datetime | date | str:
    """Numbers as numbers and dates as dates, so "10" > "9" and 2026-12-01 > 2026-11-30."""
    if isinstance(value, datetime | date):
        return value
    text = str(value).strip()
    try:
        return Decimal(text)
    except InvalidOperation:
        pass
    for parse in (datetime.fromisoformat, date.fromisoformat):
        try:
            return parse(text)
        except ValueError:
            continue
    return text.casefold()


def _ordered(left: Any, right: str) -> tuple[Any, Any] | None:
    a, b = _comparable(left), _comparable(right)
    if isinstance(a, datetime) and isinstance(b, date) and not isinstance(b, datetime):
        a = a.date()
    return (a, b) if type(a) is type(b) else None


def condition_holds(condition: Condition, context: PlanContext) -> bool:
    value = token_value(context, condition.field)
    text = "" if value is None else str(value).strip()
    expected = (condition.value or "").strip()
    match condition.op:
        case "empty":
            return not text
        case "not_empty":
            return bool(text)
        case "eq":
            return text.casefold() == expected.casefold()
        case "ne":
            return text.casefold() != expected.casefold()
        case "contains":
            return expected.casefold() in text.casefold()
    if value is None:
        return False
    pair = _ordered(value, expected)
    if pair is None:  # a number against a word: neither greater nor less
        return False
    return pair[0] > pair[1] if condition.op == "gt" else pair[0] < pair[1]


def branch_holds(step: BranchStep, context: PlanContext) -> bool:
    return all(condition_holds(condition, context) for condition in step.when)
