"""The CRM adapter (httpx, ClientTether v2) against the CRM sandbox over HTTP."""

import uuid
from datetime import date
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import Engine

from activities.crm import CrmClient, CrmError, CrmNotFound, CrmUnavailable, crm_client_for, payment_from_row
from config.settings import Settings
from models.crm_credentials import save_crm_credentials
from sandbox.crm.admin import CrmSandboxAdmin


@pytest.fixture
def account(settings: Settings, engine: Engine) -> str:
    """A fresh sub-account of a franchisor in the CRM sandbox, its keys stored for the adapter."""
    admin = CrmSandboxAdmin(settings.crm_api_url)
    parent = admin.create_account(f"fr-{uuid.uuid4().hex[:6]}", "Franchisor")
    account_id = f"fe-{uuid.uuid4().hex[:6]}"
    created = admin.create_account(account_id, "Franchisee", parent_id=parent["account_id"], royalty_rate="0.06")
    save_crm_credentials(engine, account_id, created["access_token"], created["web_key"])
    return account_id


@pytest.fixture
def crm(settings: Settings, engine: Engine, account: str) -> CrmClient:
    return crm_client_for(settings, engine, account)


def test_contacts_created_found_read_and_updated(crm: CrmClient) -> None:
    created = crm.create_contact({"firstName": "Dana", "lastName": "Whitfield", "email": "Dana@Example.com",
                                  "phone": "5125550142"})
    assert crm.find_contact(email="dana@example.com")["client_id"] == created["client_id"]  # type: ignore[index]
    assert crm.find_contact(phone="5125550142")["client_id"] == created["client_id"]  # type: ignore[index]
    assert crm.find_contact(email="nobody@example.com") is None
    crm.update_contact(created["client_id"], {"city": "Austin"})
    assert crm.contact(created["client_id"])["city"] == "Austin"


def test_contact_list_pages_past_100(crm: CrmClient) -> None:
    for n in range(130):
        crm.create_contact({"firstName": f"Lead{n}"})
    names = [c["firstName"] for c in crm.contacts()]
    assert len(names) == 130 and len(set(names)) == 130


def test_not_found_and_refusals_are_clear(crm: CrmClient, settings: Settings) -> None:
    with pytest.raises(CrmNotFound):
        crm.contact("999999")
    with pytest.raises(CrmError) as refused:
        crm.create_contact({"email": "no-name@example.com"})
    assert refused.value.code == "CT_525"
    with CrmClient(settings.crm_api_url, "wrong-token", "wrong-key") as stranger, pytest.raises(CrmError) as bad:
        stranger.sales_cycle()
    assert bad.value.code == "CT501"


def test_accounts_see_only_their_own_records(crm: CrmClient, settings: Settings, engine: Engine) -> None:
    mine = crm.create_contact({"firstName": "Mine"})
    admin = CrmSandboxAdmin(settings.crm_api_url)
    other = admin.create_account(f"fe-{uuid.uuid4().hex[:6]}", "Other franchisee")
    with CrmClient(settings.crm_api_url, other["access_token"], other["web_key"]) as theirs:
        with pytest.raises(CrmNotFound):
            theirs.contact(mine["client_id"])
        assert list(theirs.contacts()) == []


def test_lists_notes_proposals_payments_and_steps(crm: CrmClient, settings: Settings, account: str) -> None:
    steps = {s["sales_cycle_name"]: s for s in crm.sales_cycle()}
    assert steps["Proposal Sent"]["quoted"] and steps["Job Complete"]["closed"]
    assert {s["lead_source_name"] for s in crm.lead_sources()} >= {"Angi", "Thumbtack"}
    assert crm.action_plans() and crm.users()

    contact = crm.create_contact({"firstName": "Lee", "lastName": "Park"})
    crm.create_history_note(contact["client_id"], "Called about gutters")
    assert [n["note"] for n in crm.history_notes(contact["client_id"])] == ["Called about gutters"]

    admin = CrmSandboxAdmin(settings.crm_api_url)
    proposal = admin.create_proposal(account, contact["client_id"], number="Q-77", lines=[
        {"product": "Gutter Cleaning", "description": "Front and back", "quantity": "1", "unit_price": "289.00"}])
    assert [p["proposal_id"] for p in crm.proposals(client_id=contact["client_id"])] == [proposal["proposal_id"]]
    assert list(crm.proposals(modified_since="2999-01-01T00:00:00+00:00")) == []
    read = crm.proposal(proposal["proposal_id"])
    assert read["proposal_number"] == "Q-77" and read["line_items"][0]["unit_price"] == "289.00"
    crm.record_payment(proposal["proposal_id"], Decimal("100.00"), Decimal("10.00"), "card", date(2026, 11, 20))
    [payment] = crm.proposal_payments(proposal["proposal_id"])
    assert (payment["amount"], payment["tip"], payment["payment_date"]) == ("100.00", "10.00", "2026-11-20")

    assert crm.current_step(contact["client_id"]) is None
    moved = crm.move_step(contact["client_id"], steps["Proposal Sent"]["sales_cycle_id"])
    assert moved["clients_sales_cycle"] == steps["Proposal Sent"]["sales_cycle_id"]
    assert crm.current_step(contact["client_id"])["sales_cycle_name"] == "Proposal Sent"  # type: ignore[index]


def test_a_history_note_is_updated_in_place(crm: CrmClient, settings: Settings, account: str) -> None:
    contact = crm.create_contact({"firstName": "Lee", "lastName": "Park"})
    first = crm.create_history_note(contact["client_id"], "Email to lee@example.com: Your estimate", kind="email")
    crm.create_history_note(contact["client_id"], "Called about gutters")
    updated = crm.update_history_note(first["note_id"], "Email to lee@example.com: Your estimate (opened)")
    assert (updated["note_id"], updated["type"], updated["created"]) == (first["note_id"], "email", first["created"])
    assert updated["modified"]
    notes = crm.history_notes(contact["client_id"])
    assert [n["note"] for n in notes] == ["Email to lee@example.com: Your estimate (opened)", "Called about gutters"]
    assert CrmSandboxAdmin(settings.crm_api_url).notes(account, contact["client_id"]) == notes
    with pytest.raises(CrmError) as empty:
        crm.update_history_note(first["note_id"], "")
    assert empty.value.code == "CT_525"


def test_a_note_of_another_account_is_not_found(crm: CrmClient, settings: Settings, account: str) -> None:
    contact = crm.create_contact({"firstName": "Mine"})
    note = crm.create_history_note(contact["client_id"], "Kept as written")
    other = CrmSandboxAdmin(settings.crm_api_url).create_account(f"fe-{uuid.uuid4().hex[:6]}", "Other franchisee")
    with CrmClient(settings.crm_api_url, other["access_token"], other["web_key"]) as theirs:
        with pytest.raises(CrmNotFound) as refused:
            theirs.update_history_note(note["note_id"], "Overwritten")
        assert refused.value.code == "CT_515"
    with pytest.raises(CrmNotFound):
        crm.update_history_note("999999", "No such note")
    assert [n["note"] for n in crm.history_notes(contact["client_id"])] == ["Kept as written"]


def test_phones_are_looked_up_by_their_last_10_digits(crm: CrmClient, settings: Settings, account: str) -> None:
    typed = crm.create_contact({"firstName": "Dana", "phone": "(512) 555-0142"})
    crm.create_contact({"firstName": "Sam", "phone": "+1 512.555.0199"})
    assert crm.find_contact(phone="5125550142")["client_id"] == typed["client_id"]  # type: ignore[index]
    assert crm.find_contact(phone="5125550199")["firstName"] == "Sam"  # type: ignore[index]
    assert crm.find_contact(phone="5125550143") is None
    admin = CrmSandboxAdmin(settings.crm_api_url)
    assert [c["phone"] for c in admin.contacts(account)] == ["(512) 555-0142", "+1 512.555.0199"]  # as typed
    assert {s["lead_source_name"] for s in admin.lead_sources(account)} == {"Website", "Angi", "Thumbtack", "Zapier"}


def test_transient_failures_are_retried_and_refusals_are_not() -> None:
    """Retry semantics on a scripted transport: 503s and dropped connections are retried, an answered
    refusal is not."""
    calls: list[str] = []
    script = iter([httpx.Response(503), httpx.ConnectError("refused"),
                   httpx.Response(200, json={"ResultCode": "CT_200", "data": [{"ok": 1}], "TotalRecord": 1})])

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        step = next(script)
        if isinstance(step, Exception):
            raise step
        return step

    with CrmClient("http://crm.test", "t", "k", retries=3, transport=httpx.MockTransport(handler)) as client:
        assert client.users() == [{"ok": 1}]
    assert len(calls) == 3

    refused: list[str] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        refused.append(request.url.path)
        return httpx.Response(200, json={"ResultCode": "CT520", "Message": "duplicate"})

    with CrmClient("http://crm.test", "t", "k", retries=3, transport=httpx.MockTransport(refuse)) as client, \
            pytest.raises(CrmError):
        client.create_contact({"firstName": "x"})
    assert len(refused) == 1

    with CrmClient("http://crm.test", "t", "k", retries=2,
                   transport=httpx.MockTransport(lambda r: httpx.Response(502))) as client, \
            pytest.raises(CrmUnavailable):
        client.users()


def test_a_restarted_crm_sandbox_keeps_its_records_and_ids(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Ids must never be handed out twice: the ledger maps CRM ids to QBO objects."""
    from sandbox.crm.app import create_app
    from sandbox.crm.store import CrmStore
    from sandbox.serve import ServerThread

    path = tmp_path / "crm.json"
    with ServerThread(create_app(CrmStore(path))) as first:
        admin = CrmSandboxAdmin(first.url)
        keys = admin.create_account("acme-test", "Acme Test")
        kept = admin.create_contact("acme-test", firstName="Kept")
    with ServerThread(create_app(CrmStore(path))) as second:
        admin = CrmSandboxAdmin(second.url)
        assert admin.create_account("acme-test", "Acme Test")["web_key"] == keys["web_key"]
        fresh = admin.create_contact("acme-test", firstName="Fresh")
        with CrmClient(second.url, keys["access_token"], keys["web_key"]) as crm:
            assert crm.contact(kept["client_id"])["firstName"] == "Kept"
    assert fresh["client_id"] != kept["client_id"]


def test_an_updated_note_survives_a_restart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sandbox.crm.app import create_app
    from sandbox.crm.store import CrmStore
    from sandbox.serve import ServerThread

    path = tmp_path / "crm.json"
    with ServerThread(create_app(CrmStore(path))) as first:
        keys = CrmSandboxAdmin(first.url).create_account("acme-test", "Acme Test")
        with CrmClient(first.url, keys["access_token"], keys["web_key"]) as crm:
            contact = crm.create_contact({"firstName": "Kept"})
            note = crm.create_history_note(contact["client_id"], "First draft")
            updated = crm.update_history_note(note["note_id"], "Final text")
    with ServerThread(create_app(CrmStore(path))) as second:
        assert CrmSandboxAdmin(second.url).notes("acme-test", contact["client_id"]) == [updated]


def _proposal(crm: CrmClient, settings: Settings, account: str) -> str:
    contact = crm.create_contact({"firstName": "Lee", "lastName": "Park"})
    return str(CrmSandboxAdmin(settings.crm_api_url).create_proposal(account, contact["client_id"], lines=[
        {"product": "Gutter Cleaning", "description": "Front and back", "quantity": "1",
         "unit_price": "289.00"}])["proposal_id"])


def test_a_payment_recorded_with_a_reference_is_found_and_not_recorded_twice(
        crm: CrmClient, settings: Settings, account: str) -> None:
    proposal_id = _proposal(crm, settings, account)
    crm.record_payment(proposal_id, Decimal("50.00"), Decimal(0), "card", date(2026, 11, 19))  # no reference
    recorded = crm.record_payment(proposal_id, Decimal("100.00"), Decimal("10.00"), "card", date(2026, 11, 20),
                                  reference="txn-8812", convenience_fee=Decimal("3.00"))
    assert (recorded["reference"], recorded["convenience_fee"]) == ("txn-8812", "3.00")
    found = crm.find_payment(proposal_id, "txn-8812")
    assert found is not None and found["payment_id"] == recorded["payment_id"]
    assert crm.find_payment(proposal_id, "txn-0000") is None
    again = crm.record_payment(proposal_id, Decimal("100.00"), Decimal("10.00"), "card", date(2026, 11, 20),
                               reference="txn-8812", convenience_fee=Decimal("3.00"))
    assert again["payment_id"] == recorded["payment_id"]
    rows = crm.proposal_payments(proposal_id)
    assert [p["reference"] for p in rows] == [None, "txn-8812"]
    assert [payment_from_row(p).total for p in rows] == [Decimal("50.00"), Decimal("113.00")]
    with pytest.raises(CrmError) as too_long:
        crm.record_payment(proposal_id, Decimal("1.00"), Decimal(0), "card", date(2026, 11, 20), reference="x" * 65)
    assert too_long.value.code == "CT_525"


def test_a_payment_row_without_a_reference_still_reads() -> None:
    """Rows stored before references existed, or from a CRM that leaves the field out."""
    row = {"payment_id": "1001", "amount": "20.00", "tip": "0", "payment_date": "2026-11-20", "method": "ach"}
    assert payment_from_row(row) == payment_from_row({**row, "reference": "txn-1", "voided": True,
                                                      "void_kind": "return"})


def test_a_returned_payment_is_marked_and_the_crm_says_so(settings: Settings) -> None:
    """void_payment(kind="return"): the row and the payment-voided webhook carry the kind, and both webhooks
    (of a payment with a reference) are bodies Ledgerflow's models accept; a second void (a retry) changes
    nothing and sends nothing."""
    import time

    from fastapi import FastAPI, Request

    from models.proposals import PaymentAdded, PaymentVoided
    from sandbox.serve import ServerThread

    received: list[tuple[str, bytes]] = []
    receiver = FastAPI()

    @receiver.post("/crm/{account_id}/{event}")
    async def hook(event: str, request: Request) -> dict[str, str]:
        received.append((event, await request.body()))
        return {}

    admin = CrmSandboxAdmin(settings.crm_api_url)
    account = f"fe-{uuid.uuid4().hex[:6]}"
    with ServerThread(receiver) as server:
        keys = admin.create_account(account, "Returns Co", webhook_url=f"{server.url}/crm/{account}",
                                    webhook_secret="s3cret")
        with CrmClient(settings.crm_api_url, keys["access_token"], keys["web_key"]) as crm:
            proposal_id = _proposal(crm, settings, account)
            paid = crm.record_payment(proposal_id, Decimal("75.00"), Decimal(0), "ach", date(2026, 11, 20),
                                      reference="txn-ach-1")
            returned = crm.void_payment(paid["payment_id"], "return")
            assert (returned["voided"], returned["void_kind"]) == (True, "return") and returned["voided_at"]
            assert crm.void_payment(paid["payment_id"], "refund")["void_kind"] == "return"  # the first kind stays
            [row] = crm.proposal_payments(proposal_id)
            assert (row["voided"], row["void_kind"], row["reference"]) == (True, "return", "txn-ach-1")
            assert crm.find_payment(proposal_id, "txn-ach-1")["void_kind"] == "return"  # type: ignore[index]
            with pytest.raises(CrmError) as bad_kind:
                crm.void_payment(paid["payment_id"], "chargeback")  # type: ignore[arg-type]
            assert bad_kind.value.code == "CT_525"
            with pytest.raises(CrmNotFound):
                crm.void_payment("999999", "void")
        for _ in range(100):
            if len(received) >= 2:
                break
            time.sleep(0.05)
        time.sleep(0.2)  # a second payment-voided webhook would have come by now
    assert [event for event, _ in received] == ["payment", "payment-voided"]
    added = PaymentAdded.model_validate_json(received[0][1])
    voided = PaymentVoided.model_validate_json(received[1][1])
    assert added.payment.id == voided.payment.id == paid["payment_id"]
    assert voided.kind == "return" and voided.payment.amount == Decimal("75.00")


def test_a_create_that_timed_out_after_landing_is_found_not_sent_again() -> None:
    """With a reference, record_payment looks before each attempt instead of retrying the create blind."""
    stored: list[dict[str, str]] = []
    creates: list[bytes] = []

    def crm(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/read_proposal_payments/501"):
            return httpx.Response(200, json={"ResultCode": "CT_200", "data": stored, "TotalRecord": len(stored)})
        creates.append(request.content)
        stored.append({"payment_id": "9001", "reference": "txn-1", "amount": "10.00"})
        raise httpx.ReadTimeout("the answer was lost")  # the CRM recorded it; we never heard

    with CrmClient("http://crm.test", "t", "k", retries=3, transport=httpx.MockTransport(crm)) as client:
        paid = client.record_payment("501", Decimal("10.00"), Decimal(0), "card", date(2026, 11, 20),
                                     reference="txn-1")
        assert paid["payment_id"] == "9001" and len(creates) == 1
        with pytest.raises(CrmUnavailable):  # without a look-up the lost answer goes to the caller, never resent
            client.record_payment("501", Decimal("10.00"), Decimal(0), "card", date(2026, 11, 20))
    assert len(creates) == 1 + 1


def test_a_429_is_waited_out_even_for_a_create_and_a_lost_create_is_never_resent_blind() -> None:
    """A 429 says the CRM did nothing: tried again after its Retry-After. A 5xx or a lost answer on a create
    may hide a contact that was made: the caller (which looks the contact up first) decides."""
    script = iter([httpx.Response(429, headers={"Retry-After": "0"}, json={"ResultCode": "CT_429", "data": []}),
                   httpx.Response(200, json={"ResultCode": "CT_200", "data": [{"client_id": "7"}]})])
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return next(script)

    with CrmClient("http://crm.test", "t", "k", retries=3, transport=httpx.MockTransport(handler)) as client:
        assert client.create_contact({"firstName": "x"}) == {"client_id": "7"}
    assert len(calls) == 2

    for answer in (httpx.Response(504), httpx.ReadTimeout("lost")):
        sent: list[str] = []

        def lost(request: httpx.Request, answer: httpx.Response | Exception = answer,
                 sent: list[str] = sent) -> httpx.Response:
            sent.append(request.url.path)
            if isinstance(answer, Exception):
                raise answer
            return answer

        with CrmClient("http://crm.test", "t", "k", retries=3, transport=httpx.MockTransport(lost)) as client:
            with pytest.raises(CrmUnavailable):
                client.create_contact({"firstName": "x"})
            with pytest.raises(CrmUnavailable):
                client.create_history_note("7", "a note")
            with pytest.raises(CrmUnavailable):
                client.contact("7")  # a read is tried again: 1 + 3
        assert len(sent) == 1 + 1 + 4

    with CrmClient("http://crm.test", "t", "k", retries=1, transport=httpx.MockTransport(
            lambda r: httpx.Response(429, headers={"Retry-After": "0"}))) as client, pytest.raises(CrmUnavailable):
        client.users()  # a 429 that never lets up is an outage: Temporal retries the activity
