"""The ledger map in the database: what was created in QBO for each CRM object."""

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from models.db import session_scope
from models.ledger import QboObjectMap


def mapped_qbo_id(engine: Engine, account_id: str, realm_id: str, crm_type: str, crm_id: str,
                  qbo_entity: str) -> str | None:
    with Session(engine) as session:
        row = session.exec(
            select(QboObjectMap).where(
                QboObjectMap.account_id == account_id,
                QboObjectMap.realm_id == realm_id,
                QboObjectMap.crm_type == crm_type,
                QboObjectMap.crm_id == crm_id,
                QboObjectMap.qbo_entity == qbo_entity,
            )
        ).first()
        return row.qbo_id if row else None


def record_mapping(
    engine: Engine, account_id: str, realm_id: str, crm_type: str, crm_id: str, qbo_entity: str, qbo_id: str
) -> str:
    """Record the mapping; if another attempt recorded it first, keep and return theirs."""
    try:
        with session_scope(engine) as session:
            session.add(QboObjectMap(account_id=account_id, crm_type=crm_type, crm_id=crm_id,
                                     qbo_entity=qbo_entity, realm_id=realm_id, qbo_id=qbo_id))
    except IntegrityError:
        existing = mapped_qbo_id(engine, account_id, realm_id, crm_type, crm_id, qbo_entity)
        if existing is None:
            raise
        return existing
    return qbo_id
