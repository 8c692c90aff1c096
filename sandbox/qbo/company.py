"""One QBO company (realm): its objects, the rules QBO applies when they are written, the balances and links
it derives, and its request ids."""

import copy
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sandbox.qbo import faults
from sandbox.qbo.schema import COMPUTED, ENTITIES, FIELDS, NAME_LISTS

# DisplayName is unique across these, case-insensitively.
NAMED_PARTIES = ("Customer", "Vendor", "Employee")
PAYMENT_TYPES = ("Cash", "Check", "CreditCard")
ZERO = Decimal(0)
HALF_CENT = Decimal("0.005")


def canonical_entity(name: str) -> str:
    for entity in ENTITIES:
        if entity.lower() == name.lower():
            return entity
    raise faults.QboFault("4000", "Error parsing query", f"QueryParserError: Invalid entity {name}")


def is_entity(name: str) -> bool:
    return any(entity.lower() == name.lower() for entity in ENTITIES)


def now_iso() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


def _decimal(value: Any, element: str) -> Decimal:
    if value in (None, ""):
        return ZERO
    try:
        return Decimal(str(value))
    except ArithmeticError as exc:
        raise faults.unsupported_property(element, "has an invalid value") from exc


def _ref_value(ref: Any) -> str | None:
    if isinstance(ref, dict) and ref.get("value") not in (None, ""):
        return str(ref["value"])
    return None


def _links(obj: dict[str, Any], txn_type: str) -> list[str]:
    """Ids of the transactions of one type a line or object links to."""
    return [str(link["TxnId"]) for link in obj.get("LinkedTxn") or [] if link.get("TxnType") == txn_type]


class Company:
    def __init__(self, realm_id: str, name: str, estimate_closed_status: str = "Closed") -> None:
        self.realm_id = realm_id
        self.name = name
        # Newer QBO docs say an estimate turned into an invoice becomes "Converted", older ones "Closed".
        self.estimate_closed_status = estimate_closed_status
        self.lock = threading.RLock()
        self.objects: dict[str, dict[str, dict[str, Any]]] = {entity: {} for entity in ENTITIES}
        self.deleted: dict[str, dict[str, str]] = {entity: {} for entity in ENTITIES}  # id -> time, for CDC
        self.responses_by_request_id: dict[str, tuple[int, dict[str, Any]]] = {}
        self._next_id = 1
        self._next_doc_number = 1001
        self._seed()

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy({
                "realm_id": self.realm_id, "name": self.name, "objects": self.objects, "deleted": self.deleted,
                "estimate_closed_status": self.estimate_closed_status,
                "responses_by_request_id": self.responses_by_request_id,
                "next_id": self._next_id, "next_doc_number": self._next_doc_number,
            })

    @classmethod
    def restore(cls, data: dict[str, Any]) -> "Company":
        company = cls.__new__(cls)
        company.realm_id, company.name = data["realm_id"], data["name"]
        company.estimate_closed_status = data["estimate_closed_status"]
        company.lock = threading.RLock()
        company.objects = {entity: data["objects"].get(entity, {}) for entity in ENTITIES}
        company.deleted = {entity: data["deleted"].get(entity, {}) for entity in ENTITIES}
        company.responses_by_request_id = {k: (v[0], v[1]) for k, v in data["responses_by_request_id"].items()}
        company._next_id, company._next_doc_number = data["next_id"], data["next_doc_number"]
        return company

    def _seed(self) -> None:
        """What every new QBO company has: income, expense and bank accounts and the "Services" item."""
        income = self.create("Account", {"Name": "Services", "AccountType": "Income"})
        self.create("Account", {"Name": "Checking", "AccountType": "Bank"})
        self.create("Account", {"Name": "Royalty Expense", "AccountType": "Expense"})
        self.create("Account", {"Name": "Advertising & Marketing", "AccountType": "Expense"})
        self.create("Item", {"Name": "Services", "Type": "Service",
                             "IncomeAccountRef": {"value": income["Id"], "name": "Services"}})

    # -- reading -------------------------------------------------------------------------------------
    def all(self, entity: str) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(o) for o in self.objects[entity].values()]

    def read(self, entity: str, object_id: str) -> dict[str, Any]:
        with self.lock:
            obj = self.objects[entity].get(str(object_id))
            if obj is None:
                raise faults.not_found(entity, object_id)
            return copy.deepcopy(obj)

    def changed_since(self, entity: str, since: str) -> list[dict[str, Any]]:
        """For CDC: objects updated after `since` (ISO time), and tombstones of the deleted ones."""
        cutoff = datetime.fromisoformat(since)
        with self.lock:
            changed = [copy.deepcopy(o) for o in self.objects[entity].values()
                       if datetime.fromisoformat(o["MetaData"]["LastUpdatedTime"]) > cutoff]
            gone = [{"Id": i, "status": "Deleted", "MetaData": {"LastUpdatedTime": t}}
                    for i, t in self.deleted[entity].items() if datetime.fromisoformat(t) > cutoff]
        return changed + gone

    # -- writing -------------------------------------------------------------------------------------
    def _accepted(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        """The writable part of a body: unknown properties are fault 2010, computed ones are ignored."""
        for key in body:
            if key not in FIELDS[entity]:
                raise faults.unsupported_property(key, "specified is unsupported or invalid")
        computed = COMPUTED | ({"Id", "SyncToken"}) | ({"TotalAmt"} if entity != "Payment" else set())
        return {k: copy.deepcopy(v) for k, v in body.items() if k not in computed}

    def create(self, entity: str, body: dict[str, Any], allow_duplicate_doc_number: bool = False) -> dict[str, Any]:
        with self.lock:
            obj = self._accepted(entity, body)
            self._prepare(entity, obj, existing_id=None, allow_duplicate_doc_number=allow_duplicate_doc_number)
            obj["Id"] = str(self._next_id)
            self._next_id += 1
            obj["SyncToken"] = "0"
            now = now_iso()
            obj["MetaData"] = {"CreateTime": now, "LastUpdatedTime": now}
            obj["domain"], obj["sparse"] = "QBO", False
            self.objects[entity][obj["Id"]] = obj
            self._derive()
            return copy.deepcopy(obj)

    def _current(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        object_id = str(body.get("Id", ""))
        current = self.objects[entity].get(object_id)
        if current is None:
            raise faults.not_found(entity, object_id)
        if str(body.get("SyncToken")) != current["SyncToken"]:
            raise faults.stale_object()
        return current

    def _store(self, entity: str, current: dict[str, Any], obj: dict[str, Any]) -> dict[str, Any]:
        obj["Id"] = current["Id"]
        obj["SyncToken"] = str(int(current["SyncToken"]) + 1)
        obj["MetaData"] = {"CreateTime": current["MetaData"]["CreateTime"], "LastUpdatedTime": now_iso()}
        obj["domain"], obj["sparse"] = "QBO", False
        self.objects[entity][obj["Id"]] = obj
        self._derive()
        return copy.deepcopy(obj)

    def update(self, entity: str, body: dict[str, Any], allow_duplicate_doc_number: bool = False) -> dict[str, Any]:
        """A full update nulls every writable field left out; a sparse one changes only the fields sent."""
        with self.lock:
            current = self._current(entity, body)
            changes = self._accepted(entity, body)
            if body.get("sparse") in (True, "true"):
                obj = {k: copy.deepcopy(v) for k, v in current.items() if k not in COMPUTED} | changes
                if entity != "Payment":
                    obj.pop("TotalAmt", None)
            else:
                obj = changes
            self._prepare(entity, obj, existing_id=current["Id"],
                          allow_duplicate_doc_number=allow_duplicate_doc_number)
            return self._store(entity, current, obj)

    def delete(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if entity in NAME_LISTS:
                raise faults.business_validation(f"A {entity} cannot be deleted: make it inactive instead")
            current = self._current(entity, body)
            if entity in ("Invoice", "CreditMemo") and self._applications(entity, current["Id"]):
                raise faults.business_validation(
                    f"This {entity} has payments applied to it. Remove them before deleting it.")
            del self.objects[entity][current["Id"]]
            self.deleted[entity][current["Id"]] = now_iso()
            self._derive()
            return {"Id": current["Id"], "status": "Deleted", "domain": "QBO"}

    def void(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        """Voiding keeps the document with zero amounts; payments applied to a voided invoice become unapplied."""
        with self.lock:
            if entity not in ("Invoice", "Payment"):
                raise faults.business_validation(f"Operation void is not supported for {entity}")
            current = self._current(entity, body)
            obj = {k: copy.deepcopy(v) for k, v in current.items() if k not in COMPUTED}
            obj["PrivateNote"] = "Voided"
            obj["TotalAmt"] = ZERO
            if entity == "Payment":
                obj["Line"] = []
            else:
                for line in obj["Line"]:
                    line["Amount"] = ZERO
                for payment in self.objects["Payment"].values():
                    kept = [line for line in payment.get("Line") or [] if current["Id"] not in _links(line, "Invoice")]
                    if len(kept) != len(payment.get("Line") or []):
                        payment["Line"] = kept
                        payment["SyncToken"] = str(int(payment["SyncToken"]) + 1)
                        payment["MetaData"]["LastUpdatedTime"] = now_iso()
            return self._store(entity, current, obj)

    # -- QBO's rules, per entity ---------------------------------------------------------------------
    def _prepare(self, entity: str, obj: dict[str, Any], existing_id: str | None,
                 allow_duplicate_doc_number: bool) -> None:
        rule: Callable[..., None] | None = getattr(self, f"_prepare_{entity.lower()}", None)
        if rule is not None:
            rule(obj, existing_id)
        if entity in ("Estimate", "Invoice", "CreditMemo", "Purchase") and obj.get("DocNumber") \
                and not allow_duplicate_doc_number:
            for other in self.objects[entity].values():
                if other["Id"] != existing_id and other.get("DocNumber") == obj["DocNumber"]:
                    raise faults.duplicate_doc_number(obj["DocNumber"])

    def _unique_name(self, entities: tuple[str, ...], field: str, name: str, existing_id: str | None) -> None:
        wanted = name.casefold()
        for entity in entities:
            for other in self.objects[entity].values():
                if other["Id"] != existing_id and str(other.get(field, "")).casefold() == wanted:
                    raise faults.duplicate_name(other["Id"])

    def _prepare_party(self, obj: dict[str, Any], existing_id: str | None) -> None:
        if not obj.get("DisplayName"):
            parts = [obj.get(k) for k in ("Title", "GivenName", "MiddleName", "FamilyName", "Suffix")]
            obj["DisplayName"] = " ".join(p for p in parts if p) or obj.get("CompanyName") or ""
        name = str(obj["DisplayName"])
        if not name:
            raise faults.required_missing("DisplayName")
        if any(ch in name for ch in ":\t\n"):
            raise faults.business_validation("DisplayName cannot contain a colon, tab or newline")
        self._unique_name(NAMED_PARTIES, "DisplayName", name, existing_id)
        obj.setdefault("Active", True)
        obj["FullyQualifiedName"] = name

    _prepare_customer = _prepare_party
    _prepare_vendor = _prepare_party
    _prepare_employee = _prepare_party

    def _prepare_account(self, obj: dict[str, Any], existing_id: str | None) -> None:
        for required in ("Name", "AccountType"):
            if not obj.get(required):
                raise faults.required_missing(required)
        self._unique_name(("Account",), "Name", obj["Name"], existing_id)
        obj.setdefault("Active", True)
        obj["FullyQualifiedName"] = obj["Name"]

    def _prepare_item(self, obj: dict[str, Any], existing_id: str | None) -> None:
        for required in ("Name", "Type"):
            if not obj.get(required):
                raise faults.required_missing(required)
        if len(obj["Name"]) > 100:
            raise faults.business_validation("Item Name is longer than 100 characters")
        if any(ch in obj["Name"] for ch in ":\t\n"):
            raise faults.business_validation("Item Name cannot contain a colon, tab or newline")
        self._unique_name(("Item",), "Name", obj["Name"], existing_id)
        if obj["Type"] == "Service":
            self._require_ref(obj, "IncomeAccountRef", "Account")
        obj.setdefault("Active", True)
        obj["FullyQualifiedName"] = obj["Name"]

    def _require_ref(self, obj: dict[str, Any], element: str, entity: str) -> str:
        value = _ref_value(obj.get(element))
        if value is None:
            raise faults.required_missing(element)
        if value not in self.objects[entity]:
            raise faults.invalid_reference(element, value)
        return value

    def _sales_lines(self, obj: dict[str, Any]) -> Decimal:
        """Validate item lines, replace the subtotal line, and return the total."""
        lines = [line for line in obj.get("Line") or [] if line.get("DetailType") != "SubTotalLineDetail"]
        if not lines:
            raise faults.required_missing("Line")
        total = ZERO
        for number, line in enumerate(lines, start=1):
            amount = _decimal(line.get("Amount"), "Line.Amount")
            detail = line.get("SalesItemLineDetail")
            if line.get("DetailType") == "SalesItemLineDetail" and isinstance(detail, dict):
                item = _ref_value(detail.get("ItemRef"))
                if item is not None and item not in self.objects["Item"]:
                    raise faults.invalid_reference("Line.SalesItemLineDetail.ItemRef", item)
                qty = _decimal(detail.get("Qty"), "Qty")
                price = _decimal(detail.get("UnitPrice"), "UnitPrice")
                # Amount must be UnitPrice x Qty rounded to cents (either way at exactly half a cent).
                if qty and price and abs(qty * price - amount) > HALF_CENT:
                    raise faults.amount_calculation(
                        f"Amount is not equal to UnitPrice * Qty. Supplied value:{amount}")
            line["Amount"] = amount
            line["LineNum"] = number
            line.setdefault("Id", str(number))
            total += amount
        obj["Line"] = [*lines, {"Amount": total, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}}]
        return total

    def _dated(self, obj: dict[str, Any], numbered: bool) -> None:
        if numbered and not obj.get("DocNumber"):
            obj["DocNumber"] = str(self._next_doc_number)
            self._next_doc_number += 1
        if not obj.get("TxnDate"):
            obj["TxnDate"] = datetime.now(UTC).date().isoformat()

    def _prepare_sale(self, obj: dict[str, Any], existing_id: str | None) -> None:
        self._require_ref(obj, "CustomerRef", "Customer")
        obj["TotalAmt"] = self._sales_lines(obj)
        self._dated(obj, numbered=True)

    def _prepare_estimate(self, obj: dict[str, Any], existing_id: str | None) -> None:
        self._prepare_sale(obj, existing_id)
        obj.setdefault("TxnStatus", "Pending")
        obj.pop("LinkedTxn", None)  # derived from the invoices that link to it

    def _prepare_invoice(self, obj: dict[str, Any], existing_id: str | None) -> None:
        self._prepare_sale(obj, existing_id)
        obj.setdefault("DueDate", obj["TxnDate"])
        customer = _ref_value(obj["CustomerRef"])
        kept = []
        for estimate_id in _links(obj, "Estimate"):
            estimate = self.objects["Estimate"].get(estimate_id)
            if estimate is None:
                raise faults.invalid_reference("LinkedTxn.TxnId", estimate_id)
            if _ref_value(estimate["CustomerRef"]) != customer:
                raise faults.business_validation("The linked estimate belongs to another customer")
            for other in self.objects["Invoice"].values():
                if other["Id"] != existing_id and estimate_id in _links(other, "Estimate"):
                    raise faults.business_validation(f"Estimate {estimate_id} is already linked to an invoice")
            kept.append({"TxnId": estimate_id, "TxnType": "Estimate"})
        obj["LinkedTxn"] = kept  # payment links are derived

    def _prepare_creditmemo(self, obj: dict[str, Any], existing_id: str | None) -> None:
        self._prepare_sale(obj, existing_id)

    def _prepare_payment(self, obj: dict[str, Any], existing_id: str | None) -> None:
        customer = self._require_ref(obj, "CustomerRef", "Customer")
        if obj.get("TotalAmt") in (None, ""):
            raise faults.required_missing("TotalAmt")
        total = _decimal(obj["TotalAmt"], "TotalAmt")
        if total < 0:
            raise faults.business_validation("Payment TotalAmt cannot be negative")
        obj["TotalAmt"] = total
        applied = ZERO
        for line in obj.get("Line") or []:
            amount = _decimal(line.get("Amount"), "Line.Amount")
            line["Amount"] = amount
            links = line.get("LinkedTxn") or []
            if len(links) != 1 or links[0].get("TxnType") not in ("Invoice", "CreditMemo"):
                raise faults.business_validation("Each payment line links exactly one Invoice or CreditMemo")
            kind, txn_id = links[0]["TxnType"], str(links[0].get("TxnId", ""))
            target = self.objects[kind].get(txn_id)
            if target is None:  # e.g. a DocNumber given where the Id belongs
                raise faults.not_found(kind, txn_id)
            if _ref_value(target["CustomerRef"]) != customer:
                raise faults.business_validation(f"{kind} {txn_id} belongs to another customer")
            open_amount = target["TotalAmt"] - self._applied_to(kind, txn_id, excluding_payment=existing_id)
            if amount > open_amount:
                raise faults.business_validation(
                    f"The amount applied to {kind} {txn_id} ({amount}) is more than its open balance ({open_amount})")
            applied += amount if kind == "Invoice" else -amount
        if applied > total:
            raise faults.business_validation(
                f"The payment applies {applied} to invoices but its TotalAmt is only {total}")
        self._dated(obj, numbered=False)

    def _prepare_purchase(self, obj: dict[str, Any], existing_id: str | None) -> None:
        if obj.get("PaymentType") not in PAYMENT_TYPES:
            raise faults.required_missing("PaymentType")
        account = self._require_ref(obj, "AccountRef", "Account")
        if obj["PaymentType"] == "Check" and self.objects["Account"][account]["AccountType"] != "Bank":
            raise faults.business_validation("A check must be paid from a Bank account")
        entity_ref = obj.get("EntityRef")
        if entity_ref:
            kind = entity_ref.get("type") or "Vendor"
            if kind not in NAMED_PARTIES:
                raise faults.invalid_reference("EntityRef.type", kind)
            self._require_ref(obj, "EntityRef", kind)
        lines = obj.get("Line") or []
        if not lines:
            raise faults.required_missing("Line")
        total = ZERO
        for number, line in enumerate(lines, start=1):
            line["Amount"] = _decimal(line.get("Amount"), "Line.Amount")
            detail = line.get("AccountBasedExpenseLineDetail")
            if line.get("DetailType") == "AccountBasedExpenseLineDetail" and isinstance(detail, dict):
                self._require_ref(detail, "AccountRef", "Account")
            line.setdefault("Id", str(number))
            total += line["Amount"]
        obj["TotalAmt"] = total
        self._dated(obj, numbered=False)

    # -- what QBO derives: balances, links, statuses -------------------------------------------------
    def _applications(self, kind: str, txn_id: str, excluding_payment: str | None = None) -> list[Decimal]:
        return [line["Amount"] for payment in self.objects["Payment"].values() if payment["Id"] != excluding_payment
                for line in payment.get("Line") or [] if txn_id in _links(line, kind)]

    def _applied_to(self, kind: str, txn_id: str, excluding_payment: str | None = None) -> Decimal:
        return sum(self._applications(kind, txn_id, excluding_payment), start=ZERO)

    def _derive(self) -> None:
        for payment in self.objects["Payment"].values():
            lines = payment.get("Line") or []
            invoices = sum((ln["Amount"] for ln in lines if _links(ln, "Invoice")), start=ZERO)
            credits = sum((ln["Amount"] for ln in lines if _links(ln, "CreditMemo")), start=ZERO)
            payment["UnappliedAmt"] = payment["TotalAmt"] - invoices + credits
        for invoice in self.objects["Invoice"].values():
            invoice["Balance"] = invoice["TotalAmt"] - self._applied_to("Invoice", invoice["Id"])
            invoice["HomeBalance"] = invoice["Balance"]
            estimates = [link for link in invoice.get("LinkedTxn") or [] if link["TxnType"] == "Estimate"]
            payments = [{"TxnId": p["Id"], "TxnType": "Payment"} for p in self.objects["Payment"].values()
                        if any(invoice["Id"] in _links(line, "Invoice") for line in p.get("Line") or [])]
            invoice["LinkedTxn"] = estimates + payments
        for memo in self.objects["CreditMemo"].values():
            memo["RemainingCredit"] = memo["TotalAmt"] - self._applied_to("CreditMemo", memo["Id"])
            memo["Balance"] = memo["RemainingCredit"]
        for estimate in self.objects["Estimate"].values():
            invoices = [i["Id"] for i in self.objects["Invoice"].values() if estimate["Id"] in _links(i, "Estimate")]
            estimate["LinkedTxn"] = [{"TxnId": i, "TxnType": "Invoice"} for i in invoices]
            if invoices:
                estimate["TxnStatus"] = self.estimate_closed_status
        for customer in self.objects["Customer"].values():
            mine = customer["Id"]
            owed = sum((i["Balance"] for i in self.objects["Invoice"].values()
                        if _ref_value(i["CustomerRef"]) == mine), start=ZERO)
            credit = sum((p["UnappliedAmt"] for p in self.objects["Payment"].values()
                          if _ref_value(p["CustomerRef"]) == mine), start=ZERO)
            credit += sum((m["RemainingCredit"] for m in self.objects["CreditMemo"].values()
                           if _ref_value(m["CustomerRef"]) == mine), start=ZERO)
            customer["Balance"] = owed - credit
            customer["BalanceWithJobs"] = customer["Balance"]
