"""The enrollment table: one row per run of a plan for a contact. The front door finds the running
enrollments of the contact who texted or emailed here (by phone or email, as the contact was when
enrolled); `once` re-entry looks here for any earlier run."""

from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, Engine, Text, UniqueConstraint
from sqlmodel import Field, Session, SQLModel, col, or_, select


def _now() -> datetime:
    return datetime.now(UTC)


class PlanEnrollment(SQLModel, table=True):
    __tablename__ = "plan_enrollment"
    __table_args__ = (UniqueConstraint("workflow_id", "run_id"),)

    id: int | None = Field(default=None, primary_key=True)
    workflow_id: str = Field(index=True)
    run_id: str
    account_id: str = Field(index=True)
    contact_id: str = Field(index=True)
    plan_id: str = Field(index=True)
    plan_version: int
    source: str
    phone: str | None = Field(default=None, index=True)  # E.164
    email: str | None = Field(default=None, index=True)  # lower-cased
    started_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False))
    ended_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    ended: str | None = Field(default=None, sa_column=Column(Text))  # an EndReason


def running_enrollments(engine: Engine, phone: str | None = None, email: str | None = None) -> list[PlanEnrollment]:
    """The enrollments still running for a phone number (E.164) or an email address, any account's."""
    matches = []
    if phone:
        matches.append(PlanEnrollment.phone == phone)
    if email:
        matches.append(PlanEnrollment.email == email.strip().lower())
    if not matches:
        return []
    with Session(engine) as session:
        return list(session.exec(select(PlanEnrollment).where(or_(*matches), col(PlanEnrollment.ended_at).is_(None))
                                 .order_by(col(PlanEnrollment.id))))


def ever_enrolled(engine: Engine, account_id: str, contact_id: str, plan_id: str) -> bool:
    with Session(engine) as session:
        return session.exec(select(PlanEnrollment.id).where(
            PlanEnrollment.account_id == account_id, PlanEnrollment.contact_id == contact_id,
            PlanEnrollment.plan_id == plan_id)).first() is not None
