"""The partners sandbox: one HTTP app standing in for the services an action plan's steps call, recording
every request (method, path, headers, body, the status answered) for the tests to look at.

- Google Sheets values API (`Authorization: Bearer`): `POST /v4/spreadsheets/{id}/values/{range}:append
  ?valueInputOption=USER_ENTERED|RAW` with `{"values": [[...]]}` appends after the sheet's table and answers
  `{"spreadsheetId", "tableRange", "updates": {"updatedRange", "updatedRows", ...}}`; `GET .../values/{range}`
  reads the rows back. A USER_ENTERED cell's leading apostrophe makes it text and is not stored, as in Sheets.
  Spreadsheets and sheets come into being on first write; errors are Google's `{"error": {"code", "message",
  "status"}}`.
- Mailbox Power (`X-Api-Key`): `POST /api/v1/mailings` `{template_id, recipient, reference}` answers 201 with
  the mailing's `id`; `GET /api/v1/mailings?reference=` finds mailings by our reference. (Mailbox Power's API is
  not publicly documented: this is the project's shape for it, behind one adapter.)
- ClubReady: `POST /api/users/prospect`, form or JSON, with `StoreId` and `ApiKey`, answers `{"Success": true,
  "UserId"}`.
- A webhook receiver: `POST|PUT /hooks/{name}` answers 200 `{"ok": true}`.

Each request is recorded as it arrives, its `status` filled in once answered (None while a fault holds it).

Admin: `GET /admin/requests?kind=sheets|mailbox_power|clubready|hook&name=`, `DELETE /admin/requests`,
`GET /admin/sheets/{id}/{sheet}`, `PUT /admin/hooks/{name}/fail {"times": N}` (its next N calls answer 500), and
`PUT /admin/faults/{target}` (target "sheets", "mailbox_power", "clubready" or "hook:{name}"; faults "500",
"429", "timeout", "drop" from sandbox/qbo/chaos.py).
"""

import itertools
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from config.settings import Settings, get_settings
from sandbox.injected import ErrorShape, FaultSettings, Injected, before_work, install, unless_dropped
from sandbox.qbo.chaos import Fault, FaultPlan

GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                 504: "DEADLINE_EXCEEDED"}


@dataclass(frozen=True)
class PartnerKeys:
    """The credentials the sandbox accepts: by default those Ledgerflow's settings send."""

    sheets_token: str
    mailbox_power_key: str
    clubready_key: str

    @classmethod
    def of(cls, settings: Settings) -> "PartnerKeys":
        return cls(settings.sheets_api_token.get_secret_value(), settings.mailbox_power_api_key.get_secret_value(),
                   settings.clubready_api_key.get_secret_value())


def google_error(status: int, message: str = "") -> JSONResponse:
    return JSONResponse({"error": {"code": status, "message": message or GOOGLE_STATUS.get(status, "error"),
                                   "status": GOOGLE_STATUS.get(status, "UNKNOWN")}}, status_code=status)


def plain_error(status: int) -> JSONResponse:
    return JSONResponse({"error": f"HTTP {status} (injected by the sandbox)"}, status_code=status)


def column(number: int) -> str:
    """1 -> A, 27 -> AA."""
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def kind_of(path: str) -> tuple[str, str | None] | None:
    """Which partner a request is for (and a webhook's name); None for the admin and health checks."""
    if path.startswith("/v4/spreadsheets/"):
        return "sheets", None
    if path.startswith("/api/v1/mailings"):
        return "mailbox_power", None
    if path.startswith("/api/users/prospect"):
        return "clubready", None
    if path.startswith("/hooks/"):
        return "hook", path.removeprefix("/hooks/")
    return None


def _parsed_body(raw: bytes, content_type: str) -> Any:
    if "json" in content_type:
        try:
            return json.loads(raw or b"null")
        except ValueError:
            return None
    if "form" in content_type:
        return dict(parse_qsl(raw.decode(errors="replace"), keep_blank_values=True))
    return None


class PartnersStore:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.sheets: dict[tuple[str, str], list[list[str]]] = {}
        self.mailings: list[dict[str, Any]] = []
        self.prospects: list[dict[str, Any]] = []
        self._user_ids = itertools.count(100001)

    def record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            entry["id"] = f"req-{len(self.requests) + 1}"
            self.requests.append(entry)

    def append_rows(self, spreadsheet_id: str, sheet: str, rows: list[list[str]]) -> tuple[str | None, str, int]:
        """The table's range before, the range written, and its width."""
        with self.lock:
            table = self.sheets.setdefault((spreadsheet_id, sheet), [])
            width = max(len(row) for row in rows)
            before = None
            if table:
                before = f"{sheet}!A1:{column(max(len(r) for r in table))}{len(table)}"
            first = len(table) + 1
            table.extend(rows)
            return before, f"{sheet}!A{first}:{column(width)}{len(table)}", width

    def rows(self, spreadsheet_id: str, sheet: str) -> list[list[str]]:
        with self.lock:
            return [list(row) for row in self.sheets.get((spreadsheet_id, sheet), [])]

    def add_mailing(self, template_id: str, recipient: dict[str, str], reference: str | None) -> dict[str, Any]:
        with self.lock:
            mailing = {"id": f"mbp_{secrets.token_hex(8)}", "status": "queued", "template_id": template_id,
                       "recipient": recipient, "reference": reference,
                       "created_at": datetime.now(UTC).isoformat(timespec="seconds")}
            self.mailings.append(mailing)
            return mailing

    def add_prospect(self, fields: dict[str, str]) -> dict[str, Any]:
        with self.lock:
            prospect = {"UserId": next(self._user_ids), **fields}
            self.prospects.append(prospect)
            return prospect


def _sheet_of(range_: str) -> str:
    """The sheet named in an A1 range: `Leads`, `Leads!A1:C1`, `'My Leads'!A:C`."""
    sheet = range_.rpartition("!")[0] if "!" in range_ else range_
    return sheet[1:-1].replace("''", "'") if len(sheet) > 1 and sheet[0] == sheet[-1] == "'" else sheet


class Failures(BaseModel):
    times: int = Field(ge=0, le=1000)


class NewMailing(BaseModel):
    template_id: str = Field(min_length=1)
    recipient: dict[str, str]
    reference: str | None = None


def create_app(store: PartnersStore | None = None, keys: PartnerKeys | None = None) -> FastAPI:
    store = store or PartnersStore()
    keys = keys or PartnerKeys.of(get_settings())
    fault_plans: dict[str, FaultPlan] = {}
    app = FastAPI(title="Partners sandbox (Google Sheets, Mailbox Power, ClubReady, webhooks)", docs_url=None,
                  redoc_url=None)
    app.state.store = store
    install(app)

    @app.middleware("http")
    async def recorded(request: Request, call_next: Any) -> Any:
        """Every partner call as it arrives, and the status it got once answered (None while held)."""
        kind = kind_of(request.url.path)
        if kind is None:
            return await call_next(request)
        raw = await request.body()
        entry = {"kind": kind[0], "name": kind[1], "method": request.method, "path": request.url.path,
                 "query": dict(request.query_params), "headers": dict(request.headers),
                 "body": raw.decode(errors="replace"),
                 "parsed": _parsed_body(raw, request.headers.get("content-type", "")), "status": None,
                 "received_at": datetime.now(UTC).isoformat()}
        store.record(entry)
        response = await call_next(request)
        with store.lock:
            entry["status"] = response.status_code
        return response

    def plan_of(target: str) -> FaultPlan:
        return fault_plans.setdefault(target, FaultPlan())

    async def answered(target: str, write: bool, error: ErrorShape, work: Callable[[], Response]) -> Response:
        """The call's work between its injected faults."""
        plan = plan_of(target)
        drop = await before_work(plan, write, error)
        return await unless_dropped(plan, drop, work(), error)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # -- Google Sheets ---------------------------------------------------------------------------------------
    def sheets_auth(authorization: str | None) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip(), keys.sheets_token):
            raise Injected(google_error(401, "Request had invalid authentication credentials."))

    @app.post("/v4/spreadsheets/{spreadsheet_id}/values/{target:path}")
    async def sheets_append(spreadsheet_id: str, target: str, request: Request,
                            value_input_option: Annotated[str | None, Query(alias="valueInputOption")] = None,
                            authorization: Annotated[str | None, Header()] = None) -> Response:
        sheets_auth(authorization)
        range_, _, verb = target.rpartition(":")
        if verb != "append" or not range_:
            return google_error(404, f"Unknown method {verb!r}")
        if value_input_option not in ("RAW", "USER_ENTERED"):
            return google_error(400, "'valueInputOption' is required and must be RAW or USER_ENTERED")
        try:
            values = (await request.json())["values"]
            rows = [[str(cell) for cell in row] for row in values]
        except (ValueError, KeyError, TypeError):
            return google_error(400, "Invalid JSON payload: 'values' must be a list of rows")
        if not rows or not all(rows):
            return google_error(400, "Invalid values: no rows or an empty row")
        if value_input_option == "USER_ENTERED":
            rows = [[cell.removeprefix("'") for cell in row] for row in rows]

        def work() -> Response:
            before, written, width = store.append_rows(spreadsheet_id, _sheet_of(range_), rows)
            return JSONResponse({"spreadsheetId": spreadsheet_id, **({"tableRange": before} if before else {}),
                                 "updates": {"spreadsheetId": spreadsheet_id, "updatedRange": written,
                                             "updatedRows": len(rows), "updatedColumns": width,
                                             "updatedCells": sum(len(row) for row in rows)}})

        return await answered("sheets", True, google_error, work)

    @app.get("/v4/spreadsheets/{spreadsheet_id}/values/{range_:path}")
    async def sheets_read(spreadsheet_id: str, range_: str,
                          authorization: Annotated[str | None, Header()] = None) -> Response:
        sheets_auth(authorization)
        sheet = _sheet_of(range_)

        def work() -> Response:
            rows = store.rows(spreadsheet_id, sheet)
            return JSONResponse({"range": f"{sheet}!A1:Z{max(len(rows), 1)}", "majorDimension": "ROWS",
                                 **({"values": rows} if rows else {})})

        return await answered("sheets", False, google_error, work)

    # -- Mailbox Power -------------------------------------------------------------------------------------
    def mailbox_auth(api_key: str | None) -> None:
        if api_key is None or not secrets.compare_digest(api_key, keys.mailbox_power_key):
            raise Injected(JSONResponse({"error": "Unauthorized: missing or unknown X-Api-Key"}, status_code=401))

    @app.post("/api/v1/mailings")
    async def mailings_create(new: NewMailing, x_api_key: Annotated[str | None, Header()] = None) -> Response:
        mailbox_auth(x_api_key)
        return await answered("mailbox_power", True, plain_error, lambda: JSONResponse(
            store.add_mailing(new.template_id, new.recipient, new.reference), status_code=201))

    @app.get("/api/v1/mailings")
    async def mailings_find(reference: str, x_api_key: Annotated[str | None, Header()] = None) -> Response:
        mailbox_auth(x_api_key)
        return await answered("mailbox_power", False, plain_error, lambda: JSONResponse(
            {"mailings": [m for m in list(store.mailings) if m["reference"] == reference]}))

    # -- ClubReady -----------------------------------------------------------------------------------------
    @app.post("/api/users/prospect")
    async def clubready_prospect(request: Request) -> Response:
        if "json" in request.headers.get("content-type", ""):
            fields = {k: str(v) for k, v in dict(await request.json()).items()}
        else:
            fields = {k: str(v) for k, v in (await request.form()).items()}
        if not secrets.compare_digest(fields.pop("ApiKey", ""), keys.clubready_key):
            return JSONResponse({"Success": False, "Message": "Invalid ApiKey"}, status_code=401)
        missing = [name for name in ("StoreId", "FirstName") if not fields.get(name)]
        if missing:
            return JSONResponse({"Success": False, "Message": f"Missing {', '.join(missing)}"}, status_code=400)
        return await answered("clubready", True, plain_error, lambda: JSONResponse(
            {"Success": True, "Message": "Prospect added", "UserId": store.add_prospect(fields)["UserId"]}))

    # -- a webhook receiver --------------------------------------------------------------------------------
    @app.api_route("/hooks/{name}", methods=["POST", "PUT"])
    async def hook(name: str) -> Response:
        return await answered(f"hook:{name}", True, plain_error, lambda: JSONResponse({"ok": True}))

    # -- admin -----------------------------------------------------------------------------------------------
    @app.get("/admin/requests")
    def admin_requests(kind: str | None = None, name: str | None = None) -> list[dict[str, Any]]:
        """Every partner call, oldest first (of one kind; of one webhook)."""
        with store.lock:
            return [dict(r) for r in store.requests
                    if (kind is None or r["kind"] == kind) and (name is None or r["name"] == name)]

    @app.delete("/admin/requests")
    def admin_clear_requests() -> dict[str, int]:
        with store.lock:
            count = len(store.requests)
            store.requests.clear()
        return {"cleared": count}

    @app.get("/admin/sheets/{spreadsheet_id}/{sheet}")
    def admin_sheet(spreadsheet_id: str, sheet: str) -> list[list[str]]:
        return store.rows(spreadsheet_id, sheet)

    @app.put("/admin/hooks/{name}/fail")
    def admin_fail_hook(name: str, failures: Failures) -> dict[str, object]:
        """The webhook's next `times` calls answer 500."""
        fault_plans[f"hook:{name}"] = FaultPlan(queued=[Fault.SERVER_ERROR] * failures.times)
        return fault_plans[f"hook:{name}"].describe()

    @app.put("/admin/faults/{target}")
    def admin_faults(target: str, settings: FaultSettings) -> dict[str, object]:
        fault_plans[target] = FaultPlan(**settings.model_dump())
        return fault_plans[target].describe()

    return app
