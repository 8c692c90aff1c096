"""The shapes of a royalty charge as they cross the workflow boundary."""

from pydantic import BaseModel, ConfigDict, Field

from models.money import Money


class CheckLine(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    expense_account: str = Field(min_length=1)  # an account name in the franchisee's QBO file
    amount: Money = Field(gt=0)
    description: str = Field(max_length=4000)


class RoyaltyCheckInput(BaseModel):
    """A check from the franchisee's bank account to the franchisor, one per royalty run and franchisee."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account_id: str
    realm_id: str
    run_id: str  # the royalty run's business key, e.g. "royalty:acme:2026-11-21"
    vendor_name: str = Field(min_length=1, max_length=100)
    bank_account: str = Field(min_length=1)
    lines: list[CheckLine] = Field(min_length=1)
    memo: str = Field(max_length=4000)
    doc_number: str | None = Field(default=None, max_length=21)
