"""Each customer's autopay configurations in the database, and what may change them: staff may change any;
the customer may not change, remove, add or lock a locked one (a franchisee locks a rule it agreed with the
customer). Replacing is all at once, so the order is never half-written."""

from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Column, Engine, delete
from sqlalchemy.types import JSON
from sqlmodel import Field, Session, SQLModel, select

from models.autopay import AutopayConfig, validate_configs
from models.db import session_scope

Editor = Literal["staff", "customer"]


class AutopayConfigRow(SQLModel, table=True):
    __tablename__ = "autopay_config"

    account_id: str = Field(primary_key=True)
    customer_id: str = Field(primary_key=True)  # the QBO customer
    config_id: str = Field(primary_key=True)
    config: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))  # AutopayConfig as JSON
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class ConfigLocked(PermissionError):
    """The customer tried to change, remove or add a locked configuration."""


def load_configs(session: Session, account_id: str, customer_id: str) -> list[AutopayConfig]:
    rows = session.exec(select(AutopayConfigRow).where(AutopayConfigRow.account_id == account_id,
                                                       AutopayConfigRow.customer_id == customer_id))
    return sorted((AutopayConfig.model_validate(row.config) for row in rows), key=lambda c: (c.position, c.id))


def customers_with_autopay(session: Session, account_id: str) -> list[str]:
    return sorted(set(session.exec(select(AutopayConfigRow.customer_id).where(
        AutopayConfigRow.account_id == account_id))))


def replace_configs(engine: Engine, account_id: str, customer_id: str, configs: list[AutopayConfig],
                    editor: Editor) -> list[AutopayConfig]:
    """Put `configs` in place of the customer's; ValueError for an ambiguous order, ConfigLocked when the
    customer would touch a locked one."""
    validate_configs(configs)
    with session_scope(engine) as session:
        current = {c.id: c for c in load_configs(session, account_id, customer_id)}
        if editor == "customer":
            wanted = {c.id: c for c in configs}
            for config in current.values():
                if config.locked and wanted.get(config.id) != config:
                    raise ConfigLocked(f"autopay configuration {config.id!r} is locked: only staff may change or "
                                       f"remove it")
            for config in configs:
                if config.locked and not (config.id in current and current[config.id].locked):
                    raise ConfigLocked(f"autopay configuration {config.id!r}: only staff may lock one")
        session.exec(delete(AutopayConfigRow).where(  # type: ignore[call-overload]
            AutopayConfigRow.account_id == account_id, AutopayConfigRow.customer_id == customer_id))
        for config in configs:
            session.add(AutopayConfigRow(account_id=account_id, customer_id=customer_id, config_id=config.id,
                                         config=config.model_dump(mode="json")))
    return sorted(configs, key=lambda c: (c.position, c.id))
