"""The shapes of a royalty run as they cross the workflow boundary, and the check a charge becomes."""

from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from models.money import Exact, Money


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def royalty_run_id(franchisor_id: str, business: date) -> str:
    return f"royalty:{franchisor_id}:{business.isoformat()}"


def franchisee_royalty_id(run_id: str, account_id: str) -> str:
    return f"{run_id}:{account_id}"


def nightly_royalty_id(franchisor_id: str) -> str:
    """The schedule's id; Temporal adds the scheduled time to it for each workflow it starts."""
    return f"royalty-nightly:{franchisor_id}"


def check_number(business: date) -> str:
    """The check's DocNumber: one per franchisee file and business date, and recognisably ours."""
    return f"LF-ROY-{business:%Y%m%d}"


class DebitStatus(StrEnum):
    """The ACH debit collecting a charge's check, when the network debits (royalty.ach_debit)."""

    DUE = "due"  # to be debited once its check is written
    DEBITED = "debited"  # accepted by the gateway (ACH settles within days; a return shows later)
    DECLINED = "declined"  # refused by the gateway: the franchisor follows it up


class ChargeStatus(StrEnum):
    CHECK_DUE = "check_due"  # fees owed; the check is not written yet
    CHECK_WRITTEN = "check_written"
    NOTHING_ELIGIBLE = "nothing_eligible"  # no payment past the waiting period and no refund to credit
    NOTHING_DUE = "nothing_due"  # refunds or carried credit cover the fees: the credit carries forward


class RoyaltyTerms(_Shape):
    """The franchisor's side of every charge (config.network.RoyaltyConfig, as the run found it)."""

    franchisor_id: str
    time_zone: str
    waiting_period_days: int = Field(ge=0)
    vendor_name: str
    bank_account: str
    royalty_expense_account: str
    marketing_expense_account: str
    concurrency: int = Field(ge=1)
    ach_debit: bool = False


class FranchiseeTerms(_Shape):
    account_id: str
    name: str
    realm_id: str
    royalty_rate: Exact
    marketing_rate: Exact
    tips_bear_royalty: bool
    fees_bear_royalty: bool
    ach_payment_method_id: str | None = None


class RoyaltyPlan(_Shape):
    terms: RoyaltyTerms
    franchisees: list[FranchiseeTerms]


class RoyaltyTimeouts(_Shape):
    qbo_call: timedelta = timedelta(minutes=2)  # one QBO activity attempt
    # How long a franchisee's check may keep failing on transient QBO faults before the run reports it
    # failed; the charge stays due and a later run writes the check.
    check_patience: timedelta = timedelta(hours=2)
    gateway_call: timedelta = timedelta(minutes=2)  # one gateway activity attempt (the ACH debit)


class NightlyRoyaltyInput(_Shape):
    """What the nightly schedule starts with: the business date comes from the time it was scheduled for."""

    franchisor_id: str
    time_zone: str
    timeouts: RoyaltyTimeouts = RoyaltyTimeouts()


class RoyaltyRunInput(_Shape):
    franchisor_id: str
    business_date: date
    timeouts: RoyaltyTimeouts = RoyaltyTimeouts()


class ClaimInput(_Shape):
    run_id: str
    business_date: date
    eligible_through: date
    terms: RoyaltyTerms
    franchisee: FranchiseeTerms


class FranchiseeRoyaltyInput(_Shape):
    claim: ClaimInput
    timeouts: RoyaltyTimeouts


class ChargeSummary(_Shape):
    """A RoyaltyCharge row, as the workflow and the report see it."""

    charge_id: int
    run_id: str
    account_id: str
    business_date: date
    eligible_through: date
    status: ChargeStatus
    payments: int
    credits: int
    basis: Money
    credited_basis: Money
    royalty_rate: Exact
    marketing_rate: Exact
    royalty: Money
    marketing: Money
    royalty_credit_in: Money
    marketing_credit_in: Money
    royalty_due: Money
    marketing_due: Money
    royalty_credit_out: Money
    marketing_credit_out: Money
    check_id: str | None = None
    check_number: str | None = None
    debit_status: DebitStatus | None = None
    debit_id: str | None = None  # the gateway's transaction

    @property
    def total_due(self) -> Decimal:
        return self.royalty_due + self.marketing_due


class Claimed(_Shape):
    """This run's charge, every charge of the franchisee (this one included) whose check is still due, and
    every one whose ACH debit is (collected once its check is written)."""

    charge: ChargeSummary
    checks_due: list[ChargeSummary]
    debits_due: list[ChargeSummary] = []


class CheckWritten(_Shape):
    charge_id: int
    check_id: str
    check_number: str


class CheckFailed(_Shape):
    charge_id: int
    error: str


class DebitRecorded(_Shape):
    """What the gateway made of a charge's ACH debit: debited (with its transaction) or declined (with why);
    neither, with an error, when it stayed unreachable and the debit stays due."""

    charge_id: int
    status: DebitStatus
    debit_id: str | None = None
    error: str | None = None


def debit_idempotency_id(charge: ChargeSummary) -> str:
    """One ACH debit per charge, ever: the gateway answers a repeat with the first transaction."""
    return f"{franchisee_royalty_id(charge.run_id, charge.account_id)}:ach"


class FranchiseeOutcome(_Shape):
    account_id: str
    name: str
    status: str  # a ChargeStatus, or "failed"
    charge: ChargeSummary | None = None
    checks_written: list[str] = []  # QBO Purchase ids, earlier runs' overdue checks included
    debits: list[str] = []  # gateway transactions of the ACH debits made
    error: str | None = None


class RoyaltyRunResult(_Shape):
    run_id: str
    franchisor_id: str
    business_date: date
    eligible_through: date
    outcomes: list[FranchiseeOutcome]
    workflow_run_id: str | None = None

    @property
    def failed(self) -> list[FranchiseeOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]


class CheckLine(_Shape):
    expense_account: str = Field(min_length=1)  # an account name in the franchisee's QBO file
    amount: Money = Field(gt=0)
    description: str = Field(max_length=4000)


class RoyaltyCheckInput(_Shape):
    """A check from the franchisee's bank account to the franchisor, one per royalty run and franchisee."""

    account_id: str
    realm_id: str
    run_id: str  # the royalty run's business key, e.g. "royalty:acme:2026-11-21"
    vendor_name: str = Field(min_length=1, max_length=100)  # the franchisor, as a vendor in the franchisee's file
    # Its QBO id when the workflow has ensured the vendor first; runs from before that leave it to this activity.
    vendor_id: str | None = None
    bank_account: str = Field(min_length=1)
    lines: list[CheckLine] = Field(min_length=1)
    memo: str = Field(max_length=4000)
    doc_number: str | None = Field(default=None, max_length=21)


class EnsureVendorInput(_Shape):
    account_id: str
    realm_id: str
    name: str = Field(min_length=1, max_length=100)


def _percent(rate: Decimal) -> str:
    return f"{(rate * 100).normalize():f}%"


def royalty_check(charge: ChargeSummary, terms: RoyaltyTerms, realm_id: str,
                  vendor_id: str | None) -> RoyaltyCheckInput:
    """The check that pays a charge: one line per fee that is due, a memo naming the run and what it covered."""
    covered = f"{charge.payments} payment(s) received through {charge.eligible_through}"
    if charge.credits:
        covered += f", less {charge.credits} refund(s)"
    lines = [CheckLine(expense_account=account, amount=due,
                       description=f"{name} {_percent(rate)} of {charge.basis - charge.credited_basis} ({covered})")
             for name, account, rate, due in (
                 ("Royalty", terms.royalty_expense_account, charge.royalty_rate, charge.royalty_due),
                 ("Marketing fee", terms.marketing_expense_account, charge.marketing_rate, charge.marketing_due))
             if due > 0]
    return RoyaltyCheckInput(
        account_id=charge.account_id, realm_id=realm_id, run_id=charge.run_id, vendor_name=terms.vendor_name,
        vendor_id=vendor_id,
        bank_account=terms.bank_account, lines=lines, doc_number=charge.check_number,
        memo=f"Ledgerflow {charge.run_id}: {covered}. Details: the royalty report, charge {charge.charge_id}.")
