"""One QBO company (realm): its objects, the rules QBO applies when they are written, and its request ids."""

import copy
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sandbox.qbo import faults

ENTITIES = ("Account", "Customer", "Vendor", "Employee", "Item", "Estimate", "Invoice", "Payment")
# DisplayName is unique across these, case-insensitively.
NAMED_PARTIES = ("Customer", "Vendor", "Employee")
READ_ONLY = ("Id", "SyncToken", "MetaData", "TotalAmt", "Balance", "HomeBalance", "UnappliedAmt",
             "FullyQualifiedName", "Level", "BalanceWithJobs", "domain", "sparse")
CENT = Decimal("0.01")


def canonical_entity(name: str) -> str:
    for entity in ENTITIES:
        if entity.lower() == name.lower():
            return entity
    raise faults.QboFault("4000", "Error parsing query", f"QueryParserError: Invalid entity {name}")


def _now() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


def _decimal(value: Any, element: str) -> Decimal:
    if value in (None, ""):
        return Decimal(0)
    try:
        return Decimal(str(value))
    except ArithmeticError as exc:
        raise faults.QboFault("2010", "Request has invalid or unsupported property",
                              f"Property Name:{element} has an invalid value", element) from exc


def _ref_value(ref: Any) -> str | None:
    if isinstance(ref, dict) and ref.get("value") not in (None, ""):
        return str(ref["value"])
    return None


class Company:
    def __init__(self, realm_id: str, name: str) -> None:
        self.realm_id = realm_id
        self.name = name
        self.lock = threading.RLock()
        self.objects: dict[str, dict[str, dict[str, Any]]] = {entity: {} for entity in ENTITIES}
        self.responses_by_request_id: dict[str, tuple[int, dict[str, Any]]] = {}
        # Faults the next API calls answer with, for tests: "500" or "429".
        self.injected_faults: list[str] = []
        self._next_id = 1
        self._next_doc_number = 1001
        self._seed()

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"realm_id": self.realm_id, "name": self.name, "objects": copy.deepcopy(self.objects),
                    "responses_by_request_id": copy.deepcopy(self.responses_by_request_id),
                    "next_id": self._next_id, "next_doc_number": self._next_doc_number}

    @classmethod
    def restore(cls, data: dict[str, Any]) -> "Company":
        company = cls.__new__(cls)
        company.realm_id, company.name = data["realm_id"], data["name"]
        company.lock = threading.RLock()
        company.injected_faults = []
        company.objects = data["objects"]
        company.responses_by_request_id = {k: tuple(v) for k, v in data["responses_by_request_id"].items()}
        company._next_id, company._next_doc_number = data["next_id"], data["next_doc_number"]
        return company

    def _seed(self) -> None:
        """What every new QBO company has: an income account and the default "Services" item."""
        income = self.create("Account", {"Name": "Services", "AccountType": "Income"})
        self.create("Account", {"Name": "Checking", "AccountType": "Bank"})
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

    # -- writing -------------------------------------------------------------------------------------
    def create(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            obj = {k: copy.deepcopy(v) for k, v in body.items() if k not in READ_ONLY}
            self._prepare(entity, obj, existing_id=None)
            obj["Id"] = str(self._next_id)
            self._next_id += 1
            obj["SyncToken"] = "0"
            now = _now()
            obj["MetaData"] = {"CreateTime": now, "LastUpdatedTime": now}
            obj["domain"] = "QBO"
            obj["sparse"] = False
            self.objects[entity][obj["Id"]] = obj
            return copy.deepcopy(obj)

    def update(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            object_id = str(body["Id"])
            current = self.objects[entity].get(object_id)
            if current is None:
                raise faults.not_found(entity, object_id)
            if str(body.get("SyncToken")) != current["SyncToken"]:
                raise faults.stale_object()
            changes = {k: copy.deepcopy(v) for k, v in body.items() if k not in READ_ONLY}
            if body.get("sparse") in (True, "true"):
                obj = {k: copy.deepcopy(v) for k, v in current.items() if k not in READ_ONLY} | changes
            else:
                obj = changes
            self._prepare(entity, obj, existing_id=object_id)
            obj["Id"] = object_id
            obj["SyncToken"] = str(int(current["SyncToken"]) + 1)
            obj["MetaData"] = {"CreateTime": current["MetaData"]["CreateTime"], "LastUpdatedTime": _now()}
            obj["domain"] = "QBO"
            obj["sparse"] = False
            self.objects[entity][object_id] = obj
            return copy.deepcopy(obj)

    # -- QBO's rules, per entity ---------------------------------------------------------------------
    def _prepare(self, entity: str, obj: dict[str, Any], existing_id: str | None) -> None:
        rule: Callable[[dict[str, Any], str | None], None] | None = getattr(self, f"_prepare_{entity.lower()}", None)
        if rule is not None:
            rule(obj, existing_id)

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
        obj["Balance"] = Decimal(0)

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

    def _prepare_sales_lines(self, obj: dict[str, Any]) -> Decimal:
        """Validate lines, replace the subtotal line, and return the total of the item lines."""
        lines = [line for line in obj.get("Line") or [] if line.get("DetailType") != "SubTotalLineDetail"]
        if not lines:
            raise faults.required_missing("Line")
        total = Decimal(0)
        for number, line in enumerate(lines, start=1):
            amount = _decimal(line.get("Amount"), "Line.Amount")
            detail = line.get("SalesItemLineDetail")
            if line.get("DetailType") == "SalesItemLineDetail" and isinstance(detail, dict):
                item = _ref_value(detail.get("ItemRef"))
                if item is not None and item not in self.objects["Item"]:
                    raise faults.invalid_reference("Line.SalesItemLineDetail.ItemRef", item)
                qty = _decimal(detail.get("Qty"), "Qty")
                price = _decimal(detail.get("UnitPrice"), "UnitPrice")
                if qty and price and (qty * price).quantize(CENT) != amount.quantize(CENT):
                    raise faults.amount_calculation(
                        f"Amount is not equal to UnitPrice * Qty. Supplied value:{amount}")
            line["Amount"] = amount
            line["LineNum"] = number
            line.setdefault("Id", str(number))
            total += amount
        obj["Line"] = [*lines, {"Amount": total, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}}]
        return total

    def _prepare_transaction(self, obj: dict[str, Any]) -> None:
        self._require_ref(obj, "CustomerRef", "Customer")
        obj["TotalAmt"] = self._prepare_sales_lines(obj)
        if not obj.get("DocNumber"):
            obj["DocNumber"] = str(self._next_doc_number)
            self._next_doc_number += 1
        if not obj.get("TxnDate"):
            obj["TxnDate"] = datetime.now(UTC).date().isoformat()

    def _prepare_estimate(self, obj: dict[str, Any], existing_id: str | None) -> None:
        self._prepare_transaction(obj)
        obj.setdefault("TxnStatus", "Pending")
