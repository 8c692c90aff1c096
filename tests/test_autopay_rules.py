"""Autopay rules: each operator on each field at its boundaries, all rows must hold, configurations run top to
bottom so an invoice is paid by the first match only, and bad criteria are refused when built."""

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from models.autopay import (
    AutopayConfig,
    Criterion,
    CriterionField,
    OpenInvoice,
    Operator,
    choose_payments,
    matches,
    validate_configs,
)

D = Decimal
TODAY = date(2026, 3, 15)


def invoice(**changes: Any) -> OpenInvoice:
    fields: dict[str, Any] = {
        "proposal_id": "p-1", "invoice_id": "inv-1", "number": "P-1042", "customer_id": "c-1",
        "issued_on": date(2026, 3, 1), "due_on": date(2026, 3, 31), "amount_due": "100.00",
        "line_items": ["Lawn Care Monthly", "Fertiliser"],
    }
    return OpenInvoice(**(fields | changes))


def rule(field: str, operator: str, value: Any) -> Criterion:
    return Criterion(field=field, operator=operator, value=value)


def config(id: str, position: int, *criteria: Criterion, **changes: Any) -> AutopayConfig:
    fields: dict[str, Any] = {"id": id, "position": position, "name": f"rule {id}", "payment_method_id": f"pm-{id}",
                              "method": "card", "criteria": list(criteria)}
    return AutopayConfig(**(fields | changes))


def holds(field: str, operator: str, value: Any, **changes: Any) -> bool:
    return rule(field, operator, value).holds(invoice(**changes), TODAY)


@pytest.mark.parametrize(("operator", "value", "expected"), [
    ("eq", "100", True), ("eq", "100.01", False), ("ne", "100.00", False), ("ne", "99.99", True),
    ("lt", "100.00", False), ("lt", "100.01", True), ("le", "100.00", True), ("le", "99.99", False),
    ("gt", "100.00", False), ("gt", "99.99", True), ("ge", "100.00", True), ("ge", "100.01", False),
])
def test_amount_compares_the_amount_due_at_its_boundary(operator: str, value: str, expected: bool) -> None:
    assert holds("amount", operator, value) is expected


def test_number_values_may_be_integers_or_decimals() -> None:
    assert holds("amount", "eq", 100)
    assert holds("amount", "eq", D("100.000"))
    assert rule("amount", "le", " 250.5 ").value == D("250.5")


def test_days_since_invoice_counts_from_the_issue_date() -> None:
    assert holds("days_since_invoice", "eq", "14")  # 1 March to 15 March
    assert holds("days_since_invoice", "ge", "14")
    assert not holds("days_since_invoice", "gt", "14")
    assert holds("days_since_invoice", "eq", "0", issued_on=TODAY)


def test_days_past_due_is_negative_before_the_due_date() -> None:
    assert holds("days_past_due", "eq", "-16")  # due 31 March
    assert holds("days_past_due", "lt", "0")
    assert not holds("days_past_due", "ge", "0")
    assert holds("days_past_due", "eq", "0", due_on=TODAY)
    assert holds("days_past_due", "gt", "0", due_on=date(2026, 3, 14))


def test_contract_is_case_insensitive_and_trimmed() -> None:
    assert holds("contract", "is", "  p-1042 ")
    assert not holds("contract", "is", "P-104")
    assert holds("contract", "is_not", "P-104")
    assert not holds("contract", "is_not", "p-1042")
    assert holds("contract", "contains", "1042")
    assert holds("contract", "contains", "p-10", number=" P-1042 ")
    assert holds("contract", "not_contains", "2099")
    assert not holds("contract", "not_contains", "p-")


def test_a_line_item_matches_when_any_name_does() -> None:
    assert holds("line_item", "is", "fertiliser")
    assert holds("line_item", "contains", "LAWN")
    assert not holds("line_item", "is", "Lawn Care")  # is means the whole name
    assert not holds("line_item", "contains", "aeration")


def test_a_negative_line_item_holds_only_when_no_name_matches() -> None:
    assert not holds("line_item", "is_not", "Fertiliser")  # one name is Fertiliser, though another is not
    assert holds("line_item", "is_not", "Aeration")
    assert not holds("line_item", "not_contains", "monthly")
    assert holds("line_item", "not_contains", "aeration")


def test_an_invoice_without_line_items() -> None:
    assert not holds("line_item", "is", "Fertiliser", line_items=[])
    assert not holds("line_item", "contains", "Lawn", line_items=[])
    assert holds("line_item", "is_not", "Fertiliser", line_items=[])
    assert holds("line_item", "not_contains", "Lawn", line_items=[])


def test_every_row_must_hold() -> None:
    both = config("a", 1, rule("amount", "le", "100"), rule("line_item", "contains", "lawn"))
    assert matches(both, invoice(), TODAY)
    assert not matches(both, invoice(amount_due="100.01"), TODAY)
    assert not matches(both, invoice(line_items=["Snow Removal"]), TODAY)


def test_no_criteria_matches_everything_unless_disabled() -> None:
    assert matches(config("a", 1), invoice(), TODAY)
    assert not matches(config("a", 1, disabled=True), invoice(), TODAY)
    assert matches(config("a", 1, locked=True), invoice(), TODAY)  # locked stops editing, not paying


def test_a_disabled_configuration_is_skipped_for_the_next_one() -> None:
    configs = [config("a", 1, disabled=True), config("b", 2)]
    [choice] = choose_payments(configs, [invoice()], TODAY)
    assert choice.config.id == "b" and choice.amount == D("100.00")


def test_only_the_first_matching_configuration_by_position_pays() -> None:
    # Listed out of order: position decides, not list order; the later match never pays the invoice too.
    later = config("late", 5, rule("amount", "gt", "0"), method="bank")
    first = config("early", 2, rule("contract", "is", "P-1042"))
    choices = choose_payments([later, first], [invoice()], TODAY)
    assert [(c.invoice.invoice_id, c.config.id) for c in choices] == [("inv-1", "early")]


def test_a_position_tie_is_broken_by_id() -> None:
    choices = choose_payments([config("b", 1), config("a", 1)], [invoice()], TODAY)
    assert [c.config.id for c in choices] == ["a"]


def test_configurations_split_invoices_between_them() -> None:
    small = config("small", 1, rule("amount", "lt", "50"))
    rest = config("rest", 2, rule("days_past_due", "ge", "0"))
    invoices = [
        invoice(invoice_id="big-late", amount_due="500.00", due_on=date(2026, 3, 1), issued_on=date(2026, 2, 1)),
        invoice(invoice_id="small", amount_due="20.00"),
        invoice(invoice_id="big-not-due", amount_due="500.00"),
    ]
    choices = choose_payments([small, rest], invoices, TODAY)
    assert [(c.invoice.invoice_id, c.config.id) for c in choices] == [("big-late", "rest"), ("small", "small")]


def test_excluded_and_nothing_due_invoices_are_skipped() -> None:
    invoices = [invoice(invoice_id="x", excluded=True), invoice(invoice_id="zero", amount_due="0"),
                invoice(invoice_id="credit", amount_due="-5.00"), invoice(invoice_id="ok")]
    assert [c.invoice.invoice_id for c in choose_payments([config("a", 1)], invoices, TODAY)] == ["ok"]


def test_an_invoice_listed_twice_is_paid_once() -> None:
    choices = choose_payments([config("a", 1)], [invoice(), invoice(), invoice(invoice_id="inv-2")], TODAY)
    assert [c.invoice.invoice_id for c in choices] == ["inv-1", "inv-2"]


def test_an_invoice_listed_twice_is_decided_on_its_first_listing() -> None:
    choices = choose_payments([config("a", 1)], [invoice(excluded=True), invoice()], TODAY)
    assert choices == []


def test_choices_are_ordered_by_issue_date_then_invoice_id() -> None:
    invoices = [invoice(invoice_id="b", issued_on=date(2026, 3, 2)), invoice(invoice_id="c"),
                invoice(invoice_id="a", issued_on=date(2026, 3, 2))]
    choices = choose_payments([config("a", 1)], invoices, TODAY)
    assert [c.invoice.invoice_id for c in choices] == ["c", "a", "b"]


def test_no_configurations_pay_nothing() -> None:
    assert choose_payments([], [invoice()], TODAY) == []


@pytest.mark.parametrize(("field", "operator", "value", "message"), [
    ("amount", "contains", "100", "compares text"),
    ("days_past_due", "is", "3", "compares text"),
    ("contract", "eq", "P-1042", "compares numbers"),
    ("line_item", "lt", "Lawn", "compares numbers"),
    ("amount", "eq", "a hundred", "value for amount not a decimal number"),
    ("days_since_invoice", "ge", "", "value for days_since_invoice not a decimal number"),
    ("amount", "eq", 100.0, "given as a string or integer"),
    ("amount", "eq", "NaN", "finite"),
    ("amount", "eq", True, "given as a string or integer"),
    ("contract", "is", 1042, "must be text"),
    ("line_item", "contains", "  ", "must not be blank"),
])
def test_bad_criteria_are_refused(field: str, operator: str, value: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        rule(field, operator, value)


def test_unknown_field_or_operator_is_refused() -> None:
    with pytest.raises(ValidationError):
        rule("colour", "is", "red")
    with pytest.raises(ValidationError):
        rule("amount", "between", "1")


def test_criteria_survive_a_json_round_trip() -> None:
    original = config("a", 1, rule("amount", "le", "99.50"), rule("contract", "is", "100"))
    again = AutopayConfig.model_validate_json(original.model_dump_json())
    assert again == original
    assert again.criteria[0].value == D("99.50") and again.criteria[1].value == "100"
    assert CriterionField(again.criteria[1].field) is CriterionField.CONTRACT
    assert Operator(again.criteria[0].operator) is Operator.LE


def test_configurations_are_frozen_and_closed() -> None:
    with pytest.raises(ValidationError):
        config("a", 1).disabled = True  # type: ignore[misc]
    with pytest.raises(ValidationError):
        config("a", 1, colour="red")


def test_validate_configs_needs_unique_ids_and_positions() -> None:
    validate_configs([config("a", 1), config("b", 2)])
    validate_configs([])
    with pytest.raises(ValueError, match="duplicate autopay configuration id 'a'"):
        validate_configs([config("a", 1), config("a", 2)])
    with pytest.raises(ValueError, match="'a' and 'b' share position 1"):
        validate_configs([config("a", 1), config("b", 1)])
