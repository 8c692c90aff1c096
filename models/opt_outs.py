"""Who must not be texted: each phone number that opted out (STOP and its siblings), until it opts back in.
One row per number, for every plan and account alike, as the TCPA expects once someone said stop.

A keyword counts only as the whole message, case-insensitive, ignoring surrounding whitespace and
punctuation ("Stop." and "STOP!" opt out; "please stop" does not): the spec's whole-trimmed-message rule,
taken on the side of honouring an opt-out that a person clearly meant."""

from datetime import datetime
from typing import Literal

from sqlalchemy import Column, DateTime, Engine, String
from sqlmodel import Field, Session, SQLModel

from models.db import session_scope
from models.messages import e164
from models.outbox import utc_now

OPT_OUT_KEYWORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
OPT_IN_KEYWORDS = {"START", "UNSTOP", "YES"}
HELP_KEYWORDS = {"HELP", "INFO"}

Keyword = Literal["opt_out", "opt_in", "help"]
_SURROUNDING = " \t\r\n.!?,;:'\"()"


class SmsOptOut(SQLModel, table=True):
    __tablename__ = "sms_opt_out"

    phone: str = Field(sa_column=Column(String(16), primary_key=True))  # E.164
    opted_out: bool
    keyword: str  # what changed it: the word texted, or the provider's refusal ("twilio:21610")
    changed_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


def keyword_of(body: str) -> Keyword | None:
    word = body.strip(_SURROUNDING).upper()
    if word in OPT_OUT_KEYWORDS:
        return "opt_out"
    if word in OPT_IN_KEYWORDS:
        return "opt_in"
    if word in HELP_KEYWORDS:
        return "help"
    return None


def set_opt_out(engine: Engine, phone: str, opted_out: bool, keyword: str) -> None:
    with session_scope(engine) as session:
        session.merge(SmsOptOut(phone=e164(phone), opted_out=opted_out, keyword=keyword, changed_at=utc_now()))


def record_keyword(engine: Engine, phone: str, body: str) -> Keyword | None:
    """What an inbound text from `phone` asks for, its opt-out or opt-in recorded; help changes nothing."""
    keyword = keyword_of(body)
    if keyword in ("opt_out", "opt_in"):
        set_opt_out(engine, phone, keyword == "opt_out", body.strip(_SURROUNDING).upper())
    return keyword


def is_opted_out(engine: Engine, phone: str) -> bool:
    with Session(engine) as session:
        row = session.get(SmsOptOut, e164(phone))
        return bool(row and row.opted_out)
