"""The partner activities against the partners sandbox: a webhook retried through failures is sent once per
key; 4xx is final but 408 and 429 wait; a sheet row lands with its values in order, and after a lost answer is
found rather than appended twice; Mailbox Power mailings are found by our reference; ClubReady prospects."""

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.partners import PartnerActivities
from config.settings import Settings
from models.messages import ClubReadyProspect, Mailing, SheetRow, WebhookCall
from models.outbox import load_outbox
from sandbox.partners.admin import PartnersSandboxAdmin
from sandbox.serve import ServerThread
from tests.test_gateway_adapter import until_done


@pytest.fixture
def admin(partners_sandbox: ServerThread) -> PartnersSandboxAdmin:
    return PartnersSandboxAdmin(partners_sandbox.url)


@pytest.fixture
def partner_settings(settings: Settings) -> Settings:
    """A short timeout: a held answer costs half a second; the plans' secrets as an operator would set them."""
    return settings.model_copy(update={"messaging_http_timeout_seconds": 0.5,
                                       "plan_secrets": {"zap-token": SecretStr("Bearer plan-secret")}})


@pytest.fixture
def partners(partner_settings: Settings, engine: Engine) -> PartnerActivities:
    return PartnerActivities(engine, partner_settings)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def refusal(fn: Callable[[Any], Any], arg: Any) -> ApplicationError:
    with pytest.raises(ApplicationError) as raised:
        ActivityEnvironment().run(fn, arg)
    return raised.value


def webhook(url: str, **fields: Any) -> WebhookCall:
    return WebhookCall(**{"idempotency_key": unique("plan:acme-austin:C-1:welcome:hook-1"), "account_id": "acme-austin",
                          "url": url, "secret_headers": {"Authorization": "zap-token"},
                          "body": {"firstName": "Dana", "phone": "+15125550123"}, **fields})


# -- webhooks ----------------------------------------------------------------------------------------------
def test_a_webhook_failing_twice_succeeds_on_the_third_try_and_is_recorded_once(
        partners: PartnerActivities, admin: PartnersSandboxAdmin, partners_sandbox: ServerThread,
        engine: Engine) -> None:
    name = unique("crm-zap")
    admin.fail_hook(name, 2)
    call = webhook(f"{partners_sandbox.url}/hooks/{name}")
    sent, attempts = until_done(partners.call_webhook, call)
    assert (attempts, sent.kind, sent.duplicate) == (3, "webhook", False)
    assert ActivityEnvironment().run(partners.call_webhook, call).duplicate

    received = admin.requests(kind="hook", name=name)
    assert [r["status"] for r in received] == [500, 500, 200]
    for request in received:
        assert (request["method"], request["parsed"]) == ("POST", {"firstName": "Dana", "phone": "+15125550123"})
        assert request["headers"]["authorization"] == "Bearer plan-secret"  # added by the activity, from settings
        assert request["headers"]["idempotency-key"] == request["headers"]["x-ledgerflow-idempotency-key"] == (
            call.idempotency_key)
    row = load_outbox(engine, call.idempotency_key)
    assert row is not None and (row.status, row.attempts, row.recipient) == ("sent", 1, call.url)


def test_a_webhook_naming_an_unknown_secret_is_refused_for_good(partners: PartnerActivities,
                                                                 partners_sandbox: ServerThread) -> None:
    call = webhook(f"{partners_sandbox.url}/hooks/{unique('hook')}", secret_headers={"Authorization": "nope"})
    refused = refusal(partners.call_webhook, call)
    assert (refused.type, refused.non_retryable) == ("UnknownSecret", True) and "'nope'" in str(refused)
    assert "plan-secret" not in call.model_dump_json()  # what history holds names the secret, never its value


def test_a_webhook_can_put_json(partners: PartnerActivities, admin: PartnersSandboxAdmin,
                                partners_sandbox: ServerThread) -> None:
    name = unique("json-hook")
    call = webhook(f"{partners_sandbox.url}/hooks/{name}", method="PUT",
                   headers={"content-type": "application/json", "X-Api-Key": "k"})
    ActivityEnvironment().run(partners.call_webhook, call)
    [request] = admin.requests(kind="hook", name=name)
    assert (request["method"], request["parsed"], request["headers"]["x-api-key"]) == (
        "PUT", {"firstName": "Dana", "phone": "+15125550123"}, "k")


def test_a_refusal_is_final_and_a_throttle_waits(partners: PartnerActivities, admin: PartnersSandboxAdmin,
                                                 partners_sandbox: ServerThread, engine: Engine) -> None:
    missing = webhook(f"{partners_sandbox.url}/nowhere")
    refused = refusal(partners.call_webhook, missing)
    assert (refused.type, refused.non_retryable) == ("WebhookRefused", True)
    assert load_outbox(engine, missing.idempotency_key) is None

    name = unique("busy-hook")
    admin.set_faults(f"hook:{name}", ["429"])
    throttled = refusal(partners.call_webhook, webhook(f"{partners_sandbox.url}/hooks/{name}"))
    assert (throttled.type, throttled.non_retryable) == ("WebhookThrottled", False)
    assert throttled.next_retry_delay is not None and throttled.next_retry_delay.total_seconds() == 1


def test_a_webhook_whose_answer_never_came_is_resent_with_the_same_key(
        partners: PartnerActivities, admin: PartnersSandboxAdmin, partners_sandbox: ServerThread,
        engine: Engine) -> None:
    """No API can say whether a receiver took a call: it is called again with the same Idempotency-Key."""
    name = unique("slow-hook")
    admin.set_faults(f"hook:{name}", ["drop"], hold_seconds=1.0)
    call = webhook(f"{partners_sandbox.url}/hooks/{name}")
    sent, attempts = until_done(partners.call_webhook, call)
    assert (attempts, sent.duplicate) == (2, False)
    received = admin.requests(kind="hook", name=name)
    assert len(received) == 2 and received[1]["status"] == 200  # the first was held past the client's timeout
    assert {r["headers"]["idempotency-key"] for r in received} == {call.idempotency_key}
    row = load_outbox(engine, call.idempotency_key)
    assert row is not None and (row.status, row.attempts) == ("sent", 2)


# -- Google Sheets -----------------------------------------------------------------------------------------
def sheet_row(spreadsheet_id: str, values: list[str], sheet: str = "Leads") -> SheetRow:
    return SheetRow(idempotency_key=unique("plan:acme-austin:C-1:welcome:sheet-1"), account_id="acme-austin",
                    spreadsheet_id=spreadsheet_id, sheet=sheet, values=values)


def test_a_sheet_row_lands_with_its_values_in_order(partners: PartnerActivities, admin: PartnersSandboxAdmin,
                                                    partner_settings: Settings) -> None:
    spreadsheet = unique("sheet")
    values = ["Dana", "Whitfield", "dana@example.com", "+15125550123", "=HYPERLINK(\"http://evil\")", "2026-11-20"]
    first = ActivityEnvironment().run(partners.append_sheet_row, sheet_row(spreadsheet, values, "Austin Leads"))
    second = ActivityEnvironment().run(partners.append_sheet_row, sheet_row(spreadsheet, ["Sam", "Ortiz"],
                                                                            "Austin Leads"))
    assert (first.provider_id, second.provider_id) == ("Austin Leads!A1:F1", "Austin Leads!A2:B2")
    assert admin.sheet(spreadsheet, "Austin Leads") == [values, ["Sam", "Ortiz"]]

    request = admin.requests(kind="sheets")[-2]
    assert request["path"] == f"/v4/spreadsheets/{spreadsheet}/values/Austin Leads:append"
    assert request["query"]["valueInputOption"] == "USER_ENTERED"
    assert request["headers"]["authorization"] == f"Bearer {partner_settings.sheets_api_token.get_secret_value()}"
    # Cells Sheets would read as formulas go as text.
    assert request["parsed"]["values"] == [["Dana", "Whitfield", "dana@example.com", "'+15125550123",
                                            "'=HYPERLINK(\"http://evil\")", "2026-11-20"]]


def test_a_lost_sheets_answer_is_found_in_the_sheet_not_appended_twice(partners: PartnerActivities,
                                                                        admin: PartnersSandboxAdmin) -> None:
    spreadsheet = unique("sheet")
    admin.set_faults("sheets", ["drop"], hold_seconds=1.0)
    sent, attempts = until_done(partners.append_sheet_row, sheet_row(spreadsheet, ["Dana", "78701"]))
    assert (attempts, sent.duplicate, sent.provider_id) == (2, True, "Leads!1:1")
    assert admin.sheet(spreadsheet, "Leads") == [["Dana", "78701"]]


def test_sheets_refuses_a_bad_token_for_good(partner_settings: Settings, engine: Engine,
                                             partners_sandbox: ServerThread) -> None:
    wrong = PartnerActivities(engine, partner_settings.model_copy(update={"sheets_api_token": SecretStr("nope")}))
    refused = refusal(wrong.append_sheet_row, sheet_row(unique("sheet"), ["x"]))
    assert (refused.type, refused.non_retryable) == ("SheetsRefused", True)
    answer = httpx.post(f"{partners_sandbox.url}/v4/spreadsheets/s/values/Leads:append",
                        headers={"Authorization": f"Bearer {partner_settings.sheets_api_token.get_secret_value()}"},
                        json={"values": [["x"]]})
    assert answer.status_code == 400 and answer.json()["error"]["status"] == "INVALID_ARGUMENT"


# -- Mailbox Power and ClubReady ---------------------------------------------------------------------------
def mailing() -> Mailing:
    return Mailing(idempotency_key=unique("plan:acme-austin:C-1:welcome:mail-1"), account_id="acme-austin",
                   template_id="postcard-welcome", recipient={"name": "Dana Whitfield", "address": "1 Main St",
                                                              "city": "Austin", "state": "TX", "zip": "78701"})


def test_a_mailing_is_ordered_once(partners: PartnerActivities, admin: PartnersSandboxAdmin,
                                   partner_settings: Settings) -> None:
    order = mailing()
    sent = ActivityEnvironment().run(partners.send_mailing, order)
    assert sent.provider_id is not None and sent.provider_id.startswith("mbp_")
    assert ActivityEnvironment().run(partners.send_mailing, order).duplicate
    [request] = [r for r in admin.requests(kind="mailbox_power") if r["parsed"]
                 and r["parsed"].get("reference") == order.idempotency_key]
    assert request["parsed"] == {"template_id": "postcard-welcome", "recipient": order.recipient,
                                 "reference": order.idempotency_key}
    assert request["headers"]["x-api-key"] == partner_settings.mailbox_power_api_key.get_secret_value()


def test_a_lost_mailing_answer_is_found_by_its_reference(partners: PartnerActivities,
                                                         admin: PartnersSandboxAdmin) -> None:
    order = mailing()
    admin.set_faults("mailbox_power", ["drop"], hold_seconds=1.0)
    sent, attempts = until_done(partners.send_mailing, order)
    assert (attempts, sent.duplicate) == (2, True)
    posted = [r for r in admin.requests(kind="mailbox_power") if r["method"] == "POST"
              and r["parsed"]["reference"] == order.idempotency_key]
    assert len(posted) == 1


def test_a_clubready_prospect_is_pushed_to_its_club(partners: PartnerActivities, admin: PartnersSandboxAdmin,
                                                    partner_settings: Settings, engine: Engine) -> None:
    prospect = ClubReadyProspect(idempotency_key=unique("plan:acme-austin:C-1:welcome:clubready-1"),
                                 account_id="acme-austin", club_id="4127", first_name="Dana", last_name="Whitfield",
                                 email="dana@example.com", phone="+15125550123")
    sent = ActivityEnvironment().run(partners.push_clubready, prospect)
    assert sent.provider_id is not None and int(sent.provider_id) > 100000
    request = admin.requests(kind="clubready")[-1]
    assert request["parsed"] == {"ApiKey": partner_settings.clubready_api_key.get_secret_value(), "StoreId": "4127",
                                 "FirstName": "Dana", "LastName": "Whitfield", "Email": "dana@example.com",
                                 "Phone": "+15125550123"}
    wrong = PartnerActivities(engine, partner_settings.model_copy(update={"clubready_api_key": SecretStr("no")}))
    refused = refusal(wrong.push_clubready, prospect.model_copy(update={"idempotency_key": unique("other")}))
    assert (refused.type, refused.non_retryable) == ("ClubReadyRefused", True)
