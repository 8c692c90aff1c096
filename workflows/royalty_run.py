"""A franchisor's royalty for one business date: one child workflow per franchisee, a bounded number at a
time; a franchisee that fails is reported and never holds up the others."""

import asyncio

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from activities.royalty_ledger import RoyaltyLedgerActivities
    from models import search_attributes as sa
    from models.royalty import (
        ClaimInput,
        FranchiseeOutcome,
        FranchiseeRoyaltyInput,
        FranchiseeTerms,
        RoyaltyPlan,
        RoyaltyRunInput,
        RoyaltyRunResult,
        franchisee_royalty_id,
        royalty_run_id,
    )
    from models.royalty_dates import eligible_through

from workflows.errors import cause_message
from workflows.franchisee_royalty import FranchiseeRoyaltyWorkflow
from workflows.policies import LEDGER_TIMEOUT


@workflow.defn
class RoyaltyRunWorkflow:
    def __init__(self) -> None:
        self._running = 0
        self._outcomes: dict[str, FranchiseeOutcome] = {}

    @workflow.run
    async def run(self, input: RoyaltyRunInput) -> RoyaltyRunResult:
        plan: RoyaltyPlan = await workflow.execute_activity_method(
            RoyaltyLedgerActivities.load_royalty_plan, input.franchisor_id, start_to_close_timeout=LEDGER_TIMEOUT,
            summary=f"Ledger: {input.franchisor_id}'s royalty terms and franchisees")
        run_id = royalty_run_id(input.franchisor_id, input.business_date)
        through = eligible_through(input.business_date, plan.terms.waiting_period_days)
        children = []
        for franchisee in plan.franchisees:
            await workflow.wait_condition(lambda: self._running < plan.terms.concurrency)
            self._running += 1
            claim = ClaimInput(run_id=run_id, business_date=input.business_date, eligible_through=through,
                               terms=plan.terms, franchisee=franchisee)
            children.append(asyncio.create_task(self._charge(claim, input)))
            self._show_progress(len(plan.franchisees))
        await asyncio.gather(*children)
        result = RoyaltyRunResult(run_id=run_id, franchisor_id=input.franchisor_id,
                                  business_date=input.business_date, eligible_through=through,
                                  outcomes=[self._outcomes[f.account_id] for f in plan.franchisees],
                                  workflow_run_id=workflow.info().run_id)
        await workflow.execute_activity_method(
            RoyaltyLedgerActivities.save_royalty_run, result, start_to_close_timeout=LEDGER_TIMEOUT,
            summary=f"Ledger: the run's record, {len(result.failed)} franchisee(s) failed")
        return result

    async def _charge(self, claim: ClaimInput, input: RoyaltyRunInput) -> None:
        franchisee: FranchiseeTerms = claim.franchisee
        try:
            self._outcomes[franchisee.account_id] = await workflow.execute_child_workflow(
                FranchiseeRoyaltyWorkflow.run, FranchiseeRoyaltyInput(claim=claim, timeouts=input.timeouts),
                id=franchisee_royalty_id(claim.run_id, franchisee.account_id),
                static_summary=f"Royalty of {franchisee.name} for {claim.business_date}",
                search_attributes=TypedSearchAttributes([
                    SearchAttributePair(sa.ACCOUNT_ID, franchisee.account_id),
                    SearchAttributePair(sa.FRANCHISOR, claim.terms.franchisor_id)]))
        except ChildWorkflowError as error:
            self._outcomes[franchisee.account_id] = FranchiseeOutcome(
                account_id=franchisee.account_id, name=franchisee.name, status="failed", error=cause_message(error))
        finally:
            self._running -= 1

    def _show_progress(self, total: int) -> None:
        failed = sum(1 for o in self._outcomes.values() if o.status == "failed")
        workflow.set_current_details(f"{len(self._outcomes)} of {total} franchisees done, {failed} failed, "
                                     f"{self._running} in progress")
