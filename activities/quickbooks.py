"""QuickBooks activities: each finds or creates one QBO object for one CRM object, exactly once.

The pattern is the same for every write: check the ledger map, look for the object in QBO, write it with a
requestid derived from the business key, record the map. Running an activity again changes nothing.
"""

import uuid
from collections.abc import Callable

from quickbooks.objects.base import Ref
from quickbooks.objects.customer import Customer
from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail
from quickbooks.objects.estimate import Estimate
from quickbooks.objects.item import Item
from sqlalchemy import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.ledger import mapped_qbo_id, record_mapping
from activities.qbo_client import QboConnector
from models.proposals import CrmContact, EnsureCustomerInput, EnsureEstimateInput, Proposal

_REQUEST_ID_NAMESPACE = uuid.UUID("6f1d7c1e-3b0a-4f5e-9a43-2d2f0c8b7a10")
DEFAULT_ITEM_NAME = "Services"


def request_id(realm_id: str, *business_key: str) -> str:
    """A QBO requestid (36 chars, within the 50 allowed and the 36 of batch) fixed by the business key."""
    return str(uuid.uuid5(_REQUEST_ID_NAMESPACE, "|".join((realm_id, *business_key))))


def qbo_string(value: str) -> str:
    """A value quoted for QBO's query language: backslash-escaped quotes."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class QuickBooksActivities:
    def __init__(self, connector: QboConnector, engine: Engine) -> None:
        self.qbo = connector
        self.engine = engine

    def _ensure(self, account_id: str, realm_id: str, crm_type: str, crm_id: str, entity: str,
                find: Callable[[], str | None], create: Callable[[str], str]) -> str:
        mapped = mapped_qbo_id(self.engine, account_id, realm_id, crm_type, crm_id, entity)
        if mapped is not None:
            return mapped
        qbo_id = find() or create(request_id(realm_id, account_id, crm_type, crm_id, entity))
        return record_mapping(self.engine, account_id, realm_id, crm_type, crm_id, entity, qbo_id)

    @activity.defn
    def ensure_customer(self, input: EnsureCustomerInput) -> str:
        """The QBO customer for a CRM contact. An existing customer of the same name (QBO compares names
        case-insensitively, inactive ones included) is reused, never duplicated. When a vendor or employee
        holds the name, the customer gets the name with the CRM contact id after it."""
        contact = input.contact
        names = (contact.display_name, f"{contact.display_name} ({contact.id})")

        def find() -> str | None:
            for name in names:
                statement = (f"SELECT * FROM Customer WHERE DisplayName = {qbo_string(name)} "
                             "AND Active IN (true, false)")
                found = self.qbo.call(input.realm_id, lambda qb, s=statement: Customer.query(s, qb=qb))
                if found:
                    return str(found[0].Id)
            return None

        def create(rid: str) -> str:
            try:
                return self._create_customer(input.realm_id, contact, names[0], rid)
            except ApplicationError as error:
                if error.type != "QboError6240":
                    raise
            # Duplicate name: a customer created meanwhile, or a vendor or employee holding the name.
            alternate_rid = request_id(input.realm_id, input.account_id, "contact", contact.id, "alternate-name")
            return find() or self._create_customer(input.realm_id, contact, names[1], alternate_rid)

        return self._ensure(input.account_id, input.realm_id, "contact", contact.id, "Customer", find, create)

    def _create_customer(self, realm_id: str, contact: CrmContact, name: str, rid: str) -> str:
        customer = Customer()
        customer.DisplayName = name
        customer.GivenName = contact.first_name or None
        customer.FamilyName = contact.last_name or None
        customer.CompanyName = contact.company_name
        if contact.email:
            customer.PrimaryEmailAddr = {"Address": contact.email}
        if contact.phone:
            customer.PrimaryPhone = {"FreeFormNumber": contact.phone}
        return str(self.qbo.audited_save(realm_id, customer, rid).Id)

    @activity.defn
    def ensure_estimate(self, input: EnsureEstimateInput) -> str:
        """The QBO estimate for a CRM proposal, numbered with the proposal number."""
        proposal = input.proposal

        def find() -> str | None:
            statement = (f"SELECT * FROM Estimate WHERE DocNumber = {qbo_string(proposal.number)} "
                         f"AND CustomerRef = {qbo_string(input.customer_id)}")
            found = self.qbo.call(input.realm_id, lambda qb: Estimate.query(statement, qb=qb))
            return str(found[0].Id) if found else None

        def create(rid: str) -> str:
            estimate = self._estimate_body(input.realm_id, input.customer_id, proposal)
            return str(self.qbo.audited_save(input.realm_id, estimate, rid).Id)

        return self._ensure(input.account_id, input.realm_id, "proposal", proposal.id, "Estimate", find, create)

    def _estimate_body(self, realm_id: str, customer_id: str, proposal: Proposal) -> Estimate:
        item_id = self._default_item_id(realm_id)
        estimate = Estimate()
        estimate.CustomerRef = Ref()
        estimate.CustomerRef.value = customer_id
        estimate.CustomerRef.type = "Customer"
        estimate.DocNumber = proposal.number
        estimate.PrivateNote = f"CRM proposal {proposal.id}"
        for line in proposal.lines:
            row = SalesItemLine()
            row.Amount = line.amount
            row.Description = line.description
            row.SalesItemLineDetail = SalesItemLineDetail()
            row.SalesItemLineDetail.Qty = line.quantity
            row.SalesItemLineDetail.UnitPrice = line.unit_price
            row.SalesItemLineDetail.ItemRef = Ref()
            row.SalesItemLineDetail.ItemRef.value = item_id
            row.SalesItemLineDetail.ItemRef.type = "Item"
            estimate.Line.append(row)
        return estimate

    def _default_item_id(self, realm_id: str) -> str:
        statement = f"SELECT * FROM Item WHERE Name = {qbo_string(DEFAULT_ITEM_NAME)}"
        found = self.qbo.call(realm_id, lambda qb: Item.query(statement, qb=qb))
        if not found:
            raise ApplicationError(f"QBO company {realm_id} has no '{DEFAULT_ITEM_NAME}' item",
                                   type="QboSetupError", non_retryable=True)
        return str(found[0].Id)
