"""The autopay cycle's plan: every customer of the account with autopay configurations, their open invoices
from the ledger, and which configuration pays which (models/autopay.choose_payments)."""

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from models.accounts import Franchisee
from models.autopay import choose_payments
from models.autopay_configs import customers_with_autopay, load_configs
from models.autopay_cycles import AutopayCycleInput, AutopayPlan
from models.receivables import open_invoices
from models.time_zones import local_today


class AutopayActivities:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @activity.defn
    def plan_autopay(self, input: AutopayCycleInput) -> AutopayPlan:
        with Session(self.engine) as session:
            franchisee = session.get(Franchisee, input.account_id)
            if franchisee is None:
                raise ApplicationError(f"unknown account {input.account_id}", type="UnknownAccount",
                                       non_retryable=True)
            today = input.cycle_date or local_today(franchisee.time_zone)
            choices = []
            for customer_id in customers_with_autopay(session, input.account_id):
                choices += choose_payments(load_configs(session, input.account_id, customer_id),
                                           open_invoices(session, input.account_id, customer_id), today)
        return AutopayPlan(cycle_date=today, choices=choices)

    def activities(self) -> list[Callable[..., Any]]:
        return [self.plan_autopay]
