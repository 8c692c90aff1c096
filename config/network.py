"""Loads the franchise network (config/network.yaml) and installs it in the database."""

from datetime import UTC, datetime, time
from decimal import Decimal
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Engine

from models.accounts import Franchisee, Franchisor
from models.db import session_scope
from models.lead_routing import LeadIntake
from models.money import Exact
from models.payment_settings import PaymentSettings
from models.proposals import Stage
from models.royalty_dates import dst_unsafe_days
from models.time_zones import TimeZoneName


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Ids go into workflow ids (`proposal:{account}:{proposal}`), schedule ids and URL paths: a ':' or '/' in one
# would let two accounts' keys collide, so they are kept to letters, digits, '.', '_' and '-'.
BUSINESS_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class RoyaltyConfig(_Config):
    """How the franchisor charges royalty: when the nightly run starts (local time), how long a payment waits
    before it is charged, and where the check goes in each franchisee's QBO file."""

    run_time: time = time(4, 0)
    waiting_period_days: int = Field(default=3, ge=0, le=90)
    vendor_name: str = Field(min_length=1, max_length=100)  # the franchisor, as a vendor in franchisee files
    bank_account: str = Field(default="Checking", min_length=1)
    royalty_expense_account: str = Field(default="Royalty Expense", min_length=1)
    marketing_expense_account: str = Field(default="Advertising & Marketing", min_length=1)
    concurrency: int = Field(default=20, ge=1, le=500)  # franchisees charged at once
    # Collect each check's amount by ACH debit of the franchisee's bank account, through the franchisor's
    # payment gateway account (its API key stored encrypted, models/gateway_credentials.py).
    ach_debit: bool = False


class FranchisorConfig(_Config):
    id: str = Field(pattern=BUSINESS_ID)
    name: str
    time_zone: TimeZoneName
    royalty: RoyaltyConfig

    @model_validator(mode="after")
    def _run_time_fires_once_a_day(self) -> "FranchisorConfig":
        """Temporal skips a local time lost to spring-forward and fires twice on one repeated at fall-back."""
        unsafe = dst_unsafe_days(self.royalty.run_time, self.time_zone, datetime.now(UTC).date())
        if unsafe:
            day, what = unsafe[0]
            raise ValueError(f"royalty.run_time {self.royalty.run_time:%H:%M} {what} in {self.time_zone} on {day}: "
                             "pick a time outside the DST change, such as 04:00")
        return self


class FranchiseeConfig(_Config):
    account_id: str = Field(pattern=BUSINESS_ID)
    name: str
    qbo_realm_id: str = Field(min_length=1)
    time_zone: TimeZoneName
    royalty_rate: Exact = Field(ge=Decimal(0), le=Decimal(1))
    marketing_rate: Exact = Field(ge=Decimal(0), le=Decimal(1))
    # Whether royalty and marketing are charged on tips and convenience fees as well as on the amount.
    tips_bear_royalty: bool = False
    fees_bear_royalty: bool = False
    # The franchisee's bank account as a payment method at the franchisor's gateway (royalty.ach_debit).
    ach_payment_method_id: str | None = Field(default=None, min_length=1)
    sales_cycle: dict[str, Stage]
    # Sales-cycle step name -> the action plan (its id in config/plans) a contact reaching it is enrolled in.
    action_plans: dict[str, str] = {}
    leads: LeadIntake = LeadIntake()
    payments: PaymentSettings = PaymentSettings()


class NetworkConfig(_Config):
    franchisor: FranchisorConfig
    franchisees: list[FranchiseeConfig]

    @model_validator(mode="after")
    def _thumbtack_businesses_routed_once(self) -> "NetworkConfig":
        owners: dict[str, str] = {}
        for franchisee in self.franchisees:
            for business in franchisee.leads.thumbtack_business_ids:
                if business in owners:
                    raise ValueError(f"Thumbtack business {business!r} is routed to both {owners[business]} and "
                                     f"{franchisee.account_id}")
                owners[business] = franchisee.account_id
        return self

    @model_validator(mode="after")
    def _debits_have_a_bank_account(self) -> "NetworkConfig":
        if self.franchisor.royalty.ach_debit:
            missing = [f"franchisees.{n}.ach_payment_method_id ({f.account_id})"
                       for n, f in enumerate(self.franchisees) if f.ach_payment_method_id is None]
            if missing:
                raise ValueError("franchisor.royalty.ach_debit is on, but these franchisees have no bank payment "
                                 "method: " + ", ".join(missing))
        return self


def load_network(path: Path) -> NetworkConfig:
    return NetworkConfig.model_validate(yaml.safe_load(path.read_text()))


def install_network(engine: Engine, network: NetworkConfig) -> None:
    """Insert or update the franchisor and franchisees; running it again changes nothing."""
    with session_scope(engine) as session:
        fr = network.franchisor
        session.merge(Franchisor(id=fr.id, name=fr.name, time_zone=fr.time_zone,
                                  royalty=fr.royalty.model_dump(mode="json")))
        for fe in network.franchisees:
            session.merge(
                Franchisee(
                    account_id=fe.account_id,
                    franchisor_id=fr.id,
                    name=fe.name,
                    qbo_realm_id=fe.qbo_realm_id,
                    time_zone=fe.time_zone,
                    royalty_rate=fe.royalty_rate,
                    marketing_rate=fe.marketing_rate,
                    tips_bear_royalty=fe.tips_bear_royalty,
                    fees_bear_royalty=fe.fees_bear_royalty,
                    ach_payment_method_id=fe.ach_payment_method_id,
                    sales_cycle={step: stage.value for step, stage in fe.sales_cycle.items()},
                    action_plans=dict(fe.action_plans),
                    leads=fe.leads.model_dump(mode="json"),
                    payments=fe.payments.model_dump(mode="json"),
                )
            )
