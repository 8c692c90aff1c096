"""One franchisee's royalty for one run: work out the charge (exactly once, in the ledger), then write the
check in the franchisee's QBO file, with any check an earlier run could not write; where the network collects
by ACH, debit each written check's amount through the franchisor's gateway, once per charge."""

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.gateway import GatewayActivities
    from activities.quickbooks import QuickBooksActivities
    from activities.royalty_ledger import RoyaltyLedgerActivities
    from models.gateway import ChargeMeta, ChargeRequest, GatewayCharge
    from models.royalty import (
        ChargeStatus,
        ChargeSummary,
        CheckFailed,
        CheckWritten,
        Claimed,
        DebitRecorded,
        DebitStatus,
        EnsureVendorInput,
        FranchiseeOutcome,
        FranchiseeRoyaltyInput,
        debit_idempotency_id,
        royalty_check,
    )

from workflows.errors import cause_message, cause_type
from workflows.policies import GATEWAY_RETRY, LEDGER_TIMEOUT, QBO_RETRY

# Runs from before this patch leave the vendor to the check activity; newer ones ensure it first, once.
VENDOR_FIRST = "royalty-vendor-ensured-before-checks"


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
        vendor_id: str | None = None
        for charge in claimed.checks_due:
            try:
                if vendor_id is None and workflow.patched(VENDOR_FIRST):
                    vendor_id = await self._vendor(input)
                written[charge.charge_id] = await self._write_check(input, charge, vendor_id)
            except ActivityError as error:
                fault = f"check {charge.check_number} ({charge.run_id}): {cause_message(error)}"
                faults.append(f"{fault}; it stays due for the next run")
                await workflow.execute_activity_method(
                    RoyaltyLedgerActivities.record_royalty_check_failure,
                    CheckFailed(charge_id=charge.charge_id, error=fault), start_to_close_timeout=LEDGER_TIMEOUT,
                    summary=f"Ledger: check {charge.check_number} not written")
        debits: dict[int, DebitRecorded] = {}
        for charge in claimed.debits_due:  # a debit only ever follows its check
            if charge.charge_id in written or charge.status is ChargeStatus.CHECK_WRITTEN:
                debits[charge.charge_id] = debit = await self._debit(input, charge)
                if debit.status is not DebitStatus.DEBITED:
                    outcome = "declined" if debit.status is DebitStatus.DECLINED else "not made, tried again next run"
                    faults.append(f"ACH debit of {charge.total_due} for check {charge.check_number} ({charge.run_id}) "
                                  f"{outcome}: {debit.error}")
        if faults:
            raise ApplicationError(f"{franchisee.account_id}: " + "; ".join(faults), type="RoyaltyNotCollected")
        charge = claimed.charge
        if charge.charge_id in written:
            charge = charge.model_copy(update={"status": ChargeStatus.CHECK_WRITTEN,
                                               "check_id": written[charge.charge_id]})
        if charge.charge_id in debits:
            charge = charge.model_copy(update={"debit_status": DebitStatus.DEBITED,
                                               "debit_id": debits[charge.charge_id].debit_id})
        return FranchiseeOutcome(account_id=franchisee.account_id, name=franchisee.name, status=charge.status.value,
                                 charge=charge, checks_written=list(written.values()),
                                 debits=[d.debit_id for d in debits.values() if d.debit_id])

    @staticmethod
    async def _vendor(input: FranchiseeRoyaltyInput) -> str:
        """The franchisor as a vendor in the franchisee's file: found or created once, then known by the map."""
        franchisee, vendor_name = input.claim.franchisee, input.claim.terms.vendor_name
        vendor_id: str = await workflow.execute_activity_method(
            QuickBooksActivities.ensure_vendor,
            EnsureVendorInput(account_id=franchisee.account_id, realm_id=franchisee.realm_id, name=vendor_name),
            start_to_close_timeout=input.timeouts.qbo_call, schedule_to_close_timeout=input.timeouts.check_patience,
            retry_policy=QBO_RETRY, summary=f"QBO: vendor {vendor_name}")
        return vendor_id

    @staticmethod
    async def _write_check(input: FranchiseeRoyaltyInput, charge: ChargeSummary, vendor_id: str | None) -> str:
        check = royalty_check(charge, input.claim.terms, input.claim.franchisee.realm_id, vendor_id)
        check_id: str = await workflow.execute_activity_method(
            QuickBooksActivities.write_royalty_check, check, start_to_close_timeout=input.timeouts.qbo_call,
            schedule_to_close_timeout=input.timeouts.check_patience, retry_policy=QBO_RETRY,
            summary=f"QBO: check {charge.check_number} for {charge.total_due} to {input.claim.terms.vendor_name}")
        assert charge.check_number is not None
        await workflow.execute_activity_method(
            RoyaltyLedgerActivities.record_royalty_check,
            CheckWritten(charge_id=charge.charge_id, check_id=check_id, check_number=charge.check_number),
            start_to_close_timeout=LEDGER_TIMEOUT,
            summary=f"Ledger: check {charge.check_number} is Purchase {check_id}")
        return check_id

    @staticmethod
    async def _debit(input: FranchiseeRoyaltyInput, charge: ChargeSummary) -> DebitRecorded:
        """Debit the franchisee's bank account for a written check, through the franchisor's gateway account,
        and record the answer. A decline is final (the franchisor follows it up); a gateway that stays
        unreachable leaves the debit due for the next run, which sends the same idempotency id."""
        terms, franchisee = input.claim.terms, input.claim.franchisee
        if franchisee.ach_payment_method_id is None:
            recorded = DebitRecorded(charge_id=charge.charge_id, status=DebitStatus.DUE,
                                     error=f"{franchisee.account_id} has no ach_payment_method_id in the network file")
        else:
            request = ChargeRequest(
                account_id=terms.franchisor_id, payment_method_id=franchisee.ach_payment_method_id,
                total=charge.total_due, idempotency_id=debit_idempotency_id(charge),
                meta=ChargeMeta(payment_note=f"Royalty {charge.run_id}, check {charge.check_number}"))
            try:
                debit: GatewayCharge = await workflow.execute_activity_method(
                    GatewayActivities.charge, request, start_to_close_timeout=input.timeouts.gateway_call,
                    schedule_to_close_timeout=input.timeouts.check_patience, retry_policy=GATEWAY_RETRY,
                    summary=f"Gateway: ACH debit of {charge.total_due} from {franchisee.name}")
                recorded = DebitRecorded(charge_id=charge.charge_id, status=DebitStatus.DEBITED,
                                         debit_id=debit.transaction_id)
            except ActivityError as error:
                declined = cause_type(error) == "GatewayDeclined"
                recorded = DebitRecorded(charge_id=charge.charge_id, error=cause_message(error),
                                         status=DebitStatus.DECLINED if declined else DebitStatus.DUE)
        await workflow.execute_activity_method(
            RoyaltyLedgerActivities.record_royalty_debit, recorded, start_to_close_timeout=LEDGER_TIMEOUT,
            summary=f"Ledger: ACH debit for check {charge.check_number} {recorded.status.value}")
        return recorded
