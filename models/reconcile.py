"""The shapes of a reconciliation run as they cross the workflow boundary: which account, how far back, and
what was read from the CRM."""

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from models.proposals import ProposalSynced


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReconcileInput(_Strict):
    account_id: str
    full: bool = False  # read every proposal, not only those changed since the cursor


class ReadChangesInput(_Strict):
    account_id: str
    since: AwareDatetime | None
    offset: int = Field(default=0, ge=0)


class CrmChangesPage(_Strict):
    """One page of proposals changed in the CRM, each read whole (lines, contact, stage, payments)."""

    proposals: list[ProposalSynced]
    read: int  # rows of the CRM's list consumed, including any skipped
    total: int
    newest: AwareDatetime | None  # the latest change seen, by the CRM's clock


class FeedInput(_Strict):
    account_id: str
    proposals: list[ProposalSynced]


class CursorInput(_Strict):
    account_id: str
    cursor: AwareDatetime


class ReconcileResult(_Strict):
    account_id: str
    since: AwareDatetime | None
    proposals_fed: int
    cursor: AwareDatetime | None


def reconcile_workflow_id(account_id: str) -> str:
    return f"reconcile:{account_id}"
