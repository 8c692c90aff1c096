"""The QuickBooks activities through the real python-quickbooks client, over HTTP, against the QBO sandbox."""

import base64
import http.client
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import urlsplit

import pytest
from quickbooks.objects.customer import Customer
from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail
from quickbooks.objects.estimate import Estimate
from sqlalchemy import Engine, text
from sqlmodel import Session, col, delete, select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.qbo_client import QboConnector, qbo_json
from activities.qbo_limits import RealmBusy, RealmLimiter, RealmLimits
from activities.quickbooks import QuickBooksActivities, qbo_string, ref
from config.settings import Settings
from models.audit import QboAuditLog
from models.ledger import QboObjectMap
from models.proposals import (
    EnsureCustomerInput,
    EnsureEstimateInput,
    InvoiceFromEstimateInput,
    RecordPaymentInput,
)
from models.qbo_connection import QboConnection
from models.qbo_limits import QboRealmCall
from sandbox.qbo.admin import dump_company, expire_access_tokens, forget_request_ids, inject_faults, list_objects
from tests import factories
from tests.qbo_turns import call_in_turn, with_retries

ACCOUNT = "acme-austin"


@pytest.fixture
def activities(settings: Settings, engine: Engine) -> QuickBooksActivities:
    return QuickBooksActivities(QboConnector(settings, engine), engine)


def run(fn, arg):  # type: ignore[no-untyped-def]
    return ActivityEnvironment().run(fn, arg)


def audit_rows(engine: Engine, realm_id: str) -> list[QboAuditLog]:
    with Session(engine) as session:
        return list(session.exec(select(QboAuditLog).where(QboAuditLog.realm_id == realm_id)))


def customer_input(realm_id: str, **kwargs: str) -> EnsureCustomerInput:
    return EnsureCustomerInput(account_id=ACCOUNT, realm_id=realm_id, contact=factories.contact(**kwargs))


def test_customer_is_created_once(activities: QuickBooksActivities, settings: Settings, engine: Engine,
                                  realm_id: str) -> None:
    first = run(activities.ensure_customer, customer_input(realm_id))
    second = run(activities.ensure_customer, customer_input(realm_id))

    customers = list_objects(settings.qbo_api_url, realm_id, "Customer")
    assert [c["Id"] for c in customers] == [first]
    assert second == first
    assert customers[0]["DisplayName"] == "Dana Whitfield"
    assert customers[0]["PrimaryEmailAddr"]["Address"] == "dana@example.com"
    writes = audit_rows(engine, realm_id)
    assert [(w.entity, w.operation, w.status, w.qbo_id) for w in writes] == [("Customer", "create", "ok", first)]
    assert '"DisplayName": "Dana Whitfield"' in writes[0].body


def test_existing_customer_of_the_same_name_is_reused(activities: QuickBooksActivities, settings: Settings,
                                                      engine: Engine, realm_id: str) -> None:
    existing = run(activities.ensure_customer, customer_input(realm_id, contact_id="C-other", first="dana",
                                                              last="WHITFIELD"))
    reused = run(activities.ensure_customer, customer_input(realm_id))

    assert reused == existing
    assert len(list_objects(settings.qbo_api_url, realm_id, "Customer")) == 1


def test_name_taken_by_a_vendor_gets_a_distinct_customer(activities: QuickBooksActivities, settings: Settings,
                                                         realm_id: str) -> None:
    """DisplayName is unique across customers, vendors and employees: QBO's 6240 names a vendor's id, which
    must never be used as the customer."""
    connector = activities.qbo
    from quickbooks.objects.vendor import Vendor

    vendor = Vendor()
    vendor.DisplayName = "Dana Whitfield"
    vendor_id = str(connector.call(realm_id, lambda qb: vendor.save(qb=qb)).Id)

    customer_id = run(activities.ensure_customer, customer_input(realm_id))

    customers = list_objects(settings.qbo_api_url, realm_id, "Customer")
    assert customer_id != vendor_id
    assert [c["Id"] for c in customers] == [customer_id]
    assert customers[0]["DisplayName"] == "Dana Whitfield (C-1)"


def test_customer_written_but_not_recorded_is_found_not_duplicated(
    activities: QuickBooksActivities, settings: Settings, engine: Engine, realm_id: str
) -> None:
    """A crash between the QBO write and the ledger record: the retry finds the customer in QBO."""
    first = run(activities.ensure_customer, customer_input(realm_id))
    with Session(engine) as session:
        session.exec(delete(QboObjectMap))  # type: ignore[call-overload]
        session.commit()

    again = run(activities.ensure_customer, customer_input(realm_id))

    assert again == first
    assert len(list_objects(settings.qbo_api_url, realm_id, "Customer")) == 1


def test_estimate_has_the_proposal_number_lines_and_exact_total(
    activities: QuickBooksActivities, settings: Settings, engine: Engine, realm_id: str
) -> None:
    customer_id = run(activities.ensure_customer, customer_input(realm_id))
    proposal = factories.proposal()
    estimate_input = EnsureEstimateInput(account_id=ACCOUNT, realm_id=realm_id, customer_id=customer_id,
                                         proposal=proposal)

    estimate_id = run(activities.ensure_estimate, estimate_input)
    with Session(engine) as session:
        session.exec(delete(QboObjectMap).where(QboObjectMap.qbo_entity == "Estimate"))  # type: ignore[call-overload]
        session.commit()
    again = run(activities.ensure_estimate, estimate_input)

    estimates = list_objects(settings.qbo_api_url, realm_id, "Estimate")
    assert again == estimate_id
    assert len(estimates) == 1
    estimate = estimates[0]
    assert estimate["DocNumber"] == "1001"
    assert estimate["CustomerRef"]["value"] == customer_id
    assert Decimal(str(estimate["TotalAmt"])) == Decimal("339.00")  # 289.00 + 3 x 16.665 = 49.995 -> 50.00
    item_lines = [line for line in estimate["Line"] if line["DetailType"] == "SalesItemLineDetail"]
    assert [(line["Description"], Decimal(str(line["Amount"]))) for line in item_lines] == [
        ("Gutter cleaning", Decimal("289.00")), ("Downspout flush", Decimal("50.00"))]
    assert estimate["TxnStatus"] == "Pending"


def document_inputs(realm_id: str, customer_id: str, estimate_id: str, proposal_id: str = "P-1",
                    ) -> tuple[RecordPaymentInput, InvoiceFromEstimateInput]:
    payment = RecordPaymentInput(account_id=ACCOUNT, realm_id=realm_id, customer_id=customer_id,
                                 payment=factories.crm_payment(f"pay-{proposal_id}", "100.00"))
    invoice = InvoiceFromEstimateInput(account_id=ACCOUNT, realm_id=realm_id, customer_id=customer_id,
                                       estimate_id=estimate_id, proposal=factories.proposal(proposal_id))
    return payment, invoice


@pytest.mark.parametrize("audited_as", ["ok", "error", "sent"])
@pytest.mark.parametrize("entity", ["Estimate", "Payment", "Invoice"])
def test_a_document_written_but_not_recorded_is_found_not_duplicated(
    activities: QuickBooksActivities, settings: Settings, engine: Engine, realm_id: str, entity: str,
    audited_as: str,
) -> None:
    """A crash between the QBO write and the ledger record, found late: QBO no longer knows the requestid, but
    the audit log shows the write went out (answered, its answer lost, or the worker gone mid-call), so the
    retry looks for it in QBO and finds it."""
    customer_id = run(activities.ensure_customer, customer_input(realm_id))
    estimate = EnsureEstimateInput(account_id=ACCOUNT, realm_id=realm_id, customer_id=customer_id,
                                   proposal=factories.proposal())
    estimate_id = run(activities.ensure_estimate, estimate)
    payment, invoice = document_inputs(realm_id, customer_id, estimate_id)
    write = {"Estimate": (activities.ensure_estimate, estimate),
             "Payment": (activities.record_unapplied_payment, payment),
             "Invoice": (activities.create_invoice_from_estimate, invoice)}[entity]
    first = run(*write)
    with Session(engine) as session:
        session.exec(delete(QboObjectMap).where(QboObjectMap.qbo_entity == entity))  # type: ignore[call-overload]
        session.exec(text("UPDATE qbo_audit_log SET status = :status WHERE entity = :entity"),  # type: ignore[call-overload]
                     params={"status": audited_as, "entity": entity})
        session.commit()
    assert forget_request_ids(settings.qbo_api_url, realm_id) > 0

    again = run(*write)

    assert again == first
    assert [o["Id"] for o in list_objects(settings.qbo_api_url, realm_id, entity)] == [first]


@pytest.mark.parametrize("entity", ["Estimate", "Invoice"])
def test_a_document_made_elsewhere_with_the_proposals_number_is_taken_not_doubled(
    activities: QuickBooksActivities, settings: Settings, realm_id: str, entity: str
) -> None:
    """Made by hand (or by another tool) for the same customer: QBO refuses the number again, and the one it
    has is the proposal's. Another customer's document with the number stays the final fault it is."""
    customer_id = run(activities.ensure_customer, customer_input(realm_id))
    other_id = run(activities.ensure_customer, customer_input(realm_id, contact_id="C-2", first="Ira", last="Moss"))
    estimate_id = run(activities.ensure_estimate, EnsureEstimateInput(
        account_id=ACCOUNT, realm_id=realm_id, customer_id=customer_id, proposal=factories.proposal()))
    [item] = [i for i in list_objects(settings.qbo_api_url, realm_id, "Item") if i["Name"] == "Services"]

    def made_elsewhere(number: str, customer: str) -> str:
        line = {"Amount": "10.00", "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}}}
        body = json.dumps({"DocNumber": number, "CustomerRef": {"value": customer}, "Line": [line]})
        return str(call_in_turn(activities.qbo, realm_id, lambda qb: qb.create_object(entity, body))[entity]["Id"])

    by_hand = made_elsewhere("2001", customer_id)
    made_elsewhere("2002", other_id)
    document = {"Estimate": lambda p: (activities.ensure_estimate, EnsureEstimateInput(
                    account_id=ACCOUNT, realm_id=realm_id, customer_id=customer_id, proposal=p)),
                "Invoice": lambda p: (activities.create_invoice_from_estimate, InvoiceFromEstimateInput(
                    account_id=ACCOUNT, realm_id=realm_id, customer_id=customer_id, estimate_id=estimate_id,
                    proposal=p))}[entity]

    assert with_retries(*document(factories.proposal("P-2", "2001")), retry_on=(RealmBusy,)) == by_hand
    with pytest.raises(ApplicationError) as refused:
        with_retries(*document(factories.proposal("P-3", "2002")), retry_on=(RealmBusy,))
    assert refused.value.non_retryable and "6140" in str(refused.value)
    assert sorted(d["DocNumber"] for d in list_objects(settings.qbo_api_url, realm_id, entity)
                  if d["DocNumber"] in ("2001", "2002")) == ["2001", "2002"]


def test_a_new_proposals_estimate_payment_and_invoice_take_one_qbo_call_each(
    activities: QuickBooksActivities, settings: Settings, realm_id: str
) -> None:
    """Only we make a proposal's documents, and the audit log shows none of these was ever sent: each is
    written without looking for it first. (The first proposal of a company also makes its items.)"""
    customer_id = run(activities.ensure_customer, customer_input(realm_id))
    run(activities.ensure_estimate, EnsureEstimateInput(account_id=ACCOUNT, realm_id=realm_id,
                                                        customer_id=customer_id, proposal=factories.proposal()))

    def calls(fn, arg) -> tuple[str, int]:  # type: ignore[no-untyped-def]
        before = dump_company(settings.qbo_api_url, realm_id)["served"]
        made = run(fn, arg)
        return made, dump_company(settings.qbo_api_url, realm_id)["served"] - before

    estimate_id, estimate_calls = calls(activities.ensure_estimate, EnsureEstimateInput(
        account_id=ACCOUNT, realm_id=realm_id, customer_id=customer_id, proposal=factories.proposal("P-2", "1002")))
    payment, invoice = document_inputs(realm_id, customer_id, estimate_id, "P-2")
    _, payment_calls = calls(activities.record_unapplied_payment, payment)
    _, invoice_calls = calls(activities.create_invoice_from_estimate, invoice)

    assert (estimate_calls, payment_calls, invoice_calls) == (1, 1, 1)
    assert len(list_objects(settings.qbo_api_url, realm_id, "Invoice")) == 1


def test_the_audit_holds_the_body_qbo_got_and_its_answer(
    activities: QuickBooksActivities, settings: Settings, engine: Engine, realm_id: str
) -> None:
    """Each write is encoded once, compactly, for the audit and the request alike: what QBO stored is what the
    audit says was sent, amounts exact to the cent, and the answer is QBO's object."""
    customer_id = run(activities.ensure_customer, customer_input(realm_id))
    estimate_id = run(activities.ensure_estimate, EnsureEstimateInput(
        account_id=ACCOUNT, realm_id=realm_id, customer_id=customer_id, proposal=factories.proposal()))

    [row] = [r for r in audit_rows(engine, realm_id) if r.entity == "Estimate"]
    sent, answer = json.loads(row.body), json.loads(row.response or "")
    [stored] = list_objects(settings.qbo_api_url, realm_id, "Estimate")
    assert (row.status, row.operation, row.qbo_id, answer["Id"]) == ("ok", "create", estimate_id, estimate_id)
    assert sent["DocNumber"] == stored["DocNumber"] == answer["DocNumber"] == "1001"
    assert [(line["Description"], line["Amount"]) for line in sent["Line"]] == [
        ("Gutter cleaning", "289.00"), ("Downspout flush", "50.00")]  # Decimals as strings: exact
    assert Decimal(str(answer["TotalAmt"])) == Decimal(str(stored["TotalAmt"])) == Decimal("339.00")
    assert "\n" not in row.body


def test_a_write_the_company_limits_hold_back_leaves_no_audit_row(settings: Settings, engine: Engine,
                                                                   realm_id: str) -> None:
    """Refused by the limiter, the write never reached QBO, so the audit does not list it (under load such rows
    buried the real errors); the activity's retry writes it, once."""
    full = QboConnector(settings, engine, RealmLimiter(engine, RealmLimits(in_flight=0)))
    customer = Customer()
    customer.DisplayName = "Held Back"
    with pytest.raises(RealmBusy):
        full.audited_save(realm_id, customer, "held-back-1")
    assert audit_rows(engine, realm_id) == []

    QboConnector(settings, engine).audited_save(realm_id, customer, "held-back-1")
    assert [(r.status, r.operation) for r in audit_rows(engine, realm_id)] == [("ok", "create")]
    assert [c["DisplayName"] for c in list_objects(settings.qbo_api_url, realm_id, "Customer")] == ["Held Back"]


class AdmitsOnce(RealmLimiter):
    """The company's limits as they stand after one call: the next is held back."""

    admitted = 0

    @contextmanager
    def slot(self, realm_id: str) -> Iterator[None]:
        if self.admitted:
            raise RealmBusy(realm_id, "per-second", timedelta(seconds=1))
        self.admitted += 1
        with super().slot(realm_id):
            yield


def test_a_write_held_back_after_qbo_got_it_keeps_its_audit_row(settings: Settings, engine: Engine,
                                                                  realm_id: str) -> None:
    """QBO refused the token (401), and the retry with a fresh one was held back: QBO did get a request, so
    the audit keeps it, as an error."""
    first, second = Customer(), Customer()
    first.DisplayName, second.DisplayName = "Token Issued", "Sent Once"
    QboConnector(settings, engine).audited_save(realm_id, first, "token-issued-1")
    assert expire_access_tokens(settings.qbo_api_url, realm_id) == 1
    with pytest.raises(RealmBusy):
        QboConnector(settings, engine, AdmitsOnce(engine)).audited_save(realm_id, second, "sent-once-1")
    assert [(r.status, r.request_id) for r in audit_rows(engine, realm_id)] == [("ok", "token-issued-1"),
                                                                               ("error", "sent-once-1")]
    assert [c["DisplayName"] for c in list_objects(settings.qbo_api_url, realm_id, "Customer")] == ["Token Issued"]


def test_qbo_json_is_python_quickbooks_json_without_the_indentation() -> None:
    estimate = Estimate()
    estimate.DocNumber, estimate.CustomerRef = "1001", ref("7", "Customer")
    line = SalesItemLine()
    line.Amount, line.SalesItemLineDetail = Decimal("16.665"), SalesItemLineDetail()
    line.SalesItemLineDetail.Qty = Decimal(3)
    estimate.Line = [line]
    assert json.loads(qbo_json(estimate)) == json.loads(estimate.to_json())
    assert json.loads(qbo_json(estimate))["Line"][0]["Amount"] == "16.665"


def test_estimate_for_unknown_customer_is_a_final_error(activities: QuickBooksActivities, realm_id: str) -> None:
    bad = EnsureEstimateInput(account_id=ACCOUNT, realm_id=realm_id, customer_id="999999",
                              proposal=factories.proposal())
    with pytest.raises(ApplicationError) as raised:
        run(activities.ensure_estimate, bad)
    assert raised.value.non_retryable
    assert raised.value.type == "QboValidationError"
    assert "2500" in str(raised.value)


def test_qbo_outage_is_a_retryable_error(activities: QuickBooksActivities, settings: Settings,
                                         realm_id: str) -> None:
    inject_faults(settings.qbo_api_url, realm_id, "500")
    with pytest.raises(ApplicationError) as raised:
        run(activities.ensure_customer, customer_input(realm_id))
    assert not raised.value.non_retryable
    assert run(activities.ensure_customer, customer_input(realm_id))  # QBO is back: the retry works


def test_throttled_request_waits_a_minute_before_retrying(activities: QuickBooksActivities, settings: Settings,
                                                          realm_id: str) -> None:
    inject_faults(settings.qbo_api_url, realm_id, "429")
    with pytest.raises(ApplicationError) as raised:
        run(activities.ensure_customer, customer_input(realm_id))
    assert raised.value.type == "QboThrottled"
    assert not raised.value.non_retryable
    assert raised.value.next_retry_delay == timedelta(seconds=60)


@pytest.mark.parametrize("qbo", ["refusing connections", "never answering"])
def test_qbo_out_of_reach_is_a_retryable_error_that_holds_no_slot(settings: Settings, engine: Engine,
                                                                  realm_id: str, qbo: str) -> None:
    """A refused connection and an answer that never comes (our HTTP timeout ends the wait) are outages: the
    activity is retried, nothing is made, and the company's limiter is not left counting the call in flight."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        if qbo == "never answering":
            server.listen(8)  # the kernel accepts; nobody reads or answers
        away = settings.model_copy(update={"qbo_api_url": f"http://127.0.0.1:{server.getsockname()[1]}/v3",
                                           "qbo_http_timeout_seconds": 0.5})
        with pytest.raises(ApplicationError) as raised:
            run(QuickBooksActivities(QboConnector(away, engine), engine).ensure_customer, customer_input(realm_id))
    assert raised.value.type == "QboUnreachable" and not raised.value.non_retryable
    with Session(engine) as session:
        assert session.exec(select(QboRealmCall).where(QboRealmCall.realm_id == realm_id,
                                                       col(QboRealmCall.finished_at).is_(None))).all() == []
    assert list_objects(settings.qbo_api_url, realm_id, "Customer") == []


class _ForwardingProxy(BaseHTTPRequestHandler):
    """A plain-HTTP forward proxy that remembers the URL of every request it carried and the credentials it
    was shown."""

    carried: ClassVar[list[str]] = []
    credentials: ClassVar[list[str | None]] = []

    def _forward(self) -> None:
        self.carried.append(self.path)
        self.credentials.append(self.headers.get("Proxy-Authorization"))
        target = urlsplit(self.path)  # a proxy is sent the absolute URL
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        upstream = http.client.HTTPConnection(target.netloc, timeout=10)
        upstream.request(self.command, self.path.removeprefix(f"{target.scheme}://{target.netloc}"), body=body,
                         headers={k: v for k, v in self.headers.items() if k.lower() != "proxy-connection"})
        answer = upstream.getresponse()
        content = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_GET = do_POST = _forward

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize("exempt", [False, True])
def test_qbo_calls_go_through_the_proxy_the_environment_names_unless_qbo_is_exempt(
        settings: Settings, engine: Engine, realm_id: str, monkeypatch: pytest.MonkeyPatch, exempt: bool) -> None:
    """The transport reads the environment once, not on every call: it must still read it, credentials
    included."""
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _ForwardingProxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    _ForwardingProxy.carried, _ForwardingProxy.credentials = [], []
    try:
        for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("http_proxy", f"http://ledger:s%40cret@127.0.0.1:{proxy.server_address[1]}")
        if exempt:
            monkeypatch.setenv("no_proxy", "127.0.0.1")
        activities = QuickBooksActivities(QboConnector(settings, engine), engine)
        assert run(activities.ensure_customer, customer_input(realm_id))
        assert run(activities.ensure_customer, customer_input(realm_id, contact_id="C-2", first="Robin"))
    finally:
        proxy.shutdown()
        proxy.server_close()
    api_calls = [(url, shown) for url, shown in zip(_ForwardingProxy.carried, _ForwardingProxy.credentials,
                                                      strict=True) if f"/company/{realm_id}/" in url]
    assert len(api_calls) == (0 if exempt else 4)  # each customer: looked up by name, then created
    basic = "Basic " + base64.b64encode(b"ledger:s@cret").decode()
    assert all(shown == basic for _, shown in api_calls)
    monkeypatch.delenv("http_proxy")  # the sandbox's admin client reads it too
    assert len(list_objects(settings.qbo_api_url, realm_id, "Customer")) == 2


def stored_tokens(engine: Engine, realm_id: str) -> tuple[str, str | None]:
    with Session(engine) as session:
        stored = session.get(QboConnection, realm_id)
    assert stored is not None
    return stored.refresh_token, stored.access_token


def test_access_token_qbo_rejects_is_refreshed_and_the_rotated_token_stored(
    activities: QuickBooksActivities, settings: Settings, engine: Engine, realm_id: str
) -> None:
    """The worker keeps the access token in memory; when QBO answers 401 it refreshes once and goes on."""
    run(activities.ensure_customer, customer_input(realm_id))
    old_refresh, old_access = stored_tokens(engine, realm_id)
    assert old_access and expire_access_tokens(settings.qbo_api_url, realm_id) == 1

    second = run(activities.ensure_customer, customer_input(realm_id, contact_id="C-2", first="Lee", last="Park"))

    new_refresh, new_access = stored_tokens(engine, realm_id)
    assert new_refresh != old_refresh and new_access != old_access
    assert [c["Id"] for c in list_objects(settings.qbo_api_url, realm_id, "Customer")
            if c["DisplayName"] == "Lee Park"] == [second]


def test_access_token_past_its_expiry_is_refreshed_before_the_call(
    activities: QuickBooksActivities, settings: Settings, engine: Engine, realm_id: str
) -> None:
    """A worker starting with a stored token about to expire refreshes it first rather than let QBO refuse it."""
    run(activities.ensure_customer, customer_input(realm_id))
    with Session(engine) as session:
        before = session.get(QboConnection, realm_id)
        assert before is not None and before.access_token
        before.access_token_expires_at = datetime.now(UTC) - timedelta(minutes=1)
        session.add(before)
        session.commit()
        old_refresh, old_access = before.refresh_token, before.access_token
    restarted = QuickBooksActivities(QboConnector(settings, engine), engine)

    run(restarted.ensure_customer, customer_input(realm_id, contact_id="C-2", first="Lee", last="Park"))

    new_refresh, new_access = stored_tokens(engine, realm_id)
    assert new_refresh != old_refresh and new_access != old_access


def test_a_company_disconnected_while_its_token_is_kept_is_a_final_error(
    activities: QuickBooksActivities, settings: Settings, engine: Engine, realm_id: str
) -> None:
    """Once QBO refuses the kept token, the worker looks for the connection again and finds none."""
    run(activities.ensure_customer, customer_input(realm_id))
    with Session(engine) as session:
        session.exec(delete(QboConnection).where(QboConnection.realm_id == realm_id))  # type: ignore[call-overload]
        session.commit()
    expire_access_tokens(settings.qbo_api_url, realm_id)

    with pytest.raises(ApplicationError) as raised:
        run(activities.ensure_customer, customer_input(realm_id, contact_id="C-2", first="Lee", last="Park"))
    assert raised.value.type == "QboNotConnected" and raised.value.non_retryable
    assert [c["DisplayName"] for c in list_objects(settings.qbo_api_url, realm_id, "Customer")] == ["Dana Whitfield"]


def test_tokens_are_encrypted_at_rest(activities: QuickBooksActivities, engine: Engine, realm_id: str) -> None:
    run(activities.ensure_customer, customer_input(realm_id))
    with Session(engine) as session:
        connection = session.get(QboConnection, realm_id)
        raw = session.exec(text("SELECT access_token, refresh_token FROM qbo_connection WHERE realm_id = :r"),
                           params={"r": realm_id}).one()  # type: ignore[call-overload]
    assert connection is not None
    assert connection.refresh_token not in raw[1] and connection.access_token not in raw[0]
    assert not raw[1].startswith("RT-")


def test_query_strings_escape_quotes() -> None:
    assert qbo_string("O'Brien") == "'O\\'Brien'"


def test_the_map_is_per_company(activities: QuickBooksActivities, settings: Settings, engine: Engine,
                                realm_id: str) -> None:
    """A franchisee reconnected to another QBO company gets its customer created there too."""
    from models.qbo_connection import save_connection
    from sandbox.qbo.admin import connect_company

    other_realm = realm_id + "9"
    save_connection(engine, other_realm, connect_company(settings.qbo_api_url, other_realm))

    run(activities.ensure_customer, customer_input(realm_id))
    run(activities.ensure_customer, customer_input(other_realm))

    assert len(list_objects(settings.qbo_api_url, other_realm, "Customer")) == 1
