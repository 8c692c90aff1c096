"""Each CRM account's API keys (ClientTether's X-Access-Token and X-Web-Key), encrypted at rest. Activities
load them by account id; they never travel in workflow inputs."""

from sqlalchemy import Column, Engine
from sqlmodel import Field, Session, SQLModel

from models.db import session_scope
from models.encrypted import EncryptedText


class CrmCredential(SQLModel, table=True):
    __tablename__ = "crm_credential"

    account_id: str = Field(primary_key=True)
    access_token: str = Field(sa_column=Column(EncryptedText, nullable=False))
    web_key: str = Field(sa_column=Column(EncryptedText, nullable=False))


def save_crm_credentials(engine: Engine, account_id: str, access_token: str, web_key: str) -> None:
    with session_scope(engine) as session:
        session.merge(CrmCredential(account_id=account_id, access_token=access_token, web_key=web_key))


def load_crm_credentials(engine: Engine, account_id: str) -> CrmCredential | None:
    with Session(engine, expire_on_commit=False) as session:
        return session.get(CrmCredential, account_id)
