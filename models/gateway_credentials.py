"""Each merchant account's payment gateway (Stax) API key, encrypted at rest, keyed by the Ledgerflow account id
(a franchisor or a franchisee). Activities load it by account id; it never travels in workflow inputs."""

from sqlalchemy import Column, Engine
from sqlmodel import Field, Session, SQLModel

from models.db import session_scope
from models.encrypted import EncryptedText


class GatewayCredential(SQLModel, table=True):
    __tablename__ = "gateway_credential"

    account_id: str = Field(primary_key=True)
    api_key: str = Field(sa_column=Column(EncryptedText, nullable=False))


def save_gateway_credentials(engine: Engine, account_id: str, api_key: str) -> None:
    with session_scope(engine) as session:
        session.merge(GatewayCredential(account_id=account_id, api_key=api_key))


def load_gateway_credentials(engine: Engine, account_id: str) -> GatewayCredential | None:
    with Session(engine, expire_on_commit=False) as session:
        return session.get(GatewayCredential, account_id)
