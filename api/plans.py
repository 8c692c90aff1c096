"""Action plan enrollments over HTTP, behind the account's API key: enroll a contact (the plan's re-entry
policy decides a second enrollment), see where an enrollment is, cancel it."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from api.auth import AUTH_RESPONSES, AccountReader
from dispatch import PlanNotEnrollable, enroll_contact
from models.enrollments import CancelEnrollment, EnrollmentState, plan_workflow_id

router = APIRouter(prefix="/accounts", tags=["action plans"])


class Enrollment(BaseModel):
    plan_id: str = Field(min_length=1, max_length=64)
    source: str = Field(default="api", min_length=1, max_length=100)
    # What enrolled the contact (an event or lead id): the same trigger sent again never restarts a run.
    trigger: str | None = Field(default=None, max_length=200)


class Enrolled(BaseModel):
    status: str  # accepted, or ignored (the re-entry policy said no)
    workflow_id: str | None
    reason: str | None = None


@router.post("/{account_id}/contacts/{contact_id}/plans", status_code=status.HTTP_202_ACCEPTED,
             responses={**AUTH_RESPONSES, 200: {"description": "ignored: the plan's re-entry policy said no"},
                        422: {"description": "unknown plan, or a plan that does not validate"}})
async def enroll(account_id: str, contact_id: str, request: Request, _caller: AccountReader,
                 enrollment: Annotated[Enrollment, Body()]) -> JSONResponse:
    """Enroll the contact in a plan, as the plan file says now."""
    try:
        dispatched = await enroll_contact(request.app.state.temporal, request.app.state.settings,
                                          request.app.state.engine, account_id, contact_id, enrollment.plan_id,
                                          enrollment.source, trigger=enrollment.trigger)
    except PlanNotEnrollable as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from error
    answer = Enrolled(status=dispatched.status, workflow_id=dispatched.workflow_id, reason=dispatched.reason)
    code = status.HTTP_202_ACCEPTED if dispatched.status == "accepted" else status.HTTP_200_OK
    return JSONResponse(answer.model_dump(), status_code=code)


def _handle(request: Request, account_id: str, contact_id: str, plan_id: str) -> WorkflowHandle[Any, Any]:
    client: Client = request.app.state.temporal
    return client.get_workflow_handle(plan_workflow_id(account_id, contact_id, plan_id))


@router.get("/{account_id}/contacts/{contact_id}/plans/{plan_id}", responses=AUTH_RESPONSES)
async def enrollment_state(account_id: str, contact_id: str, plan_id: str, request: Request,
                           _caller: AccountReader) -> EnrollmentState:
    """Where the contact is in the plan: the current step, what it waits for, every step taken."""
    try:
        state: EnrollmentState = await _handle(request, account_id, contact_id, plan_id).query(
            "state", result_type=EnrollmentState)
    except RPCError as error:
        if error.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"contact {contact_id} has no enrollment in "
                                                           f"{plan_id}") from error
        raise
    return state


@router.post("/{account_id}/contacts/{contact_id}/plans/{plan_id}/cancel", status_code=status.HTTP_202_ACCEPTED,
             responses=AUTH_RESPONSES)
async def cancel(account_id: str, contact_id: str, plan_id: str, request: Request, _caller: AccountReader,
                 body: Annotated[CancelEnrollment, Body()]) -> dict[str, str]:
    """End the enrollment from wherever it is."""
    try:
        await _handle(request, account_id, contact_id, plan_id).signal("cancel", body)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"contact {contact_id} has no running enrollment in "
                                                           f"{plan_id}") from error
        raise
    return {"status": "cancelling", "workflow_id": plan_workflow_id(account_id, contact_id, plan_id)}
