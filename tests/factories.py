"""Example CRM data for tests."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from models.proposals import (
    CrmContact,
    CrmPayment,
    PaymentAdded,
    PaymentVoided,
    Proposal,
    ProposalChanged,
    ProposalEvent,
    ProposalLine,
    ProposalSynced,
    SalesCycleChange,
    Stage,
)

T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
# The proposal workflow's signal for each kind of event.
SIGNALS = {ProposalEvent: "event", ProposalChanged: "proposal_changed", PaymentAdded: "payment_added",
           PaymentVoided: "payment_voided", ProposalSynced: "synced"}


def contact(contact_id: str = "C-1", first: str = "Dana", last: str = "Whitfield", company: str | None = None
            ) -> CrmContact:
    return CrmContact(id=contact_id, first_name=first, last_name=last, company_name=company,
                      email=f"{first.lower()}@example.com", phone="5125550142")


def proposal(proposal_id: str = "P-1", number: str = "1001") -> Proposal:
    return Proposal(id=proposal_id, number=number, lines=[
        ProposalLine(description="Gutter cleaning", quantity=Decimal(1), unit_price=Decimal("289.00")),
        ProposalLine(description="Downspout flush", quantity=Decimal(3), unit_price=Decimal("16.665")),
    ])


def sales_cycle_change(event_id: str = "evt-1", account_id: str = "acme-austin", step: str = "Proposal Sent",
                       contact_id: str = "C-1", proposal_id: str = "P-1", number: str = "1001") -> SalesCycleChange:
    return SalesCycleChange(event_id=event_id, account_id=account_id, sales_cycle_step=step,
                            occurred_at=datetime(2026, 11, 20, 15, 30, tzinfo=UTC),
                            contact=contact(contact_id), proposal=proposal(proposal_id, number))


# -- events of proposal P-1, `minutes` after T0 ---------------------------------------------------------
def stage(event_id: str, to: Stage, minutes: int, snapshot: Proposal | None = None) -> ProposalEvent:
    """A step change to `to`, carrying the proposal as the CRM had it then."""
    change = sales_cycle_change(event_id=event_id).model_copy(update={
        "occurred_at": T0 + timedelta(minutes=minutes), "proposal": snapshot or proposal()})
    return ProposalEvent(change=change, stage=to)


def edited(event_id: str, minutes: int, unit_price: str) -> ProposalChanged:
    return ProposalChanged(event_id=event_id, account_id="acme-austin", occurred_at=T0 + timedelta(minutes=minutes),
                           contact=contact(), proposal=priced(unit_price))


def priced(unit_price: str) -> Proposal:
    """Proposal P-1 edited down to one line at this price."""
    return proposal().model_copy(update={"lines": [
        ProposalLine(description="Gutter cleaning", quantity=Decimal(1), unit_price=Decimal(unit_price))]})


def with_bad_item() -> Proposal:
    """Proposal P-1 selling an item QBO refuses (see tests.stubs.BAD_ITEM)."""
    from tests.stubs import BAD_ITEM

    return proposal().model_copy(update={"lines": [
        ProposalLine(product=BAD_ITEM, description="Gutter guards", quantity=Decimal(1), unit_price=Decimal(90))]})


def crm_payment(payment_id: str, amount: str, tip: str = "0") -> CrmPayment:
    return CrmPayment(id=payment_id, amount=Decimal(amount), tip=Decimal(tip), received_on=date(2026, 11, 20))


def paid(event_id: str, payment_id: str, amount: str, minutes: int, tip: str = "0") -> PaymentAdded:
    return PaymentAdded(event_id=event_id, account_id="acme-austin", occurred_at=T0 + timedelta(minutes=minutes),
                        contact=contact(), proposal_id="P-1", proposal_number="1001",
                        payment=crm_payment(payment_id, amount, tip))


def voided(event_id: str, payment_id: str, amount: str, minutes: int, kind: str = "refund") -> PaymentVoided:
    return PaymentVoided(event_id=event_id, account_id="acme-austin", occurred_at=T0 + timedelta(minutes=minutes),
                         contact=contact(), proposal_id="P-1", proposal_number="1001",
                         payment=crm_payment(payment_id, amount), kind=kind)  # type: ignore[arg-type]
