"""Royalty arithmetic: the basis of a payment under each franchisee's terms, one rounding per run, refunds
credited at the rates they were charged at, and credit carried instead of a negative check."""

from decimal import Decimal

from models.royalty_amounts import Credited, charge_fees, royalty_basis

D = Decimal


def test_tips_and_fees_bear_royalty_only_when_the_terms_say() -> None:
    amount, tip, fee = D("200.00"), D("20.00"), D("6.00")
    assert royalty_basis(amount, tip, fee, tips_bear_royalty=False, fees_bear_royalty=False) == D("200.00")
    assert royalty_basis(amount, tip, fee, tips_bear_royalty=True, fees_bear_royalty=False) == D("220.00")
    assert royalty_basis(amount, tip, fee, tips_bear_royalty=False, fees_bear_royalty=True) == D("206.00")
    assert royalty_basis(amount, tip, fee, tips_bear_royalty=True, fees_bear_royalty=True) == D("226.00")


def test_each_fee_is_rounded_half_up_once_on_the_total() -> None:
    # Three payments of 10.05 at 6%: 0.603 each would round to 0.60 (1.80 in all); once on 30.15 it is 1.809.
    fees = charge_fees(D("30.15"), [], D("0.06"), D("0.025"), D(0), D(0))
    assert fees.royalty.due == D("1.81")
    assert fees.marketing.due == D("0.75")  # 0.75375
    assert charge_fees(D("0.50"), [], D("0.05"), D(0), D(0), D(0)).royalty.due == D("0.03")  # 0.025: half up


def test_a_refund_is_credited_at_the_rate_it_was_charged_at() -> None:
    fees = charge_fees(D("1000.00"), [Credited(D("300.00"), D("0.05"), D("0.01"))], D("0.06"), D("0.02"),
                       D(0), D(0))
    assert fees.royalty.gross == D("45.00")  # 60.00 - 15.00
    assert fees.marketing.gross == D("17.00")  # 20.00 - 3.00


def test_a_net_credit_is_carried_never_a_negative_check() -> None:
    fees = charge_fees(D("100.00"), [Credited(D("500.00"), D("0.06"), D("0.02"))], D("0.06"), D("0.02"),
                       D(0), D(0))
    assert fees.royalty.due == 0 and fees.royalty.credit_out == D("24.00")  # 6.00 - 30.00
    assert fees.marketing.due == 0 and fees.marketing.credit_out == D("8.00")
    later = charge_fees(D("1000.00"), [], D("0.06"), D("0.02"), fees.royalty.credit_out, fees.marketing.credit_out)
    assert later.royalty.due == D("36.00") and later.royalty.credit_out == 0  # 60.00 - 24.00
    assert later.marketing.due == D("12.00")
