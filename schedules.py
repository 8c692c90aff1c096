"""The Temporal schedules Ledgerflow keeps: reconciliation of each account every few hours. Installing is
idempotent: an existing schedule is updated to the current settings, never duplicated."""

import dataclasses
from dataclasses import dataclass

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from config.settings import Settings
from models.reconcile import ReconcileInput, reconcile_workflow_id
from workflows.reconcile import ReconcileWorkflow


@dataclass(frozen=True)
class Installed:
    schedule_id: str
    created: bool


def reconcile_schedule(settings: Settings, account_id: str) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            ReconcileWorkflow.run, ReconcileInput(account_id=account_id),
            id=reconcile_workflow_id(account_id), task_queue=settings.task_queue),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=settings.reconcile_every)]),
        # A sync still running when the next is due makes the next one pointless.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def install_reconcile_schedule(client: Client, settings: Settings, account_id: str) -> Installed:
    schedule_id = reconcile_workflow_id(account_id)
    schedule = reconcile_schedule(settings, account_id)
    try:
        await client.create_schedule(schedule_id, schedule)
        return Installed(schedule_id, created=True)
    except ScheduleAlreadyRunningError:
        async def replace(current: ScheduleUpdateInput) -> ScheduleUpdate:
            # Settings change; an operator's pause (and its note) stays.
            return ScheduleUpdate(schedule=dataclasses.replace(schedule, state=current.description.schedule.state))

        await client.get_schedule_handle(schedule_id).update(replace)
        return Installed(schedule_id, created=False)
