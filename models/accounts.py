"""The franchise network: a franchisor and its franchisees, each franchisee a CRM account with a QBO company."""

from decimal import Decimal

from sqlalchemy import Column, Text
from sqlalchemy.types import JSON
from sqlmodel import Field, SQLModel

from models.money import DecimalColumn


class Franchisor(SQLModel, table=True):
    id: str = Field(primary_key=True)
    name: str
    time_zone: str
    # config.network.RoyaltyConfig as JSON: run time, waiting period, vendor and accounts for the checks.
    royalty: dict[str, object] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Franchisee(SQLModel, table=True):
    """A franchisee's CRM (sub-)account; `account_id` is the CRM account id and the key used everywhere."""

    account_id: str = Field(primary_key=True)
    franchisor_id: str = Field(foreign_key="franchisor.id", index=True)
    name: str
    qbo_realm_id: str = Field(index=True)
    time_zone: str
    royalty_rate: Decimal = Field(sa_column=Column(DecimalColumn(9, 6), nullable=False))
    marketing_rate: Decimal = Field(sa_column=Column(DecimalColumn(9, 6), nullable=False))
    tips_bear_royalty: bool = False
    fees_bear_royalty: bool = False
    ach_payment_method_id: str | None = None  # the bank account royalty debits draw on, at the franchisor's gateway
    # CRM sales-cycle step name -> lifecycle stage (see models.events.Stage).
    sales_cycle: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # CRM sales-cycle step name -> the action plan a contact reaching it is enrolled in.
    action_plans: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # models.lead_routing.LeadIntake as JSON: lead source -> plan, default plan, Thumbtack businesses.
    leads: dict[str, object] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # models.payment_settings.PaymentSettings as JSON: fees, invoice terms, autopay time, ACH return window.
    payments: dict[str, object] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    notes: str | None = Field(default=None, sa_column=Column(Text))
