"""Partner activities of action plans: a webhook, a Google Sheets row, a Mailbox Power mailing, a ClubReady
prospect. Each is sent once per idempotency key through the outbox (activities/outbox.py): a 2xx is done;
408, 429, 5xx and timeouts are retried; any other 4xx is final.

After a lost answer: the sheet is read back and a row equal to ours counts as ours (a cell Sheets re-parsed,
such as a zip code's leading zero, defeats the match, and the row is appended again); Mailbox Power is asked
for the mailing carrying our reference; webhooks and ClubReady are called again, the webhook with the same
`Idempotency-Key` header for receivers that dedupe by it.

Sheets rows go in with USER_ENTERED, so dates and numbers stay usable; a cell that Sheets would take for a
formula (starting with = + - @: contact data like "+15125550123" or "=HYPERLINK(...)") is sent with a
leading apostrophe, which Sheets stores as plain text.
"""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.outbox import send_once, status_failure, transport_failure
from activities.tls import TLS
from config.settings import Settings
from models.messages import IDEMPOTENCY_HEADER, ClubReadyProspect, Mailing, Sent, SheetRow, WebhookCall

FORMULA_STARTS = ("=", "+", "-", "@")


def sheet_cell(value: str) -> str:
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


class PartnerActivities:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.grace = timedelta(seconds=3 * settings.messaging_http_timeout_seconds)

    def _call(self, provider: str, what: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request; its 2xx answer, or SendFailed saying whether it may have been taken."""
        try:
            response = httpx.request(method, url, timeout=self.settings.messaging_http_timeout_seconds, verify=TLS,
                                     **kwargs)
        except httpx.TransportError as error:
            raise transport_failure(provider, what, error) from error
        if not 200 <= response.status_code < 300:
            raise status_failure(provider, what, response)
        return response

    @activity.defn(name="call_webhook")
    def call_webhook(self, call: WebhookCall) -> Sent:
        """The plan's endpoint with its headers and fields: a form, or JSON when its headers say so."""
        headers = httpx.Headers(call.headers)
        for header, name in call.secret_headers.items():
            secret = self.settings.plan_secrets.get(name)
            if secret is None:
                raise ApplicationError(f"webhook {call.url}: no secret named {name!r} in LEDGERFLOW_PLAN_SECRETS",
                                       type="UnknownSecret", non_retryable=True)
            headers[header] = secret.get_secret_value()
        headers["Idempotency-Key"] = headers[IDEMPOTENCY_HEADER] = call.idempotency_key
        as_json = "json" in headers.get("Content-Type", "").lower()
        body: dict[str, Any] = {"json": call.body} if as_json else {"data": call.body}

        def send() -> None:
            self._call("Webhook", f"webhook {call.method} {call.url}", call.method, call.url, headers=headers,
                       **body)

        return send_once(self.engine, "webhook", call.idempotency_key, call.account_id, call.url, send, self.grace)

    @activity.defn(name="append_sheet_row")
    def append_sheet_row(self, row: SheetRow) -> Sent:
        """Append the values as one row after the sheet's table; `provider_id` is the range written."""
        s = self.settings
        values_url = f"{s.sheets_api_url.rstrip('/')}/v4/spreadsheets/{row.spreadsheet_id}/values/" + quote(
            row.sheet, safe="")
        auth = {"Authorization": f"Bearer {s.sheets_api_token.get_secret_value()}"}
        what = f"Sheets {row.spreadsheet_id}/{row.sheet}"

        def send() -> str:
            answer = self._call("Sheets", f"{what} append", "POST", f"{values_url}:append", headers=auth,
                                params={"valueInputOption": "USER_ENTERED", "insertDataOption": "INSERT_ROWS"},
                                json={"values": [[sheet_cell(v) for v in row.values]]}).json()
            return str(answer["updates"]["updatedRange"])

        def find(_since: datetime) -> str | None:
            rows = self._call("Sheets", f"{what} read", "GET", values_url, headers=auth).json().get("values", [])
            for number, cells in enumerate(rows, start=1):
                if [str(cell) for cell in cells] == row.values:
                    return f"{row.sheet}!{number}:{number}"
            return None

        return send_once(self.engine, "sheet_row", row.idempotency_key, row.account_id,
                         f"{row.spreadsheet_id}/{row.sheet}", send, self.grace, find)

    @activity.defn(name="send_mailing")
    def send_mailing(self, mailing: Mailing) -> Sent:
        """Order the mail piece; `provider_id` is Mailbox Power's mailing id. Our key goes with it as its
        `reference`, by which a retry finds it."""
        s = self.settings
        url = f"{s.mailbox_power_api_url.rstrip('/')}/api/v1/mailings"
        headers = {"X-Api-Key": s.mailbox_power_api_key.get_secret_value(), "Idempotency-Key": mailing.idempotency_key}
        what = f"Mailbox Power mailing {mailing.template_id}"

        def send() -> str:
            body = {"template_id": mailing.template_id, "recipient": mailing.recipient,
                    "reference": mailing.idempotency_key}
            return str(self._call("MailboxPower", what, "POST", url, headers=headers, json=body).json()["id"])

        def find(_since: datetime) -> str | None:
            found = self._call("MailboxPower", f"{what} lookup", "GET", url, headers=headers,
                               params={"reference": mailing.idempotency_key}).json().get("mailings", [])
            return str(found[0]["id"]) if found else None

        return send_once(self.engine, "mailing", mailing.idempotency_key, mailing.account_id, mailing.template_id,
                         send, self.grace, find)

    @activity.defn(name="push_clubready")
    def push_clubready(self, prospect: ClubReadyProspect) -> Sent:
        """ClubReady's "New User Push": the contact as a prospect of the club; `provider_id` is its UserId."""
        s = self.settings
        form = {"ApiKey": s.clubready_api_key.get_secret_value(), "StoreId": prospect.club_id,
                "FirstName": prospect.first_name, "LastName": prospect.last_name, "Email": prospect.email,
                "Phone": prospect.phone}

        def send() -> str:
            answer = self._call("ClubReady", f"ClubReady prospect for club {prospect.club_id}", "POST",
                                f"{s.clubready_api_url.rstrip('/')}/api/users/prospect", data=form).json()
            return str(answer["UserId"])

        return send_once(self.engine, "clubready", prospect.idempotency_key, prospect.account_id,
                         f"{prospect.club_id}:{prospect.email or prospect.phone}", send, self.grace)

    def activities(self) -> list[Callable[..., Any]]:
        return [self.call_webhook, self.append_sheet_row, self.send_mailing, self.push_clubready]
