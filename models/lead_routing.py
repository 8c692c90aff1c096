"""Which account a lead belongs to, the CRM lead source it gets and the plan it starts, from the key it was
posted with and the account's lead config (config/network.yaml `leads`)."""

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine
from sqlmodel import Session, select

from models.accounts import Franchisee
from models.lead_keys import LeadKey
from models.leads import CHANNEL_LEAD_SOURCE, LeadChannel


class LeadIntake(BaseModel):
    """Where an account's leads go (config/network.yaml `leads`): each CRM lead source's connection plan, the
    plan of leads posted with the account's own web key, and the Thumbtack businesses whose leads a franchisor's
    shared key routes here."""

    model_config = ConfigDict(extra="forbid")

    default_plan: str | None = Field(default=None, min_length=1)
    plans: dict[str, str] = {}  # CRM lead source name -> plan id (config/plans)
    thumbtack_business_ids: list[str] = []


class LeadNotRouted(LookupError):
    """No account takes this lead (a Thumbtack business no franchisee is configured for)."""


@dataclass(frozen=True)
class LeadRoute:
    franchisee: Franchisee
    lead_source: str | None
    plan_id: str | None


def plan_for(franchisee: Franchisee, lead_source: str | None) -> str | None:
    """The lead source's connection plan, or the account's default plan."""
    config = LeadIntake.model_validate(franchisee.leads or {})
    plans = {name.casefold(): plan for name, plan in config.plans.items()}
    return plans.get(lead_source.casefold(), config.default_plan) if lead_source else config.default_plan


def route_lead(engine: Engine, key: LeadKey, business_id: str | None = None) -> LeadRoute:
    """A franchisee's key routes to itself; a franchisor's Thumbtack key by the lead's business id."""
    lead_source = key.lead_source or CHANNEL_LEAD_SOURCE[LeadChannel(key.channel)]
    with Session(engine) as session:
        if key.scope == "franchisee":
            franchisee = session.get(Franchisee, key.account_id)
        else:
            franchisees = session.exec(select(Franchisee).where(Franchisee.franchisor_id == key.account_id)).all()
            franchisee = next((f for f in franchisees
                               if business_id in LeadIntake.model_validate(f.leads or {}).thumbtack_business_ids), None)
    if franchisee is None:
        raise LeadNotRouted(f"Thumbtack business {business_id!r} is not routed to any account of {key.account_id}"
                            if key.scope == "franchisor" else f"account {key.account_id} no longer exists")
    return LeadRoute(franchisee=franchisee, lead_source=lead_source, plan_id=plan_for(franchisee, lead_source))
