"""Lead posts: Angi (its unique endpoint per account, an optional `x-api-key`), Thumbtack (the legacy lead
JSON; a franchisor's shared key routes by business id), web forms (`web_key` in the form) and Zapier-style
posts. The key is checked first (an unknown one: 404 in the path, 401 in a form), then the body (422 naming the
field, recorded in the API monitor as rejected); an accepted lead is recorded, then handed to its workflow, and
answered 200 with JSON once Temporal has it, a duplicate too (Angi requires it). Nothing is half-created: the
contact is made by the workflow or not at all."""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from sqlalchemy import Engine

from api.handover import hand_over
from api.json_bodies import json_object
from api.openapi import documented_body
from config.settings import Settings
from dispatch import send_lead
from models.lead_keys import LeadKey, api_key_matches, find_lead_key
from models.lead_payloads import AngiLead, ContactFormLead, ThumbtackLead
from models.lead_receipts import Outcome, record_receipt
from models.lead_routing import LeadNotRouted, route_lead
from models.leads import Lead, LeadChannel, LeadDelivery, LeadIntakeInput

router = APIRouter(prefix="/leads", tags=["leads"])
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "accepted (a duplicate too): `workflow_id` handles it, `receipt` is its API monitor entry"},
    401: {"description": "bad x-api-key (Angi), or a missing or unknown web_key (forms)"},
    404: {"description": "unknown endpoint key"},
    413: {"description": "body too large"},
    422: {"description": "malformed lead; the detail names the field. Recorded as rejected"},
    503: {"description": "Temporal unavailable: post again later"},
}
# A parsed lead and, for Thumbtack, the business it was sent to.
Parser = Callable[[dict[str, Any]], tuple[Lead, str | None]]


def _who(body: dict[str, Any]) -> str:
    """Enough of the sender's details to recognise a lead in the monitor, even a malformed one."""
    customer = body.get("customer") if isinstance(body.get("customer"), dict) else {}
    parts = [body.get("name") or " ".join(str(body.get(k) or "") for k in ("firstName", "lastName")).strip(),
             body.get("email"), body.get("primaryPhone") or body.get("phone"), customer.get("name"),
             customer.get("phone")]
    return ", ".join(str(p) for p in parts if p)[:300]


def _fault(error: ValidationError | ValueError) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors())
    return str(error)


async def _take(request: Request, key: LeadKey, channel: LeadChannel, body: dict[str, Any],
                parse: Parser) -> dict[str, Any]:
    """The one path of every lead: parse, route, record, hand to Temporal. The database work runs off the event
    loop, so a burst of posts is not served one at a time."""
    engine: Engine = request.app.state.engine
    settings: Settings = request.app.state.settings
    try:
        lead, business_id = parse(body)
        route = await run_in_threadpool(route_lead, engine, key, business_id)
    except (ValidationError, ValueError, LeadNotRouted) as error:
        detail = _fault(error) if not isinstance(error, LeadNotRouted) else str(error)
        await run_in_threadpool(record_receipt, engine, key.account_id, channel.value, _lead_id(body), _who(body),
                                Outcome.REJECTED, detail)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail) from error
    account_id = route.franchisee.account_id
    receipt = await run_in_threadpool(record_receipt, engine, account_id, channel.value, lead.lead_id, _who(body))
    assert receipt.id is not None
    input = LeadIntakeInput(account_id=account_id, channel=channel, lead_id=lead.lead_id,
                            lead_source=route.lead_source, plan_id=route.plan_id,
                            settle_time=settings.lead_settle_time)
    delivery = LeadDelivery(receipt_id=receipt.id, received_at=receipt.received_at, lead=lead)
    dispatched = await hand_over(engine, receipt.id, send_lead(
        request.app.state.temporal, route.franchisee.franchisor_id, settings.task_queue, input, delivery))
    return {"status": "accepted", "lead_id": lead.lead_id, "account_id": account_id, "receipt": receipt.id,
            "workflow_id": dispatched.workflow_id}


def _lead_id(body: dict[str, Any]) -> str | None:
    value = body.get("leadOid") or body.get("leadID") or body.get("lead_id")
    return str(value)[:200] if value else None


async def _path_key(request: Request, key: str, channel: LeadChannel) -> LeadKey:
    found = await run_in_threadpool(find_lead_key, request.app.state.engine, key, channel)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown {channel.value} endpoint")
    return found


@router.post("/angi/{key}", responses=RESPONSES, openapi_extra=documented_body(AngiLead))
async def angi_lead(key: str, request: Request,
                    x_api_key: Annotated[str | None, Header(alias="x-api-key")] = None) -> dict[str, Any]:
    """An Angi Leads post to the account's own endpoint."""
    lead_key = await _path_key(request, key, LeadChannel.ANGI)
    if not api_key_matches(lead_key, x_api_key):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or bad x-api-key")
    return await _take(request, lead_key, LeadChannel.ANGI, await json_object(request),
                       lambda body: (AngiLead.model_validate(body).to_lead(), None))


def _thumbtack(body: dict[str, Any]) -> tuple[Lead, str | None]:
    lead = ThumbtackLead.model_validate(body)
    return lead.to_lead(), lead.business.businessID


@router.post("/thumbtack/{key}", responses=RESPONSES, openapi_extra=documented_body(ThumbtackLead))
async def thumbtack_lead(key: str, request: Request) -> dict[str, Any]:
    """A Thumbtack lead (legacy JSON). A franchisor's key sends it to the franchisee its business id is routed to."""
    return await _take(request, await _path_key(request, key, LeadChannel.THUMBTACK), LeadChannel.THUMBTACK,
                       await json_object(request), _thumbtack)


@router.post("/zapier/{key}", responses=RESPONSES, openapi_extra=documented_body(ContactFormLead))
async def zapier_lead(key: str, request: Request) -> dict[str, Any]:
    """A Zapier-style post: the form fields as JSON, the key in the URL."""
    return await _take(request, await _path_key(request, key, LeadChannel.ZAPIER), LeadChannel.ZAPIER,
                       await json_object(request),
                       lambda body: (ContactFormLead.model_validate(body).to_lead(LeadChannel.ZAPIER), None))


@router.post("/web-form", responses=RESPONSES, openapi_extra={"requestBody": {"required": True, "content": {
    "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
    "application/json": {"schema": {"$ref": "#/components/schemas/ContactFormLead"}}}}})
async def web_form_lead(request: Request) -> dict[str, Any]:
    """A website form: form-encoded or JSON, case-sensitive fields, `web_key` (the account's, or a lead
    source's) and `name` or `firstName` and `lastName`."""
    if request.headers.get("content-type", "").startswith("application/json"):
        body = await json_object(request)
    else:
        body = {name: str(value) for name, value in (await request.form()).items()}
    web_key = str(body.get("web_key") or "")
    lead_key = (await run_in_threadpool(find_lead_key, request.app.state.engine, web_key, LeadChannel.WEB_FORM)
                if web_key else None)
    if lead_key is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or unknown web_key")
    return await _take(request, lead_key, LeadChannel.WEB_FORM, body,
                       lambda body: (ContactFormLead.model_validate(body).to_lead(LeadChannel.WEB_FORM), None))
