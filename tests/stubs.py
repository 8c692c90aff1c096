"""Stand-ins for activities, registered under the real activity names, to test workflow logic alone."""

from collections import Counter

from temporalio import activity
from temporalio.exceptions import ApplicationError

from models.proposals import EnsureCustomerInput, EnsureEstimateInput


class StubQuickBooks:
    """Counts calls; fails the estimate with a final fault for proposals numbered 'BAD'."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    @activity.defn(name="ensure_customer")
    async def ensure_customer(self, input: EnsureCustomerInput) -> str:
        self.calls["customer"] += 1
        return f"cust-{input.contact.id}"

    @activity.defn(name="ensure_estimate")
    async def ensure_estimate(self, input: EnsureEstimateInput) -> str:
        self.calls["estimate"] += 1
        if input.proposal.number == "BAD":
            raise ApplicationError("QBO 2500: Invalid Reference Id", type="QboValidationError", non_retryable=True)
        return f"est-{input.proposal.number}"
