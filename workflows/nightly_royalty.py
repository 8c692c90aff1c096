"""What the nightly schedule starts: it turns the time the run was scheduled for into the business date
and runs that date's royalty under its business key, so a backfill or a late start covers the right day
and a date already running is not run twice at once."""

from datetime import datetime

from temporalio import workflow
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from models import search_attributes as sa
    from models.royalty import NightlyRoyaltyInput, RoyaltyRunInput, RoyaltyRunResult, royalty_run_id
    from models.royalty_dates import business_date

from workflows.royalty_run import RoyaltyRunWorkflow

# Set by Temporal on every workflow a schedule starts, backfills included.
SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")


@workflow.defn
class NightlyRoyaltyWorkflow:
    @workflow.run
    async def run(self, input: NightlyRoyaltyInput) -> RoyaltyRunResult | None:
        scheduled: datetime = workflow.info().typed_search_attributes.get(SCHEDULED_START) or workflow.now()
        business = business_date(scheduled, input.time_zone)
        try:
            return await workflow.execute_child_workflow(
                RoyaltyRunWorkflow.run, RoyaltyRunInput(franchisor_id=input.franchisor_id, business_date=business,
                                                        timeouts=input.timeouts),
                id=royalty_run_id(input.franchisor_id, business),
                static_summary=f"Royalty of {input.franchisor_id} for {business}",
                search_attributes=TypedSearchAttributes([SearchAttributePair(sa.FRANCHISOR, input.franchisor_id)]),
                # The run goes on whatever happens to this thin starter.
                parent_close_policy=ParentClosePolicy.ABANDON)
        except WorkflowAlreadyStartedError:
            workflow.logger.info("Royalty of %s for %s is already running", input.franchisor_id, business)
            return None
