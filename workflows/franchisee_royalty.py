"""One franchisee's royalty for one run: work out the charge (exactly once, in the ledger), then write the
check in the franchisee's QBO file, with any check an earlier run could not write."""

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.quickbooks import QuickBooksActivities
    from activities.royalty_ledger import RoyaltyLedgerActivities
    from models.royalty import (
        ChargeStatus,
        ChargeSummary,
        CheckFailed,
        CheckWritten,
        Claimed,
        FranchiseeOutcome,
        FranchiseeRoyaltyInput,
        royalty_check,
    )

from workflows.policies import LEDGER_TIMEOUT, QBO_RETRY


def cause_message(error: BaseException) -> str:
    """The innermost failure's message: what went wrong, not the chain of wrappers around it."""
    while error.__cause__ is not None:
        error = error.__cause__
    return str(error)


@workflow.defn
class FranchiseeRoyaltyWorkflow:
    @workflow.run
    async def run(self, input: FranchiseeRoyaltyInput) -> FranchiseeOutcome:
        franchisee = input.claim.franchisee
        claimed: Claimed = await workflow.execute_activity_method(
            RoyaltyLedgerActivities.claim_royalty_charge, input.claim, start_to_close_timeout=LEDGER_TIMEOUT,
            summary=f"Ledger: {franchisee.account_id}'s charge, payments received through "
                    f"{input.claim.eligible_through}")
        written: dict[int, str] = {}  # charge id -> QBO Purchase id
        faults: list[str] = []
        for charge in claimed.checks_due:
            try:
                written[charge.charge_id] = await self._write_check(input, charge)
            except ActivityError as error:
                fault = f"check {charge.check_number} ({charge.run_id}): {cause_message(error)}"
                faults.append(fault)
                await workflow.execute_activity_method(
                    RoyaltyLedgerActivities.record_royalty_check_failure,
                    CheckFailed(charge_id=charge.charge_id, error=fault), start_to_close_timeout=LEDGER_TIMEOUT,
                    summary=f"Ledger: check {charge.check_number} not written")
        if faults:
            raise ApplicationError(f"{franchisee.account_id}: {len(faults)} royalty check(s) not written; they stay "
                                   f"due for the next run. " + "; ".join(faults), type="RoyaltyCheckNotWritten")
        charge = claimed.charge
        if charge.charge_id in written:
            charge = charge.model_copy(update={"status": ChargeStatus.CHECK_WRITTEN,
                                               "check_id": written[charge.charge_id]})
        return FranchiseeOutcome(account_id=franchisee.account_id, name=franchisee.name, status=charge.status.value,
                                 charge=charge, checks_written=list(written.values()))

    @staticmethod
    async def _write_check(input: FranchiseeRoyaltyInput, charge: ChargeSummary) -> str:
        check = royalty_check(charge, input.claim.terms, input.claim.franchisee.realm_id)
        check_id: str = await workflow.execute_activity_method(
            QuickBooksActivities.write_royalty_check, check, start_to_close_timeout=input.timeouts.qbo_call,
            schedule_to_close_timeout=input.timeouts.check_patience, retry_policy=QBO_RETRY,
            summary=f"QBO: check {charge.check_number} for {charge.total_due} to {check.vendor_name}")
        assert charge.check_number is not None
        await workflow.execute_activity_method(
            RoyaltyLedgerActivities.record_royalty_check,
            CheckWritten(charge_id=charge.charge_id, check_id=check_id, check_number=charge.check_number),
            start_to_close_timeout=LEDGER_TIMEOUT,
            summary=f"Ledger: check {charge.check_number} is Purchase {check_id}")
        return check_id
