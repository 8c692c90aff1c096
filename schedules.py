"""The Temporal schedules Ledgerflow keeps: reconciliation of each account every few hours, and each
franchisor's nightly royalty in its own time zone. Installing is idempotent: an existing schedule is updated
to the current settings, never duplicated, and an operator's pause stays."""

import dataclasses
from dataclasses import dataclass
from datetime import time, timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from config.settings import Settings
from dispatch import royalty_timeouts
from models.accounts import Franchisee, Franchisor
from models.autopay_cycles import AutopayCycleInput, autopay_schedule_id
from models.payment_settings import PaymentSettings
from models.reconcile import ReconcileInput, reconcile_workflow_id
from models.royalty import NightlyRoyaltyInput, nightly_royalty_id
from workflows.autopay_cycle import AutopayCycleWorkflow
from workflows.nightly_royalty import NightlyRoyaltyWorkflow
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


def royalty_schedule(settings: Settings, franchisor: Franchisor) -> Schedule:
    """Every night at the franchisor's local run time (config validates it is clear of DST changes)."""
    run_time = time.fromisoformat(str(franchisor.royalty["run_time"]))
    return Schedule(
        action=ScheduleActionStartWorkflow(
            NightlyRoyaltyWorkflow.run, NightlyRoyaltyInput(franchisor_id=franchisor.id, time_zone=franchisor.time_zone,
                                                            timeouts=royalty_timeouts(settings)),
            id=nightly_royalty_id(franchisor.id), task_queue=settings.task_queue,
            static_summary=f"Nightly royalty of {franchisor.name}"),
        spec=ScheduleSpec(calendars=[ScheduleCalendarSpec(hour=[ScheduleRange(run_time.hour)],
                                                          minute=[ScheduleRange(run_time.minute)],
                                                          second=[ScheduleRange(0)],
                                                          comment="nightly royalty")],
                          time_zone_name=franchisor.time_zone),
        # A night still running when the next is due: the next waits for it (each covers its own date, and a
        # missed date is caught up anyway). After an outage, the last missed night runs once.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.BUFFER_ONE, catchup_window=timedelta(days=1)),
    )


def autopay_schedule(settings: Settings, franchisee: Franchisee) -> Schedule:
    """Every day at the account's autopay time, local. Each run pays what its day's plan finds still due; a run
    still going when the next is due makes the next wait, so two never charge side by side."""
    at = PaymentSettings.model_validate(franchisee.payments).autopay_time
    return Schedule(
        action=ScheduleActionStartWorkflow(
            AutopayCycleWorkflow.run, AutopayCycleInput(account_id=franchisee.account_id,
                                                        ach_poll_interval_seconds=settings.ach_poll_interval
                                                        .total_seconds()),
            id=autopay_schedule_id(franchisee.account_id), task_queue=settings.task_queue,
            static_summary=f"Autopay of {franchisee.name}"),
        spec=ScheduleSpec(calendars=[ScheduleCalendarSpec(hour=[ScheduleRange(at.hour)],
                                                          minute=[ScheduleRange(at.minute)],
                                                          second=[ScheduleRange(0)], comment="daily autopay")],
                          time_zone_name=franchisee.time_zone),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.BUFFER_ONE, catchup_window=timedelta(hours=12)),
    )


async def _install(client: Client, schedule_id: str, schedule: Schedule) -> Installed:
    try:
        await client.create_schedule(schedule_id, schedule)
        return Installed(schedule_id, created=True)
    except ScheduleAlreadyRunningError:
        async def replace(current: ScheduleUpdateInput) -> ScheduleUpdate:
            # Settings change; an operator's pause (and its note) stays.
            return ScheduleUpdate(schedule=dataclasses.replace(schedule, state=current.description.schedule.state))

        await client.get_schedule_handle(schedule_id).update(replace)
        return Installed(schedule_id, created=False)


async def install_reconcile_schedule(client: Client, settings: Settings, account_id: str) -> Installed:
    return await _install(client, reconcile_workflow_id(account_id), reconcile_schedule(settings, account_id))


async def install_royalty_schedule(client: Client, settings: Settings, franchisor: Franchisor) -> Installed:
    return await _install(client, nightly_royalty_id(franchisor.id), royalty_schedule(settings, franchisor))


async def install_autopay_schedule(client: Client, settings: Settings, franchisee: Franchisee) -> Installed:
    return await _install(client, autopay_schedule_id(franchisee.account_id), autopay_schedule(settings, franchisee))
