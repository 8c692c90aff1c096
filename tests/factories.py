"""Example CRM data for tests."""

from datetime import UTC, datetime
from decimal import Decimal

from models.proposals import CrmContact, Proposal, ProposalLine, SalesCycleChange


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
