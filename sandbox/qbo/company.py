"""One QBO company (realm): its objects, the rules QBO applies when they are written, the balances and links
it derives, and its request ids."""

import copy
import threading
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from sandbox.qbo import faults
from sandbox.qbo.schema import COMPUTED, ENTITIES, FIELDS, NAME_LISTS

# DisplayName is unique across these, case-insensitively.
NAMED_PARTIES = ("Customer", "Vendor", "Employee")
PAYMENT_TYPES = ("Cash", "Check", "CreditCard")
# The field whose name is unique (case-insensitively) per entity, and the entities with unique DocNumbers.
NAME_FIELDS = {"Customer": "DisplayName", "Vendor": "DisplayName", "Employee": "DisplayName", "Account": "Name",
               "Item": "Name"}
NUMBERED = ("Estimate", "Invoice", "CreditMemo", "Purchase")
ZERO = Decimal(0)
HALF_CENT = Decimal("0.005")
# The entities QBO derives values for, in the order they have to be derived: a customer's balance sums its
# invoices' balances and its payments' unapplied amounts, so customers come last.
DERIVED = ("Payment", "Invoice", "CreditMemo", "Estimate", "Customer")

Key = tuple[str, str]  # (entity, id) of one object
K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")


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


@dataclass
class Changes:
    """What a company changed since it was last saved, so that the state file rewrites only that: the objects
    written or whose derived values changed, the objects deleted (with their deletion time, in deletion
    order), the new request-id answers, and the settings and counters (always: they are one small row).
    It holds the company's own objects, not copies: write it out before the company's lock is released."""

    settings: dict[str, Any]
    objects: dict[Key, dict[str, Any]]
    deleted: list[tuple[Key, str]]
    responses: dict[str, tuple[int, dict[str, Any]]]


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
        self._reset_indexes()
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
        company._reset_indexes()
        for entity, of_entity in company.objects.items():
            for object_id, obj in of_entity.items():
                company._index(entity, object_id, None, obj)
        company._derive({(entity, object_id) for entity in DERIVED for object_id in company.objects[entity]})
        company.mark_saved()  # what was loaded is what the state file holds
        return company

    def _reset_indexes(self) -> None:
        # Who links to whom: (entity, id) of an invoice, credit memo, estimate or customer -> the payments,
        # invoices and credit memos linking to it. Lets a write re-derive only what it can affect.
        self._linked_from: dict[Key, set[Key]] = {}
        # Validation's look-ups: (entity, casefolded name) and (entity, DocNumber) -> ids of the objects.
        self._by_name: dict[tuple[str, str], set[str]] = {}
        self._by_doc_number: dict[tuple[str, Hashable], set[str]] = {}
        # What the state file does not have yet (see pending_changes).
        self._dirty: set[Key] = set()
        self._deleted_since_save: list[Key] = []
        self._responses_since_save: list[str] = []

    # -- saving --------------------------------------------------------------------------------------
    def remember_response(self, request_id: str, status: int, response: dict[str, Any]) -> None:
        """Keep a write's answer for its request id: a retry with the same id gets it back, unchanged."""
        with self.lock:
            self.responses_by_request_id[request_id] = (status, response)
            self._responses_since_save.append(request_id)

    def forget_responses(self) -> int:
        """Drop every kept answer, as QBO does after a while it does not document; returns how many."""
        with self.lock:
            forgotten = len(self.responses_by_request_id)
            self.responses_by_request_id, self._responses_since_save = {}, []
            return forgotten

    def pending_changes(self) -> Changes:
        """What changed since the company was last saved (or created, or restored), for the state file. Call
        mark_saved once it is written, holding the lock throughout: a failed save keeps them pending."""
        with self.lock:
            deleted = [((entity, object_id), self.deleted[entity][object_id])
                       for entity, object_id in self._deleted_since_save]
            objects = {(entity, object_id): self.objects[entity][object_id]
                       for entity, object_id in sorted(self._dirty) if object_id in self.objects[entity]}
            responses = {rid: self.responses_by_request_id[rid] for rid in self._responses_since_save}
            return Changes(self.settings(), objects, deleted, responses)

    def mark_saved(self) -> None:
        with self.lock:
            self._dirty, self._deleted_since_save, self._responses_since_save = set(), [], []

    def settings(self) -> dict[str, Any]:
        """The company's own fields and counters: all of a snapshot but its objects, tombstones and answers."""
        with self.lock:
            return {"realm_id": self.realm_id, "name": self.name,
                    "estimate_closed_status": self.estimate_closed_status,
                    "next_id": self._next_id, "next_doc_number": self._next_doc_number}

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
        return self.select(entity, list)

    def select(self, entity: str, pick: Callable[[list[dict[str, Any]]], T]) -> T:
        """A copy of what `pick` takes from the entity's objects as stored, read under the lock: a query copies
        the page it answers, not every object of the entity (which made each query cost more as the company
        grew)."""
        with self.lock:
            return copy.deepcopy(pick(list(self.objects[entity].values())))

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
            self._derive(self._put(entity, obj["Id"], obj))
            return copy.deepcopy(obj)

    def _current(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        object_id = str(body.get("Id", ""))
        current = self.objects[entity].get(object_id)
        if current is None:
            raise faults.not_found(entity, object_id)
        if str(body.get("SyncToken")) != current["SyncToken"]:
            raise faults.stale_object()
        return current

    def _store(self, entity: str, current: dict[str, Any], obj: dict[str, Any],
               affected: Iterable[Key] = ()) -> dict[str, Any]:
        """Replace `current` with `obj` and re-derive what that, and the writes that made `affected`, change."""
        obj["Id"] = current["Id"]
        obj["SyncToken"] = str(int(current["SyncToken"]) + 1)
        obj["MetaData"] = {"CreateTime": current["MetaData"]["CreateTime"], "LastUpdatedTime": now_iso()}
        obj["domain"], obj["sparse"] = "QBO", False
        self._derive({*affected, *self._put(entity, obj["Id"], obj)})
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
            affected = self._put(entity, current["Id"], None)
            self.deleted[entity][current["Id"]] = now_iso()
            self._deleted_since_save.append((entity, current["Id"]))
            self._derive(affected)
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
            affected: set[Key] = set()
            if entity == "Payment":
                obj["Line"] = []
            else:
                for line in obj["Line"]:
                    line["Amount"] = ZERO
                for payment in self._linking("Payment", ("Invoice", current["Id"])):
                    kept = [line for line in payment.get("Line") or [] if current["Id"] not in _links(line, "Invoice")]
                    metadata = {**payment["MetaData"], "LastUpdatedTime": now_iso()}
                    stripped = {**payment, "Line": kept, "SyncToken": str(int(payment["SyncToken"]) + 1),
                                "MetaData": metadata}
                    affected |= self._put("Payment", payment["Id"], stripped)
            return self._store(entity, current, obj, affected)

    # -- QBO's rules, per entity ---------------------------------------------------------------------
    def _prepare(self, entity: str, obj: dict[str, Any], existing_id: str | None,
                 allow_duplicate_doc_number: bool) -> None:
        rule: Callable[..., None] | None = getattr(self, f"_prepare_{entity.lower()}", None)
        if rule is not None:
            rule(obj, existing_id)
        numbered = set() if allow_duplicate_doc_number else _doc_number_keys(entity, obj)
        if any(self._by_doc_number.get(key, set()) - {existing_id} for key in numbered):
            raise faults.duplicate_doc_number(obj["DocNumber"])

    def _unique_name(self, entities: tuple[str, ...], name: str, existing_id: str | None) -> None:
        """Fault 6240 naming the first other object (by entity, then oldest) holding the name."""
        for entity in entities:
            others = self._by_name.get((entity, name.casefold()), set()) - {existing_id}
            if others:
                raise faults.duplicate_name(min(others, key=int))

    def _prepare_party(self, obj: dict[str, Any], existing_id: str | None) -> None:
        if not obj.get("DisplayName"):
            parts = [obj.get(k) for k in ("Title", "GivenName", "MiddleName", "FamilyName", "Suffix")]
            obj["DisplayName"] = " ".join(p for p in parts if p) or obj.get("CompanyName") or ""
        name = str(obj["DisplayName"])
        if not name:
            raise faults.required_missing("DisplayName")
        if any(ch in name for ch in ":\t\n"):
            raise faults.business_validation("DisplayName cannot contain a colon, tab or newline")
        self._unique_name(NAMED_PARTIES, name, existing_id)
        obj.setdefault("Active", True)
        obj["FullyQualifiedName"] = name

    _prepare_customer = _prepare_party
    _prepare_vendor = _prepare_party
    _prepare_employee = _prepare_party

    def _prepare_account(self, obj: dict[str, Any], existing_id: str | None) -> None:
        for required in ("Name", "AccountType"):
            if not obj.get(required):
                raise faults.required_missing(required)
        self._unique_name(("Account",), obj["Name"], existing_id)
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
        self._unique_name(("Item",), obj["Name"], existing_id)
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
        ref = obj[element]
        if isinstance(ref, dict) and entity in NAME_FIELDS:  # QBO answers with the referenced object's name
            ref["name"] = self.objects[entity][value].get(NAME_FIELDS[entity], "")
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
            if any(other["Id"] != existing_id for other in self._linking("Invoice", ("Estimate", estimate_id))):
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
    # A write re-derives only the objects it can change: itself, what it links to before and after the write
    # (the invoices and credit memos a payment applies to, the estimate an invoice converts, their customer),
    # and the customers of those. _linked_from is kept in step by _put so finding them never scans a company.

    def _put(self, entity: str, object_id: str, obj: dict[str, Any] | None) -> set[Key]:
        """Store `obj` as the object `object_id` (None: remove it), keeping the indexes in step. Returns the
        keys of the objects whose derived values may have changed: the object and what it linked to before
        and links to now."""
        before = self.objects[entity].get(object_id)
        if obj is None:
            del self.objects[entity][object_id]
        else:
            self.objects[entity][object_id] = obj
        self._dirty.add((entity, object_id))
        return {(entity, object_id)} | self._index(entity, object_id, before, obj)

    def _index(self, entity: str, object_id: str, before: dict[str, Any] | None,
               after: dict[str, Any] | None) -> set[Key]:
        """Move the object's index entries from what `before` holds to what `after` holds (None: no object).
        Returns what it linked to before and links to now."""
        _move(self._by_name, _name_keys(entity, before), _name_keys(entity, after), object_id)
        _move(self._by_doc_number, _doc_number_keys(entity, before), _doc_number_keys(entity, after), object_id)
        old, new = _targets(entity, before), _targets(entity, after)
        _move(self._linked_from, old, new, (entity, object_id))
        return old | new

    def _linking(self, entity: str, target: Key) -> list[dict[str, Any]]:
        """The objects of `entity` that link to `target`, oldest first (the order QBO lists them in; ids grow
        with creation, so that is the order of the company's own dicts)."""
        ids = [object_id for kind, object_id in self._linked_from.get(target, ()) if kind == entity]
        return [self.objects[entity][object_id] for object_id in sorted(ids, key=int)]

    def _applications(self, kind: str, txn_id: str, excluding_payment: str | None = None) -> list[Decimal]:
        """The amounts of the payment lines applied to an invoice or credit memo."""
        return [line["Amount"] for payment in self._linking("Payment", (kind, txn_id))
                if payment["Id"] != excluding_payment
                for line in payment.get("Line") or [] if txn_id in _links(line, kind)]

    def _applied_to(self, kind: str, txn_id: str, excluding_payment: str | None = None) -> Decimal:
        return sum(self._applications(kind, txn_id, excluding_payment), start=ZERO)

    def _derive(self, affected: Iterable[Key]) -> None:
        """Re-derive the `affected` objects that still exist, and the balances of their customers."""
        keys = set(affected)
        for entity, object_id in list(keys):
            obj = self.objects[entity].get(object_id)
            if obj is not None and entity in ("Invoice", "CreditMemo", "Payment"):
                customer = _ref_value(obj.get("CustomerRef"))
                if customer is not None:
                    keys.add(("Customer", customer))
        for entity in DERIVED:
            derive = self._DERIVERS[entity]
            for kind, object_id in keys:
                obj = self.objects[entity].get(object_id) if kind == entity else None
                if obj is not None:
                    derive(self, obj)

    def _set_derived(self, entity: str, obj: dict[str, Any], values: dict[str, Any]) -> None:
        """Set derived fields; an object whose derived values changed has to be saved again."""
        if any(key not in obj or obj[key] != value for key, value in values.items()):
            self._dirty.add((entity, obj["Id"]))
        obj.update(values)

    def _derive_payment(self, payment: dict[str, Any]) -> None:
        """UnappliedAmt: what the payment has not applied to invoices (applied credit memos add to it)."""
        lines = payment.get("Line") or []
        invoices = sum((ln["Amount"] for ln in lines if _links(ln, "Invoice")), start=ZERO)
        credits = sum((ln["Amount"] for ln in lines if _links(ln, "CreditMemo")), start=ZERO)
        self._set_derived("Payment", payment, {"UnappliedAmt": payment["TotalAmt"] - invoices + credits})

    def _derive_invoice(self, invoice: dict[str, Any]) -> None:
        """Balance (what payments leave open) and LinkedTxn: its estimates, then the payments applied to it."""
        balance = invoice["TotalAmt"] - self._applied_to("Invoice", invoice["Id"])
        estimates = [link for link in invoice.get("LinkedTxn") or [] if link["TxnType"] == "Estimate"]
        payments = [{"TxnId": p["Id"], "TxnType": "Payment"}
                    for p in self._linking("Payment", ("Invoice", invoice["Id"]))]
        self._set_derived("Invoice", invoice, {"Balance": balance, "HomeBalance": balance,
                                               "LinkedTxn": estimates + payments})

    def _derive_credit_memo(self, memo: dict[str, Any]) -> None:
        """RemainingCredit: what payments have not applied of the memo yet."""
        remaining = memo["TotalAmt"] - self._applied_to("CreditMemo", memo["Id"])
        self._set_derived("CreditMemo", memo, {"RemainingCredit": remaining, "Balance": remaining})

    def _derive_estimate(self, estimate: dict[str, Any]) -> None:
        """LinkedTxn: the invoices made from it. Once it has one it is closed (it stays so if unlinked)."""
        invoices = [i["Id"] for i in self._linking("Invoice", ("Estimate", estimate["Id"]))]
        values: dict[str, Any] = {"LinkedTxn": [{"TxnId": i, "TxnType": "Invoice"} for i in invoices]}
        if invoices:
            values["TxnStatus"] = self.estimate_closed_status
        self._set_derived("Estimate", estimate, values)

    def _derive_customer(self, customer: dict[str, Any]) -> None:
        """Balance: what its invoices leave open less its unapplied payments and its remaining credit."""
        mine = ("Customer", customer["Id"])
        owed = sum((i["Balance"] for i in self._linking("Invoice", mine)), start=ZERO)
        credit = sum((p["UnappliedAmt"] for p in self._linking("Payment", mine)), start=ZERO)
        credit += sum((m["RemainingCredit"] for m in self._linking("CreditMemo", mine)), start=ZERO)
        balance = owed - credit
        self._set_derived("Customer", customer, {"Balance": balance, "BalanceWithJobs": balance})

    _DERIVERS: dict[str, Callable[["Company", dict[str, Any]], None]] = {
        "Payment": _derive_payment, "Invoice": _derive_invoice, "CreditMemo": _derive_credit_memo,
        "Estimate": _derive_estimate, "Customer": _derive_customer,
    }


def _move(index: dict[K, set[V]], old: set[K], new: set[K], member: V) -> None:
    """Keep a many-to-many index in step: `member` leaves the entries of `old` and joins those of `new`."""
    for key in old - new:
        members = index[key]
        members.discard(member)
        if not members:
            del index[key]
    for key in new - old:
        index.setdefault(key, set()).add(member)


def _name_keys(entity: str, obj: dict[str, Any] | None) -> set[tuple[str, str]]:
    field = NAME_FIELDS.get(entity)
    return set() if obj is None or field is None else {(entity, str(obj.get(field, "")).casefold())}


def _doc_number_keys(entity: str, obj: dict[str, Any] | None) -> set[tuple[str, Hashable]]:
    """Its DocNumber, if it has one QBO keeps unique."""
    if obj is None or entity not in NUMBERED or not obj.get("DocNumber"):
        return set()
    return {(entity, _hashable(obj["DocNumber"]))}


def _hashable(value: Any) -> Hashable:
    """A key equal to another exactly when the values are (==), for a JSON array or object sent where a
    string belongs, too."""
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return frozenset((k, _hashable(v)) for k, v in value.items())
    return value


def _targets(entity: str, obj: dict[str, Any] | None) -> set[Key]:
    """What an object links to that QBO derives values from: an invoice's, credit memo's or payment's
    customer, the estimates an invoice converts, and the invoices and credit memos a payment's lines apply to."""
    if obj is None or entity not in ("Invoice", "CreditMemo", "Payment"):
        return set()
    customer = _ref_value(obj.get("CustomerRef"))
    targets: set[Key] = set() if customer is None else {("Customer", customer)}
    if entity == "Invoice":
        targets |= {("Estimate", estimate_id) for estimate_id in _links(obj, "Estimate")}
    if entity == "Payment":
        targets |= {(kind, txn_id) for line in obj.get("Line") or []
                    for kind in ("Invoice", "CreditMemo") for txn_id in _links(line, kind)}
    return targets
