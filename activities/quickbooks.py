"""QuickBooks activities: each finds or creates one QBO object for one CRM object (or business key), exactly
once, or changes one object with a fresh SyncToken.

Every write follows one pattern: check the ledger map, look for the object in QBO when it may be there,
write it with a requestid derived from the business key, record the map. Running an activity again changes
nothing.

Whether it may be there depends on who can have made it. A customer, vendor or item may be there already under
its name (made by hand, or by another tool), so it is always looked for. A proposal's estimate, invoice and
payments are ours: one can be in QBO without being in the map when we sent its write before and its answer or
its record was lost, which the audit log tells (its row is written before the request goes out). Otherwise it
is not looked for first, so a new one costs QBO one call, not two (a third of a lifecycle's calls were look-ups
that found nothing). An estimate or invoice made elsewhere with the proposal's number still is found: QBO
refuses the number (6140), and then it is looked for.
"""

import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from quickbooks.objects.account import Account
from quickbooks.objects.base import Ref
from quickbooks.objects.customer import Customer
from quickbooks.objects.detailline import (
    AccountBasedExpenseLine,
    AccountBasedExpenseLineDetail,
    SalesItemLine,
    SalesItemLineDetail,
)
from quickbooks.objects.estimate import Estimate
from quickbooks.objects.invoice import Invoice
from quickbooks.objects.item import Item
from quickbooks.objects.payment import Payment, PaymentLine
from quickbooks.objects.purchase import Purchase
from quickbooks.objects.vendor import Vendor
from sqlalchemy import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.ledger import mapped_qbo_id, record_mapping
from activities.qbo_client import QboConnector, qbo_fault_code
from models.money import cents
from models.proposals import (
    ApplyPaymentInput,
    CrmContact,
    EnsureCustomerInput,
    EnsureEstimateInput,
    EstimateStatusInput,
    InvoiceFromEstimateInput,
    Proposal,
    RecordPaymentInput,
    UpdateEstimateInput,
    VoidPaymentInput,
)
from models.royalty import EnsureVendorInput, RoyaltyCheckInput

_REQUEST_ID_NAMESPACE = uuid.UUID("6f1d7c1e-3b0a-4f5e-9a43-2d2f0c8b7a10")
DEFAULT_ITEM_NAME = "Services"
INCOME_ACCOUNT_NAME = "Services"
STALE_RETRIES = 3
DUPLICATE_NAME = 6240
DUPLICATE_DOC_NUMBER = 6140


def request_id(realm_id: str, *business_key: str) -> str:
    """A QBO requestid (36 chars, within the 50 allowed and the 36 of batch) fixed by the business key."""
    return str(uuid.uuid5(_REQUEST_ID_NAMESPACE, "|".join((realm_id, *business_key))))


def qbo_string(value: str) -> str:
    """A value quoted for QBO's query language: backslash-escaped quotes."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ref(value: str, kind: str) -> Ref:
    r = Ref()
    r.value, r.type = value, kind
    return r


def _line_keys(lines: list[Any]) -> list[tuple[str, str, str, str, str]]:
    """Sales lines compared by what matters: item, description, quantity, price, amount (the subtotal line
    QBO adds is left out)."""
    keys = []
    for line in lines or []:
        detail = getattr(line, "SalesItemLineDetail", None)
        if detail is None:
            continue
        item = detail.ItemRef.value if detail.ItemRef else ""
        keys.append((str(item), str(line.Description or ""), str(Decimal(str(detail.Qty or 0)).normalize()),
                     str(Decimal(str(detail.UnitPrice or 0)).normalize()), str(cents(Decimal(str(line.Amount))))))
    return keys


def _is_voided(payment: Payment) -> bool:
    """QBO keeps a voided payment with a zero amount and "Voided" leading its private note."""
    return Decimal(str(payment.TotalAmt or 0)) == 0 and str(payment.PrivateNote or "").startswith("Voided")


def item_name(product: str | None) -> str:
    """A QBO item name from a CRM product: at most 100 characters, no colon, tab or newline."""
    name = " ".join((product or DEFAULT_ITEM_NAME).replace(":", " ").split())
    return name[:100] or DEFAULT_ITEM_NAME


class QuickBooksActivities:
    def __init__(self, connector: QboConnector, engine: Engine) -> None:
        self.qbo = connector
        self.engine = engine

    # -- the shared pattern --------------------------------------------------------------------------
    def _ensure(self, account_id: str, realm_id: str, crm_type: str, crm_id: str, entity: str,
                find: Callable[[], str | None], create: Callable[[str], str], ours_alone: bool = False) -> str:
        """The mapped object, or the one `find` finds, or a new one. `ours_alone`: nobody else makes this object,
        so `find` runs only when the audit log shows its write was sent before."""
        mapped = mapped_qbo_id(self.engine, account_id, realm_id, crm_type, crm_id, entity)
        if mapped is not None:
            return mapped
        rid = request_id(realm_id, account_id, crm_type, crm_id, entity)
        found = find() if not ours_alone or self.qbo.sent_before(realm_id, rid) else None
        return record_mapping(self.engine, account_id, realm_id, crm_type, crm_id, entity, found or create(rid))

    def _query(self, realm_id: str, cls: Any, statement: str) -> list[Any]:
        return list(self.qbo.call(realm_id, lambda qb: cls.query(statement, qb=qb)))

    def _find(self, realm_id: str, cls: Any, statement: str) -> Any | None:
        found = self._query(realm_id, cls, statement)
        return found[0] if found else None

    def _find_id(self, realm_id: str, cls: Any, statement: str) -> str | None:
        found = self._find(realm_id, cls, statement)
        return str(found.Id) if found is not None else None

    def _named(self, realm_id: str, cls: Any, field: str, name: str) -> str | None:
        """A name-list object by name, inactive ones included (QBO compares names case-insensitively)."""
        return self._find_id(realm_id, cls, f"SELECT * FROM {cls.qbo_object_name} WHERE {field} = "
                                            f"{qbo_string(name)} AND Active IN (true, false)")

    def _get(self, realm_id: str, cls: Any, object_id: str) -> Any:
        return self.qbo.call(realm_id, lambda qb: cls.get(object_id, qb=qb))

    def _saved_or_taken(self, realm_id: str, obj: Any, rid: str, taken: int, find: Callable[[], str | None]) -> str:
        """Save `obj`; when QBO refuses it because its name or number is taken (the fault code `taken`), the
        object `find` finds holding it, or the refusal when `find` finds none."""
        try:
            return str(self.qbo.audited_save(realm_id, obj, rid).Id)
        except ApplicationError as error:
            found = find() if qbo_fault_code(error) == taken else None
            if found is None:
                raise
            return found

    # -- customers and vendors -----------------------------------------------------------------------
    def _ensure_party(self, cls: Any, account_id: str, realm_id: str, crm_type: str, key: str, name: str,
                      build: Callable[[str], Any]) -> str:
        """A customer or vendor by DisplayName, never duplicated. DisplayName is unique across customers,
        vendors and employees: when another kind holds the name, ours gets the key after it."""
        names = (name, f"{name} ({key})")

        def find() -> str | None:
            """One query for both names; the plain name wins when both exist."""
            statement = (f"SELECT * FROM {cls.qbo_object_name} WHERE DisplayName IN "
                         f"({', '.join(qbo_string(n) for n in names)}) AND Active IN (true, false)")
            by_name = {str(party.DisplayName).casefold(): str(party.Id)
                       for party in self._query(realm_id, cls, statement)}
            return next((by_name[n.casefold()] for n in names if n.casefold() in by_name), None)

        def create(rid: str) -> str:
            try:
                return str(self.qbo.audited_save(realm_id, build(names[0]), rid).Id)
            except ApplicationError as error:
                if qbo_fault_code(error) != DUPLICATE_NAME:
                    raise
            # Duplicate name: one of ours created meanwhile, or another kind of party holding the name.
            alternate_rid = request_id(realm_id, account_id, crm_type, key, "alternate-name")
            return find() or str(self.qbo.audited_save(realm_id, build(names[1]), alternate_rid).Id)

        return self._ensure(account_id, realm_id, crm_type, key, cls.qbo_object_name, find, create)

    @activity.defn
    def ensure_customer(self, input: EnsureCustomerInput) -> str:
        """The QBO customer for a CRM contact. An existing customer of the same name is reused."""
        contact = input.contact
        return self._ensure_party(Customer, input.account_id, input.realm_id, "contact", contact.id,
                                  contact.display_name, lambda name: self._customer_body(contact, name))

    @staticmethod
    def _customer_body(contact: CrmContact, name: str) -> Customer:
        customer = Customer()
        customer.DisplayName = name
        customer.GivenName = contact.first_name or None
        customer.FamilyName = contact.last_name or None
        customer.CompanyName = contact.company_name
        if contact.email:
            customer.PrimaryEmailAddr = {"Address": contact.email}
        if contact.phone:
            customer.PrimaryPhone = {"FreeFormNumber": contact.phone}
        return customer

    @activity.defn
    def ensure_vendor(self, input: EnsureVendorInput) -> str:
        """The QBO vendor a franchisee pays (the franchisor, for royalty), found by name or created once."""
        def build(display_name: str) -> Vendor:
            vendor = Vendor()
            vendor.DisplayName = display_name
            return vendor

        return self._ensure_party(Vendor, input.account_id, input.realm_id, "vendor", input.name.casefold(),
                                  input.name, build)

    # -- items ---------------------------------------------------------------------------------------
    def _item_ids(self, account_id: str, realm_id: str, proposal: Proposal) -> dict[str, str]:
        """Item id per item name used by the proposal, creating the missing ones as Service items."""
        names = sorted({item_name(line.product) for line in proposal.lines})
        return {name: self._ensure_item(account_id, realm_id, name) for name in names}

    def _ensure_item(self, account_id: str, realm_id: str, name: str) -> str:
        def create(rid: str) -> str:
            item = Item()
            item.Name, item.Type = name, "Service"
            item.IncomeAccountRef = ref(self._account_id(realm_id, INCOME_ACCOUNT_NAME), "Account")
            return self._saved_or_taken(realm_id, item, rid, DUPLICATE_NAME, named)

        def named() -> str | None:
            return self._named(realm_id, Item, "Name", name)

        return self._ensure(account_id, realm_id, "product", name.casefold(), "Item", named, create)

    def _account_id(self, realm_id: str, name: str) -> str:
        return self._account_ids(realm_id, [name])[name]

    def _account_ids(self, realm_id: str, names: list[str]) -> dict[str, str]:
        """Accounts by name, in one query; a missing one is a setup fault only the franchisee can fix."""
        statement = (f"SELECT * FROM Account WHERE Name IN ({', '.join(qbo_string(n) for n in set(names))}) "
                     "AND Active IN (true, false)")
        found = {str(a.Name).casefold(): str(a.Id) for a in self._query(realm_id, Account, statement)}
        missing = [n for n in names if n.casefold() not in found]
        if missing:
            raise ApplicationError(f"QBO company {realm_id} has no account named {', '.join(map(repr, missing))}",
                                   type="QboSetupError", non_retryable=True)
        return {n: found[n.casefold()] for n in names}

    # -- estimates and invoices ----------------------------------------------------------------------
    def _sales_lines(self, proposal: Proposal, item_ids: dict[str, str]) -> list[SalesItemLine]:
        rows = []
        for line in proposal.lines:
            row = SalesItemLine()
            row.Amount = line.amount
            row.Description = line.description
            row.SalesItemLineDetail = SalesItemLineDetail()
            row.SalesItemLineDetail.Qty = line.quantity
            row.SalesItemLineDetail.UnitPrice = line.unit_price
            row.SalesItemLineDetail.ItemRef = ref(item_ids[item_name(line.product)], "Item")
            rows.append(row)
        return rows

    def _by_number(self, realm_id: str, cls: Any, number: str, customer_id: str) -> str | None:
        return self._find_id(realm_id, cls, f"SELECT * FROM {cls.qbo_object_name} WHERE DocNumber = "
                                            f"{qbo_string(number)} AND CustomerRef = {qbo_string(customer_id)}")

    def _ensure_sales_document(self, cls: Any, account_id: str, realm_id: str, customer_id: str,
                               proposal: Proposal, estimate_id: str | None = None) -> str:
        """The estimate or invoice for a proposal: its number and lines, its items created when missing, an
        invoice linked to its estimate. QBO keeps their numbers unique: when the number is taken by one made
        elsewhere (by hand, by another tool) for this customer, that one is the proposal's."""
        def by_number() -> str | None:
            return self._by_number(realm_id, cls, proposal.number, customer_id)

        def create(rid: str) -> str:
            document = cls()
            document.CustomerRef = ref(customer_id, "Customer")
            document.DocNumber = proposal.number
            document.PrivateNote = f"CRM proposal {proposal.id}"
            document.Line = self._sales_lines(proposal, self._item_ids(account_id, realm_id, proposal))
            if estimate_id is not None:
                document.LinkedTxn = [{"TxnId": estimate_id, "TxnType": "Estimate"}]
            # Taken by another customer's document, the number stays the final fault it is.
            return self._saved_or_taken(realm_id, document, rid, DUPLICATE_DOC_NUMBER, by_number)

        return self._ensure(account_id, realm_id, "proposal", proposal.id, cls.qbo_object_name, by_number, create,
                            ours_alone=True)

    @activity.defn
    def ensure_estimate(self, input: EnsureEstimateInput) -> str:
        """The QBO estimate for a CRM proposal, numbered with the proposal number."""
        return self._ensure_sales_document(Estimate, input.account_id, input.realm_id, input.customer_id,
                                           input.proposal)

    @activity.defn
    def create_invoice_from_estimate(self, input: InvoiceFromEstimateInput) -> str:
        """The invoice for a completed job, linked to its estimate (which QBO then closes)."""
        return self._ensure_sales_document(Invoice, input.account_id, input.realm_id, input.customer_id,
                                           input.proposal, estimate_id=input.estimate_id)

    # -- payments ------------------------------------------------------------------------------------
    @activity.defn
    def record_unapplied_payment(self, input: RecordPaymentInput) -> str:
        """A CRM payment as a QBO payment with no lines: money received, not yet applied to an invoice."""
        crm = input.payment
        reference = crm.id[:21]

        def create(rid: str) -> str:
            payment = Payment()
            payment.CustomerRef = ref(input.customer_id, "Customer")
            payment.TotalAmt = crm.total
            payment.TxnDate = crm.received_on.isoformat()
            payment.PaymentRefNum = reference
            payment.PrivateNote = f"CRM payment {crm.id} ({crm.method}); amount {crm.amount}, tip {crm.tip}"
            return str(self.qbo.audited_save(input.realm_id, payment, rid).Id)

        statement = (f"SELECT * FROM Payment WHERE PaymentRefNum = {qbo_string(reference)} "
                     f"AND CustomerRef = {qbo_string(input.customer_id)}")
        return self._ensure(input.account_id, input.realm_id, "payment", crm.id, "Payment",
                            lambda: self._find_id(input.realm_id, Payment, statement), create, ours_alone=True)

    def _modify(self, realm_id: str, cls: Any, object_id: str, key: str, change: Callable[[Any], bool]) -> Any:
        """Change one QBO object: read it fresh, let `change` edit it (False: nothing to do), resend it whole.
        The requestid names the SyncToken read, so a retried write is a no-op and a stale one reads again."""
        for _ in range(STALE_RETRIES):
            current = self._get(realm_id, cls, object_id)
            if not change(current):
                return current
            rid = request_id(realm_id, key, cls.qbo_object_name, object_id, str(current.SyncToken))
            try:
                return self.qbo.audited_save(realm_id, current, rid)
            except ApplicationError as error:
                if error.type != "QboError5010":
                    raise
        raise ApplicationError(f"{cls.qbo_object_name} {object_id} kept changing under us", type="QboError5010")

    @activity.defn
    def apply_payment(self, input: ApplyPaymentInput) -> Decimal:
        """Apply what is left of a payment to an invoice, up to the invoice's balance; returns the amount the
        payment now applies to the invoice. QBO's payment lines are all-or-nothing: the payment is resent
        whole with the new line."""
        applied = Decimal("0.00")

        def add_line(payment: Payment) -> bool:
            nonlocal applied
            lines = list(payment.Line or [])
            already = [line for line in lines if any(
                link.TxnId == input.invoice_id and link.TxnType == "Invoice" for link in line.LinkedTxn or [])]
            if already:
                applied = cents(sum((Decimal(str(line.Amount)) for line in already), start=Decimal(0)))
                return False
            invoice = self._get(input.realm_id, Invoice, input.invoice_id)
            applied = cents(min(Decimal(str(payment.UnappliedAmt)), Decimal(str(invoice.Balance))))
            if applied <= 0:
                applied = Decimal("0.00")
                return False
            line = PaymentLine()
            line.Amount = applied
            line.LinkedTxn = [{"TxnId": input.invoice_id, "TxnType": "Invoice"}]
            payment.Line = [*lines, line]
            return True

        self._modify(input.realm_id, Payment, input.payment_id, f"apply:{input.invoice_id}", add_line)
        return applied

    @activity.defn
    def update_estimate(self, input: UpdateEstimateInput) -> str:
        """Rewrite an open estimate with the proposal's current number and lines (items created when missing).
        Returns "updated", "unchanged", or "closed" when an invoice already took it over."""
        outcome = "unchanged"

        def rewrite(estimate: Estimate) -> bool:
            nonlocal outcome
            if any(link.TxnType == "Invoice" for link in estimate.LinkedTxn or []) or estimate.TxnStatus == "Closed":
                outcome = "closed"
                return False
            item_ids = self._item_ids(input.account_id, input.realm_id, input.proposal)
            wanted = self._sales_lines(input.proposal, item_ids)
            if estimate.DocNumber == input.proposal.number and _line_keys(estimate.Line) == _line_keys(wanted):
                return False
            estimate.DocNumber, estimate.Line = input.proposal.number, wanted
            outcome = "updated"
            return True

        self._modify(input.realm_id, Estimate, input.estimate_id, "estimate-lines", rewrite)
        return outcome

    @activity.defn
    def set_estimate_status(self, input: EstimateStatusInput) -> str:
        """Mark an estimate Rejected (proposal lost) or Pending again (reopened); a closed one stays closed.
        Returns the status the estimate has now."""
        def mark(estimate: Estimate) -> bool:
            if estimate.TxnStatus in (input.status, "Closed", "Converted"):
                return False
            estimate.TxnStatus = input.status
            return True

        return str(self._modify(input.realm_id, Estimate, input.estimate_id, "estimate-status", mark).TxnStatus)

    @activity.defn
    def void_payment(self, input: VoidPaymentInput) -> None:
        """Void a payment refunded or voided in the CRM: its amount drops to zero and any invoice it paid is
        open again. Voiding again is a no-op."""
        for _ in range(STALE_RETRIES):
            payment = self._get(input.realm_id, Payment, input.payment_id)
            if _is_voided(payment):
                return
            try:
                self.qbo.audited_void(input.realm_id, payment)
                return
            except ApplicationError as error:
                if error.type != "QboError5010":
                    raise
        raise ApplicationError(f"Payment {input.payment_id} kept changing under us", type="QboError5010")

    # -- royalty checks ------------------------------------------------------------------------------
    @activity.defn
    def write_royalty_check(self, input: RoyaltyCheckInput) -> str:
        """The royalty check in the franchisee's QBO file: a Purchase paid by check from the bank account to
        the franchisor's vendor (see ensure_vendor), one line per fee."""
        def find() -> str | None:
            return self._find_id(input.realm_id, Purchase,
                                 f"SELECT * FROM Purchase WHERE DocNumber = {qbo_string(input.doc_number)}"
                                 ) if input.doc_number else None

        def create(rid: str) -> str:
            accounts = self._account_ids(input.realm_id,
                                         [input.bank_account, *(line.expense_account for line in input.lines)])
            check = Purchase()
            check.PaymentType = "Check"
            check.AccountRef = ref(accounts[input.bank_account], "Account")
            vendor_id = input.vendor_id or self.ensure_vendor(
                EnsureVendorInput(account_id=input.account_id, realm_id=input.realm_id, name=input.vendor_name))
            check.EntityRef = ref(vendor_id, "Vendor")
            check.DocNumber = input.doc_number
            check.PrivateNote = input.memo
            for line in input.lines:
                row = AccountBasedExpenseLine()
                row.Amount = line.amount
                row.Description = line.description
                row.AccountBasedExpenseLineDetail = AccountBasedExpenseLineDetail()
                row.AccountBasedExpenseLineDetail.AccountRef = ref(accounts[line.expense_account], "Account")
                check.Line.append(row)
            return str(self.qbo.audited_save(input.realm_id, check, rid).Id)

        return self._ensure(input.account_id, input.realm_id, "royalty-run", input.run_id, "Purchase", find, create)

    def activities(self) -> list[Callable[..., Any]]:
        """Every activity of this class, for the worker."""
        return [self.ensure_customer, self.ensure_estimate, self.update_estimate, self.set_estimate_status,
                self.create_invoice_from_estimate, self.record_unapplied_payment, self.apply_payment,
                self.void_payment, self.ensure_vendor, self.write_royalty_check]
