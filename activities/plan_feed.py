"""Enrolls a contact in another plan from inside a plan (a start_plan step, or the plan's next plan),
through the same path as every other enrollment: its re-entry policy decides."""

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from config.settings import Settings
from dispatch import enroll_contact
from models.enrollments import EnrollRequest


class PlanFeedActivities:
    def __init__(self, client: Client, settings: Settings, engine: Engine) -> None:
        self.client = client
        self.settings = settings
        self.engine = engine

    @activity.defn
    async def enroll_in_plan(self, request: EnrollRequest) -> str:
        """What the enrollment did ("accepted", or "ignored" and why): a plan that does not validate is final."""
        try:
            dispatched = await enroll_contact(self.client, self.settings, self.engine, request.account_id,
                                              request.contact_id, request.plan_id, request.source,
                                              trigger=request.trigger)
        except LookupError as error:
            raise ApplicationError(str(error), type="PlanNotEnrollable", non_retryable=True) from error
        return dispatched.status if dispatched.reason is None else f"{dispatched.status}: {dispatched.reason}"

    def activities(self) -> list[Callable[..., Any]]:
        return [self.enroll_in_plan]
