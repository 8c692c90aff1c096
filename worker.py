"""Runs a Ledgerflow worker: any number of these, on any number of machines, poll the same task queue."""

import asyncio
import logging
import signal
import warnings
from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client
from temporalio.worker import Worker

from activities.action_plans import ActionPlanActivities
from activities.autopay import AutopayActivities
from activities.collections import CollectionActivities
from activities.crm import CrmActivities, CrmPaymentActivities
from activities.gateway import GatewayActivities
from activities.leads import LeadActivities
from activities.ledger import LedgerActivities
from activities.messaging import MessagingActivities
from activities.partners import PartnerActivities
from activities.plan_feed import PlanFeedActivities
from activities.proposal_feed import ProposalFeedActivities
from activities.qbo_client import QboConnector
from activities.quickbooks import QuickBooksActivities
from activities.royalty_ledger import RoyaltyLedgerActivities
from config.log_format import configure_logging
from config.settings import Settings, get_settings
from config.temporal import connect, worker_runtime
from config.workflow_bytecode import compile_workflow_modules
from config.workflow_runner import workflow_runner
from models.db import create_tables, get_engine
from workflows.ach_settlement import AchSettlementWorkflow
from workflows.action_plan import ActionPlanWorkflow
from workflows.autopay_cycle import AutopayCycleWorkflow
from workflows.email_capture import EmailCaptureWorkflow
from workflows.franchisee_royalty import FranchiseeRoyaltyWorkflow
from workflows.lead_intake import LeadIntakeWorkflow
from workflows.nightly_royalty import NightlyRoyaltyWorkflow
from workflows.payment_collection import PaymentCollectionWorkflow
from workflows.payment_refund import PaymentRefundWorkflow
from workflows.plan_preview import PlanPreviewWorkflow
from workflows.proposal import ProposalWorkflow
from workflows.reconcile import ReconcileWorkflow
from workflows.royalty_run import RoyaltyRunWorkflow
from workflows.scheduled_payment import ScheduledPaymentWorkflow

WORKFLOWS = [ProposalWorkflow, ReconcileWorkflow, NightlyRoyaltyWorkflow, RoyaltyRunWorkflow, FranchiseeRoyaltyWorkflow,
             ActionPlanWorkflow, PlanPreviewWorkflow, LeadIntakeWorkflow, EmailCaptureWorkflow,
             PaymentCollectionWorkflow, AchSettlementWorkflow, ScheduledPaymentWorkflow, AutopayCycleWorkflow,
             PaymentRefundWorkflow]


class PlansInvalid(Exception):
    """A plan file does not validate: the worker does not start, so no enrollment runs a broken plan."""


def build_worker(client: Client, settings: Settings, executor: ThreadPoolExecutor, **options: object) -> Worker:
    """The worker with every workflow and activity; tests build theirs here too, so they run what ships."""
    from config.plans import validate_plans

    faults = validate_plans(sorted(settings.plans_dir.glob("*.yaml")))
    if faults:
        raise PlansInvalid("the action plans do not validate:\n  " + "\n  ".join(map(str, faults)))
    compile_workflow_modules(WORKFLOWS)
    engine = get_engine(settings.database_url)
    create_tables(engine)
    quickbooks = QuickBooksActivities(QboConnector(settings, engine), engine)
    activities = [
        *quickbooks.activities(),
        *LedgerActivities(engine).activities(),
        *RoyaltyLedgerActivities(engine).activities(),
        *CrmActivities(settings, engine).activities(),
        *GatewayActivities(engine, settings).activities(),
        *CollectionActivities(engine).activities(),
        *CrmPaymentActivities(settings, engine).activities(),
        *AutopayActivities(engine).activities(),
        *ActionPlanActivities(settings, engine).activities(),
        *PlanFeedActivities(client, settings, engine).activities(),
        *MessagingActivities(engine, settings).activities(),
        *PartnerActivities(engine, settings).activities(),
        *ProposalFeedActivities(client, settings, engine).activities(),
        *LeadActivities(settings, engine).activities(),
    ]
    with warnings.catch_warnings():
        # More slots than threads is the point (settings.worker_activity_slots): the SDK warns of it.
        warnings.filterwarnings("ignore", message="Worker max_concurrent_activities is")
        return Worker(
            client,
            task_queue=settings.task_queue,
            workflows=WORKFLOWS,
            activities=activities,
            activity_executor=executor,
            max_concurrent_activities=settings.activity_slots,
            max_concurrent_workflow_tasks=settings.worker_workflow_tasks,
            workflow_runner=workflow_runner(client.data_converter),
            **options,  # type: ignore[arg-type]
        )


async def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    log = logging.getLogger("ledgerflow.worker")
    # The metrics endpoint's runtime carries the worker's client, so the worker reports through it.
    client = await connect(settings, runtime=worker_runtime(settings))
    if settings.metrics_bind_address:
        log.info("Metrics at http://%s/metrics", settings.metrics_bind_address)
    with ThreadPoolExecutor(max_workers=settings.worker_activity_threads) as executor:
        worker = build_worker(client, settings, executor)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(worker.shutdown()))
        log.info("Worker polling task queue %s", settings.task_queue)
        await worker.run()


if __name__ == "__main__":
    asyncio.run(main())
