"""The QBO sandbox's HTTP surface: the v3 REST API (CRUD, query, batch, CDC), OAuth discovery and token
endpoints, and an admin API that tests, benchmarks and the demo use to create companies, inject faults and
look inside."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, FastAPI, Form, Header, Request
from fastapi.responses import JSONResponse, Response

from sandbox.qbo import faults, query
from sandbox.qbo.auth import TokenAuthority
from sandbox.qbo.chaos import Fault, FaultPlan
from sandbox.qbo.company import Company, canonical_entity, is_entity, now_iso
from sandbox.qbo.schema import ENTITIES
from sandbox.qbo.state import StateFile
from sandbox.qbo.throttle import Limits, RealmThrottle, Throttled
from sandbox.qbo.webhooks import WebhookSender
from sandbox.qbo.wire import dumps, loads

BATCH_MAX_ITEMS = 30
REQUEST_ID_MAX = 50


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(dumps(body), status_code=status, media_type="application/json",
                    headers={"intuit_tid": f"sandbox-{id(body):x}"})


class EarlyAnswer(Exception):
    """A call answered before any work is done (authentication, an injected timeout)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


@dataclass(frozen=True)
class Call:
    """One admitted API call: its company, and whether its answer is to be dropped."""

    company: Company
    drop: bool = False


class QboSandbox:
    """All companies of the sandbox, its token authority and limits, and optionally a SQLite state file so a
    restarted sandbox still holds what was written to it (as a real company would)."""

    def __init__(self, state_file: Path | None = None, limits: Limits | None = None,
                 webhooks: WebhookSender | None = None) -> None:
        self.companies: dict[str, Company] = {}
        self.tokens = TokenAuthority()
        self.throttle = RealmThrottle(limits)
        self.fault_plans: dict[str, FaultPlan] = {}
        self.webhooks = webhooks
        self.state = StateFile(state_file) if state_file is not None else None
        if self.state is not None:
            companies, tokens = self.state.load()
            self.companies = {realm: Company.restore(data) for realm, data in companies.items()}
            self.tokens.restore(tokens)

    def company(self, realm_id: str) -> Company:
        if realm_id not in self.companies:
            self.companies[realm_id] = Company(realm_id, f"Sandbox Company {realm_id}")
            self.saved(realm_id)
        return self.companies[realm_id]

    def faults_for(self, realm_id: str) -> FaultPlan:
        return self.fault_plans.setdefault(realm_id, FaultPlan())

    def saved(self, realm_id: str) -> None:
        """Write what the company changed since it was last saved to the state file (without one: forget it)."""
        company = self.companies[realm_id]
        with company.lock:
            if self.state is not None:
                self.state.save_changes(realm_id, company.pending_changes())
            company.mark_saved()

    def forget_request_ids(self, realm_id: str) -> int:
        """Forget the company's kept answers, in the state file too: a write repeated after this is new to it."""
        company = self.company(realm_id)
        with company.lock:
            forgotten = company.forget_responses()
            if self.state is not None:
                self.state.save_company(realm_id, company.snapshot())
            company.mark_saved()
        return forgotten

    def tokens_saved(self) -> None:
        if self.state is not None:
            self.state.save_tokens(self.tokens.snapshot())

    def write(self, company: Company, entity: str, body: dict[str, Any], operation: str | None,
              include: str | None) -> dict[str, Any]:
        """One write, as QBO dispatches it from the URL's `operation` and `include`."""
        allow_duplicate = include == "allowduplicatedocnum"
        if operation == "delete":
            result, kind = company.delete(entity, body), "deleted"
        elif operation == "void" or (operation == "update" and include == "void"):
            result, kind = company.void(entity, body), "voided"
        elif body.get("Id"):
            result, kind = company.update(entity, body, allow_duplicate), "updated"
        else:
            result, kind = company.create(entity, body, allow_duplicate), "created"
        if self.webhooks is not None:
            self.webhooks.notify(company.realm_id, entity, result["Id"], kind)
        return result


def create_app(sandbox: QboSandbox | None = None) -> FastAPI:
    sandbox = sandbox or QboSandbox()
    app = FastAPI(title="QuickBooks Online sandbox", docs_url=None, redoc_url=None)
    app.state.sandbox = sandbox

    @app.exception_handler(faults.QboFault)
    async def _fault(_request: Request, fault: faults.QboFault) -> Response:
        return _json(fault.body(now_iso()), fault.status)

    @app.exception_handler(EarlyAnswer)
    async def _early(_request: Request, answer: EarlyAnswer) -> Response:
        return answer.response

    @app.exception_handler(Throttled)
    async def _throttled(_request: Request, _exc: Throttled) -> Response:
        return Response(faults.THROTTLE_XML, status_code=429, media_type="application/xml")

    # -- OAuth ---------------------------------------------------------------------------------------
    @app.get("/.well-known/openid_configuration")
    def discovery(request: Request) -> dict[str, str]:
        base = str(request.base_url).rstrip("/")
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/connect/oauth2",
            "token_endpoint": f"{base}/oauth2/v1/tokens/bearer",
            "revocation_endpoint": f"{base}/oauth2/v1/tokens/revoke",
            "userinfo_endpoint": f"{base}/v1/openid_connect/userinfo",
            "jwks_uri": f"{base}/oauth2/v1/keys",
        }

    @app.post("/oauth2/v1/tokens/bearer")
    def token(grant_type: Annotated[str, Form()], refresh_token: Annotated[str, Form()] = "") -> Response:
        if grant_type != "refresh_token":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        issued = sandbox.tokens.refresh(refresh_token)
        if issued is None:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        sandbox.tokens_saved()
        return JSONResponse(issued)

    # -- the v3 API ----------------------------------------------------------------------------------
    @asynccontextmanager
    async def _admitted(realm_id: str, authorization: str | None, write: bool = False,
                        batch: bool = False) -> AsyncIterator[Call]:
        """Every API call: within the company's limits, authenticated, with any injected fault applied."""
        with sandbox.throttle.admit(realm_id, batch=batch):
            yield await _guarded(realm_id, authorization, write)

    async def _guarded(realm_id: str, authorization: str | None, write: bool) -> Call:
        """Authentication, then injected latency and the faults that come before any work."""
        if not sandbox.tokens.allows(authorization, realm_id):
            raise EarlyAnswer(JSONResponse(faults.auth_failure_body(), status_code=401))
        plan = sandbox.faults_for(realm_id)
        if plan.latency_seconds:
            await asyncio.sleep(plan.latency_seconds)
        injected = plan.next_fault(write)
        if injected == Fault.THROTTLE:
            raise Throttled
        if injected == Fault.SERVER_ERROR:
            raise faults.QboFault("10000", "An application error has occurred while processing your request",
                                  "System Failure Error: injected by the sandbox", fault_type="SystemFault")
        if injected == Fault.TIMEOUT:
            await asyncio.sleep(plan.hold_seconds)
            raise EarlyAnswer(JSONResponse({"error": "gateway timeout"}, status_code=504))
        return Call(sandbox.company(realm_id), drop=injected == Fault.DROP)

    async def _body(request: Request) -> dict[str, Any]:
        try:
            body = loads(await request.body() or b"{}")
        except ValueError as exc:
            raise faults.unsupported_property("body", "is not valid JSON") from exc
        if not isinstance(body, dict):
            raise faults.unsupported_property("body", "must be an object")
        return body

    async def _respond(call: "Call", body: dict[str, Any], status: int = 200) -> Response:
        """The answer, unless a DROP was injected: then the work stands and the client never hears back."""
        if call.drop:
            await asyncio.sleep(sandbox.faults_for(call.company.realm_id).hold_seconds)
            return JSONResponse({"error": "gateway timeout"}, status_code=504)
        return _json(body, status)

    @app.post("/v3/company/{realm_id}/query")
    async def run_query(realm_id: str, request: Request,
                        authorization: Annotated[str | None, Header()] = None) -> Response:
        async with _admitted(realm_id, authorization) as call:
            company = call.company
            result = _query(company, (await request.body()).decode())
            return await _respond(call, {"QueryResponse": result, "time": now_iso()})

    def _query(company: Company, statement: str) -> dict[str, Any]:
        parsed = query.parse(statement)
        parsed.entity = canonical_entity(parsed.entity)
        return company.select(parsed.entity, lambda objects: query.run(parsed, objects))

    @app.get("/v3/company/{realm_id}/cdc")
    async def change_data_capture(realm_id: str, entities: str, changedSince: str,
                                  authorization: Annotated[str | None, Header()] = None) -> Response:
        async with _admitted(realm_id, authorization) as call:
            company = call.company
            responses = []
            for name in entities.split(","):
                entity = canonical_entity(name.strip())
                responses.append({entity: company.changed_since(entity, changedSince)[:1000]})
            return await _respond(call, {"CDCResponse": [{"QueryResponse": responses}], "time": now_iso()})

    @app.post("/v3/company/{realm_id}/batch")
    async def batch(realm_id: str, request: Request,
                    authorization: Annotated[str | None, Header()] = None) -> Response:
        async with _admitted(realm_id, authorization, write=True, batch=True) as call:
            company = call.company
            items = (await _body(request)).get("BatchItemRequest") or []
            if len(items) > BATCH_MAX_ITEMS:
                raise faults.business_validation(f"A batch holds at most {BATCH_MAX_ITEMS} items")
            answers = [_batch_item(company, item) for item in items]
            sandbox.saved(realm_id)
            return await _respond(call, {"BatchItemResponse": answers, "time": now_iso()})

    def _batch_item(company: Company, item: dict[str, Any]) -> dict[str, Any]:
        """Each item runs on its own: one item's fault does not stop the others."""
        bid = item.get("bId")
        try:
            if "Query" in item:
                return {"bId": bid, "QueryResponse": _query(company, item["Query"])}
            keys = [key for key in item if is_entity(key)]
            if len(keys) != 1:
                raise faults.required_missing("entity")
            entity = canonical_entity(keys[0])
            operation = "delete" if item.get("operation") == "delete" else None
            with company.lock:
                return {"bId": bid, entity: sandbox.write(company, entity, item[keys[0]], operation, None)}
        except faults.QboFault as fault:
            return {"bId": bid, "Fault": fault.body(now_iso())["Fault"]}

    @app.get("/v3/company/{realm_id}/{entity}/{object_id}")
    async def read(realm_id: str, entity: str, object_id: str,
                   authorization: Annotated[str | None, Header()] = None) -> Response:
        async with _admitted(realm_id, authorization) as call:
            company = call.company
            name = canonical_entity(entity)
            return await _respond(call, {name: company.read(name, object_id), "time": now_iso()})

    @app.post("/v3/company/{realm_id}/{entity}")
    async def write(realm_id: str, entity: str, request: Request,
                    authorization: Annotated[str | None, Header()] = None) -> Response:
        async with _admitted(realm_id, authorization, write=True) as call:
            company = call.company
            name = canonical_entity(entity)
            request_id = request.query_params.get("requestid")
            if request_id is not None and len(request_id) > REQUEST_ID_MAX:
                raise faults.business_validation(f"requestid must be at most {REQUEST_ID_MAX} characters")
            body = await _body(request)
            with company.lock:
                if request_id and request_id in company.responses_by_request_id:
                    status, replay = company.responses_by_request_id[request_id]
                    return await _respond(call, replay, status)
                try:
                    saved = sandbox.write(company, name, body, request.query_params.get("operation"),
                                          request.query_params.get("include"))
                    status, response = 200, {name: saved, "time": now_iso()}
                except faults.QboFault as fault:
                    status, response = fault.status, fault.body(now_iso())
                if request_id:
                    company.remember_response(request_id, status, response)
                sandbox.saved(realm_id)
            return await _respond(call, response, status)

    # -- admin (sandbox only) ------------------------------------------------------------------------
    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/admin/companies/{realm_id}")
    def connect_company(realm_id: str) -> dict[str, str]:
        """Create the company if needed and hand out a refresh token, as the OAuth consent flow would."""
        sandbox.company(realm_id)
        refresh_token = sandbox.tokens.connect(realm_id)
        sandbox.tokens_saved()
        return {"realm_id": realm_id, "refresh_token": refresh_token}

    @app.post("/admin/companies/{realm_id}/expire-access-tokens")
    def expire_access_tokens(realm_id: str) -> dict[str, int]:
        """End the company's access tokens: the next call with one gets QBO's 401 and must refresh."""
        ended = sandbox.tokens.expire_access(realm_id)
        sandbox.tokens_saved()
        return {"expired": ended}

    @app.post("/admin/companies/{realm_id}/forget-request-ids")
    def forget_request_ids(realm_id: str) -> dict[str, int]:
        """Forget the answers kept for requestids: QBO keeps them for a time it does not document."""
        return {"forgotten": sandbox.forget_request_ids(realm_id)}

    @app.get("/admin/companies/{realm_id}")
    def dump_company(realm_id: str) -> Response:
        """Every object of the company, by entity, and what the limits saw."""
        company = sandbox.company(realm_id)
        return _json({"realm_id": realm_id, "objects": {e: company.all(e) for e in ENTITIES},
                      "peak_in_flight": sandbox.throttle.peak_in_flight.get(realm_id, 0),
                      "throttled": sandbox.throttle.throttled.get(realm_id, 0),
                      "served": sandbox.throttle.served.get(realm_id, 0),
                      "faults": sandbox.faults_for(realm_id).describe()})

    @app.put("/admin/companies/{realm_id}/faults")
    def set_faults(realm_id: str, plan: Annotated[dict[str, Any], Body()]) -> Response:
        """Replace the company's fault plan: {"queued": ["500", ...], "rates": {"429": 0.1, ...},
        "hold_seconds": 35, "latency_seconds": 0.05, "seed": 1}."""
        try:
            new_plan = FaultPlan(queued=[Fault(f) for f in plan.get("queued", [])],
                                 rates={Fault(k): float(v) for k, v in plan.get("rates", {}).items()},
                                 hold_seconds=float(plan.get("hold_seconds", 35.0)),
                                 latency_seconds=float(plan.get("latency_seconds", 0.0)), seed=plan.get("seed"))
        except ValueError as error:
            return JSONResponse({"error": str(error)}, status_code=422)
        if sum(new_plan.rates.values()) > 1:
            return JSONResponse({"error": "fault rates add up to more than 1"}, status_code=422)
        sandbox.fault_plans[realm_id] = new_plan
        return _json(new_plan.describe())

    @app.get("/admin/companies/{realm_id}/{entity}")
    def list_objects(realm_id: str, entity: str) -> Response:
        name = canonical_entity(entity)
        return _json({name: sandbox.company(realm_id).all(name)})

    return app
