"""The QBO contract (../shared/specs/quickbooks-online.md): python-quickbooks, unchanged, drives the sandbox
over HTTP through every rule the spec names. The sandbox is a test double of QBO; these tests are what keep
it honest."""

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from quickbooks import QuickBooks
from quickbooks.exceptions import (
    AuthorizationException,
    ObjectNotFoundException,
    QuickbooksException,
    ValidationException,
)
from quickbooks.objects.account import Account
from quickbooks.objects.base import Ref
from quickbooks.objects.creditmemo import CreditMemo
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

from activities.qbo_client import QboConnector
from config.settings import Settings
from sandbox.qbo.admin import dump_company, forget_request_ids, sandbox_root
from sandbox.qbo.app import QboSandbox, create_app
from sandbox.qbo.throttle import Limits
from sandbox.qbo.webhooks import WebhookSender
from sandbox.serve import ServerThread


@pytest.fixture(scope="module")
def qbo_sandbox() -> Iterator[ServerThread]:
    """These tests call python-quickbooks directly, faster than 10 calls a second: the adapter's limiter
    keeps production under that limit, and test_over_the_rate_limit_is_the_xml_429 checks the limit itself."""
    with ServerThread(create_app(QboSandbox(limits=Limits(per_second=1000)))) as server:
        yield server


@pytest.fixture
def qb(settings: Settings, engine: Engine, realm_id: str) -> QuickBooks:
    return QboConnector(settings, engine).client(realm_id)


def ref(value: str, kind: str = "") -> Ref:
    r = Ref()
    r.value, r.type = value, kind
    return r


def customer(qb: QuickBooks, name: str) -> Customer:
    c = Customer()
    c.DisplayName = name
    return c.save(qb=qb)


def sales_line(amount: str, qty: str | None = None, price: str | None = None, item: str = "") -> SalesItemLine:
    line = SalesItemLine()
    line.Amount = Decimal(amount)
    line.SalesItemLineDetail = SalesItemLineDetail()
    if qty is not None and price is not None:
        line.SalesItemLineDetail.Qty = Decimal(qty)
        line.SalesItemLineDetail.UnitPrice = Decimal(price)
    if item:
        line.SalesItemLineDetail.ItemRef = ref(item)
    return line


def sale(kind: type, qb: QuickBooks, customer_id: str, *amounts: str, **fields: Any) -> Any:
    txn = kind()
    txn.CustomerRef = ref(customer_id)
    txn.Line = [sales_line(a) for a in amounts]
    for key, value in fields.items():
        setattr(txn, key, value)
    return txn.save(qb=qb)


def payment(qb: QuickBooks, customer_id: str, total: str, *applied: tuple[str, str, str]) -> Payment:
    p = Payment()
    p.CustomerRef = ref(customer_id)
    p.TotalAmt = Decimal(total)
    p.Line = [payment_line(amount, txn_id, txn_type) for amount, txn_id, txn_type in applied]
    return p.save(qb=qb)


def payment_line(amount: str, txn_id: str, txn_type: str = "Invoice") -> PaymentLine:
    line = PaymentLine()
    line.Amount = Decimal(amount)
    line.LinkedTxn = [{"TxnId": txn_id, "TxnType": txn_type}]
    return line


def fault_code(exc: QuickbooksException) -> int:
    return int(exc.error_code)


# -- objects, SyncToken, updates -----------------------------------------------------------------------
def test_create_returns_id_synctoken_and_metadata_as_qbo_does(qb: QuickBooks) -> None:
    saved = customer(qb, "Acme Plumbing")
    assert isinstance(saved.Id, str) and saved.SyncToken == "0"
    assert saved.MetaData["CreateTime"] == saved.MetaData["LastUpdatedTime"]
    assert Customer.get(saved.Id, qb=qb).DisplayName == "Acme Plumbing"


def test_saving_the_same_object_twice_is_a_stale_object_error(qb: QuickBooks) -> None:
    original = customer(qb, "Stale Co")
    original.CompanyName = "first"
    updated = original.save(qb=qb)  # python-quickbooks does not move `original`'s SyncToken on
    assert updated.SyncToken == "1"
    original.CompanyName = "second"
    with pytest.raises(QuickbooksException) as raised:
        original.save(qb=qb)
    assert fault_code(raised.value) == 5010
    assert "Stale Object Error" in raised.value.message


def test_full_update_nulls_omitted_fields_sparse_update_keeps_them(qb: QuickBooks) -> None:
    c = Customer()
    c.DisplayName, c.CompanyName, c.Notes = "Sparse Co", "Sparse Inc", "keep me"
    saved = c.save(qb=qb)
    qb.update_object("Customer", f'{{"Id": "{saved.Id}", "SyncToken": "0", "sparse": true, "Notes": "changed"}}')
    after_sparse = Customer.get(saved.Id, qb=qb)
    assert (after_sparse.CompanyName, after_sparse.Notes, after_sparse.SyncToken) == ("Sparse Inc", "changed", "1")
    qb.update_object("Customer", f'{{"Id": "{saved.Id}", "SyncToken": "1", "DisplayName": "Sparse Co"}}')
    after_full = qb.get_single_object("Customer", saved.Id)["Customer"]
    assert "CompanyName" not in after_full and "Notes" not in after_full


def test_read_only_fields_sent_by_the_client_are_ignored(qb: QuickBooks) -> None:
    c = customer(qb, "Balance Co")
    estimate = sale(Estimate, qb, c.Id, "100.00", TotalAmt=Decimal("1.00"))
    assert estimate.TotalAmt == Decimal("100.00")


def test_unknown_property_is_2010(qb: QuickBooks) -> None:
    with pytest.raises(ValidationException) as raised:
        qb.create_object("Customer", '{"DisplayName": "X", "Nickname": "x"}')
    assert fault_code(raised.value) == 2010 and "Nickname" in raised.value.detail


def test_missing_required_property_is_2020_and_bad_reference_is_2500(qb: QuickBooks) -> None:
    item = Item()
    item.Name, item.Type = "Consulting", "Service"
    with pytest.raises(ValidationException) as raised:
        item.save(qb=qb)
    assert fault_code(raised.value) == 2020
    with pytest.raises(ValidationException) as raised:
        sale(Estimate, qb, "424242", "10.00")
    assert fault_code(raised.value) == 2500


def test_object_not_found_is_610(qb: QuickBooks) -> None:
    with pytest.raises(ObjectNotFoundException):
        Customer.get("987654", qb=qb)


def test_qty_times_unit_price_must_equal_amount(qb: QuickBooks) -> None:
    c = customer(qb, "Math Co")
    estimate = Estimate()
    estimate.CustomerRef = ref(c.Id)
    estimate.Line = [sales_line("10.00", qty="3", price="3.00")]
    with pytest.raises(QuickbooksException) as raised:
        estimate.save(qb=qb)
    assert fault_code(raised.value) == 6070
    estimate.Line = [sales_line("9.00", qty="3", price="3.00")]
    assert estimate.save(qb=qb).TotalAmt == Decimal("9.00")


# -- names ------------------------------------------------------------------------------------------
def test_display_names_are_unique_across_customers_vendors_case_insensitively(qb: QuickBooks) -> None:
    v = Vendor()
    v.DisplayName = "Franchisor LLC"
    vendor = v.save(qb=qb)
    with pytest.raises(QuickbooksException) as raised:
        customer(qb, "FRANCHISOR llc")
    assert fault_code(raised.value) == 6240
    assert f"Id={vendor.Id}" in raised.value.detail


def test_inactive_names_hide_from_queries_unless_asked(qb: QuickBooks) -> None:
    c = Customer()
    c.DisplayName, c.Active = "Sleeping Co", False
    c.save(qb=qb)
    assert Customer.filter(DisplayName="Sleeping Co", qb=qb) == []
    found = Customer.where("DisplayName = 'Sleeping Co' AND Active IN (true, false)", qb=qb)
    assert [x.DisplayName for x in found] == ["Sleeping Co"]


def test_deleting_a_name_list_object_is_refused(qb: QuickBooks) -> None:
    c = customer(qb, "Forever Co")
    with pytest.raises(QuickbooksException) as raised:
        qb.delete_object("Customer", f'{{"Id": "{c.Id}", "SyncToken": "0"}}')
    assert fault_code(raised.value) == 6000


# -- queries as python-quickbooks sends them -------------------------------------------------------
def test_query_forms_python_quickbooks_sends(qb: QuickBooks) -> None:
    for name in ("Query A", "query b", "O'Brien"):
        customer(qb, name)
    assert [c.DisplayName for c in Customer.filter(DisplayName="O'Brien", qb=qb)] == ["O'Brien"]
    assert len(Customer.choose(["Query A", "QUERY B"], field="DisplayName", qb=qb)) == 2
    assert Customer.count(qb=qb) == 3
    assert Customer.count("DisplayName LIKE 'query%'", qb=qb) == 2
    page = Customer.all(order_by="DisplayName DESC", start_position=2, max_results=1, qb=qb)
    assert [c.DisplayName for c in page] == ["Query A"]  # query b, Query A, O'Brien: case-insensitive
    assert next(c.DisplayName for c in Customer.where("", order_by="DisplayName", qb=qb)) == "O'Brien"
    assert [i.Name for i in Item.all(qb=qb)] == ["Services"]  # sent as SELECT *, Sku FROM Item


def test_query_parse_error_is_4000(qb: QuickBooks) -> None:
    with pytest.raises(ValidationException) as raised:
        Customer.query("SELECT * FROM Customer WHERE DisplayName = 'a' OR Id = '1'", qb=qb)
    assert fault_code(raised.value) == 4000


def test_ref_fields_filter_on_their_value_and_dotted_fields_work(qb: QuickBooks) -> None:
    a, b = customer(qb, "Ref A"), customer(qb, "Ref B")
    sale(Invoice, qb, a.Id, "10.00")
    sale(Invoice, qb, b.Id, "20.00")
    found = Invoice.where(f"CustomerRef = '{b.Id}'", qb=qb)
    assert [i.TotalAmt for i in found] == [Decimal("20.00")]
    since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat(timespec="seconds")
    assert Invoice.count(f"MetaData.LastUpdatedTime > '{since}'", qb=qb) == 2


# -- links and balances ------------------------------------------------------------------------------
def test_invoice_from_estimate_links_both_ways_and_closes_the_estimate(qb: QuickBooks) -> None:
    c = customer(qb, "Link Co")
    estimate = sale(Estimate, qb, c.Id, "150.00", "50.00", DocNumber="E-7")
    invoice = sale(Invoice, qb, c.Id, "150.00", "50.00", DocNumber="E-7",
                   LinkedTxn=[{"TxnId": estimate.Id, "TxnType": "Estimate"}])
    estimate = Estimate.get(estimate.Id, qb=qb)
    assert estimate.TxnStatus == "Closed"
    assert [(link.TxnId, link.TxnType) for link in estimate.LinkedTxn] == [(invoice.Id, "Invoice")]
    assert [(link.TxnId, link.TxnType) for link in invoice.LinkedTxn] == [(estimate.Id, "Estimate")]
    assert invoice.Balance == Decimal("200.00")
    assert [line.DetailType for line in invoice.Line][-1] == "SubTotalLineDetail"


def test_unapplied_payment_applied_later_by_resending_all_lines(qb: QuickBooks) -> None:
    c = customer(qb, "Pay Co")
    first = sale(Invoice, qb, c.Id, "100.00")
    second = sale(Invoice, qb, c.Id, "80.00")
    unapplied = payment(qb, c.Id, "150.00")
    assert unapplied.UnappliedAmt == Decimal("150.00")

    current = Payment.get(unapplied.Id, qb=qb)
    current.Line = [payment_line("100.00", first.Id)]
    current = current.save(qb=qb)
    current = Payment.get(current.Id, qb=qb)
    current.Line = [*current.Line, payment_line("50.00", second.Id)]  # all lines, plus the new one
    applied = current.save(qb=qb)

    assert applied.SyncToken == "2" and applied.TotalAmt == Decimal("150.00")
    assert applied.UnappliedAmt == Decimal("0.00")
    assert Invoice.get(first.Id, qb=qb).Balance == Decimal("0.00")
    second_now = Invoice.get(second.Id, qb=qb)
    assert second_now.Balance == Decimal("30.00")
    assert [(link.TxnId, link.TxnType) for link in second_now.LinkedTxn] == [(applied.Id, "Payment")]
    assert Customer.get(c.Id, qb=qb).Balance == Decimal("30.00")


def test_payment_applied_by_doc_number_instead_of_id_is_not_found(qb: QuickBooks) -> None:
    c = customer(qb, "DocNum Co")
    sale(Invoice, qb, c.Id, "10.00", DocNumber="INV-555")
    with pytest.raises(ObjectNotFoundException):
        payment(qb, c.Id, "10.00", ("10.00", "INV-555", "Invoice"))


def test_overapplying_a_payment_is_refused(qb: QuickBooks) -> None:
    c = customer(qb, "Over Co")
    invoice = sale(Invoice, qb, c.Id, "10.00")
    with pytest.raises(QuickbooksException) as raised:
        payment(qb, c.Id, "20.00", ("15.00", invoice.Id, "Invoice"))
    assert fault_code(raised.value) == 6000
    with pytest.raises(QuickbooksException):
        payment(qb, c.Id, "5.00", ("10.00", invoice.Id, "Invoice"))


def test_credit_memo_applied_through_a_payment_line(qb: QuickBooks) -> None:
    c = customer(qb, "Credit Co")
    invoice = sale(Invoice, qb, c.Id, "100.00")
    memo = sale(CreditMemo, qb, c.Id, "30.00")
    p = payment(qb, c.Id, "70.00", ("100.00", invoice.Id, "Invoice"), ("30.00", memo.Id, "CreditMemo"))
    assert p.UnappliedAmt == Decimal("0.00")  # 70 - (100 - 30)
    assert Invoice.get(invoice.Id, qb=qb).Balance == Decimal("0.00")
    assert CreditMemo.get(memo.Id, qb=qb).RemainingCredit == Decimal("0.00")


def test_void_payment_restores_the_invoice_balance(qb: QuickBooks) -> None:
    c = customer(qb, "Void Co")
    invoice = sale(Invoice, qb, c.Id, "60.00")
    p = payment(qb, c.Id, "60.00", ("60.00", invoice.Id, "Invoice"))
    p.void(qb=qb)
    voided = Payment.get(p.Id, qb=qb)
    assert voided.TotalAmt == Decimal("0") and voided.PrivateNote == "Voided"
    assert Invoice.get(invoice.Id, qb=qb).Balance == Decimal("60.00")


def test_void_invoice_and_delete_rules(qb: QuickBooks) -> None:
    c = customer(qb, "Delete Co")
    invoice = sale(Invoice, qb, c.Id, "40.00")
    p = payment(qb, c.Id, "40.00", ("40.00", invoice.Id, "Invoice"))
    with pytest.raises(QuickbooksException) as raised:
        invoice.delete(qb=qb)  # payments applied
    assert fault_code(raised.value) == 6000
    invoice.void(qb=qb)
    assert Invoice.get(invoice.Id, qb=qb).Balance == Decimal("0")
    assert Payment.get(p.Id, qb=qb).UnappliedAmt == Decimal("40.00")  # the payment is now a credit
    estimate = sale(Estimate, qb, c.Id, "5.00")
    estimate.delete(qb=qb)
    with pytest.raises(ObjectNotFoundException):
        Estimate.get(estimate.Id, qb=qb)


# -- checks ---------------------------------------------------------------------------------------
def check(qb: QuickBooks, bank: str, vendor_id: str, lines: list[tuple[str, str]], doc: str = "") -> Purchase:
    purchase = Purchase()
    purchase.PaymentType = "Check"
    purchase.AccountRef = ref(bank)
    purchase.EntityRef = ref(vendor_id, "Vendor")
    purchase.DocNumber = doc or None
    for amount, account in lines:
        line = AccountBasedExpenseLine()
        line.Amount = Decimal(amount)
        line.AccountBasedExpenseLineDetail = AccountBasedExpenseLineDetail()
        line.AccountBasedExpenseLineDetail.AccountRef = ref(account)
        purchase.Line.append(line)
    return purchase


def test_check_from_a_bank_account_totals_its_lines(qb: QuickBooks) -> None:
    accounts = {a.Name: a.Id for a in Account.all(qb=qb)}
    v = Vendor()
    v.DisplayName = "Acme Franchising"
    vendor = v.save(qb=qb)
    saved = check(qb, accounts["Checking"], vendor.Id,
                  [("60.00", accounts["Royalty Expense"]), ("20.00", accounts["Advertising & Marketing"])],
                  doc="R-2026-11-21").save(qb=qb)
    assert saved.TotalAmt == Decimal("80.00") and saved.PaymentType == "Check"
    duplicate = check(qb, accounts["Checking"], vendor.Id, [("1.00", accounts["Royalty Expense"])],
                      doc="R-2026-11-21")
    with pytest.raises(QuickbooksException) as raised:
        duplicate.save(qb=qb)
    assert fault_code(raised.value) == 6140
    allowed = qb.create_object("Purchase", duplicate.to_json(), params={"include": "allowduplicatedocnum"})
    assert allowed["Purchase"]["DocNumber"] == "R-2026-11-21"
    with pytest.raises(QuickbooksException) as raised:
        check(qb, accounts["Royalty Expense"], vendor.Id, [("1.00", accounts["Royalty Expense"])]).save(qb=qb)
    assert fault_code(raised.value) == 6000


# -- idempotency, auth, throttling --------------------------------------------------------------------
def test_requestid_makes_a_write_idempotent(qb: QuickBooks, settings: Settings, realm_id: str) -> None:
    c = Customer()
    c.DisplayName = "Once Co"
    first = c.save(qb=qb, request_id="req-1")
    again = c.save(qb=qb, request_id="req-1")
    assert again.Id == first.Id
    assert Customer.count("DisplayName = 'Once Co'", qb=qb) == 1
    with pytest.raises(QuickbooksException) as raised:
        c.save(qb=qb, request_id="x" * 51)
    assert fault_code(raised.value) == 6000


def test_a_requestid_qbo_has_forgotten_writes_again(qb: QuickBooks, settings: Settings, realm_id: str) -> None:
    """QBO keeps requestids for a time it does not document: past it, a repeat is a new write."""
    first = Customer.from_json({"DisplayName": "Twice Co"}).save(qb=qb, request_id="req-forgotten")
    assert forget_request_ids(settings.qbo_api_url, realm_id) >= 1
    again = Customer.from_json({"DisplayName": "Twice Co 2"}).save(qb=qb, request_id="req-forgotten")
    assert again.Id != first.Id
    assert Customer.count("DisplayName IN ('Twice Co', 'Twice Co 2')", qb=qb) == 2


def test_bad_token_gets_the_401_shape(settings: Settings, realm_id: str) -> None:
    response = httpx.post(f"{settings.qbo_api_url}/company/{realm_id}/query", content="SELECT * FROM Customer",
                          headers={"Authorization": "Bearer nope", "Content-Type": "application/text"})
    assert response.status_code == 401
    assert response.json()["fault"]["error"][0]["code"] == "3200"
    assert response.json()["fault"]["type"] == "AUTHENTICATION"


def test_python_quickbooks_raises_authorization_exception_on_401(qb: QuickBooks) -> None:
    qb.access_token = "revoked"  # type: ignore[attr-defined]
    with pytest.raises(AuthorizationException):
        Customer.all(qb=qb)


def test_refresh_tokens_rotate_and_a_stale_one_is_invalid_grant(settings: Settings) -> None:
    root = sandbox_root(settings.qbo_api_url)
    refresh = httpx.post(f"{root}/admin/companies/9130999").json()["refresh_token"]
    first = httpx.post(f"{root}/oauth2/v1/tokens/bearer", data={"grant_type": "refresh_token",
                                                                 "refresh_token": refresh})
    assert first.status_code == 200 and first.json()["refresh_token"] != refresh
    assert first.json()["expires_in"] == 3600
    stale = httpx.post(f"{root}/oauth2/v1/tokens/bearer", data={"grant_type": "refresh_token",
                                                                 "refresh_token": refresh})
    assert stale.status_code == 400 and stale.json() == {"error": "invalid_grant"}


def test_over_the_rate_limit_is_the_xml_429() -> None:
    sandbox = QboSandbox(limits=Limits(per_second=3))
    realm = "9130777"
    token = sandbox.tokens.connect(realm)
    access = sandbox.tokens.refresh(token)["access_token"]  # type: ignore[index]
    with ServerThread(create_app(sandbox)) as server:
        statuses = [httpx.post(f"{server.url}/v3/company/{realm}/query", content="SELECT * FROM Item",
                               headers={"Authorization": f"Bearer {access}"}) for _ in range(5)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429, 429]
    assert "ThrottleExceeded" in statuses[3].text and statuses[3].headers["content-type"].startswith("application/xml")


def test_python_quickbooks_sees_a_429_as_a_non_json_error(qb: QuickBooks, settings: Settings,
                                                         realm_id: str) -> None:
    from sandbox.qbo.admin import inject_faults

    inject_faults(settings.qbo_api_url, realm_id, "429")
    with pytest.raises(QuickbooksException) as raised:
        Customer.all(qb=qb)
    assert fault_code(raised.value) == 10000 and "ThrottleExceeded" in raised.value.message


# -- batch, CDC, webhooks, state --------------------------------------------------------------------
def test_batch_items_run_independently(qb: QuickBooks) -> None:
    result = qb.batch_operation(
        '{"BatchItemRequest": ['
        '{"bId": "b1", "operation": "create", "Vendor": {"DisplayName": "Batch Vendor"}},'
        '{"bId": "b2", "operation": "create", "Vendor": {"DisplayName": "batch vendor"}},'
        '{"bId": "b3", "Query": "select * from Vendor"}]}')
    answers = {item["bId"]: item for item in result["BatchItemResponse"]}
    assert answers["b1"]["Vendor"]["DisplayName"] == "Batch Vendor"
    assert answers["b2"]["Fault"]["Error"][0]["code"] == "6240"
    assert len(answers["b3"]["QueryResponse"]["Vendor"]) == 1
    too_many = ",".join(f'{{"bId": "q{i}", "Query": "select * from Item"}}' for i in range(31))
    with pytest.raises(QuickbooksException):
        qb.batch_operation(f'{{"BatchItemRequest": [{too_many}]}}')


def test_change_data_capture_reports_changes_and_deletions(qb: QuickBooks) -> None:
    since = (datetime.now(UTC) - timedelta(seconds=2)).isoformat(timespec="seconds")
    c = customer(qb, "CDC Co")
    kept = sale(Estimate, qb, c.Id, "1.00")
    gone = sale(Estimate, qb, c.Id, "2.00")
    gone.delete(qb=qb)
    result = qb.change_data_capture("Estimate,Customer", since)
    responses = result["CDCResponse"][0]["QueryResponse"]
    estimates = {e["Id"]: e for e in responses[0]["Estimate"]}
    assert estimates[kept.Id]["TotalAmt"] == Decimal("1.00")
    assert estimates[gone.Id]["status"] == "Deleted"
    assert [x["DisplayName"] for x in responses[1]["Customer"]] == ["CDC Co"]


def test_webhooks_are_signed_cloudevents() -> None:
    received: list[tuple[bytes, str]] = []
    got = threading.Event()
    receiver = FastAPI()

    @receiver.post("/qbo-webhook")
    async def hook(request: Request) -> dict[str, str]:
        received.append((await request.body(), request.headers["intuit-signature"]))
        got.set()
        return {}

    with ServerThread(receiver) as hook_server:
        sandbox = QboSandbox(webhooks=WebhookSender(f"{hook_server.url}/qbo-webhook", "verifier-123"))
        company = sandbox.company("9130555")
        sandbox.write(company, "Customer", {"DisplayName": "Hooked"}, None, None)
        assert got.wait(10)
    body, signature = received[0]
    expected = base64.b64encode(hmac.new(b"verifier-123", body, hashlib.sha256).digest()).decode()
    assert hmac.compare_digest(signature, expected)
    assert QuickBooks().validate_webhook_signature(body.decode(), signature, "verifier-123")
    event = httpx.Response(200, content=body).json()[0]
    assert (event["type"], event["intuitaccountid"], event["specversion"]) == ("qbo.customer.created.v1",
                                                                              "9130555", "1.0")


def test_state_file_keeps_the_books_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "books.sqlite"
    first = QboSandbox(state_file=path)
    company = first.company("9130888")
    cust = first.write(company, "Customer", {"DisplayName": "Durable"}, None, None)
    first.write(company, "Invoice", {"CustomerRef": {"value": cust["Id"]},
                                     "Line": [{"Amount": "12.34", "DetailType": "SalesItemLineDetail",
                                               "SalesItemLineDetail": {}}]}, None, None)
    first.saved("9130888")
    refresh = first.tokens.connect("9130888")
    first.tokens_saved()

    second = QboSandbox(state_file=path)
    invoices = second.company("9130888").all("Invoice")
    assert [i["TotalAmt"] for i in invoices] == [Decimal("12.34")]
    assert second.tokens.refresh(refresh) is not None


def test_forgotten_requestids_stay_forgotten_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "books.sqlite"
    first = QboSandbox(state_file=path)
    first.company("9130889").remember_response("req-1", 200, {"Customer": {"Id": "1"}})
    first.saved("9130889")
    assert first.forget_request_ids("9130889") == 1

    assert QboSandbox(state_file=path).company("9130889").responses_by_request_id == {}


def test_dump_shows_what_landed(qb: QuickBooks, settings: Settings, realm_id: str) -> None:
    served = dump_company(settings.qbo_api_url, realm_id)["served"]
    customer(qb, "Visible Co")
    Customer.all(qb=qb)
    dump = dump_company(settings.qbo_api_url, realm_id)
    assert [c["DisplayName"] for c in dump["objects"]["Customer"]] == ["Visible Co"]
    assert dump["peak_in_flight"] >= 1
    assert dump["served"] - served == 2  # the write and the read; the admin surface is not QBO's API


def test_responses_are_200_with_an_intuit_tid(qb: QuickBooks, settings: Settings, realm_id: str) -> None:
    token = qb.access_token  # type: ignore[attr-defined]
    item_id = Item.all(qb=qb)[0].Id
    response = httpx.get(f"{settings.qbo_api_url}/company/{realm_id}/item/{item_id}",
                         headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
    assert response.status_code == 200 and response.headers["intuit_tid"]


def test_pages_default_to_100_and_cap_at_1000(qb: QuickBooks) -> None:
    for start in range(0, 1050, 30):  # 1050 vendors, 30 to a batch
        items = [{"bId": f"v{i}", "operation": "create", "Vendor": {"DisplayName": f"Vendor {i}"}}
                 for i in range(start, start + 30)]
        qb.batch_operation(json.dumps({"BatchItemRequest": items}))
    assert len(Vendor.where("", qb=qb)) == 100
    assert len(Vendor.where("", max_results=2000, qb=qb)) == 1000
    assert Vendor.count(qb=qb) == 1050
