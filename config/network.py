"""Loads the franchise network (config/network.yaml) and installs it in the database."""

from decimal import Decimal
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy import Engine

from models.accounts import Franchisee, Franchisor
from models.db import session_scope
from models.money import Exact
from models.proposals import Stage


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _valid_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone {value!r}") from error
    return value


TimeZoneName = Annotated[str, AfterValidator(_valid_zone)]


class FranchisorConfig(_Config):
    id: str = Field(min_length=1)
    name: str
    time_zone: TimeZoneName


class FranchiseeConfig(_Config):
    account_id: str = Field(min_length=1)
    name: str
    qbo_realm_id: str = Field(min_length=1)
    time_zone: TimeZoneName
    royalty_rate: Exact = Field(ge=Decimal(0), le=Decimal(1))
    marketing_rate: Exact = Field(ge=Decimal(0), le=Decimal(1))
    sales_cycle: dict[str, Stage]


class NetworkConfig(_Config):
    franchisor: FranchisorConfig
    franchisees: list[FranchiseeConfig]


def load_network(path: Path) -> NetworkConfig:
    return NetworkConfig.model_validate(yaml.safe_load(path.read_text()))


def install_network(engine: Engine, network: NetworkConfig) -> None:
    """Insert or update the franchisor and franchisees; running it again changes nothing."""
    with session_scope(engine) as session:
        fr = network.franchisor
        session.merge(Franchisor(id=fr.id, name=fr.name, time_zone=fr.time_zone))
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
                    sales_cycle={step: stage.value for step, stage in fe.sales_cycle.items()},
                )
            )
