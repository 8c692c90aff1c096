"""The royalty run's side of the ledger: the network's terms, each franchisee's charge (worked out and
recorded in one transaction, so a payment is taken exactly once), the checks written, the run's record."""

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import metrics
from models.accounts import Franchisee, Franchisor
from models.db import session_scope
from models.ledger import LedgerPayment
from models.money import cents
from models.royalty import (
    ChargeStatus,
    ChargeSummary,
    CheckFailed,
    CheckWritten,
    Claimed,
    ClaimInput,
    DebitRecorded,
    DebitStatus,
    FranchiseeTerms,
    RoyaltyPlan,
    RoyaltyRunResult,
    RoyaltyTerms,
    check_number,
)
from models.royalty_amounts import ZERO, Credited, charge_fees, royalty_basis
from models.royalty_ledger import RoyaltyBalance, RoyaltyCharge, RoyaltyItem, RoyaltyRun


def charge_summary(row: RoyaltyCharge) -> ChargeSummary:
    return ChargeSummary.model_validate({**row.model_dump(include=set(ChargeSummary.model_fields)),
                                         "charge_id": row.id})


def _item_exists(payment: type[LedgerPayment] | type[RoyaltyItem], kind: str) -> Any:
    """Whether a royalty item of `kind` exists for the payment row `payment` stands for."""
    item = aliased(RoyaltyItem)
    return select(item.id).where(item.account_id == payment.account_id,
                                 item.crm_payment_id == payment.crm_payment_id, item.kind == kind).exists()


class RoyaltyLedgerActivities:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @activity.defn
    def load_royalty_plan(self, franchisor_id: str) -> RoyaltyPlan:
        """The franchisor's royalty terms and every franchisee's rates, as installed from the network file."""
        with Session(self.engine) as session:
            franchisor = session.get(Franchisor, franchisor_id)
            if franchisor is None:
                raise ApplicationError(f"unknown franchisor {franchisor_id!r}", type="UnknownFranchisor",
                                       non_retryable=True)
            if not franchisor.royalty:
                raise ApplicationError(f"franchisor {franchisor_id!r} has no royalty settings in the network file",
                                       type="RoyaltyNotConfigured", non_retryable=True)
            franchisees = session.exec(select(Franchisee).where(Franchisee.franchisor_id == franchisor_id)
                                       .order_by(col(Franchisee.account_id))).all()
        royalty = {k: v for k, v in franchisor.royalty.items() if k != "run_time"}
        return RoyaltyPlan(
            terms=RoyaltyTerms(franchisor_id=franchisor_id, time_zone=franchisor.time_zone, **royalty),
            franchisees=[FranchiseeTerms(account_id=f.account_id, name=f.name, realm_id=f.qbo_realm_id,
                                         royalty_rate=f.royalty_rate, marketing_rate=f.marketing_rate,
                                         tips_bear_royalty=f.tips_bear_royalty, fees_bear_royalty=f.fees_bear_royalty,
                                         ach_payment_method_id=f.ach_payment_method_id)
                         for f in franchisees])

    @activity.defn
    def claim_royalty_charge(self, input: ClaimInput) -> Claimed:
        """The franchisee's charge for this run: found when it exists (a re-run, a retried activity), else
        worked out from the payments no run has covered and the refunds no run has credited, and recorded
        with them in one transaction. Also lists every charge of the franchisee still waiting for its check."""
        account_id = input.franchisee.account_id
        for _ in range(5):
            try:
                with session_scope(self.engine) as session:
                    charge = self._existing(session, input.run_id, account_id) or self._claim(session, input)
                    return Claimed(charge=charge_summary(charge),
                                   checks_due=self._open(session, account_id, RoyaltyCharge.status,
                                                         ChargeStatus.CHECK_DUE),
                                   debits_due=self._open(session, account_id, RoyaltyCharge.debit_status,
                                                         DebitStatus.DUE))
            except (IntegrityError, _BalanceMoved):
                continue  # another run took this franchisee's payments first: look again at what is left
        raise ApplicationError(f"royalty charge for {account_id} kept changing under us", type="RoyaltyContention")

    @staticmethod
    def _open(session: Session, account_id: str, column: Any, value: str) -> list[ChargeSummary]:
        """The franchisee's charges with `column` at `value` (a check or a debit still to do), oldest first."""
        rows = session.exec(select(RoyaltyCharge).where(RoyaltyCharge.account_id == account_id, column == value)
                            .order_by(col(RoyaltyCharge.business_date), col(RoyaltyCharge.id))).all()
        return [charge_summary(c) for c in rows]

    @staticmethod
    def _existing(session: Session, run_id: str, account_id: str) -> RoyaltyCharge | None:
        return session.exec(select(RoyaltyCharge).where(RoyaltyCharge.run_id == run_id,
                                                        RoyaltyCharge.account_id == account_id)).first()

    def _claim(self, session: Session, input: ClaimInput) -> RoyaltyCharge:
        franchisee = input.franchisee
        balance = self._lock_balance(session, franchisee.account_id)
        existing = self._existing(session, input.run_id, franchisee.account_id)  # made while we waited for the lock
        if existing is not None:
            return existing
        to_charge = session.exec(select(LedgerPayment).where(
            LedgerPayment.account_id == franchisee.account_id, col(LedgerPayment.voided).is_(None),
            LedgerPayment.received_on <= input.eligible_through, ~_item_exists(LedgerPayment, "charge"))
            .order_by(col(LedgerPayment.received_on), col(LedgerPayment.id))).all()
        refunded = select(LedgerPayment.id).where(LedgerPayment.account_id == RoyaltyItem.account_id,
                                                  LedgerPayment.crm_payment_id == RoyaltyItem.crm_payment_id,
                                                  col(LedgerPayment.voided).is_not(None)).exists()
        to_credit = session.exec(select(RoyaltyItem).where(
            RoyaltyItem.account_id == franchisee.account_id, RoyaltyItem.kind == "charge", refunded,
            ~_item_exists(RoyaltyItem, "credit")).order_by(col(RoyaltyItem.id))).all()

        bases = [royalty_basis(p.amount, p.tip, p.convenience_fee, tips_bear_royalty=franchisee.tips_bear_royalty,
                               fees_bear_royalty=franchisee.fees_bear_royalty) for p in to_charge]
        basis = cents(sum(bases, ZERO))
        credits = [Credited(i.basis, i.royalty_rate, i.marketing_rate) for i in to_credit]
        fees = charge_fees(basis, credits, franchisee.royalty_rate, franchisee.marketing_rate,
                           balance.royalty_credit, balance.marketing_credit)
        if not to_charge and not to_credit:
            status = ChargeStatus.NOTHING_ELIGIBLE
        elif fees.royalty.due + fees.marketing.due > 0:
            status = ChargeStatus.CHECK_DUE
        else:
            status = ChargeStatus.NOTHING_DUE
        charge = RoyaltyCharge(
            run_id=input.run_id, franchisor_id=input.terms.franchisor_id, account_id=franchisee.account_id,
            realm_id=franchisee.realm_id, business_date=input.business_date, eligible_through=input.eligible_through,
            royalty_rate=franchisee.royalty_rate, marketing_rate=franchisee.marketing_rate,
            payments=len(to_charge), credits=len(to_credit), basis=basis,
            credited_basis=cents(sum((i.basis for i in to_credit), ZERO)),
            royalty=fees.royalty.gross, marketing=fees.marketing.gross,
            royalty_credit_in=fees.royalty.credit_in, marketing_credit_in=fees.marketing.credit_in,
            royalty_due=fees.royalty.due, marketing_due=fees.marketing.due,
            royalty_credit_out=fees.royalty.credit_out, marketing_credit_out=fees.marketing.credit_out,
            status=status.value, check_number=check_number(input.business_date) if status is ChargeStatus.CHECK_DUE
            else None,
            debit_status=DebitStatus.DUE.value if status is ChargeStatus.CHECK_DUE and input.terms.ach_debit else None)
        session.add(charge)
        session.flush()
        assert charge.id is not None
        for payment, payment_basis in zip(to_charge, bases, strict=True):
            session.add(RoyaltyItem(
                charge_id=charge.id, account_id=payment.account_id, crm_payment_id=payment.crm_payment_id,
                proposal_id=payment.proposal_id, kind="charge", received_on=payment.received_on,
                amount=payment.amount, tip=payment.tip, convenience_fee=payment.convenience_fee, basis=payment_basis,
                royalty_rate=franchisee.royalty_rate, marketing_rate=franchisee.marketing_rate))
        for item in to_credit:
            session.add(RoyaltyItem(
                charge_id=charge.id, account_id=item.account_id, crm_payment_id=item.crm_payment_id,
                proposal_id=item.proposal_id, kind="credit", received_on=item.received_on, amount=item.amount,
                tip=item.tip, convenience_fee=item.convenience_fee, basis=item.basis, royalty_rate=item.royalty_rate,
                marketing_rate=item.marketing_rate))
        balance.royalty_credit, balance.marketing_credit = fees.royalty.credit_out, fees.marketing.credit_out
        balance.updated_at = datetime.now(UTC)
        session.add(balance)
        session.flush()
        return charge

    @staticmethod
    def _lock_balance(session: Session, account_id: str) -> RoyaltyBalance:
        """The franchisee's credit row, bumped to a new version first thing: of two runs charging the same
        franchisee at once, the second waits here (PostgreSQL) or fails its write (SQLite) and starts over."""
        balance = session.get(RoyaltyBalance, account_id)
        if balance is None:
            balance = RoyaltyBalance(account_id=account_id, royalty_credit=ZERO, marketing_credit=ZERO, version=0)
            session.add(balance)
            session.flush()  # a concurrent first charge of the same franchisee: IntegrityError, start over
            return balance
        bumped = session.execute(update(RoyaltyBalance).where(
            col(RoyaltyBalance.account_id) == account_id, col(RoyaltyBalance.version) == balance.version)
            .values(version=balance.version + 1))
        if bumped.rowcount != 1:  # type: ignore[attr-defined]
            raise _BalanceMoved
        session.refresh(balance)
        return balance

    @activity.defn
    def record_royalty_check(self, written: CheckWritten) -> None:
        with session_scope(self.engine) as session:
            charge = session.get(RoyaltyCharge, written.charge_id)
            if charge is None:
                raise ApplicationError(f"no royalty charge {written.charge_id}", type="UnknownCharge",
                                       non_retryable=True)
            if charge.status == ChargeStatus.CHECK_WRITTEN.value:
                return
            charge.status, charge.check_id = ChargeStatus.CHECK_WRITTEN.value, written.check_id
            charge.check_number, charge.check_error = written.check_number, None
            charge.check_written_at = datetime.now(UTC)
            session.add(charge)
        metrics.royalty_check_written(charge.franchisor_id, charge.royalty_due, charge.marketing_due)

    @activity.defn
    def record_royalty_check_failure(self, failed: CheckFailed) -> None:
        """Keep why the check could not be written; the charge stays due and the next run writes it."""
        with session_scope(self.engine) as session:
            charge = session.get(RoyaltyCharge, failed.charge_id)
            if charge is not None and charge.status == ChargeStatus.CHECK_DUE.value:
                charge.check_error = failed.error[:2000]
                session.add(charge)

    @activity.defn
    def record_royalty_debit(self, recorded: DebitRecorded) -> None:
        """The gateway's answer to a charge's ACH debit; an error alone (gateway unreachable) keeps it due."""
        with session_scope(self.engine) as session:
            charge = session.get(RoyaltyCharge, recorded.charge_id)
            if charge is None or charge.debit_status != DebitStatus.DUE.value:
                return  # recorded already (a retried activity)
            charge.debit_error = recorded.error[:2000] if recorded.error else None
            if recorded.status is not DebitStatus.DUE:
                charge.debit_status, charge.debit_id = recorded.status.value, recorded.debit_id
                charge.debited_at = datetime.now(UTC)
            session.add(charge)

    @activity.defn
    def save_royalty_run(self, result: RoyaltyRunResult) -> None:
        """The run's record: one row per franchisor and business date, replaced when the date runs again."""
        charges = [o.charge for o in result.outcomes if o.charge is not None]
        with session_scope(self.engine) as session:
            session.merge(RoyaltyRun(
                run_id=result.run_id, franchisor_id=result.franchisor_id, business_date=result.business_date,
                eligible_through=result.eligible_through, franchisees=len(result.outcomes),
                charged=sum(1 for o in result.outcomes if o.status == ChargeStatus.CHECK_WRITTEN.value),
                failed=len(result.failed),
                royalty_total=cents(sum((c.royalty_due for c in charges), Decimal(0))),
                marketing_total=cents(sum((c.marketing_due for c in charges), Decimal(0))),
                outcomes=[o.model_dump(mode="json", exclude={"charge"}) for o in result.outcomes],
                workflow_run_id=result.workflow_run_id, finished_at=datetime.now(UTC)))

    def activities(self) -> list[Callable[..., Any]]:
        return [self.load_royalty_plan, self.claim_royalty_charge, self.record_royalty_check,
                self.record_royalty_check_failure, self.record_royalty_debit, self.save_royalty_run]


class _BalanceMoved(Exception):
    """Another transaction changed the franchisee's credit row between our read and our write."""
