"""The QBO sandbox's HTTP surface: the v3 REST API, OAuth discovery and token endpoints, and an admin API
that tests and the demo use to create companies and look inside them."""

import json
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Form, Header, Request
from fastapi.responses import JSONResponse, Response

from sandbox.qbo import faults, query
from sandbox.qbo.auth import TokenAuthority
from sandbox.qbo.company import ENTITIES, Company, canonical_entity


class _QboJSON(json.JSONEncoder):
    def default(self, o: Any) -> Any:
        # A cents amount has at most 15 significant digits, so its float repr round-trips exactly.
        if isinstance(o, Decimal):
            return int(o) if o == o.to_integral_value() else float(o)
        return super().default(o)


def _now() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="milliseconds")


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body, cls=_QboJSON), status_code=status, media_type="application/json",
                    headers={"intuit_tid": f"sandbox-{id(body):x}"})


class QboSandbox:
    """All companies of the sandbox and its token authority, optionally kept in a state file so a restarted
    sandbox still holds what was written to it (as a real company would)."""

    def __init__(self, state_file: Path | None = None) -> None:
        self.companies: dict[str, Company] = {}
        self.tokens = TokenAuthority()
        self.state_file = state_file
        self._save_lock = threading.Lock()
        if state_file is not None and state_file.exists():
            data = json.loads(state_file.read_text(), parse_float=Decimal)
            self.companies = {realm: Company.restore(c) for realm, c in data["companies"].items()}
            self.tokens.restore(data["tokens"])

    def save(self) -> None:
        if self.state_file is None:
            return
        with self._save_lock:
            data = {"companies": {realm: c.snapshot() for realm, c in self.companies.items()},
                    "tokens": self.tokens.snapshot()}
            temporary = self.state_file.with_suffix(".tmp")
            temporary.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(data, cls=_QboJSON))
            temporary.replace(self.state_file)

    def company(self, realm_id: str) -> Company:
        if realm_id not in self.companies:
            self.companies[realm_id] = Company(realm_id, f"Sandbox Company {realm_id}")
        return self.companies[realm_id]


def create_app(sandbox: QboSandbox | None = None) -> FastAPI:
    sandbox = sandbox or QboSandbox()
    app = FastAPI(title="QuickBooks Online sandbox", docs_url=None, redoc_url=None)
    app.state.sandbox = sandbox

    @app.exception_handler(faults.QboFault)
    async def _fault(_request: Request, fault: faults.QboFault) -> Response:
        return _json(fault.body(_now()), fault.status)

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
        sandbox.save()
        return JSONResponse(issued)

    # -- the v3 API ----------------------------------------------------------------------------------
    def _company(realm_id: str, authorization: str | None) -> Company | Response:
        if not sandbox.tokens.allows(authorization, realm_id):
            return JSONResponse(faults.auth_failure_body(), status_code=401)
        company = sandbox.company(realm_id)
        with company.lock:
            injected = company.injected_faults.pop(0) if company.injected_faults else None
        if injected == "429":
            return Response(faults.THROTTLE_XML, status_code=429, media_type="application/xml")
        if injected == "500":
            fault = faults.QboFault("10000", "An application error has occurred while processing your request",
                                    "System Failure Error: injected by the sandbox", fault_type="SystemFault")
            return _json(fault.body(_now()), fault.status)
        return company

    async def _body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            body = json.loads(raw or b"{}", parse_float=Decimal)
        except ValueError as exc:
            raise faults.QboFault("2010", "Request has invalid or unsupported property",
                                  "Request body is not valid JSON") from exc
        if not isinstance(body, dict):
            raise faults.QboFault("2010", "Request has invalid or unsupported property", "Expected an object")
        return body

    @app.post("/v3/company/{realm_id}/query")
    async def run_query(realm_id: str, request: Request,
                        authorization: Annotated[str | None, Header()] = None) -> Response:
        company = _company(realm_id, authorization)
        if isinstance(company, Response):
            return company
        statement = (await request.body()).decode()
        parsed = query.parse(statement)
        parsed.entity = canonical_entity(parsed.entity)
        return _json({"QueryResponse": query.run(parsed, company.all(parsed.entity)), "time": _now()})

    @app.get("/v3/company/{realm_id}/{entity}/{object_id}")
    def read(realm_id: str, entity: str, object_id: str,
             authorization: Annotated[str | None, Header()] = None) -> Response:
        company = _company(realm_id, authorization)
        if isinstance(company, Response):
            return company
        name = canonical_entity(entity)
        return _json({name: company.read(name, object_id), "time": _now()})

    @app.post("/v3/company/{realm_id}/{entity}")
    async def write(realm_id: str, entity: str, request: Request,
                    authorization: Annotated[str | None, Header()] = None) -> Response:
        company = _company(realm_id, authorization)
        if isinstance(company, Response):
            return company
        name = canonical_entity(entity)
        request_id = request.query_params.get("requestid")
        if request_id is not None and len(request_id) > 50:
            raise faults.business_validation("requestid must be at most 50 characters")
        body = await _body(request)
        with company.lock:
            if request_id and request_id in company.responses_by_request_id:
                status, replay = company.responses_by_request_id[request_id]
                return _json(replay, status)
            try:
                saved = company.update(name, body) if body.get("Id") else company.create(name, body)
                status, response = 200, {name: saved, "time": _now()}
            except faults.QboFault as fault:
                status, response = fault.status, fault.body(_now())
            if request_id:
                company.responses_by_request_id[request_id] = (status, response)
        sandbox.save()
        return _json(response, status)

    # -- admin (sandbox only) ------------------------------------------------------------------------
    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/admin/companies/{realm_id}")
    def connect_company(realm_id: str) -> dict[str, str]:
        """Create the company if needed and hand out a refresh token, as the OAuth consent flow would."""
        sandbox.company(realm_id)
        refresh_token = sandbox.tokens.connect(realm_id)
        sandbox.save()
        return {"realm_id": realm_id, "refresh_token": refresh_token}

    @app.post("/admin/companies/{realm_id}/faults")
    def inject_faults(realm_id: str, kind: str, count: int = 1) -> Response:
        """Make the company's next `count` API calls fail with `kind` (500 or 429)."""
        if kind not in ("500", "429"):
            return JSONResponse({"error": "kind must be 500 or 429"}, status_code=422)
        company = sandbox.company(realm_id)
        with company.lock:
            company.injected_faults.extend([kind] * count)
            return _json({"realm_id": realm_id, "pending": list(company.injected_faults)})

    @app.get("/admin/companies/{realm_id}/{entity}")
    def list_objects(realm_id: str, entity: str) -> Response:
        name = canonical_entity(entity)
        return _json({name: sandbox.company(realm_id).all(name)})

    return app


__all__ = ["ENTITIES", "QboSandbox", "create_app"]
