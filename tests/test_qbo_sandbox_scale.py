"""The QBO sandbox at scale: a write re-derives and saves only what it can change. These tests keep that honest:
random writes give exactly what the sandbox's earlier whole-company algorithms give (kept here as the
reference), a company restored from a snapshot or from its state file is the same company, and a write
saves only the rows it changed."""

import copy
import random
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.qbo.app import QboSandbox
from sandbox.qbo.company import ZERO, Company, _links, _ref_value
from sandbox.qbo.faults import QboFault
from sandbox.qbo.state import StateFile
from sandbox.qbo.wire import dumps

STAMP = "2025-01-01T00:00:00+00:00"
DAY = "2025-01-01"
NAMES = ["Acme", "ACME", "Birch & Co", "Cedar", "cedar", "Dune", "Elm", "Fir", "Gale", "Heron"]
DOC_NUMBERS = ["D-1", "D-2", "D-3"]


@pytest.fixture(autouse=True)
def frozen_clock() -> Iterator[None]:
    """One time for every write, so two companies given the same writes hold the same objects."""
    with mock.patch("sandbox.qbo.company.now_iso", return_value=STAMP):
        yield


# -- the reference: the sandbox's earlier algorithms, which scan the whole company -------------------------
def recompute_all(company: Company) -> None:
    """Every derived value of every object, from scratch (the sandbox's former Company._derive)."""
    objects = company.objects

    def applied_to(kind: str, txn_id: str) -> Decimal:
        return sum((line["Amount"] for payment in objects["Payment"].values()
                    for line in payment.get("Line") or [] if txn_id in _links(line, kind)), start=ZERO)

    for payment in objects["Payment"].values():
        lines = payment.get("Line") or []
        invoices = sum((ln["Amount"] for ln in lines if _links(ln, "Invoice")), start=ZERO)
        credits = sum((ln["Amount"] for ln in lines if _links(ln, "CreditMemo")), start=ZERO)
        payment["UnappliedAmt"] = payment["TotalAmt"] - invoices + credits
    for invoice in objects["Invoice"].values():
        invoice["Balance"] = invoice["TotalAmt"] - applied_to("Invoice", invoice["Id"])
        invoice["HomeBalance"] = invoice["Balance"]
        estimates = [link for link in invoice.get("LinkedTxn") or [] if link["TxnType"] == "Estimate"]
        payments = [{"TxnId": p["Id"], "TxnType": "Payment"} for p in objects["Payment"].values()
                    if any(invoice["Id"] in _links(line, "Invoice") for line in p.get("Line") or [])]
        invoice["LinkedTxn"] = estimates + payments
    for memo in objects["CreditMemo"].values():
        memo["RemainingCredit"] = memo["TotalAmt"] - applied_to("CreditMemo", memo["Id"])
        memo["Balance"] = memo["RemainingCredit"]
    for estimate in objects["Estimate"].values():
        invoices = [i["Id"] for i in objects["Invoice"].values() if estimate["Id"] in _links(i, "Estimate")]
        estimate["LinkedTxn"] = [{"TxnId": i, "TxnType": "Invoice"} for i in invoices]
        if invoices:
            estimate["TxnStatus"] = company.estimate_closed_status
    for customer in objects["Customer"].values():
        mine = customer["Id"]
        owed = sum((i["Balance"] for i in objects["Invoice"].values()
                    if _ref_value(i["CustomerRef"]) == mine), start=ZERO)
        credit = sum((p["UnappliedAmt"] for p in objects["Payment"].values()
                      if _ref_value(p["CustomerRef"]) == mine), start=ZERO)
        credit += sum((m["RemainingCredit"] for m in objects["CreditMemo"].values()
                       if _ref_value(m["CustomerRef"]) == mine), start=ZERO)
        customer["Balance"] = owed - credit
        customer["BalanceWithJobs"] = customer["Balance"]


class ReferenceCompany(Company):
    """A company that finds everything by scanning, and re-derives everything after every write."""

    def _derive(self, affected: Any) -> None:
        recompute_all(self)

    def _linking(self, entity: str, target: tuple[str, str]) -> list[dict[str, Any]]:
        kind, target_id = target

        def links(obj: dict[str, Any]) -> bool:
            if kind == "Customer":
                return _ref_value(obj.get("CustomerRef")) == target_id
            if entity == "Payment":
                return any(target_id in _links(line, kind) for line in obj.get("Line") or [])
            return target_id in _links(obj, kind)

        return [obj for obj in self.objects[entity].values() if links(obj)]

    def _unique_name(self, entities: tuple[str, ...], name: str, existing_id: str | None) -> None:
        for entity in entities:
            field = "DisplayName" if entity in ("Customer", "Vendor", "Employee") else "Name"
            for other in self.objects[entity].values():
                if other["Id"] != existing_id and str(other.get(field, "")).casefold() == name.casefold():
                    raise QboFault("6240", "Duplicate Name Exists Error",
                                   f"The name supplied already exists. : Id={other['Id']}")

    def _prepare(self, entity: str, obj: dict[str, Any], existing_id: str | None,
                 allow_duplicate_doc_number: bool) -> None:
        super()._prepare(entity, obj, existing_id, allow_duplicate_doc_number=True)
        if entity in ("Estimate", "Invoice", "CreditMemo", "Purchase") and obj.get("DocNumber") \
                and not allow_duplicate_doc_number:
            for other in self.objects[entity].values():
                if other["Id"] != existing_id and other.get("DocNumber") == obj["DocNumber"]:
                    raise QboFault("6140", "Duplicate Document Number Error",
                                   f"Duplicate Document Number Error : You must specify a different number. "
                                   f"This number has already been used. DocNumber={obj['DocNumber']}")


# -- random writes ---------------------------------------------------------------------------------------
Write = tuple[str, str, dict[str, Any], bool]  # (operation, entity, body, allow duplicate DocNumber)


def _amount(rng: random.Random, most: int = 500_00) -> Decimal:
    return Decimal(rng.randint(1, most)) / 100


def _sales_lines(rng: random.Random) -> list[dict[str, Any]]:
    return [{"Amount": _amount(rng), "DetailType": "SalesItemLineDetail",
             "SalesItemLineDetail": {"ItemRef": {"value": "5"}}} for _ in range(rng.randint(1, 3))]


def _payment_lines(rng: random.Random, company: Company, customer: str) -> list[dict[str, Any]]:
    """Lines applying to a few invoices and credit memos, mostly the customer's, mostly within their balance."""
    candidates = [(kind, obj) for kind in ("Invoice", "CreditMemo") for obj in company.objects[kind].values()
                  if _ref_value(obj["CustomerRef"]) == customer or rng.random() < 0.1]
    lines = []
    for kind, obj in rng.sample(candidates, min(len(candidates), rng.randint(0, 3))):
        open_amount = obj["Balance"] if kind == "Invoice" else obj["RemainingCredit"]
        amount = max(Decimal("0.01"), min(open_amount, _amount(rng)))
        if rng.random() < 0.1:
            amount += 1  # more than is open: a fault, or a bigger change if a payment of it is replaced
        lines.append({"Amount": amount, "LinkedTxn": [{"TxnId": obj["Id"], "TxnType": kind}]})
    return lines


def _payment_total(rng: random.Random, lines: list[dict[str, Any]]) -> Decimal:
    applied = sum((ln["Amount"] if ln["LinkedTxn"][0]["TxnType"] == "Invoice" else -ln["Amount"]
                   for ln in lines), start=ZERO)
    total = max(ZERO, applied) + (_amount(rng, 100_00) if rng.random() < 0.3 else ZERO)
    return total - 1 if rng.random() < 0.05 else total  # now and then less than it applies: a fault


def random_write(rng: random.Random, company: Company) -> Write:
    """One write QBO might get, chosen from what the company holds; some of them QBO refuses."""
    objects = company.objects
    customers = list(objects["Customer"])

    def pick(entity: str) -> dict[str, Any] | None:
        return objects[entity][rng.choice(list(objects[entity]))] if objects[entity] else None

    def doc_number() -> dict[str, str]:
        return {"DocNumber": rng.choice(DOC_NUMBERS)} if rng.random() < 0.2 else {}

    def versioned(obj: dict[str, Any]) -> dict[str, Any]:
        return {"Id": obj["Id"], "SyncToken": obj["SyncToken"]}

    choice = rng.random()
    customer = rng.choice(customers) if customers else None
    if customer is None or choice < 0.08:
        return "create", rng.choice(["Customer", "Customer", "Vendor"]), {"DisplayName": rng.choice(NAMES)}, False
    ref = {"value": customer}
    if choice < 0.12:
        target = pick("Customer")
        assert target is not None
        return "update", "Customer", {**versioned(target), "sparse": True, "DisplayName": rng.choice(NAMES)}, False
    if choice < 0.14:
        return "create", "Item", {"Name": rng.choice(NAMES), "Type": "Service",
                                  "IncomeAccountRef": {"value": "1"}}, False
    if choice < 0.22:
        return "create", "Estimate", {"CustomerRef": ref, "Line": _sales_lines(rng), "TxnDate": DAY,
                                      **doc_number()}, rng.random() < 0.3
    if choice < 0.34:
        body: dict[str, Any] = {"CustomerRef": ref, "Line": _sales_lines(rng), "TxnDate": DAY, **doc_number()}
        estimate = pick("Estimate")
        if estimate is not None and rng.random() < 0.7:
            if rng.random() < 0.8:
                body["CustomerRef"] = estimate["CustomerRef"]
            body["LinkedTxn"] = [{"TxnId": estimate["Id"], "TxnType": "Estimate"}]
        return "create", "Invoice", body, rng.random() < 0.3
    if choice < 0.38:
        return "create", "CreditMemo", {"CustomerRef": ref, "Line": _sales_lines(rng), "TxnDate": DAY}, False
    if choice < 0.41:
        return "create", "Purchase", {"PaymentType": "Cash", "AccountRef": {"value": "2"}, "TxnDate": DAY,
                                      "Line": [{"Amount": _amount(rng), "DetailType": "AccountBasedExpenseLineDetail",
                                                "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "3"}}}],
                                      **doc_number()}, False
    if choice < 0.56:
        lines = _payment_lines(rng, company, customer)
        return "create", "Payment", {"CustomerRef": ref, "Line": lines, "TotalAmt": _payment_total(rng, lines),
                                     "TxnDate": DAY}, False
    kind = rng.choice(["Estimate", "Invoice", "Invoice", "CreditMemo", "Payment", "Payment"])
    target = pick(kind)
    if target is None:
        return "create", "Customer", {"DisplayName": rng.choice(NAMES)}, False
    operation = rng.choice(["update", "update", "update", "delete"] + (["void"] if kind in ("Invoice", "Payment")
                                                                       else []))
    if operation != "update":
        return operation, kind, versioned(target), False
    if kind == "Payment":
        if rng.random() < 0.3:  # a sparse change of its amount only
            return "update", kind, {**versioned(target), "sparse": True, "TotalAmt": _payment_total(rng, [])}, False
        payer = _ref_value(target["CustomerRef"]) or customer
        lines = _payment_lines(rng, company, payer)
        return "update", kind, {**versioned(target), "CustomerRef": {"value": payer}, "Line": lines,
                                "TotalAmt": _payment_total(rng, lines), "TxnDate": DAY}, False
    if rng.random() < 0.5:  # sparse: new lines, maybe another customer, keeping its links
        changes: dict[str, Any] = {"Line": _sales_lines(rng)}
        if rng.random() < 0.3:
            changes["CustomerRef"] = ref
        return "update", kind, {**versioned(target), "sparse": True, **changes}, rng.random() < 0.3
    # a full update: whatever is left out (an invoice's estimate link, say) is gone
    return "update", kind, {**versioned(target), "CustomerRef": target["CustomerRef"], "Line": _sales_lines(rng),
                            "TxnDate": DAY, **doc_number()}, rng.random() < 0.3


def apply(company: Company, write: Write) -> tuple[str, Any]:
    operation, entity, body, allow_duplicate = write
    body = copy.deepcopy(body)
    try:
        if operation == "create":
            return "ok", company.create(entity, body, allow_duplicate)
        if operation == "update":
            return "ok", company.update(entity, body, allow_duplicate)
        if operation == "void":
            return "ok", company.void(entity, body)
        return "ok", company.delete(entity, body)
    except QboFault as fault:
        return "fault", (fault.code, fault.message, fault.detail)


def indexes(company: Company) -> tuple[Any, ...]:
    return company._linked_from, company._by_name, company._by_doc_number


def stored(state: StateFile, realm_id: str) -> dict[str, Any]:
    """What the state file holds for a company, as it holds it (before any restore re-derives anything)."""
    data = state.load()[0][realm_id]
    data["objects"] = {entity: of_entity for entity, of_entity in data["objects"].items() if of_entity}
    data["deleted"] = {entity: of_entity for entity, of_entity in data["deleted"].items() if of_entity}
    return data


def held(snapshot: dict[str, Any]) -> dict[str, Any]:
    return {**snapshot, "objects": {e: objs for e, objs in snapshot["objects"].items() if objs},
            "deleted": {e: objs for e, objs in snapshot["deleted"].items() if objs}}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_random_writes_derive_what_the_whole_company_algorithm_derives(seed: int, tmp_path_factory: Any) -> None:
    rng = random.Random(seed)
    company, reference = Company("9130111", "Scale"), ReferenceCompany("9130111", "Scale")
    state = StateFile(tmp_path_factory.mktemp("state") / "books.sqlite")
    refused = 0
    for step in range(150):
        write = random_write(rng, company)
        outcome = apply(company, write)
        assert outcome == apply(reference, write), (step, write)
        refused += outcome[0] == "fault"
        snapshot = company.snapshot()
        assert snapshot == reference.snapshot(), (step, write)
        restored = Company.restore(company.snapshot())
        assert restored.snapshot() == snapshot, (step, write)
        assert indexes(restored) == indexes(company), (step, write)
        state.save_changes(company.realm_id, company.pending_changes())
        company.mark_saved()
        assert stored(state, company.realm_id) == held(snapshot), (step, write)
    assert 0 < refused < 150  # the writes were neither all refused nor all accepted


# -- the state file --------------------------------------------------------------------------------------
def _proposal(sandbox: QboSandbox, company: Company, name: str) -> dict[str, dict[str, Any]]:
    def write(entity: str, body: dict[str, Any], operation: str | None = None) -> dict[str, Any]:
        result = sandbox.write(company, entity, body, operation, None)
        sandbox.saved(company.realm_id)
        return result

    line = {"Amount": "120.00", "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {"ItemRef": {"value": "5"}}}
    customer = write("Customer", {"DisplayName": name})
    ref = {"value": customer["Id"]}
    estimate = write("Estimate", {"CustomerRef": ref, "Line": [line]})
    invoice = write("Invoice", {"CustomerRef": ref, "Line": [line],
                                "LinkedTxn": [{"TxnId": estimate["Id"], "TxnType": "Estimate"}]})
    payment = write("Payment", {"CustomerRef": ref, "TotalAmt": "100.00",
                                "Line": [{"Amount": "100.00", "LinkedTxn": [{"TxnId": invoice["Id"],
                                                                              "TxnType": "Invoice"}]}]})
    return {"customer": customer, "estimate": estimate, "invoice": invoice, "payment": payment}


def test_a_restarted_sandbox_holds_what_was_written_updated_voided_and_deleted(tmp_path: Path) -> None:
    path = tmp_path / "books.sqlite"
    first = QboSandbox(state_file=path)
    company = first.company("9130222")
    kept, voided, gone = (_proposal(first, company, name) for name in ("Kept", "Voided", "Gone"))

    def write(entity: str, body: dict[str, Any], operation: str | None = None) -> None:
        first.write(company, entity, body, operation, None)
        first.saved(company.realm_id)

    def version(entity: str, object_id: str) -> dict[str, str]:
        return {"Id": object_id, "SyncToken": company.objects[entity][object_id]["SyncToken"]}

    write("Customer", {**version("Customer", kept["customer"]["Id"]), "sparse": True, "DisplayName": "Kept Co"})
    write("Payment", {**version("Payment", kept["payment"]["Id"]), "sparse": True, "TotalAmt": "150.00"})
    write("Invoice", version("Invoice", voided["invoice"]["Id"]), "void")  # strips the payment's line
    write("Payment", version("Payment", gone["payment"]["Id"]), "delete")
    write("Invoice", version("Invoice", gone["invoice"]["Id"]), "delete")
    write("Estimate", version("Estimate", gone["estimate"]["Id"]), "delete")
    company.remember_response("request-1", 200, {"Customer": kept["customer"]})
    first.saved(company.realm_id)
    assert company.objects["Customer"][kept["customer"]["Id"]]["Balance"] == Decimal("-30.00")
    assert company.objects["Payment"][voided["payment"]["Id"]]["Line"] == []

    second = QboSandbox(state_file=path)
    again = second.company("9130222")
    assert again.snapshot() == company.snapshot()
    assert again.changed_since("Invoice", "2000-01-01T00:00:00+00:00") == \
        company.changed_since("Invoice", "2000-01-01T00:00:00+00:00")
    # It carries on where the first left off: the next ids, names still taken, balances still derived.
    assert second.write(again, "Customer", {"DisplayName": "Next"}, None, None)["Id"] == \
        first.write(company, "Customer", {"DisplayName": "Next"}, None, None)["Id"]
    with pytest.raises(QboFault, match="Duplicate Name"):
        second.write(again, "Vendor", {"DisplayName": "kept co"}, None, None)
    paid = {"CustomerRef": {"value": kept["customer"]["Id"]}, "TotalAmt": "20.00",
            "Line": [{"Amount": "20.00", "LinkedTxn": [{"TxnId": kept["invoice"]["Id"], "TxnType": "Invoice"}]}]}
    assert second.write(again, "Payment", paid, None, None) == first.write(company, "Payment", paid, None, None)
    assert again.snapshot() == company.snapshot()


def test_a_write_saves_only_what_it_changed(tmp_path: Path) -> None:
    sandbox = QboSandbox(state_file=tmp_path / "books.sqlite")
    company = sandbox.company("9130333")
    first = _proposal(sandbox, company, "First")
    second = _proposal(sandbox, company, "Second")
    ref = {"value": second["customer"]["Id"]}
    sandbox.write(company, "Payment", {"CustomerRef": ref, "TotalAmt": "20.00",
                                       "Line": [{"Amount": "20.00", "LinkedTxn": [{"TxnId": second["invoice"]["Id"],
                                                                                  "TxnType": "Invoice"}]}]},
                  None, None)
    payment = str(company.settings()["next_id"] - 1)
    assert set(company.pending_changes().objects) == {("Payment", payment), ("Invoice", second["invoice"]["Id"]),
                                                      ("Customer", second["customer"]["Id"])}
    sandbox.saved(company.realm_id)
    # An update that changes no derived value saves the object alone.
    sandbox.write(company, "Customer", {"Id": first["customer"]["Id"], "SyncToken": "0", "sparse": True,
                                        "Notes": "called"}, None, None)
    assert set(company.pending_changes().objects) == {("Customer", first["customer"]["Id"])}


def test_a_state_file_of_the_single_row_format_is_converted(tmp_path: Path) -> None:
    path = tmp_path / "books.sqlite"
    company = Company("9130444", "Old format")
    customer = company.create("Customer", {"DisplayName": "Old"})
    invoice = company.create("Invoice", {"CustomerRef": {"value": customer["Id"]},
                                         "Line": [{"Amount": "5.00", "DetailType": "SalesItemLineDetail",
                                                   "SalesItemLineDetail": {}}]})
    company.delete("Invoice", invoice)
    company.remember_response("request-1", 200, {"Customer": customer})
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE company (realm_id TEXT PRIMARY KEY, data TEXT NOT NULL)")
        db.execute("CREATE TABLE tokens (id INTEGER PRIMARY KEY CHECK (id = 1), data TEXT)")
        db.execute("INSERT INTO company VALUES (?, ?)", (company.realm_id, dumps(company.snapshot())))
    db.close()

    sandbox = QboSandbox(state_file=path)
    assert sandbox.companies[company.realm_id].snapshot() == company.snapshot()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'company'").fetchall() == []
    db.close()
    assert QboSandbox(state_file=path).companies[company.realm_id].snapshot() == company.snapshot()
