"""Royalty arithmetic: what a payment bears royalty on, and a charge's fees, each rounded once per run."""

from dataclasses import dataclass
from decimal import Decimal

from models.money import cents

ZERO = Decimal("0.00")


def royalty_basis(amount: Decimal, tip: Decimal, convenience_fee: Decimal, *, tips_bear_royalty: bool,
                  fees_bear_royalty: bool) -> Decimal:
    """The part of a payment the franchisee owes royalty on: the amount, and tips and fees when its terms say."""
    return cents(amount + (tip if tips_bear_royalty else 0) + (convenience_fee if fees_bear_royalty else 0))


@dataclass(frozen=True)
class Credited:
    """A refunded payment charged earlier: its basis comes back at the rates it was charged at."""

    basis: Decimal
    royalty_rate: Decimal
    marketing_rate: Decimal


@dataclass(frozen=True)
class Fee:
    gross: Decimal  # the fee on the payments less the refunds, rounded once; negative when refunds outweigh
    credit_in: Decimal
    due: Decimal  # on the check
    credit_out: Decimal  # carried to the next run


@dataclass(frozen=True)
class Fees:
    royalty: Fee
    marketing: Fee


def _fee(charged: Decimal, credited: list[Credited], rate: Decimal, credit_rate: str, credit_in: Decimal) -> Fee:
    exact = charged * rate - sum((c.basis * getattr(c, credit_rate) for c in credited), Decimal(0))
    gross = cents(exact)
    net = gross - credit_in
    return Fee(gross=gross, credit_in=credit_in, due=max(net, ZERO), credit_out=max(-net, ZERO))


def charge_fees(charged_basis: Decimal, credited: list[Credited], royalty_rate: Decimal, marketing_rate: Decimal,
                royalty_credit_in: Decimal, marketing_credit_in: Decimal) -> Fees:
    """Royalty and marketing on a run's payments, less refunds, less credit carried in. Each fee is rounded
    half-up once, on the run's total (never per payment), and a fee below zero becomes credit, never a
    negative check line."""
    return Fees(royalty=_fee(charged_basis, credited, royalty_rate, "royalty_rate", royalty_credit_in),
                marketing=_fee(charged_basis, credited, marketing_rate, "marketing_rate", marketing_credit_in))
