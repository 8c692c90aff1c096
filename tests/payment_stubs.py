"""Stand-ins for the payment workflows' activities, to test their logic alone and record their histories: a
ledger that holds amounts against what each proposal owes, a gateway whose payment methods approve, decline or
bounce, a CRM that records and voids payments, and an autopay plan."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from models.autopay import AutopayChoice, AutopayConfig, OpenInvoice
from models.autopay_cycles import AutopayCycleInput, AutopayPlan
from models.collections import (
    CollectedCharge,
    CollectionStatus,
    CollectionUpdate,
    CollectPayment,
    RecordCollectedPayment,
    RefundPayment,
    Reservation,
    VoidCollectedPayment,
)
from models.gateway import ChargeRequest, GatewayCharge, TransactionRef, VoidOrRefundRequest
from models.money import cents

DAY = date(2026, 12, 1)
D100 = Decimal("100.00")


@dataclass
class PaymentWorld:
    due: dict[str, Decimal] = field(default_factory=dict)  # proposal id -> what is still owed
    declining: set[str] = field(default_factory=set)  # payment method ids
    bouncing: set[str] = field(default_factory=set)  # bank payment methods whose debits come back
    settled_after_looks: int = 1  # a debit shows settled from this look on (0: at once)
    reservations: dict[str, Reservation] = field(default_factory=dict)  # by collection key
    statuses: dict[str, list[CollectionStatus]] = field(default_factory=dict)  # by collection key
    charges: dict[str, ChargeRequest] = field(default_factory=dict)  # by idempotency id
    looks: dict[str, int] = field(default_factory=dict)  # transaction id -> status looks
    crm_payments: dict[str, RecordCollectedPayment] = field(default_factory=dict)  # by CRM payment id
    voided: list[VoidCollectedPayment] = field(default_factory=list)
    plan: list[AutopayChoice] = field(default_factory=list)
    refunds: dict[str, VoidOrRefundRequest] = field(default_factory=dict)  # by idempotency id
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])  # transaction ids unique on a shared server

    def transaction_id(self, number: int) -> str:
        return f"txn-{self.tag}-{number}"

    def activities(self) -> list[Callable[..., Any]]:
        world = self

        @activity.defn(name="reserve_collection")
        def reserve_collection(input: CollectPayment) -> Reservation:
            if input.collection_key in world.reservations:
                return world.reservations[input.collection_key]
            due = world.due.get(input.proposal_id)
            if due is None:
                raise ApplicationError(f"proposal {input.proposal_id} is not in the ledger", type="ProposalUnknown",
                                       non_retryable=True)
            amount = min(input.amount, due) if input.up_to_due else input.amount
            if amount > due:
                raise ApplicationError(f"{amount} is more than the {due} still due", type="PaymentRefused",
                                       non_retryable=True)
            world.due[input.proposal_id] = due - amount
            world.reservations[input.collection_key] = reservation = Reservation(
                amount=amount, tip=input.tip, convenience_fee=cents(0), received_on=DAY, proposal_number="1001",
                customer_name="Dana Reyes", ach_return_window_days=2)
            return reservation

        @activity.defn(name="finish_collection")
        def finish_collection(update: CollectionUpdate) -> None:
            world.statuses.setdefault(update.collection_key, []).append(update.status)

        @activity.defn(name="gateway_charge")
        def gateway_charge(request: ChargeRequest) -> GatewayCharge:
            if request.payment_method_id in world.declining:
                raise ApplicationError("gateway declined the charge: Card declined by the issuer",
                                       {"transaction_id": "txn-declined", "message": "Card declined"},
                                       type="GatewayDeclined", non_retryable=True)
            world.charges.setdefault(request.idempotency_id, request)
            number = list(world.charges).index(request.idempotency_id) + 1
            method = "bank" if request.payment_method_id.startswith("bank") else "card"
            return GatewayCharge(transaction_id=world.transaction_id(number), success=True, method=method,
                                 total=request.total)

        @activity.defn(name="gateway_transaction_status")
        def gateway_transaction_status(ref: TransactionRef) -> GatewayCharge:
            looks = world.looks[ref.transaction_id] = world.looks.get(ref.transaction_id, 0) + 1
            charge = next(c for n, c in enumerate(world.charges.values(), 1)
                          if world.transaction_id(n) == ref.transaction_id)
            settled = looks > world.settled_after_looks
            return GatewayCharge(
                transaction_id=ref.transaction_id, success=True, method="bank", total=charge.total, settled=settled,
                settled_at=datetime(2026, 12, 1, tzinfo=UTC) if settled else None,
                returned=settled and charge.payment_method_id in world.bouncing,
                message="ACH return R01" if settled and charge.payment_method_id in world.bouncing else None)

        @activity.defn(name="record_collected_payment")
        def record_collected_payment(input: RecordCollectedPayment) -> str:
            found = next((pid for pid, p in world.crm_payments.items() if p.reference == input.reference), None)
            if found is None:
                found = f"crm-pay-{len(world.crm_payments) + 1}"
                world.crm_payments[found] = input
            return found

        @activity.defn(name="void_collected_payment")
        def void_collected_payment(input: VoidCollectedPayment) -> None:
            world.voided.append(input)

        @activity.defn(name="load_collected_charge")
        def load_collected_charge(input: RefundPayment) -> CollectedCharge:
            statuses = world.statuses.get(input.collection_key) or [CollectionStatus.RESERVED]
            if statuses[-1] not in (CollectionStatus.CHARGED, CollectionStatus.SETTLED):
                raise ApplicationError(f"payment {input.collection_key} is {statuses[-1].value}",
                                       type="NothingToRefund", non_retryable=True)
            number = list(world.reservations).index(input.collection_key) + 1
            return CollectedCharge(transaction_id=world.transaction_id(number), crm_payment_id=f"crm-pay-{number}",
                                   status=statuses[-1])

        @activity.defn(name="gateway_void_or_refund")
        def gateway_void_or_refund(request: VoidOrRefundRequest) -> GatewayCharge:
            world.refunds.setdefault(request.idempotency_id, request)
            return GatewayCharge(transaction_id=request.transaction_id, success=True, method="card",
                                 total=D100, total_refunded=D100, settled=True,
                                 settled_at=datetime(2026, 12, 1, tzinfo=UTC))

        @activity.defn(name="plan_autopay")
        def plan_autopay(input: AutopayCycleInput) -> AutopayPlan:
            return AutopayPlan(cycle_date=input.cycle_date or DAY, choices=world.plan)

        return [reserve_collection, finish_collection, gateway_charge, gateway_transaction_status,
                record_collected_payment, void_collected_payment, load_collected_charge, gateway_void_or_refund,
                plan_autopay]


def collect(key: str = "pay-1", proposal_id: str = "P-1", amount: str = "100.00", method: str = "card",
            payment_method_id: str = "card-1", **fields: Any) -> CollectPayment:
    return CollectPayment(account_id="acme-austin", collection_key=key, proposal_id=proposal_id,
                          payment_method_id=payment_method_id, method=method, amount=Decimal(amount),  # type: ignore[arg-type]
                          ach_poll_interval_seconds=timedelta(hours=12).total_seconds(), **fields)


def choice(proposal_id: str, amount: str, config_id: str, payment_method_id: str) -> AutopayChoice:
    invoice = OpenInvoice(proposal_id=proposal_id, invoice_id=f"inv-{proposal_id}", number=f"N-{proposal_id}",
                          customer_id="cust-1", issued_on=DAY - timedelta(days=10), due_on=DAY + timedelta(days=20),
                          amount_due=Decimal(amount), line_items=["Services"])
    config = AutopayConfig(id=config_id, position=1, name=config_id, payment_method_id=payment_method_id,
                           method="card")
    return AutopayChoice(invoice=invoice, config=config, amount=Decimal(amount))
