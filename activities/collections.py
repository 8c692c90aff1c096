"""The collection's ledger activities: hold the amount against what the proposal owes before the charge, and
record how the collection ended. Reservations on one proposal take turns (models/collection_ledger.CollectionTurn),
so two at once can never take more than is due; a retried reservation finds the row it wrote."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, update
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from models.accounts import Franchisee
from models.collection_ledger import CollectedPayment, CollectionTurn
from models.collections import (
    NEXT,
    CollectedCharge,
    CollectionStatus,
    CollectionUpdate,
    CollectPayment,
    RefundPayment,
    Reservation,
)
from models.db import session_scope
from models.money import cents
from models.payment_settings import PaymentSettings
from models.receivables import beyond_due, owed_on_proposal
from models.time_zones import local_today


def _refused(message: str, kind: str = "PaymentRefused") -> ApplicationError:
    return ApplicationError(message, type=kind, non_retryable=True)


def _take_turn(session: Session, account_id: str, proposal_id: str) -> None:
    """The first write of the reservation: until it commits, no other reservation on the proposal reads."""
    bumped = session.exec(update(CollectionTurn).where(  # type: ignore[call-overload]
        CollectionTurn.account_id == account_id, CollectionTurn.proposal_id == proposal_id,  # type: ignore[arg-type]
    ).values(version=CollectionTurn.version + 1))
    if bumped.rowcount == 0:  # the first collection on it; two at once: one insert fails and its activity retries
        session.add(CollectionTurn(account_id=account_id, proposal_id=proposal_id, version=1))
        session.flush()


def _reservation(row: CollectedPayment, number: str, customer_name: str, settings: PaymentSettings) -> Reservation:
    return Reservation(amount=row.amount, tip=row.tip, convenience_fee=row.convenience_fee,
                       received_on=row.received_on, proposal_number=number, customer_name=customer_name,
                       ach_return_window_days=settings.ach_return_window_days, status=CollectionStatus(row.status),
                       transaction_id=row.transaction_id, crm_payment_id=row.crm_payment_id, surcharge=row.surcharge,
                       message=row.message)


def _same_request(row: CollectedPayment, input: CollectPayment) -> bool:
    return (row.proposal_id, row.payment_method_id, row.method) == (
        input.proposal_id, input.payment_method_id, input.method)


class CollectionActivities:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @activity.defn
    def reserve_collection(self, input: CollectPayment) -> Reservation:
        """Hold the amount and its convenience fee (lowered to fit what is due with up_to_due; refused when more
        than is due otherwise) and write the collection's row. A repeat returns the row's reservation."""
        with session_scope(self.engine) as session:
            _take_turn(session, input.account_id, input.proposal_id)
            owed = owed_on_proposal(session, input.account_id, input.proposal_id, excluding_key=input.collection_key)
            if owed is None:
                raise _refused(f"proposal {input.proposal_id} of account {input.account_id} is not in the ledger "
                               f"(no proposal workflow has saved it yet)", "ProposalUnknown")
            franchisee = session.get(Franchisee, input.account_id)
            if franchisee is None:
                raise _refused(f"unknown account {input.account_id}", "UnknownAccount")
            settings = PaymentSettings.model_validate(franchisee.payments)
            row = session.get(CollectedPayment, (input.account_id, input.collection_key))
            if row is not None:
                if not _same_request(row, input):
                    raise _refused(f"idempotency key {input.collection_key!r} was already used for another "
                                   f"payment (proposal {row.proposal_id})", "CollectionKeyReused")
                return _reservation(row, owed.number, owed.customer_name, settings)
            amount = min(input.amount, settings.amount_within(owed.due)) if input.up_to_due else input.amount
            fee = settings.convenience_fee(amount)
            if input.up_to_due and amount < input.amount:  # lowered to the balance: the fee takes its last cent
                fee = max(fee, cents(owed.due - amount)) if fee else fee
            refusal = beyond_due(owed, amount, fee)
            if refusal is not None:
                raise _refused(refusal)
            row = CollectedPayment(
                account_id=input.account_id, collection_key=input.collection_key, proposal_id=input.proposal_id,
                source=input.source.value, method=input.method, payment_method_id=input.payment_method_id,
                amount=amount, tip=input.tip if amount > 0 else cents(0),
                convenience_fee=fee, surcharge=cents(0),
                received_on=local_today(franchisee.time_zone),
                status=(CollectionStatus.RESERVED if amount > 0 else CollectionStatus.NOTHING_DUE).value)
            session.add(row)
            return _reservation(row, owed.number, owed.customer_name, settings)

    @activity.defn
    def finish_collection(self, input: CollectionUpdate) -> None:
        """Record where the collection stands; fields left None keep what the row has. A status it may not move
        to (NEXT) is not taken: a late update never undoes a refund or a return."""
        with session_scope(self.engine) as session:
            row = session.get(CollectedPayment, (input.account_id, input.collection_key))
            if row is None:
                raise _refused(f"no collection {input.collection_key} in account {input.account_id}",
                               "CollectionUnknown")
            current = CollectionStatus(row.status)
            if input.status not in NEXT.get(current, {current}):
                return
            row.status = input.status.value
            row.transaction_id = input.transaction_id or row.transaction_id
            row.crm_payment_id = input.crm_payment_id or row.crm_payment_id
            row.surcharge = row.surcharge if input.surcharge is None else input.surcharge
            row.message = input.message or row.message
            row.updated_at = datetime.now(UTC)
            session.add(row)

    @activity.defn
    def load_collected_charge(self, input: RefundPayment) -> CollectedCharge:
        """The collection's transaction, for a refund; refused unless it was charged and not given back."""
        with Session(self.engine) as session:
            row = session.get(CollectedPayment, (input.account_id, input.collection_key))
        if row is None or row.transaction_id is None:
            raise _refused(f"no charged payment {input.collection_key!r} in account {input.account_id}",
                           "CollectionUnknown")
        status = CollectionStatus(row.status)
        if status not in (CollectionStatus.CHARGED, CollectionStatus.SETTLED, CollectionStatus.REFUNDED):
            raise _refused(f"payment {input.collection_key!r} is {status.value}: there is nothing to give back",
                           "NothingToRefund")
        if row.crm_payment_id is None:  # its collection is still recording it: a refund now would be undone
            raise _refused(f"payment {input.collection_key!r} is still being recorded on the CRM: ask again "
                           f"once it is", "NothingToRefund")
        return CollectedCharge(transaction_id=row.transaction_id, crm_payment_id=row.crm_payment_id, status=status)

    def activities(self) -> list[Callable[..., Any]]:
        return [self.reserve_collection, self.finish_collection, self.load_collected_charge]
